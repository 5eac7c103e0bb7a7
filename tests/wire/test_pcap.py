"""mip6.wire.pcap: capture reader (pcap, pcapng), pcap writer and IPv6 extraction.

Oracles: scapy 2.8 (rdpcap, wrpcap, PcapNgWriter) and, where installed, tshark/editcap. Files in
both byte orders, nanosecond pcap and multi-interface pcapng are built by hand with ``struct`` so
every header field is under the test's control.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet
from scapy.utils import EDecimal, rdpcap, wrpcap

from mip6.wire.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    MAX_RECORD_LENGTH,
    CapturedFrame,
    CaptureError,
    Ipv6Frame,
    NotIpv6,
    NotIpv6Kind,
    PcapWriter,
    extract_ipv6,
    read_capture,
    read_capture_file,
)

try:
    from scapy.utils import PcapNgWriter
except ImportError:  # pragma: no cover - scapy 2.8 has it
    PcapNgWriter = None

T0_NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z
SECOND = 1_000_000_000


def _ipv6_packets() -> list[Packet]:
    return [
        IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2) / b"hello",
        IPv6(src="2001:db8:1::10", dst="2001:db8::2", hlim=7) / ICMPv6EchoRequest(id=3, seq=4),
        IPv6(src="fe80::1", dst="ff02::1", nh=59),
    ]


def _read_all(blob: bytes) -> list[CapturedFrame]:
    return list(read_capture(io.BytesIO(blob)))


def _read_until_error(blob: bytes) -> tuple[list[CapturedFrame], CaptureError | None]:
    """Frames yielded before the reader stopped, and the CaptureError it stopped with (if any).
    Any other exception escapes and fails the calling test."""
    frames: list[CapturedFrame] = []
    try:
        for frame in read_capture(io.BytesIO(blob)):
            frames.append(frame)
    except CaptureError as error:
        return frames, error
    return frames, None


def _ns(time: EDecimal) -> int:
    return int(EDecimal(time) * SECOND)


def _require_tool(tool: str) -> str:
    """The tool's path; skipped when absent locally, but a failure in CI (env CI set)."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not installed (Debian: apt-get install tshark wireshark-common)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so {message} is a failure, not a skip")
        pytest.skip(message)
    return path


# -- Hand-built files --------------------------------------------------------------------------


def _pcap(
    order: str,
    nanosecond: bool,
    link_type: int,
    records: Iterable[tuple[int, bytes]],
    *,
    original_extra: int = 0,
) -> bytes:
    """A classic pcap in byte order ``order`` ("<"/">") from (timestamp_ns, data) records."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, link_type)]
    for timestamp_ns, data in records:
        seconds, fraction = divmod(timestamp_ns, SECOND)
        if not nanosecond:
            fraction //= 1000
        out.append(
            struct.pack(order + "IIII", seconds, fraction, len(data), len(data) + original_extra)
        )
        out.append(data)
    return b"".join(out)


def _block(order: str, block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def _shb(order: str) -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(
    order: str,
    link_type: int,
    *,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
) -> bytes:
    options = _option(order, 2, b"eth0")  # if_name, ignored
    if tsresol is not None:
        options += _option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        options += _option(order, 14, struct.pack(order + "q", tsoffset))
    options += _option(order, 0, b"")
    return _block(order, 1, struct.pack(order + "HHI", link_type, 0, snaplen) + options)


def _epb(order: str, interface: int, units: int, data: bytes, original: int | None = None) -> bytes:
    fixed = struct.pack(
        order + "IIIII",
        interface,
        units >> 32,
        units & 0xFFFFFFFF,
        len(data),
        len(data) if original is None else original,
    )
    comment = _option(order, 1, b"a comment") + _option(order, 0, b"")
    return _block(order, 6, fixed + data + bytes(-len(data) % 4) + comment)


def _spb(order: str, data: bytes, original: int | None = None) -> bytes:
    original = len(data) if original is None else original
    return _block(order, 3, struct.pack(order + "I", original) + data)


def _pb(order: str, interface: int, units: int, data: bytes) -> bytes:
    fixed = struct.pack(
        order + "HHIIII", interface, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data)
    )
    return _block(order, 2, fixed + data)


ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # explicit: no ARP/route lookup
ETHERNET_FRAME = bytes(ETHER / _ipv6_packets()[0])
RAW_IPV6 = bytes(_ipv6_packets()[1])
SLL_FRAME = bytes(CookedLinux(pkttype=4) / _ipv6_packets()[2])


def _pcapng_blocks(order: str) -> tuple[list[bytes], list[CapturedFrame]]:
    """Section 1 (``order``): Ethernet at 10^-9 s, raw IPv6 at 2^-10 s, Linux SLL at ms with
    if_tsoffset; EPB, PB, SPB and skipped blocks. Section 2 in the other byte order. Returns the
    blocks and the frames a reader must find in them."""
    other = ">" if order == "<" else "<"
    units_2_10 = (T0_NS // SECOND) * 1024 + 512  # + 0.5 s
    blocks = [
        _shb(order),
        _idb(order, LINKTYPE_ETHERNET, snaplen=40, tsresol=9),
        _idb(order, LINKTYPE_IPV6, tsresol=0x80 | 10),
        _block(order, 4, _option(order, 0, b"")),  # Name Resolution Block: skipped
        _epb(order, 0, T0_NS, ETHERNET_FRAME, original=len(ETHERNET_FRAME) + 100),
        _epb(order, 1, units_2_10, RAW_IPV6),
        _idb(order, LINKTYPE_LINUX_SLL, tsresol=3, tsoffset=-1_000),
        _pb(order, 2, 1_700_000_000_250, SLL_FRAME),
        _block(order, 5, bytes(16)),  # Interface Statistics Block: skipped
        _block(order, 0x40000BAD, b"\x00\x00\x7e\x1b custom"),  # Custom Block: skipped
        _spb(order, ETHERNET_FRAME),  # interface 0 has snaplen 40
        _shb(other),
        _idb(other, LINKTYPE_RAW),  # default resolution: microseconds
        _epb(other, 0, 1_700_000_003_000_001, RAW_IPV6),
    ]
    expected = [
        CapturedFrame(
            timestamp_ns=T0_NS,
            link_type=LINKTYPE_ETHERNET,
            data=ETHERNET_FRAME,
            original_length=len(ETHERNET_FRAME) + 100,
            interface=0,
        ),
        CapturedFrame(
            timestamp_ns=(T0_NS // SECOND) * SECOND + SECOND // 2,
            link_type=LINKTYPE_IPV6,
            data=RAW_IPV6,
            original_length=len(RAW_IPV6),
            interface=1,
        ),
        CapturedFrame(
            timestamp_ns=(1_700_000_000 - 1_000) * SECOND + 250_000_000,
            link_type=LINKTYPE_LINUX_SLL,
            data=SLL_FRAME,
            original_length=len(SLL_FRAME),
            interface=2,
        ),
        CapturedFrame(
            timestamp_ns=0,
            link_type=LINKTYPE_ETHERNET,
            data=ETHERNET_FRAME[:40],
            original_length=len(ETHERNET_FRAME),
            interface=0,
        ),
        CapturedFrame(
            timestamp_ns=1_700_000_003_000_001_000,
            link_type=LINKTYPE_RAW,
            data=RAW_IPV6,
            original_length=len(RAW_IPV6),
            interface=3,
        ),
    ]
    return blocks, expected


def _pcapng_two_sections(order: str) -> tuple[bytes, list[CapturedFrame]]:
    blocks, expected = _pcapng_blocks(order)
    return b"".join(blocks), expected


# -- Writer ------------------------------------------------------------------------------------


def test_writer_new_file_writes_little_endian_pcap_header() -> None:
    stream = io.BytesIO()
    PcapWriter(stream)
    assert stream.getvalue() == bytes.fromhex(
        "d4c3b2a1 0200 0400 00000000 00000000 00000400 e5000000"
    )


def test_writer_nanosecond_writes_nanosecond_magic_and_link_type() -> None:
    stream = io.BytesIO()
    PcapWriter(stream, link_type=LINKTYPE_ETHERNET, snaplen=1500, nanosecond=True)
    assert stream.getvalue() == bytes.fromhex(
        "4d3cb2a1 0200 0400 00000000 00000000 dc050000 01000000"
    )


@pytest.mark.parametrize("nanosecond", [False, True])
def test_writer_ipv6_packets_read_back_by_scapy_and_ours(tmp_path: Path, nanosecond: bool) -> None:
    packets = _ipv6_packets()
    stamps = [T0_NS + i * 1_001_001 for i in range(len(packets))]
    path = tmp_path / "out.pcap"
    with PcapWriter.create(path, nanosecond=nanosecond) as writer:
        for packet, stamp in zip(packets, stamps, strict=True):
            writer.write(bytes(packet), stamp)
        assert writer.frames == len(packets)
    expected_stamps = stamps if nanosecond else [s // 1000 * 1000 for s in stamps]

    scapy_packets = rdpcap(str(path))
    assert [bytes(p) for p in scapy_packets] == [bytes(p) for p in packets]
    assert [_ns(p.time) for p in scapy_packets] == expected_stamps
    assert all(isinstance(p, IPv6) for p in scapy_packets)  # scapy saw link type 229

    ours = list(read_capture_file(path))
    assert [f.data for f in ours] == [bytes(p) for p in packets]
    assert [f.timestamp_ns for f in ours] == expected_stamps
    assert {f.link_type for f in ours} == {LINKTYPE_IPV6}


def test_writer_packet_over_snaplen_keeps_original_length() -> None:
    stream = io.BytesIO()
    writer = PcapWriter(stream, link_type=LINKTYPE_ETHERNET, snaplen=60)
    writer.write(bytes(range(100)), T0_NS)
    writer.write(bytearray(b"short"), T0_NS + 1)
    writer.flush()
    (cut, short) = _read_all(stream.getvalue())
    assert (cut.data, cut.original_length, cut.truncated) == (bytes(range(60)), 100, True)
    assert (short.data, short.original_length, short.truncated) == (b"short", 5, False)


def test_writer_context_on_given_stream_flushes_without_closing() -> None:
    stream = io.BytesIO()
    with PcapWriter(stream) as writer:
        writer.write(b"\x60" + bytes(39), 0)
    assert not stream.closed
    assert len(_read_all(stream.getvalue())) == 1


def test_writer_create_closes_its_file(tmp_path: Path) -> None:
    writer = PcapWriter.create(tmp_path / "x.pcap")
    writer.write(RAW_IPV6, T0_NS)
    writer.close()
    assert writer._stream.closed
    assert [f.data for f in read_capture_file(tmp_path / "x.pcap")] == [RAW_IPV6]


@pytest.mark.parametrize("timestamp_ns", [-1, (1 << 32) * SECOND])
def test_writer_timestamp_outside_u32_seconds_raises_value_error(timestamp_ns: int) -> None:
    writer = PcapWriter(io.BytesIO())
    with pytest.raises(ValueError):
        writer.write(RAW_IPV6, timestamp_ns)


@pytest.mark.parametrize(
    "kwargs", [{"link_type": 1 << 16}, {"snaplen": 0}, {"snaplen": MAX_RECORD_LENGTH + 1}]
)
def test_writer_bad_settings_raise_value_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO(), **kwargs)


# -- Reader against scapy's writers ------------------------------------------------------------


def _stamped(packets: Sequence[Packet]) -> list[Packet]:
    for i, packet in enumerate(packets):
        packet.time = EDecimal(T0_NS // 1000 + i * 1_000_001) / 1_000_000  # whole microseconds
    return list(packets)


SCAPY_LINK_CASES = {
    "ethernet": (LINKTYPE_ETHERNET, [ETHER / p for p in _ipv6_packets()]),
    "raw_ipv6": (LINKTYPE_IPV6, _ipv6_packets()),
    "linux_sll": (LINKTYPE_LINUX_SLL, [CookedLinux() / p for p in _ipv6_packets()]),
    "linux_sll2": (LINKTYPE_LINUX_SLL2, [CookedLinuxV2() / p for p in _ipv6_packets()]),
}


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("case", sorted(SCAPY_LINK_CASES))
def test_reader_scapy_wrpcap_reads_frames_and_ipv6(tmp_path: Path, case: str, nano: bool) -> None:
    link_type, packets = SCAPY_LINK_CASES[case]
    packets = _stamped(packets)
    path = tmp_path / "scapy.pcap"
    wrpcap(str(path), packets, linktype=link_type, nano=nano)
    frames = list(read_capture_file(path))
    assert [f.data for f in frames] == [bytes(p) for p in packets]
    assert [f.timestamp_ns for f in frames] == [_ns(p.time) for p in packets]
    assert {f.link_type for f in frames} == {link_type}
    for frame, packet in zip(frames, packets, strict=True):
        extract = extract_ipv6(frame.link_type, frame.data)
        assert isinstance(extract, Ipv6Frame)
        assert extract.packet == bytes(packet[IPv6])


@pytest.mark.skipif(PcapNgWriter is None, reason="this scapy has no PcapNgWriter")
def test_reader_scapy_pcapng_two_interfaces_reads_frames(tmp_path: Path) -> None:
    packets = _stamped([ETHER / _ipv6_packets()[0], _ipv6_packets()[1], ETHER / _ipv6_packets()[2]])
    packets[1].sniffed_on = "tun0"  # scapy writes a second IDB for a named interface
    path = tmp_path / "scapy.pcapng"
    writer = PcapNgWriter(str(path))
    for packet in packets:
        writer.write(packet)
    writer.close()
    frames = list(read_capture_file(path))
    assert [f.data for f in frames] == [bytes(p) for p in packets]
    assert [f.timestamp_ns for f in frames] == [_ns(p.time) for p in packets]
    assert [(f.interface, f.link_type) for f in frames] == [
        (0, LINKTYPE_ETHERNET),
        (1, LINKTYPE_IPV6),
        (0, LINKTYPE_ETHERNET),
    ]


# -- Reader on hand-built files ----------------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("order", ["<", ">"])
def test_reader_pcap_either_byte_order_reads_timestamps(order: str, nanosecond: bool) -> None:
    records = [(T0_NS, ETHERNET_FRAME), (T0_NS + 2 * SECOND + 7, b""), (5, b"\x01")]
    blob = _pcap(order, nanosecond, LINKTYPE_ETHERNET, records, original_extra=3)
    frames = _read_all(blob)
    resolution = 1 if nanosecond else 1000
    assert frames == [
        CapturedFrame(
            timestamp_ns=stamp // resolution * resolution,
            link_type=LINKTYPE_ETHERNET,
            data=data,
            original_length=len(data) + 3,
            interface=0,
        )
        for stamp, data in records
    ]


def test_reader_pcap_link_type_with_fcs_bits_reports_link_type_only() -> None:
    fcs_flagged = (4 << 28) | (1 << 26) | LINKTYPE_ETHERNET  # "FCS len 4, f bit set"
    blob = _pcap("<", False, fcs_flagged, [(T0_NS, ETHERNET_FRAME + b"\xde\xad\xbe\xef")])
    (frame,) = _read_all(blob)
    assert frame.link_type == LINKTYPE_ETHERNET
    assert isinstance(extract := extract_ipv6(frame.link_type, frame.data), Ipv6Frame)
    assert extract.trimmed == 4


def test_reader_pcap_header_only_yields_nothing() -> None:
    assert _read_all(_pcap("<", False, LINKTYPE_IPV6, [])) == []


@pytest.mark.parametrize("order", ["<", ">"])
def test_reader_pcapng_two_sections_interfaces_and_resolutions(order: str) -> None:
    blob, expected = _pcapng_two_sections(order)
    assert _read_all(blob) == expected


def test_reader_pcapng_tsresol_power_of_two_converts_to_ns() -> None:
    order = "<"
    blob = (
        _shb(order)
        + _idb(order, LINKTYPE_IPV6, tsresol=0x80 | 20)
        + _epb(order, 0, 3 * (1 << 20) + (1 << 18), RAW_IPV6)  # 3.25 s
    )
    assert [f.timestamp_ns for f in _read_all(blob)] == [3_250_000_000]


def test_reader_pcapng_tsresol_finer_than_ns_rounds_down() -> None:
    order = ">"
    blob = _shb(order) + _idb(order, LINKTYPE_IPV6, tsresol=12) + _epb(order, 0, 1_999, RAW_IPV6)
    assert [f.timestamp_ns for f in _read_all(blob)] == [1]


def test_reader_file_path_and_stream_agree(tmp_path: Path) -> None:
    blob, expected = _pcapng_two_sections("<")
    (tmp_path / "f.pcapng").write_bytes(blob)
    assert list(read_capture_file(tmp_path / "f.pcapng")) == expected


# -- Reader errors -----------------------------------------------------------------------------


def test_reader_empty_file_raises_capture_error_at_0() -> None:
    with pytest.raises(CaptureError) as caught:
        _read_all(b"")
    assert caught.value.offset == 0


@pytest.mark.parametrize(
    "blob", [b"GIF89a" + bytes(40), b"\x34\xcd\xb2\xa1" + bytes(20), b"\xa1\xb2"]
)
def test_reader_not_a_capture_raises_capture_error_at_0(blob: bytes) -> None:
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 0
    assert isinstance(caught.value, ValueError)


def test_reader_pcap_truncated_last_record_yields_earlier_frames_then_raises() -> None:
    blob = _pcap("<", False, LINKTYPE_IPV6, [(T0_NS, RAW_IPV6), (T0_NS + 1000, RAW_IPV6)])
    frames = read_capture(io.BytesIO(blob[:-1]))
    assert next(frames).data == RAW_IPV6
    with pytest.raises(CaptureError) as caught:
        next(frames)
    second_data = 24 + 16 + len(RAW_IPV6) + 16
    assert caught.value.offset == second_data


def test_reader_pcap_truncated_record_header_reports_its_offset() -> None:
    blob = _pcap("<", False, LINKTYPE_IPV6, [(T0_NS, RAW_IPV6)]) + bytes(10)
    frames, error = _read_until_error(blob)
    assert len(frames) == 1
    assert error is not None and error.offset == 24 + 16 + len(RAW_IPV6)


def test_reader_pcap_version_1_raises() -> None:
    blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 65535, 1)
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 4


def test_reader_pcap_huge_record_length_refused_before_reading() -> None:
    blob = _pcap("<", False, LINKTYPE_IPV6, []) + struct.pack("<IIII", 0, 0, 0xFFFFFFFF, 64)
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 24 + 8


class _ReadSizeRecorder(io.BytesIO):
    """A stream remembering the largest read it was asked for."""

    largest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.largest = max(self.largest, size or 0)
        return super().read(size)


def test_reader_large_claimed_record_reads_in_bounded_chunks() -> None:
    claimed = MAX_RECORD_LENGTH - 1  # allowed, but the file holds only 100 bytes of it
    blob = _pcap("<", False, LINKTYPE_IPV6, []) + struct.pack("<IIII", 0, 0, claimed, claimed)
    stream = _ReadSizeRecorder(blob + bytes(100))
    with pytest.raises(CaptureError) as caught:
        list(read_capture(stream))
    assert caught.value.offset == 24 + 16
    assert stream.largest <= 1024 * 1024


def test_reader_pcapng_huge_block_length_refused() -> None:
    blob = _shb("<") + struct.pack("<II", 6, 0xFFFFFFF0)
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 28 + 4


@pytest.mark.parametrize("length", [8, 30])
def test_reader_pcapng_block_length_too_small_or_unaligned_raises(length: int) -> None:
    blob = _shb("<") + struct.pack("<II", 6, length) + bytes(40)
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 28 + 4


def test_reader_pcapng_trailer_mismatch_reports_trailer_offset() -> None:
    blob = bytearray(_shb("<") + _idb("<", LINKTYPE_IPV6))
    blob[-4:] = struct.pack("<I", 12)
    with pytest.raises(CaptureError) as caught:
        _read_all(bytes(blob))
    assert caught.value.offset == len(blob) - 4


def test_reader_pcapng_bad_byte_order_magic_raises_at_magic() -> None:
    blob = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x12345678, 1, 0, -1) + struct.pack("<I", 28)
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 8


def test_reader_pcapng_major_version_2_raises() -> None:
    blob = _block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1))
    with pytest.raises(CaptureError) as caught:
        _read_all(blob)
    assert caught.value.offset == 12


def test_reader_pcapng_packet_for_undeclared_interface_raises_after_earlier_frames() -> None:
    blob = (
        _shb("<") + _idb("<", LINKTYPE_IPV6) + _epb("<", 0, 1, RAW_IPV6) + _epb("<", 1, 2, RAW_IPV6)
    )
    frames, error = _read_until_error(blob)
    assert len(frames) == 1
    assert error is not None


def test_reader_pcapng_new_section_forgets_interfaces() -> None:
    blob = _shb("<") + _idb("<", LINKTYPE_IPV6) + _shb(">") + _epb(">", 0, 1, RAW_IPV6)
    frames, error = _read_until_error(blob)
    assert frames == [] and error is not None


def test_reader_pcapng_option_overrunning_block_raises() -> None:
    body = struct.pack("<HHI", LINKTYPE_IPV6, 0, 0) + struct.pack("<HH", 9, 200)
    with pytest.raises(CaptureError):
        _read_all(_shb("<") + _block("<", 1, body))


def test_reader_pcapng_if_tsresol_wrong_length_raises() -> None:
    body = struct.pack("<HHI", LINKTYPE_IPV6, 0, 0) + _option("<", 9, b"\x06\x00")
    with pytest.raises(CaptureError):
        _read_all(_shb("<") + _block("<", 1, body))


def test_reader_pcapng_epb_captured_length_beyond_block_raises() -> None:
    block = bytearray(_epb("<", 0, 1, RAW_IPV6))
    struct.pack_into("<I", block, 20, 10_000)  # Captured Packet Length
    with pytest.raises(CaptureError) as caught:
        _read_all(_shb("<") + _idb("<", LINKTYPE_IPV6) + bytes(block))
    assert caught.value.offset == 28 + len(_idb("<", LINKTYPE_IPV6)) + 20


# -- Robustness --------------------------------------------------------------------------------


def _small_pcap_pieces() -> list[bytes]:
    """A nanosecond big-endian pcap as [file header, record, record]."""
    blob = _pcap(">", True, LINKTYPE_ETHERNET, [(T0_NS, ETHERNET_FRAME), (T0_NS + 1, b"\x00")])
    first_end = 24 + 16 + len(ETHERNET_FRAME)
    return [blob[:24], blob[24:first_end], blob[first_end:]]


def _small_pcapng_pieces() -> list[bytes]:
    return _pcapng_blocks("<")[0]


SMALL_FILES = {"pcap": _small_pcap_pieces, "pcapng": _small_pcapng_pieces}


@pytest.mark.parametrize("name", sorted(SMALL_FILES))
def test_reader_every_truncation_raises_capture_error_unless_on_a_boundary(name: str) -> None:
    pieces = SMALL_FILES[name]()
    blob = b"".join(pieces)
    boundaries = {sum(len(p) for p in pieces[:n]) for n in range(1, len(pieces) + 1)}
    complete = _read_all(blob)
    for length in range(len(blob) + 1):
        frames, error = _read_until_error(blob[:length])
        assert frames == complete[: len(frames)]
        if length in boundaries:
            assert error is None, f"cut at record boundary {length}: {error}"
        else:
            assert error is not None, f"cut at {length} inside a record went unnoticed"
            assert 0 <= error.offset <= length


@pytest.mark.parametrize("name", sorted(SMALL_FILES))
def test_reader_random_byte_flips_raise_only_capture_error(name: str) -> None:
    blob = b"".join(SMALL_FILES[name]())
    rng = random.Random(0x6D697036)
    rejected = 0
    for _ in range(3000):
        mutated = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(mutated))
            mutated[position] ^= rng.randrange(1, 256)
        frames, error = _read_until_error(bytes(mutated))  # anything else escapes and fails
        rejected += error is not None
        for frame in frames:
            extract_ipv6(frame.link_type, frame.data)  # must not raise either
    assert rejected > 0  # the corruption is noticed, not only survived


# -- extract_ipv6 ------------------------------------------------------------------------------

IPV6 = _ipv6_packets()[0]
IPV6_BYTES = bytes(IPV6)


@pytest.mark.parametrize(
    "frame",
    [
        ETHER / IPV6,
        ETHER / Dot1Q(vlan=7) / IPV6,
        Ether(type=0x88A8) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IPV6,
        Ether(type=0x9100) / Dot1Q(vlan=3) / IPV6,
    ],
    ids=["plain", "802.1q", "802.1ad+802.1q", "old-qinq"],
)
def test_extract_ethernet_ipv6_returns_packet(frame: Packet) -> None:
    data = bytes(frame)
    extract = extract_ipv6(LINKTYPE_ETHERNET, data)
    assert extract == Ipv6Frame(packet=IPV6_BYTES, offset=len(data) - len(IPV6_BYTES))


def test_extract_ethernet_padded_frame_trims_padding_and_fcs() -> None:
    small = IPv6(src="::1", dst="::2", nh=59)  # 40 bytes: Ethernet pads to 60, then FCS
    data = bytes(ETHER / small) + bytes(6) + b"\x12\x34\x56\x78"
    assert extract_ipv6(LINKTYPE_ETHERNET, data) == Ipv6Frame(
        packet=bytes(small), offset=14, trimmed=10
    )


def test_extract_payload_length_beyond_frame_keeps_packet_untrimmed() -> None:
    truncated = IPV6_BYTES[:-3]
    assert extract_ipv6(LINKTYPE_IPV6, truncated) == Ipv6Frame(packet=truncated, offset=0)
    stub = IPV6_BYTES[:20]  # not even a full IPv6 header: the IPv6 parser reports it
    assert extract_ipv6(LINKTYPE_ETHERNET, bytes(Ether(type=0x86DD)) + stub) == Ipv6Frame(
        packet=stub, offset=14
    )


def test_extract_jumbogram_payload_length_0_is_not_trimmed() -> None:
    jumbo = bytes(IPv6(plen=0, nh=0)) + bytes(16)
    assert extract_ipv6(LINKTYPE_IPV6, jumbo) == Ipv6Frame(packet=jumbo, offset=0)


@pytest.mark.parametrize(
    ("link_type", "data", "kind", "value"),
    [
        (LINKTYPE_ETHERNET, bytes(ETHER / ARP()), NotIpv6Kind.OTHER_PROTOCOL, 0x0806),
        (LINKTYPE_ETHERNET, bytes(ETHER / IP()), NotIpv6Kind.IPV4, 0x0800),
        (LINKTYPE_ETHERNET, bytes(ETHER / Dot1Q() / IP()), NotIpv6Kind.IPV4, 0x0800),
        (LINKTYPE_ETHERNET, bytes(Ether(type=46)) + bytes(46), NotIpv6Kind.OTHER_PROTOCOL, 46),
        (LINKTYPE_ETHERNET, bytes(10), NotIpv6Kind.LINK_HEADER_TRUNCATED, LINKTYPE_ETHERNET),
        (
            LINKTYPE_ETHERNET,
            bytes(Ether(type=0x8100)) + b"\x00",
            NotIpv6Kind.LINK_HEADER_TRUNCATED,
            LINKTYPE_ETHERNET,
        ),
        (LINKTYPE_RAW, bytes(IP()), NotIpv6Kind.IPV4, 4),
        (LINKTYPE_RAW, b"\x50" + bytes(39), NotIpv6Kind.OTHER_PROTOCOL, 5),
        (LINKTYPE_RAW, b"", NotIpv6Kind.LINK_HEADER_TRUNCATED, LINKTYPE_RAW),
        (LINKTYPE_IPV4, bytes(IP()), NotIpv6Kind.IPV4, 4),
        (LINKTYPE_LINUX_SLL, bytes(CookedLinux() / IP()), NotIpv6Kind.IPV4, 0x0800),
        (LINKTYPE_LINUX_SLL, bytes(15), NotIpv6Kind.LINK_HEADER_TRUNCATED, LINKTYPE_LINUX_SLL),
        (LINKTYPE_LINUX_SLL2, bytes(CookedLinuxV2() / ARP()), NotIpv6Kind.OTHER_PROTOCOL, 0x0806),
        (LINKTYPE_LINUX_SLL2, bytes(19), NotIpv6Kind.LINK_HEADER_TRUNCATED, LINKTYPE_LINUX_SLL2),
        (LINKTYPE_NULL, struct.pack("<I", 2) + bytes(IP()), NotIpv6Kind.IPV4, 2),
        (LINKTYPE_NULL, struct.pack(">I", 2) + bytes(IP()), NotIpv6Kind.IPV4, 2),
        (LINKTYPE_NULL, struct.pack("<I", 7) + bytes(20), NotIpv6Kind.OTHER_PROTOCOL, 7),
        (LINKTYPE_NULL, b"\x1e\x00", NotIpv6Kind.LINK_HEADER_TRUNCATED, LINKTYPE_NULL),
        (105, bytes(64), NotIpv6Kind.UNSUPPORTED_LINK_TYPE, 105),
    ],
    ids=[
        "ether-arp",
        "ether-ipv4",
        "vlan-ipv4",
        "ether-802.3-length",
        "ether-short",
        "vlan-short",
        "raw-ipv4",
        "raw-version-5",
        "raw-empty",
        "linktype-ipv4",
        "sll-ipv4",
        "sll-short",
        "sll2-arp",
        "sll2-short",
        "null-le-inet",
        "null-be-inet",
        "null-af-7",
        "null-short",
        "802.11",
    ],
)
def test_extract_non_ipv6_frame_says_why(
    link_type: int, data: bytes, kind: NotIpv6Kind, value: int
) -> None:
    extract = extract_ipv6(link_type, data)
    assert isinstance(extract, NotIpv6)
    assert (extract.kind, extract.value) == (kind, value)
    assert extract.reason


def test_extract_reasons_name_the_code_point() -> None:
    arp = extract_ipv6(LINKTYPE_ETHERNET, bytes(ETHER / ARP()))
    assert isinstance(arp, NotIpv6) and "0x0806" in arp.reason
    unsupported = extract_ipv6(105, b"")
    assert isinstance(unsupported, NotIpv6) and "105" in unsupported.reason


@pytest.mark.parametrize(
    ("link_type", "header"),
    [
        (LINKTYPE_IPV6, b""),
        (LINKTYPE_RAW, b""),
        (LINKTYPE_LINUX_SLL, bytes(CookedLinux(pkttype=0, proto=0x86DD))),
        (LINKTYPE_LINUX_SLL, bytes(CookedLinux(proto=0x8100) / Dot1Q(type=0x86DD))),
        (LINKTYPE_LINUX_SLL2, bytes(CookedLinuxV2(proto=0x86DD))),
        *[(LINKTYPE_NULL, struct.pack(o + "I", af)) for af in (10, 24, 28, 30) for o in "<>"],
        (LINKTYPE_LOOP, struct.pack(">I", 24)),
    ],
    ids=[
        "ipv6",
        "raw",
        "sll",
        "sll-vlan",
        "sll2",
        *[f"null-af{af}-{'le' if o == '<' else 'be'}" for af in (10, 24, 28, 30) for o in "<>"],
        "loop",
    ],
)
def test_extract_each_link_type_ipv6_returns_packet(link_type: int, header: bytes) -> None:
    assert extract_ipv6(link_type, header + IPV6_BYTES + b"\x00\x00") == Ipv6Frame(
        packet=IPV6_BYTES, offset=len(header), trimmed=2
    )


# -- tshark / editcap --------------------------------------------------------------------------


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{argv[0]} failed: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("link_type", [LINKTYPE_IPV6, LINKTYPE_ETHERNET])
def test_tshark_reads_our_pcap(tmp_path: Path, link_type: int) -> None:
    tshark = _require_tool("tshark")
    packets = _ipv6_packets()
    path = tmp_path / "ours.pcap"
    with PcapWriter.create(path, link_type=link_type, nanosecond=True) as writer:
        for i, packet in enumerate(packets):
            frame = bytes(ETHER / packet) if link_type == LINKTYPE_ETHERNET else bytes(packet)
            writer.write(frame, T0_NS + i)
    fields = ["-T", "fields", "-e", "ipv6.src", "-e", "frame.time_epoch"]
    output = _run(tshark, "-n", "-r", str(path), *fields)
    rows = [line.split("\t") for line in output.splitlines()]
    assert [row[0] for row in rows] == [p.src for p in packets]
    stamps = [T0_NS + i for i in range(len(packets))]
    assert [row[1] for row in rows] == [f"{t // SECOND}.{t % SECOND:09d}" for t in stamps]


@pytest.mark.parametrize("nanosecond", [False, True])
def test_reader_editcap_pcapng_reads_same_frames(tmp_path: Path, nanosecond: bool) -> None:
    editcap = _require_tool("editcap")
    source = tmp_path / "ours.pcap"
    with PcapWriter.create(source, link_type=LINKTYPE_ETHERNET, nanosecond=nanosecond) as writer:
        for i, packet in enumerate(_ipv6_packets()):
            writer.write(bytes(ETHER / packet), T0_NS + i * 1_000_123)
    converted = tmp_path / "converted.pcapng"
    _run(editcap, "-F", "pcapng", str(source), str(converted))
    assert converted.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert list(read_capture_file(converted)) == list(read_capture_file(source))
