"""UDP, TCP and ESP codecs: byte fixtures, strict parsing, round trips, scapy as an oracle.

Where scapy and the RFC disagree the RFC wins, and the disagreement is pinned in a test that
says so (``test_scapy_disagrees_*``).
"""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import IPv6Address

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP, UDP, TCPOptions
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.packet import Raw

from mip6.wire import esp, protocols, tcp, udp
from mip6.wire.checksum import ones_complement_sum, upper_layer_checksum
from mip6.wire.errors import BadChecksum, EmitError, Malformed, Truncated, WireError
from mip6.wire.esp import EspPacket
from mip6.wire.tcp import (
    EndOfOptionList,
    MaximumSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpFlags,
    TcpSegment,
    Timestamps,
    UnknownTcpOption,
    WindowScale,
    aligned_tcp_options,
)
from mip6.wire.udp import UdpDatagram

SRC_TEXT = "2001:db8::1"
DST_TEXT = "2001:db8::2"
SRC = IPv6Address(SRC_TEXT).packed
DST = IPv6Address(DST_TEXT).packed
ADDRS = {"source": SRC, "destination": DST}

# Built once with scapy 2.8 (IPv6(src=SRC_TEXT, dst=DST_TEXT)/...), checksums confirmed below with
# the independent RFC 8200 8.1 computation.
UDP_FIXTURE = bytes.fromhex("138800350014fea4" + b"hello world!".hex())
TCP_SYN_ACK_FIXTURE = bytes.fromhex(
    "00509c40"  # ports 80 > 40000
    "00000001"  # sequence number
    "00000002"  # acknowledgment number
    "a012ffff"  # data offset 10, flags SYN|ACK, window 65535
    "4fe70000"  # checksum, urgent pointer
    "020405b4"  # MSS 1460
    "0402"  # SACK permitted
    "080a0000000100000000"  # timestamps 1, 0
    "01"  # NOP
    "030307"  # window scale 7
)
ESP_FIXTURE = bytes.fromhex("0000100000000007") + bytes(range(56))

TCP_SYN_ACK = TcpSegment(
    source_port=80,
    destination_port=40000,
    sequence_number=1,
    acknowledgment_number=2,
    flags=TcpFlags.SYN | TcpFlags.ACK,
    window=65535,
    options=(
        MaximumSegmentSize(maximum_segment_size=1460),
        SackPermitted(),
        Timestamps(tsval=1, tsecr=0),
        NoOperation(),
        WindowScale(shift_count=7),
    ),
)


# --- an independent checksum, written from RFC 8200 8.1 and RFC 1071, word by word ----------


def rfc8200_checksum(source: bytes, destination: bytes, next_header: int, segment: bytes) -> int:
    """The upper-layer checksum computed the long way: pseudo-header, then 16-bit words with
    end-around carry, odd byte padded with zero, then complemented."""
    pseudo = (
        source + destination + struct.pack("!I", len(segment)) + bytes(3) + bytes([next_header])
    )
    data = pseudo + segment
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_checksum(segment: bytes, at: int, value: int) -> bytes:
    return segment[:at] + value.to_bytes(2, "big") + segment[at + 2 :]


@settings(max_examples=300)
@given(
    payload=st.binary(max_size=200),
    source=st.binary(min_size=16, max_size=16),
    destination=st.binary(min_size=16, max_size=16),
    next_header=st.sampled_from([protocols.UDP, protocols.TCP, protocols.ICMPV6, 135]),
)
def test_checksum_random_payload_matches_rfc8200_word_loop(
    payload: bytes, source: bytes, destination: bytes, next_header: int
) -> None:
    assert upper_layer_checksum(source, destination, next_header, payload) == rfc8200_checksum(
        source, destination, next_header, payload
    )


@pytest.mark.parametrize("length", [0, 1, 2, 3, 7, 8, 9, 1499])
def test_checksum_odd_and_even_lengths_match_rfc8200_word_loop(length: int) -> None:
    payload = bytes((i * 37 + 11) & 0xFF for i in range(length))
    assert upper_layer_checksum(SRC, DST, protocols.UDP, payload) == rfc8200_checksum(
        SRC, DST, protocols.UDP, payload
    )


def test_fixtures_checksums_match_rfc8200_word_loop() -> None:
    for fixture, proto, at in ((UDP_FIXTURE, 17, 6), (TCP_SYN_ACK_FIXTURE, 6, 16)):
        zeroed = with_checksum(fixture, at, 0)
        assert fixture[at : at + 2] == rfc8200_checksum(SRC, DST, proto, zeroed).to_bytes(2, "big")


# --- UDP --------------------------------------------------------------------------------------


def test_udp_fixture_parse() -> None:
    datagram = UdpDatagram.parse(UDP_FIXTURE, **ADDRS)
    assert datagram == UdpDatagram(source_port=5000, destination_port=53, payload=b"hello world!")


def test_udp_fixture_emit() -> None:
    datagram = UdpDatagram(source_port=5000, destination_port=53, payload=b"hello world!")
    assert datagram.emit(**ADDRS) == UDP_FIXTURE


def test_udp_zero_checksum_bad_checksum() -> None:
    raw = UdpDatagram(source_port=1, destination_port=2).emit(**ADDRS, overrides={"checksum": 0})
    with pytest.raises(BadChecksum) as caught:
        UdpDatagram.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("checksum", 6)


def test_udp_wrong_checksum_bad_checksum() -> None:
    raw = with_checksum(UDP_FIXTURE, 6, 0xFEA5)
    with pytest.raises(BadChecksum) as caught:
        UdpDatagram.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("checksum", 6)


def test_udp_wrong_addresses_bad_checksum() -> None:
    with pytest.raises(BadChecksum):
        UdpDatagram.parse(UDP_FIXTURE, source=DST, destination=SRC[:-1] + b"\x09")


@pytest.mark.parametrize("length", [0, 7, 8, 19, 21, 0xFFFF])
def test_udp_length_disagrees_with_buffer_malformed(length: int) -> None:
    raw = UdpDatagram(source_port=1, destination_port=2, payload=bytes(12)).emit(
        **ADDRS, overrides={"length": length}
    )
    with pytest.raises(Malformed) as caught:
        UdpDatagram.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("length", 4)


def test_udp_length_override_keeps_checksum_over_that_length() -> None:
    # RFC 8200 8.1: for UDP the pseudo-header length is the UDP Length field.
    datagram = UdpDatagram(source_port=1, destination_port=2, payload=b"abcd")
    raw = datagram.emit(**ADDRS, overrides={"length": 10})
    assert raw[4:6] == b"\x00\x0a"
    pseudo = SRC + DST + struct.pack("!I3xB", 10, 17)
    assert ones_complement_sum(pseudo + raw) == 0xFFFF


def test_udp_computed_zero_checksum_sent_as_ffff() -> None:
    # Choose the last payload word so that the checksum computes to zero.
    base = UdpDatagram(source_port=7, destination_port=9, payload=b"abcdef\x00\x00")
    complement = base.emit(**ADDRS, overrides={"checksum": 0})
    word = rfc8200_checksum(SRC, DST, 17, complement)
    datagram = replace(base, payload=b"abcdef" + word.to_bytes(2, "big"))
    assert rfc8200_checksum(SRC, DST, 17, datagram.emit(**ADDRS, overrides={"checksum": 0})) == 0
    raw = datagram.emit(**ADDRS)
    assert raw[6:8] == b"\xff\xff"
    assert UdpDatagram.parse(raw, **ADDRS) == datagram
    # scapy agrees (RFC 768 / RFC 8200 8.1 rule applied in UDP.post_build).
    built = IPv6(src=SRC_TEXT, dst=DST_TEXT) / UDP(sport=7, dport=9) / Raw(datagram.payload)
    assert bytes(built)[40:] == raw


def test_udp_unknown_override_emit_error() -> None:
    with pytest.raises(EmitError):
        UdpDatagram(source_port=1, destination_port=2).emit(**ADDRS, overrides={"chksum": 1})


@pytest.mark.parametrize("overrides", [{"checksum": 0x10000}, {"length": -1}])
def test_udp_override_out_of_range_emit_error(overrides: dict[str, int]) -> None:
    with pytest.raises(EmitError):
        UdpDatagram(source_port=1, destination_port=2).emit(**ADDRS, overrides=overrides)


def test_udp_port_out_of_range_emit_error() -> None:
    with pytest.raises(EmitError):
        UdpDatagram(source_port=65536, destination_port=2)


def test_udp_oversized_emit_error() -> None:
    with pytest.raises(EmitError):
        UdpDatagram(source_port=1, destination_port=2, payload=bytes(65528)).emit(**ADDRS)


def test_udp_short_address_emit_error() -> None:
    with pytest.raises(EmitError):
        UdpDatagram(source_port=1, destination_port=2).emit(source=SRC[:4], destination=DST)


def test_udp_describe() -> None:
    assert udp.describe(UdpDatagram.parse(UDP_FIXTURE, **ADDRS)) == "UDP 5000 > 53 len 12"


def test_udp_every_truncation_wire_error_only() -> None:
    for cut in range(len(UDP_FIXTURE)):
        with pytest.raises(WireError):
            UdpDatagram.parse(UDP_FIXTURE[:cut], **ADDRS)
    with pytest.raises(Truncated):
        UdpDatagram.parse(UDP_FIXTURE[:7], **ADDRS)


ports = st.integers(0, 0xFFFF)
addresses = st.binary(min_size=16, max_size=16)
udp_datagrams = st.builds(
    UdpDatagram, source_port=ports, destination_port=ports, payload=st.binary(max_size=300)
)


@settings(max_examples=300)
@given(datagram=udp_datagrams, source=addresses, destination=addresses)
def test_udp_parse_emit_round_trip(
    datagram: UdpDatagram, source: bytes, destination: bytes
) -> None:
    raw = datagram.emit(source=source, destination=destination)
    assert UdpDatagram.parse(raw, source=source, destination=destination) == datagram


@settings(max_examples=300)
@given(
    header=st.binary(min_size=4, max_size=4),
    payload=st.binary(max_size=300),
    checksum=st.none() | st.integers(0, 0xFFFF),
)
def test_udp_emit_parse_round_trip_on_bytes(
    header: bytes, payload: bytes, checksum: int | None
) -> None:
    """Any datagram the parser accepts re-emits to the same bytes; anything else is a WireError."""
    raw = header + struct.pack("!HH", 8 + len(payload), 0) + payload
    if checksum is None:
        checksum = rfc8200_checksum(SRC, DST, 17, raw) or 0xFFFF
    raw = with_checksum(raw, 6, checksum)
    try:
        datagram = UdpDatagram.parse(raw, **ADDRS)
    except WireError:
        return
    assert datagram.emit(**ADDRS) == raw


# --- TCP --------------------------------------------------------------------------------------


def test_tcp_fixture_parse() -> None:
    assert TcpSegment.parse(TCP_SYN_ACK_FIXTURE, **ADDRS) == TCP_SYN_ACK


def test_tcp_fixture_emit() -> None:
    assert TCP_SYN_ACK.emit(**ADDRS) == TCP_SYN_ACK_FIXTURE


def test_tcp_describe_syn_ack() -> None:
    assert tcp.describe(TCP_SYN_ACK) == (
        "TCP 80 > 40000 [S.] seq 1 ack 2 win 65535 "
        "options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7] len 0"
    )


def test_tcp_describe_data_sack_unknown_eol() -> None:
    segment = TcpSegment(
        source_port=1,
        destination_port=2,
        sequence_number=0xFFFFFFFF,
        acknowledgment_number=5,
        flags=TcpFlags.PSH | TcpFlags.ACK | TcpFlags.URG | TcpFlags.AE,
        window=100,
        urgent_pointer=3,
        options=(
            Sack(blocks=((1, 2), (3, 4))),
            UnknownTcpOption(kind=30, data=b"\x01\xff"),
            UnknownTcpOption(kind=99),
            EndOfOptionList(padding=b"\x00"),
        ),
        payload=b"abc",
    )
    assert tcp.describe(segment) == (
        "TCP 1 > 2 [P.Ue] seq 4294967295:2 ack 5 win 100 urg 3 "
        "options [sack 2 {1:2}{3:4},mptcp 0x01ff,unknown-99,eol] len 3"
    )


def test_tcp_describe_no_flags_none() -> None:
    assert (
        tcp.describe(TcpSegment(source_port=1, destination_port=2))
        == "TCP 1 > 2 [none] win 0 len 0"
    )


def test_tcp_bad_checksum() -> None:
    raw = with_checksum(TCP_SYN_ACK_FIXTURE, 16, 0x4FE8)
    with pytest.raises(BadChecksum) as caught:
        TcpSegment.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("checksum", 16)


def test_tcp_computed_zero_checksum_sent_as_zero_and_ffff_accepted() -> None:
    # Unlike UDP, TCP has no "zero means none": a computed 0 stays 0; 0xFFFF (-0) also verifies.
    base = TcpSegment(source_port=7, destination_port=9, payload=b"\x00\x00")
    word = rfc8200_checksum(SRC, DST, 6, base.emit(**ADDRS, overrides={"checksum": 0}))
    segment = replace(base, payload=word.to_bytes(2, "big"))
    raw = segment.emit(**ADDRS)
    assert raw[16:18] == b"\x00\x00"
    assert TcpSegment.parse(raw, **ADDRS) == segment
    minus_zero = with_checksum(raw, 16, 0xFFFF)
    assert TcpSegment.parse(minus_zero, **ADDRS) == segment
    # The one documented exception to emit(parse(b)) == b.
    assert segment.emit(**ADDRS) != minus_zero


@pytest.mark.parametrize("data_offset", [0, 1, 4])
def test_tcp_data_offset_below_5_malformed(data_offset: int) -> None:
    raw = TCP_SYN_ACK.emit(**ADDRS, overrides={"data_offset": data_offset})
    with pytest.raises(Malformed) as caught:
        TcpSegment.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("data_offset", 12)


def test_tcp_data_offset_beyond_buffer_malformed() -> None:
    raw = TCP_SYN_ACK.emit(**ADDRS, overrides={"data_offset": 11})
    with pytest.raises(Malformed) as caught:
        TcpSegment.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("data_offset", 12)


def raw_tcp(options: bytes, payload: bytes = b"") -> bytes:
    """A segment with these exact option bytes (a multiple of 4) and a valid checksum."""
    header = struct.pack("!HHIIHHHH", 1, 2, 3, 4, (5 + len(options) // 4) << 12 | 0x10, 5, 0, 0)
    segment = header + options + payload
    return with_checksum(segment, 16, rfc8200_checksum(SRC, DST, 6, segment))


@pytest.mark.parametrize(
    ("options", "offset"),
    [
        (b"\x02\x05\x05\xb4\x00\x00\x00\x00", 21),  # MSS length 5
        (b"\x02\x03\x05\x00", 21),  # MSS length 3
        (b"\x03\x04\x07\x00", 21),  # window scale length 4
        (b"\x04\x03\x00\x00", 21),  # SACK permitted length 3
        (b"\x08\x08" + bytes(6), 21),  # timestamps length 8
        (b"\x01\x05\x0e" + bytes(13), 22),  # SACK length 14: not 2 + 8n
        (b"\x05\x02\x00\x00", 21),  # SACK with no block
        (b"\x01\x01\x01\x02", 24),  # MSS kind in the last byte: no length byte
        (b"\x1e\x01\x00\x00", 21),  # length below 2
        (b"\x1e\x00\x00\x00", 21),  # length 0
        (b"\x1e\x05\x00\x00", 21),  # overruns the data offset
        (b"\x02\x04\x05\xb4\x1e\x08\x00\x00", 25),  # second option overruns
    ],
)
def test_tcp_option_bad_length_malformed(options: bytes, offset: int) -> None:
    with pytest.raises(Malformed) as caught:
        TcpSegment.parse(raw_tcp(options), **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("length", offset)


def test_tcp_nonzero_after_end_of_option_list_malformed() -> None:
    with pytest.raises(Malformed) as caught:
        TcpSegment.parse(raw_tcp(b"\x00\x00\x01\x00"), **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("padding", 22)


def test_tcp_end_of_option_list_keeps_padding() -> None:
    raw = raw_tcp(b"\x02\x04\x05\xb4\x01\x00\x00\x00", b"data")
    segment = TcpSegment.parse(raw, **ADDRS)
    assert segment.options == (
        MaximumSegmentSize(maximum_segment_size=1460),
        NoOperation(),
        EndOfOptionList(padding=b"\x00\x00"),
    )
    assert segment.payload == b"data"
    assert segment.emit(**ADDRS) == raw


def test_tcp_reserved_bits_ignored_ns_kept() -> None:
    segment = replace(TCP_SYN_ACK, flags=TcpFlags.SYN | TcpFlags.NS)
    raw = segment.emit(**ADDRS, overrides={"reserved": 0b111})
    assert raw[12] & 0x0F == 0x0F
    parsed = TcpSegment.parse(raw, **ADDRS)
    assert parsed == segment
    assert parsed.flags & TcpFlags.AE
    assert parsed.emit(**ADDRS)[12] & 0x0E == 0


def test_tcp_int_flags_coerced() -> None:
    segment = TcpSegment(source_port=1, destination_port=2, flags=0x12, options=[NoOperation()] * 4)
    assert segment.flags is TcpFlags.SYN | TcpFlags.ACK
    assert segment.options == (NoOperation(),) * 4


@pytest.mark.parametrize(
    "options",
    [
        (NoOperation(),),  # 1 byte
        (WindowScale(shift_count=1),),  # 3 bytes
        (Timestamps(tsval=0, tsecr=0),) * 4 + (NoOperation(),) * 4,  # 44 bytes
        (EndOfOptionList(), NoOperation(), NoOperation(), NoOperation()),  # EOL not last
        (EndOfOptionList(padding=b"\x00\x01\x00"),),  # non-zero padding
    ],
)
def test_tcp_bad_options_emit_error(options: tuple[tcp.TcpOption, ...]) -> None:
    with pytest.raises(EmitError):
        replace(TCP_SYN_ACK, options=options).emit(**ADDRS)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4, 5, 8, 256])
def test_tcp_unknown_option_known_kind_emit_error(kind: int) -> None:
    with pytest.raises(EmitError):
        UnknownTcpOption(kind=kind)


@pytest.mark.parametrize("blocks", [(), ((1, 2),) * 5, ((1, 2**32),)])
def test_tcp_sack_bad_blocks_emit_error(blocks: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(EmitError):
        Sack(blocks=blocks)


def test_tcp_unknown_override_emit_error() -> None:
    with pytest.raises(EmitError):
        TCP_SYN_ACK.emit(**ADDRS, overrides={"dataofs": 5})


def test_tcp_aligned_options_pads_with_end_of_option_list() -> None:
    options = (MaximumSegmentSize(maximum_segment_size=1), WindowScale(shift_count=2))
    assert aligned_tcp_options(options) == (*options, EndOfOptionList())
    assert aligned_tcp_options(options[:1]) == options[:1]
    assert aligned_tcp_options((NoOperation(),)) == (
        NoOperation(),
        EndOfOptionList(padding=bytes(2)),
    )
    # A trailing EOL is replaced, not stacked.
    assert aligned_tcp_options((SackPermitted(), EndOfOptionList(padding=bytes(5)))) == (
        SackPermitted(),
        EndOfOptionList(padding=bytes(1)),
    )
    assert aligned_tcp_options(()) == ()


def test_tcp_window_scale_above_14_kept_but_capped() -> None:
    option = WindowScale(shift_count=15)
    assert option.effective_shift_count == 14
    segment = replace(TCP_SYN_ACK, options=aligned_tcp_options((option,)))
    assert TcpSegment.parse(segment.emit(**ADDRS), **ADDRS) == segment


def test_tcp_every_truncation_wire_error_only() -> None:
    segment = replace(
        TCP_SYN_ACK,
        options=aligned_tcp_options(
            (*TCP_SYN_ACK.options, Sack(blocks=((5, 6),)), UnknownTcpOption(kind=30, data=b"x"))
        ),
        payload=b"payload",
    )
    raw = segment.emit(**ADDRS)
    for cut in range(len(raw)):
        with pytest.raises(WireError):
            TcpSegment.parse(raw[:cut], **ADDRS)
    with pytest.raises(Truncated):
        TcpSegment.parse(raw[:19], **ADDRS)


u32 = st.integers(0, 0xFFFFFFFF)
known_kinds = {0, 1, 2, 3, 4, 5, 8}


def tcp_option_strategy(unknown_kinds: st.SearchStrategy[int]) -> st.SearchStrategy[tcp.TcpOption]:
    return st.one_of(
        st.builds(NoOperation),
        st.builds(MaximumSegmentSize, maximum_segment_size=st.integers(0, 0xFFFF)),
        st.builds(WindowScale, shift_count=st.integers(0, 255)),
        st.builds(SackPermitted),
        st.builds(Sack, blocks=st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(tuple)),
        st.builds(Timestamps, tsval=u32, tsecr=u32),
        st.builds(UnknownTcpOption, kind=unknown_kinds, data=st.binary(max_size=12)),
    )


tcp_options = tcp_option_strategy(st.integers(0, 255).filter(lambda kind: kind not in known_kinds))
# scapy names and unpacks the kinds in its TCPOptions table; the oracle test uses the others.
scapy_unnamed_kinds = st.integers(0, 255).filter(
    lambda kind: kind not in known_kinds and kind not in TCPOptions[0]
)


@st.composite
def tcp_option_lists(
    draw: st.DrawFn, options: st.SearchStrategy[tcp.TcpOption] = tcp_options
) -> tuple[tcp.TcpOption, ...]:
    """Options of every kind, padded to whole words by an EOL + zeros or by NOPs, <= 40 bytes."""
    chosen: list[tcp.TcpOption] = []
    size = 0
    for option in draw(st.lists(options, max_size=8)):
        length = len(option.emit())
        if size + length <= 37:
            chosen.append(option)
            size += length
    if draw(st.booleans()):
        chosen.extend([NoOperation()] * (-size % 4))
        return tuple(chosen)
    return aligned_tcp_options(chosen)


def tcp_segment_strategy(
    options: st.SearchStrategy[tcp.TcpOption],
) -> st.SearchStrategy[TcpSegment]:
    return st.builds(
        TcpSegment,
        source_port=ports,
        destination_port=ports,
        sequence_number=u32,
        acknowledgment_number=u32,
        flags=st.integers(0, 0x1FF).map(TcpFlags),
        window=ports,
        urgent_pointer=ports,
        options=tcp_option_lists(options),
        payload=st.binary(max_size=100),
    )


tcp_segments = tcp_segment_strategy(tcp_options)


@settings(max_examples=500)
@given(segment=tcp_segments, source=addresses, destination=addresses)
def test_tcp_parse_emit_round_trip(segment: TcpSegment, source: bytes, destination: bytes) -> None:
    raw = segment.emit(source=source, destination=destination)
    assert len(raw) == segment.header_length + len(segment.payload)
    assert TcpSegment.parse(raw, source=source, destination=destination) == segment


def test_tcp_round_trip_strategy_covers_every_option_kind() -> None:
    seen: set[type] = set()

    @settings(max_examples=300, database=None)
    @given(options=tcp_option_lists())
    def collect(options: tuple[tcp.TcpOption, ...]) -> None:
        seen.update(type(option) for option in options)

    collect()
    assert seen == {
        EndOfOptionList,
        NoOperation,
        MaximumSegmentSize,
        WindowScale,
        SackPermitted,
        Sack,
        Timestamps,
        UnknownTcpOption,
    }


option_chunks = st.one_of(
    tcp_options.map(lambda option: option.emit()),
    st.tuples(st.integers(0, 255), st.integers(0, 12)).flatmap(
        lambda kl: st.binary(min_size=kl[1], max_size=kl[1]).map(
            lambda data: bytes((kl[0], kl[1])) + data
        )
    ),
    st.binary(min_size=1, max_size=4),
)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(option_chunks, max_size=6),
    fill=st.sampled_from([b"\x00", b"\x01"]),
    payload=st.binary(max_size=20),
)
def test_tcp_emit_parse_round_trip_on_bytes(
    chunks: list[bytes], fill: bytes, payload: bytes
) -> None:
    """Near-valid option bytes: what parses re-emits identically, the rest raises WireError."""
    options = b"".join(chunks)
    options += fill * (-len(options) % 4)
    assume(len(options) <= 40)
    raw = raw_tcp(options, payload)
    try:
        segment = TcpSegment.parse(raw, **ADDRS)
    except WireError:
        return
    assert segment.emit(**ADDRS) == raw


# --- ESP --------------------------------------------------------------------------------------


def test_esp_fixture_parse_emit() -> None:
    packet = EspPacket(spi=0x1000, sequence_number=7, data=bytes(range(56)))
    assert EspPacket.parse(ESP_FIXTURE, **ADDRS) == packet
    assert packet.emit(**ADDRS) == ESP_FIXTURE
    assert esp.describe(packet) == "ESP spi 0x00001000 seq 7 len 64"


def test_esp_addresses_ignored() -> None:
    assert EspPacket.parse(ESP_FIXTURE, source=b"", destination=b"") == EspPacket.parse(
        ESP_FIXTURE, **ADDRS
    )


def test_esp_spi_zero_malformed() -> None:
    raw = EspPacket(spi=1, sequence_number=1).emit(**ADDRS, overrides={"spi": 0})
    with pytest.raises(Malformed) as caught:
        EspPacket.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("spi", 0)


def test_esp_spi_zero_emit_error() -> None:
    with pytest.raises(EmitError):
        EspPacket(spi=0, sequence_number=1).emit(**ADDRS)


def test_esp_iana_reserved_spi_kept() -> None:
    packet = EspPacket.parse(bytes.fromhex("000000ff00000001"), **ADDRS)
    assert packet == EspPacket(spi=255, sequence_number=1)
    assert packet.iana_reserved_spi


def test_esp_every_truncation_truncated() -> None:
    for cut in range(8):
        with pytest.raises(Truncated):
            EspPacket.parse(ESP_FIXTURE[:cut], **ADDRS)
    assert EspPacket.parse(ESP_FIXTURE[:8], **ADDRS).data == b""


esp_packets = st.builds(
    EspPacket, spi=st.integers(1, 0xFFFFFFFF), sequence_number=u32, data=st.binary(max_size=100)
)


@settings(max_examples=300)
@given(packet=esp_packets)
def test_esp_parse_emit_round_trip(packet: EspPacket) -> None:
    assert EspPacket.parse(packet.emit(**ADDRS), **ADDRS) == packet


@settings(max_examples=300)
@given(raw=st.binary(max_size=60))
def test_esp_emit_parse_round_trip_on_bytes(raw: bytes) -> None:
    try:
        packet = EspPacket.parse(raw, **ADDRS)
    except WireError:
        return
    assert packet.emit(**ADDRS) == raw


# --- scapy as an oracle, both ways ------------------------------------------------------------


def scapy_dissect(next_header: int, body: bytes) -> IPv6:
    """scapy's view of our upper-layer bytes behind a plain IPv6 header."""
    header = IPv6(src=SRC_TEXT, dst=DST_TEXT, nh=next_header, plen=len(body))
    return IPv6(bytes(header) + body)


def scapy_recomputed_checksum(packet: IPv6, layer: type) -> int:
    """The checksum scapy computes itself for ``packet`` (chksum deleted, packet rebuilt)."""
    copy = packet.copy()
    del copy[layer].chksum
    return IPv6(bytes(copy))[layer].chksum


@settings(max_examples=50, deadline=None)
@given(datagram=udp_datagrams)
def test_scapy_udp_oracle_both_ways(datagram: UdpDatagram) -> None:
    built = (
        IPv6(src=SRC_TEXT, dst=DST_TEXT)
        / UDP(sport=datagram.source_port, dport=datagram.destination_port)
        / Raw(datagram.payload)
    )
    assert UdpDatagram.parse(bytes(built)[40:], **ADDRS) == datagram

    ours = datagram.emit(**ADDRS)
    seen = scapy_dissect(17, ours)
    assert (seen[UDP].sport, seen[UDP].dport) == (datagram.source_port, datagram.destination_port)
    assert seen[UDP].len == len(ours)
    assert bytes(seen[UDP].payload) == datagram.payload
    assert seen[UDP].chksum == int.from_bytes(ours[6:8], "big")
    assert scapy_recomputed_checksum(seen, UDP) == seen[UDP].chksum


def to_scapy_options(options: tuple[tcp.TcpOption, ...]) -> list[tuple[object, object]]:
    """Our options in scapy's dissected form (scapy drops the bytes after EOL)."""
    out: list[tuple[object, object]] = []
    for option in options:
        match option:
            case EndOfOptionList():
                out.append(("EOL", None))
            case NoOperation():
                out.append(("NOP", None))
            case MaximumSegmentSize():
                out.append(("MSS", option.maximum_segment_size))
            case WindowScale():
                out.append(("WScale", option.shift_count))
            case SackPermitted():
                out.append(("SAckOK", b""))
            case Sack():
                out.append(("SAck", tuple(edge for block in option.blocks for edge in block)))
            case Timestamps():
                out.append(("Timestamp", (option.tsval, option.tsecr)))
            case UnknownTcpOption():
                out.append((option.kind, option.data))
    return out


def test_scapy_tcp_builds_brief_options_we_parse() -> None:
    built = IPv6(src=SRC_TEXT, dst=DST_TEXT) / TCP(
        sport=80,
        dport=40000,
        seq=1,
        ack=2,
        flags="SA",
        window=65535,
        options=[
            ("MSS", 1460),
            ("SAckOK", b""),
            ("Timestamp", (1, 2)),
            ("NOP", None),
            ("WScale", 7),
            ("SAck", (1, 2)),
        ],
    )
    segment = TcpSegment.parse(bytes(built)[40:], **ADDRS)
    assert segment.options == (
        MaximumSegmentSize(maximum_segment_size=1460),
        SackPermitted(),
        Timestamps(tsval=1, tsecr=2),
        NoOperation(),
        WindowScale(shift_count=7),
        Sack(blocks=((1, 2),)),
        EndOfOptionList(padding=b"\x00"),  # scapy pads 30 bytes of options with two zeros
    )
    assert segment.flags == TcpFlags.SYN | TcpFlags.ACK
    assert segment.emit(**ADDRS) == bytes(built)[40:]


@settings(max_examples=100, deadline=None)
@given(segment=tcp_segment_strategy(tcp_option_strategy(scapy_unnamed_kinds)))
def test_scapy_tcp_oracle_both_ways(segment: TcpSegment) -> None:
    ours = segment.emit(**ADDRS)
    seen = scapy_dissect(6, ours)
    layer = seen[TCP]
    assert (layer.sport, layer.dport) == (segment.source_port, segment.destination_port)
    assert (layer.seq, layer.ack) == (segment.sequence_number, segment.acknowledgment_number)
    assert int(layer.flags) == int(segment.flags)  # scapy's 9-bit "FSRPAUECN": N is our NS/AE
    assert layer.reserved == 0
    assert layer.dataofs * 4 == segment.header_length
    assert (layer.window, layer.urgptr) == (segment.window, segment.urgent_pointer)
    assert layer.options == to_scapy_options(segment.options)
    assert bytes(layer.payload) == segment.payload
    assert layer.chksum == int.from_bytes(ours[16:18], "big")
    assert scapy_recomputed_checksum(seen, TCP) == layer.chksum

    # The other way: scapy builds from the same fields, we parse.
    if segment.options and isinstance(segment.options[-1], EndOfOptionList):
        # scapy pads on its own; hand it the options without our EOL and padding.
        scapy_options = to_scapy_options(segment.options[:-1])
        expected = aligned_tcp_options(segment.options[:-1])
    else:
        scapy_options = to_scapy_options(segment.options)
        expected = segment.options
    built = (
        IPv6(src=SRC_TEXT, dst=DST_TEXT)
        / TCP(
            sport=segment.source_port,
            dport=segment.destination_port,
            seq=segment.sequence_number,
            ack=segment.acknowledgment_number,
            flags=int(segment.flags),
            window=segment.window,
            urgptr=segment.urgent_pointer,
            options=scapy_options,
        )
        / Raw(segment.payload)
    )
    assert TcpSegment.parse(bytes(built)[40:], **ADDRS) == replace(segment, options=expected)


@settings(max_examples=50, deadline=None)
@given(packet=esp_packets)
def test_scapy_esp_oracle_both_ways(packet: EspPacket) -> None:
    built = IPv6(src=SRC_TEXT, dst=DST_TEXT) / ESP(
        spi=packet.spi, seq=packet.sequence_number, data=packet.data
    )
    assert EspPacket.parse(bytes(built)[40:], **ADDRS) == packet

    seen = scapy_dissect(50, packet.emit(**ADDRS))
    assert (seen[ESP].spi, seen[ESP].seq) == (packet.spi, packet.sequence_number)
    assert (seen[ESP].data or b"") == packet.data


@pytest.mark.parametrize(
    ("scapy_option", "kind", "data"),
    [
        (("UTO", 300), 28, b"\x01\x2c"),
        (("TFO", (1, 2)), 34, bytes.fromhex("0000000100000002")),
        (("MD5", bytes(range(16))), 19, bytes(range(16))),
        (("AltChkSumOpt", b""), 15, b""),
    ],
)
def test_scapy_named_option_kinds_kept_as_unknown(
    scapy_option: tuple[str, object], kind: int, data: bytes
) -> None:
    """Kinds scapy names but we do not interpret: built by scapy, kept verbatim by us."""
    built = IPv6(src=SRC_TEXT, dst=DST_TEXT) / TCP(options=[scapy_option])
    raw = bytes(built)[40:]
    segment = TcpSegment.parse(raw, **ADDRS)
    assert segment.options[0] == UnknownTcpOption(kind=kind, data=data)
    assert segment.emit(**ADDRS) == raw
    assert scapy_dissect(6, raw)[TCP].options[0][0] == scapy_option[0]


def test_scapy_disagrees_sack_with_odd_edge_count() -> None:
    # scapy builds ('SAck', (1, 2, 3)) as a 14-byte option; RFC 2018 3 says Length is 8n + 2,
    # so we reject it (offset 21, the length byte).
    built = IPv6(src=SRC_TEXT, dst=DST_TEXT) / TCP(options=[("SAck", (1, 2, 3))])
    raw = bytes(built)[40:]
    assert raw[20:22] == b"\x05\x0e"
    with pytest.raises(Malformed) as caught:
        TcpSegment.parse(raw, **ADDRS)
    assert (caught.value.field, caught.value.offset) == ("length", 21)


def test_scapy_disagrees_wrong_fixed_option_length() -> None:
    # scapy dissects an MSS option of Length 5 as raw bytes; RFC 9293 3.2 fixes Length at 4.
    raw = raw_tcp(b"\x02\x05\x05\xb4\x00\x00\x00\x00")
    assert scapy_dissect(6, raw)[TCP].options[0] == ("MSS", b"\x05\xb4\x00")
    with pytest.raises(Malformed):
        TcpSegment.parse(raw, **ADDRS)


def test_scapy_disagrees_short_option_length() -> None:
    # scapy reads an option Length below 2 as 2 and continues; we reject the header.
    raw = raw_tcp(b"\x1e\x00\x01\x01")
    assert scapy_dissect(6, raw)[TCP].options[0] == (30, b"")
    with pytest.raises(Malformed):
        TcpSegment.parse(raw, **ADDRS)


def test_scapy_disagrees_nonzero_padding_after_eol() -> None:
    # scapy stops at EOL and ignores what follows; we reject non-zero padding (RFC 9293 3.1:
    # "The padding is composed of zeros").
    raw = raw_tcp(b"\x00\x01\x01\x01")
    assert scapy_dissect(6, raw)[TCP].options == [("EOL", None)]
    with pytest.raises(Malformed):
        TcpSegment.parse(raw, **ADDRS)


def test_scapy_disagrees_udp_zero_checksum() -> None:
    # scapy dissects a zero UDP checksum over IPv6 without complaint; RFC 8200 8.1 says IPv6
    # receivers must discard it.
    built = IPv6(src=SRC_TEXT, dst=DST_TEXT) / UDP(sport=1, dport=2, chksum=0)
    raw = bytes(built)[40:]
    assert IPv6(bytes(built))[UDP].chksum == 0
    with pytest.raises(BadChecksum):
        UdpDatagram.parse(raw, **ADDRS)


def test_scapy_disagrees_esp_spi_zero() -> None:
    # scapy builds ESP with SPI 0 on request; RFC 4303 2.1: "MUST NOT be sent on the wire".
    raw = bytes(IPv6(src=SRC_TEXT, dst=DST_TEXT) / ESP(spi=0, seq=1))[40:]
    with pytest.raises(Malformed):
        EspPacket.parse(raw, **ADDRS)
