"""Capture files: read classic pcap and pcapng, write classic pcap, find the IPv6 packet in a frame.

Standard library only. Three parts:

* :func:`read_capture` yields a :class:`CapturedFrame` per packet record of a classic libpcap
  file (draft-ietf-opsawg-pcap; microsecond magic ``0xa1b2c3d4`` and nanosecond magic
  ``0xa1b23c4d``, either byte order) or a pcapng file (draft-ietf-opsawg-pcapng; Section Header,
  Interface Description, Enhanced Packet, Simple Packet and the obsolete Packet Block; other
  blocks are skipped; any number of sections, interfaces and byte orders). A file that is not a
  capture, is corrupt or ends in the middle of a record raises :class:`CaptureError` carrying the
  byte offset of the fault. Reading is lazy: every frame before the fault has been yielded by the
  time the error is raised. Every length read from the file is bounded
  (:data:`MAX_RECORD_LENGTH`), and data is read in chunks, so a corrupt length costs at most what
  the file actually holds.
* :class:`PcapWriter` writes classic little-endian pcap, the format every tool reads, at a cost of
  one ``struct.pack`` and two ``write`` calls per packet.
* :func:`extract_ipv6` strips the link-layer header of the link types we meet in the lab
  (Ethernet with 802.1Q/802.1ad tags, raw IP, Linux cooked v1/v2, BSD loopback) and returns either
  the IPv6 packet (:class:`Ipv6Frame`, with Ethernet padding or an FCS trimmed off) or why the
  frame holds none (:class:`NotIpv6`).

Timestamps are integers in nanoseconds since the Unix epoch, UTC; nothing here reads a clock.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from types import TracebackType
from typing import BinaryIO, Final

# -- Link types (tcpdump.org LINKTYPE_* values, draft-ietf-opsawg-pcaplinktype) -----------------

LINKTYPE_NULL: Final = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101  # raw IPv4 or IPv6, told apart by the version nibble
LINKTYPE_LOOP: Final = 108  # OpenBSD loopback: 4-byte address family in network byte order
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

# -- Limits --------------------------------------------------------------------------------------

MAX_RECORD_LENGTH: Final = 256 * 1024 * 1024
"""Largest packet record (bytes) we accept; Wireshark's own limit for any link type is 256 MiB."""

MAX_BLOCK_LENGTH: Final = MAX_RECORD_LENGTH + 64 * 1024
"""Largest pcapng block (bytes): a maximal packet plus room for block fields and options."""

_CHUNK: Final = 1024 * 1024  # read large records in pieces so a lying length cannot balloon
NANOSECONDS: Final = 1_000_000_000


class CaptureError(ValueError):
    """A capture file that cannot be read: not a capture, corrupt, or truncated.

    ``offset`` is the byte offset of the fault, counted from where reading started (the start of
    the file for :func:`read_capture_file`); ``reason`` says what is wrong there.
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason, offset)
        self.reason = reason
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.reason} at offset {self.offset}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CapturedFrame:
    """One packet record.

    ``timestamp_ns``: nanoseconds since the Unix epoch (0 for a pcapng Simple Packet Block, which
    has no timestamp). ``data``: the captured bytes, possibly fewer than ``original_length`` (the
    length on the wire) when the capture used a snapshot length. ``interface``: 0 for classic
    pcap; for pcapng the Interface Description Blocks numbered in file order across all sections,
    as Wireshark's ``frame.interface_id`` does (pcapng's own IDs restart in every section).
    """

    timestamp_ns: int
    link_type: int
    data: bytes
    original_length: int
    interface: int = 0

    @property
    def truncated(self) -> bool:
        """True when the record holds fewer bytes than the packet had on the wire."""
        return len(self.data) < self.original_length


class _Source:
    """A binary stream read with exact lengths, counting the offset for error messages."""

    __slots__ = ("_stream", "offset")

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.offset = 0

    def read(self, length: int, what: str) -> bytes:
        """Exactly ``length`` bytes, or ``CaptureError`` naming ``what`` was cut short."""
        data = self._read_upto(length)
        if len(data) < length:
            raise CaptureError(
                f"file ends inside {what}: needs {length} bytes, {len(data)} left", self.offset
            )
        self.offset += length
        return data

    def read_or_eof(self, length: int, what: str) -> bytes | None:
        """Like :meth:`read`, but ``None`` if the stream ends exactly here (a clean end)."""
        data = self._read_upto(length)
        if not data:
            return None
        if len(data) < length:
            raise CaptureError(
                f"file ends inside {what}: needs {length} bytes, {len(data)} left", self.offset
            )
        self.offset += length
        return data

    def _read_upto(self, length: int) -> bytes:
        if length <= _CHUNK:
            data = self._stream.read(length) or b""
            if len(data) == length:
                return data
            parts = [data]
            got = len(data)
        else:
            parts = []
            got = 0
        while got < length:
            part = self._stream.read(min(length - got, _CHUNK))
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)


# -- Classic pcap (draft-ietf-opsawg-pcap, "File Header" and "Packet Record") ---------------------
#
#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                          Magic Number                         |
#  |          Major Version        |         Minor Version         |
#  |                           Reserved1                           |
#  |                           Reserved2                           |
#  |                            SnapLen                            |
#  | FCS |f|0 0 0 0 0 0 0 0 0 0 0 0|         LinkType              |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  then per packet: Timestamp (seconds), Timestamp (micro- or nanoseconds),
#  Captured Packet Length, Original Packet Length, Packet Data.

PCAP_MAGIC_MICROSECONDS: Final = 0xA1B2C3D4
PCAP_MAGIC_NANOSECONDS: Final = 0xA1B23C4D
_PCAP_MAGIC_KUZNETZOV: Final = 0xA1B2CD34  # "modified" pcap with extra per-record fields
_PCAP_VERSION: Final = (2, 4)
_PCAP_LINKTYPE_MASK: Final = 0xFFFF  # the upper bits carry the FCS length, not the link type

_PCAP_HEADER_LE = struct.Struct("<IHHiIII")
_PCAP_HEADER_BE = struct.Struct(">IHHiIII")
_PCAP_RECORD_LE = struct.Struct("<IIII")
_PCAP_RECORD_BE = struct.Struct(">IIII")
_MAGIC_LE = struct.Struct("<I")
_MAGIC_BE = struct.Struct(">I")

# -- pcapng (draft-ietf-opsawg-pcapng) ----------------------------------------------------------
#
#  3.1 General Block Structure:
#  +---------------------------------------------------------------+
#  |                          Block Type                           |
#  |                      Block Total Length                       |
#  /                          Block Body                           /  (padded to 32 bits)
#  |                      Block Total Length                       |
#  +---------------------------------------------------------------+

_SHB: Final = 0x0A0D0D0A  # 4.1 Section Header Block (a palindrome: same in both byte orders)
_IDB: Final = 0x00000001  # 4.2 Interface Description Block
_PB: Final = 0x00000002  # Appendix A, obsolete Packet Block
_SPB: Final = 0x00000003  # 4.4 Simple Packet Block
_EPB: Final = 0x00000006  # 4.3 Enhanced Packet Block
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_PCAPNG_MAJOR: Final = 1

_BLOCK_HEAD = 8  # Block Type + Block Total Length
_BLOCK_OVERHEAD = 12  # ... + trailing Block Total Length
_SHB_MIN_LENGTH = 28  # overhead + byte-order magic, versions, section length
_OPT_ENDOFOPT = 0
_IF_TSRESOL = 9  # 4.2: "if_tsresol", 1 byte
_IF_TSOFFSET = 14  # 4.2: "if_tsoffset", 8 bytes, signed seconds
_DEFAULT_TSRESOL = 6  # 4.2: "If the Option is missing, the timestamps ... are in microseconds"


def _both_orders(fmt: str) -> dict[str, struct.Struct]:
    """The struct for ``fmt`` keyed by byte order: "<" little-endian, ">" big-endian."""
    return {"<": struct.Struct("<" + fmt), ">": struct.Struct(">" + fmt)}


_U32 = _both_orders("I")
# Fixed part of each block body, after Block Type and Block Total Length:
_SHB_BODY = _both_orders("IHHq")  # byte-order magic, major, minor, section length
_IDB_BODY = _both_orders("HHI")  # link type, reserved, snaplen
_EPB_BODY = _both_orders("IIIII")  # interface id, timestamp high/low, captured/original length
_PB_BODY = _both_orders("HHIIII")  # interface id, drops count, timestamp high/low, lengths
_SPB_BODY = _both_orders("I")  # original length
_OPTION = _both_orders("HH")  # option code, option length
_TSOFFSET = _both_orders("q")


def read_capture(stream: BinaryIO) -> Iterator[CapturedFrame]:
    """Yield every packet record of a classic pcap or pcapng capture read from ``stream``.

    The format and byte order are detected from the first four bytes. Raises
    :class:`CaptureError` (lazily, after yielding the frames before the fault) for anything that
    is not a well-formed capture, including an empty stream and a truncated last record.
    """
    source = _Source(stream)
    head = source.read_or_eof(4, "the file magic")
    if head is None:
        raise CaptureError("empty file: no pcap or pcapng header", 0)
    if _MAGIC_LE.unpack(head)[0] == _SHB:
        yield from _read_pcapng(source, head)
        return
    for order, magic_struct in (("<", _MAGIC_LE), (">", _MAGIC_BE)):
        magic = magic_struct.unpack(head)[0]
        if magic in (PCAP_MAGIC_MICROSECONDS, PCAP_MAGIC_NANOSECONDS):
            yield from _read_pcap(source, head, order, magic == PCAP_MAGIC_NANOSECONDS)
            return
        if magic == _PCAP_MAGIC_KUZNETZOV:
            raise CaptureError("modified (Kuznetzov) pcap format is not supported", 0)
    raise CaptureError(f"not a pcap or pcapng file: magic {head.hex()}", 0)


def read_capture_file(path: str | PathLike[str]) -> Iterator[CapturedFrame]:
    """:func:`read_capture` over the file at ``path``; the file is closed when iteration ends."""
    with open(path, "rb") as stream:
        yield from read_capture(stream)


def _read_pcap(
    source: _Source, magic: bytes, order: str, nanosecond: bool
) -> Iterator[CapturedFrame]:
    header_struct = _PCAP_HEADER_LE if order == "<" else _PCAP_HEADER_BE
    record_struct = _PCAP_RECORD_LE if order == "<" else _PCAP_RECORD_BE
    header = magic + source.read(header_struct.size - 4, "the pcap file header")
    _, major, minor, _, _, _, network = header_struct.unpack(header)
    if major != _PCAP_VERSION[0]:
        raise CaptureError(f"pcap version {major}.{minor} not supported (only 2.x)", 4)
    link_type = network & _PCAP_LINKTYPE_MASK
    fraction_ns = 1 if nanosecond else 1000
    while True:
        record_offset = source.offset
        record = source.read_or_eof(record_struct.size, "a pcap record header")
        if record is None:
            return
        seconds, fraction, captured, original = record_struct.unpack(record)
        if captured > MAX_RECORD_LENGTH:
            raise CaptureError(
                f"pcap record claims {captured} captured bytes (limit {MAX_RECORD_LENGTH})",
                record_offset + 8,
            )
        data = source.read(captured, "pcap record data")
        yield CapturedFrame(
            timestamp_ns=seconds * NANOSECONDS + fraction * fraction_ns,
            link_type=link_type,
            data=data,
            original_length=original,
            interface=0,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Interface:
    """What an Interface Description Block tells us about the packets that refer to it."""

    number: int  # across the whole file, see CapturedFrame.interface
    link_type: int
    snaplen: int  # 0: no limit
    tsresol: int  # raw if_tsresol byte
    tsoffset_s: int

    def timestamp_ns(self, units: int) -> int:
        """``units`` of if_tsresol since if_tsoffset, as nanoseconds since the epoch."""
        # 4.2 if_tsresol: "If the Most Significant Bit is equal to zero, the remaining bits
        # indicates the resolution of the timestamp as a negative power of 10 ... If the Most
        # Significant Bit is equal to one, ... as negative power of 2".
        exponent = self.tsresol & 0x7F
        if self.tsresol & 0x80:
            nanoseconds = (units * NANOSECONDS) >> exponent
        elif exponent <= 9:
            nanoseconds = units * 10 ** (9 - exponent)
        else:
            nanoseconds = units // 10 ** (exponent - 9)
        return nanoseconds + self.tsoffset_s * NANOSECONDS


def _read_pcapng(source: _Source, first_type: bytes) -> Iterator[CapturedFrame]:
    interfaces: list[_Interface] = []  # of the current section
    numbered = 0  # interfaces seen in earlier sections
    order = "<"
    block_type_raw: bytes | None = first_type
    while True:
        if block_type_raw is None:
            block_type_raw = source.read_or_eof(4, "a pcapng block header")
            if block_type_raw is None:
                return
        block_offset = source.offset - 4
        # A new section may change the byte order; the SHB type reads the same either way.
        if _MAGIC_LE.unpack(block_type_raw)[0] == _SHB:
            rest = source.read(8, "a pcapng Section Header Block")
            order = _section_byte_order(rest[4:], source.offset - 4)
            block_type = _SHB
        else:
            rest = source.read(4, "a pcapng block header")
            block_type = _U32[order].unpack(block_type_raw)[0]
        block_type_raw = None
        total = _U32[order].unpack_from(rest)[0]
        _check_block_length(block_type, total, block_offset)
        # Everything after the type and first length field, up to and including the trailer.
        remainder = source.read(total - _BLOCK_HEAD - len(rest) + 4, "a pcapng block")
        body = rest[4:] + remainder[:-4]
        trailer = _U32[order].unpack_from(remainder, len(remainder) - 4)[0]
        if trailer != total:
            raise CaptureError(
                f"pcapng block trailing length {trailer} differs from leading length {total}",
                block_offset + total - 4,
            )
        body_offset = block_offset + _BLOCK_HEAD
        if block_type == _SHB:
            _, major, minor, _ = _SHB_BODY[order].unpack_from(body)
            if major != _PCAPNG_MAJOR:
                # 3.1/4.1: a reader that does not know the version cannot parse the section.
                raise CaptureError(
                    f"pcapng section version {major}.{minor} not supported", body_offset + 4
                )
            numbered += len(interfaces)
            interfaces = []
        elif block_type == _IDB:
            interfaces.append(_parse_idb(body, body_offset, order, numbered + len(interfaces)))
        elif block_type == _EPB:
            yield _parse_epb(body, body_offset, order, interfaces)
        elif block_type == _SPB:
            yield _parse_spb(body, body_offset, order, interfaces)
        elif block_type == _PB:
            yield _parse_pb(body, body_offset, order, interfaces)
        # Any other block (name resolution, statistics, decryption secrets, custom): skipped.


def _section_byte_order(bom: bytes, offset: int) -> str:
    if _MAGIC_LE.unpack(bom)[0] == _BYTE_ORDER_MAGIC:
        return "<"
    if _MAGIC_BE.unpack(bom)[0] == _BYTE_ORDER_MAGIC:
        return ">"
    raise CaptureError(
        f"pcapng byte-order magic {bom.hex()} is neither 1a2b3c4d nor 4d3c2b1a", offset
    )


def _check_block_length(block_type: int, total: int, offset: int) -> None:
    minimum = _SHB_MIN_LENGTH if block_type == _SHB else _BLOCK_OVERHEAD
    if total < minimum:
        raise CaptureError(
            f"pcapng block length {total} is below the minimum {minimum}", offset + 4
        )
    if total % 4:
        # 3.1: "Block Total Length ... must be a multiple of 4."
        raise CaptureError(f"pcapng block length {total} is not a multiple of 4", offset + 4)
    if total > MAX_BLOCK_LENGTH:
        raise CaptureError(
            f"pcapng block claims {total} bytes (limit {MAX_BLOCK_LENGTH})", offset + 4
        )


def _parse_idb(body: bytes, offset: int, order: str, number: int) -> _Interface:
    fixed = _IDB_BODY[order]
    if len(body) < fixed.size:
        raise CaptureError("pcapng Interface Description Block too short", offset)
    link_type, _, snaplen = fixed.unpack_from(body)
    tsresol = _DEFAULT_TSRESOL
    tsoffset_s = 0
    for code, value, value_offset in _options(body, fixed.size, offset, order):
        if code == _IF_TSRESOL:
            if len(value) != 1:
                raise CaptureError(f"if_tsresol length {len(value)}, must be 1", value_offset - 2)
            tsresol = value[0]
        elif code == _IF_TSOFFSET:
            if len(value) != 8:
                raise CaptureError(f"if_tsoffset length {len(value)}, must be 8", value_offset - 2)
            tsoffset_s = _TSOFFSET[order].unpack(value)[0]
    return _Interface(
        number=number, link_type=link_type, snaplen=snaplen, tsresol=tsresol, tsoffset_s=tsoffset_s
    )


def _options(
    body: bytes, start: int, body_offset: int, order: str
) -> Iterator[tuple[int, bytes, int]]:
    """(code, value, file offset of value) per option, 3.5: code, length, value padded to 32 bits.

    A block may end without options or without opt_endofopt.
    """
    header = _OPTION[order]
    position = start
    while position + header.size <= len(body):
        code, length = header.unpack_from(body, position)
        if code == _OPT_ENDOFOPT:
            return
        value_start = position + header.size
        if value_start + length > len(body):
            raise CaptureError(
                f"pcapng option {code} length {length} overruns its block",
                body_offset + position + 2,
            )
        yield code, body[value_start : value_start + length], body_offset + value_start
        position = value_start + ((length + 3) & ~3)


def _interface(interfaces: list[_Interface], number: int, offset: int) -> _Interface:
    if number >= len(interfaces):
        raise CaptureError(
            f"packet refers to interface {number}, section has {len(interfaces)}", offset
        )
    return interfaces[number]


def _packet_data(body: bytes, start: int, captured: int, field_offset: int, what: str) -> bytes:
    """``captured`` bytes of packet data from ``start``; ``field_offset`` locates the length."""
    if start + captured > len(body):
        raise CaptureError(
            f"{what} captured length {captured} overruns its block ({len(body) - start} bytes)",
            field_offset,
        )
    return body[start : start + captured]


def _parse_epb(body: bytes, offset: int, order: str, interfaces: list[_Interface]) -> CapturedFrame:
    fixed = _EPB_BODY[order]
    if len(body) < fixed.size:
        raise CaptureError("pcapng Enhanced Packet Block too short", offset)
    number, ts_high, ts_low, captured, original = fixed.unpack_from(body)
    interface = _interface(interfaces, number, offset)
    data = _packet_data(body, fixed.size, captured, offset + 12, "Enhanced Packet Block")
    return CapturedFrame(
        timestamp_ns=interface.timestamp_ns((ts_high << 32) | ts_low),
        link_type=interface.link_type,
        data=data,
        original_length=original,
        interface=interface.number,
    )


def _parse_pb(body: bytes, offset: int, order: str, interfaces: list[_Interface]) -> CapturedFrame:
    fixed = _PB_BODY[order]
    if len(body) < fixed.size:
        raise CaptureError("pcapng Packet Block too short", offset)
    number, _, ts_high, ts_low, captured, original = fixed.unpack_from(body)
    interface = _interface(interfaces, number, offset)
    data = _packet_data(body, fixed.size, captured, offset + 12, "Packet Block")
    return CapturedFrame(
        timestamp_ns=interface.timestamp_ns((ts_high << 32) | ts_low),
        link_type=interface.link_type,
        data=data,
        original_length=original,
        interface=interface.number,
    )


def _parse_spb(body: bytes, offset: int, order: str, interfaces: list[_Interface]) -> CapturedFrame:
    fixed = _SPB_BODY[order]
    if len(body) < fixed.size:
        raise CaptureError("pcapng Simple Packet Block too short", offset)
    (original,) = fixed.unpack_from(body)
    interface = _interface(interfaces, 0, offset)  # 4.4: always the section's first interface
    # 4.4: the captured length is the smaller of the original length and the snaplen; the block
    # length bounds it too (a writer may have cut the packet without a snaplen in the IDB).
    captured = min(original, len(body) - fixed.size)
    if interface.snaplen:
        captured = min(captured, interface.snaplen)
    return CapturedFrame(
        timestamp_ns=0,
        link_type=interface.link_type,
        data=body[fixed.size : fixed.size + captured],
        original_length=original,
        interface=interface.number,
    )


# -- Writer ---------------------------------------------------------------------------------------


class PcapWriter:
    """Writes classic little-endian pcap 2.4 to a binary stream.

    ``link_type``: the LINKTYPE_* of every packet (default 229, raw IPv6). ``snaplen``: packets
    longer than this many bytes are cut (the record keeps the original length). ``nanosecond``:
    write the nanosecond-resolution magic; otherwise timestamps are truncated to microseconds.

    The file header is written at construction. The writer does not close a stream it was given;
    :meth:`create` opens a file the writer owns and closes.
    """

    __slots__ = ("_fraction_divisor", "_owns_stream", "_snaplen", "_stream", "_write", "frames")

    _MAX_TIMESTAMP_NS: Final = (1 << 32) * NANOSECONDS  # the seconds field is unsigned 32 bits

    def __init__(
        self,
        stream: BinaryIO,
        link_type: int = LINKTYPE_IPV6,
        snaplen: int = 262144,
        nanosecond: bool = False,
    ) -> None:
        if not 0 <= link_type <= _PCAP_LINKTYPE_MASK:
            raise ValueError(f"link_type={link_type} does not fit in 16 bits")
        if not 0 < snaplen <= MAX_RECORD_LENGTH:
            raise ValueError(f"snaplen={snaplen} must be in 1..{MAX_RECORD_LENGTH}")
        self._stream = stream
        self._write = stream.write
        self._snaplen = snaplen
        self._fraction_divisor = 1 if nanosecond else 1000
        self._owns_stream = False
        self.frames = 0
        magic = PCAP_MAGIC_NANOSECONDS if nanosecond else PCAP_MAGIC_MICROSECONDS
        major, minor = _PCAP_VERSION
        stream.write(_PCAP_HEADER_LE.pack(magic, major, minor, 0, 0, snaplen, link_type))

    @classmethod
    def create(
        cls,
        path: str | PathLike[str],
        link_type: int = LINKTYPE_IPV6,
        snaplen: int = 262144,
        nanosecond: bool = False,
    ) -> PcapWriter:
        """A writer on a new file at ``path`` (truncated if present), closed by :meth:`close`."""
        stream = open(path, "wb")  # closed by close()
        try:
            writer = cls(stream, link_type=link_type, snaplen=snaplen, nanosecond=nanosecond)
        except BaseException:
            stream.close()
            raise
        writer._owns_stream = True
        return writer

    def write(self, data: bytes | bytearray | memoryview, timestamp_ns: int) -> None:
        """Append one packet; ``timestamp_ns`` is nanoseconds since the Unix epoch (>= 0)."""
        if not 0 <= timestamp_ns < self._MAX_TIMESTAMP_NS:
            raise ValueError(f"timestamp_ns={timestamp_ns} outside the pcap range (u32 seconds)")
        seconds, fraction = divmod(timestamp_ns, NANOSECONDS)
        length = len(data)
        captured = length
        if length > self._snaplen:
            captured = self._snaplen
            data = memoryview(data)[:captured]
        self._write(
            _PCAP_RECORD_LE.pack(seconds, fraction // self._fraction_divisor, captured, length)
        )
        self._write(data)
        self.frames += 1

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        """Flush, and close the file if :meth:`create` opened it."""
        if self._owns_stream:
            self._stream.close()
        else:
            self._stream.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# -- Finding the IPv6 packet in a frame -----------------------------------------------------------

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_VLAN: Final = 0x8100  # IEEE 802.1Q C-tag
ETHERTYPE_QINQ: Final = 0x88A8  # IEEE 802.1ad S-tag
ETHERTYPE_QINQ_OLD: Final = 0x9100  # pre-standard stacked-VLAN tag, still seen in the wild
_VLAN_TAGS: Final = frozenset((ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD))
_ETHERTYPE_MIN: Final = 0x0600  # below: an IEEE 802.3 length field, not an EtherType

# Ethernet II: destination (6), source (6), EtherType (2); a VLAN tag: TCI (2), EtherType (2).
_ETHERNET_TYPE = 12
_ETHERNET_HEADER = 14
_VLAN_TAG = 4
# Linux cooked v1 (LINKTYPE_LINUX_SLL): packet type (2), ARPHRD (2), address length (2),
# address (8), protocol (2).
_SLL_PROTOCOL = 14
_SLL_HEADER = 16
# Linux cooked v2 (LINKTYPE_LINUX_SLL2): protocol (2), reserved (2), ifindex (4), ARPHRD (2),
# packet type (1), address length (1), address (8).
_SLL2_PROTOCOL = 0
_SLL2_HEADER = 20
# BSD loopback: a 4-byte address family.
_NULL_HEADER = 4
_AF_INET: Final = 2
_AF_INET6: Final = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, Darwin

# RFC 8200 3: Version (4 bits) ... Payload Length at bytes 4-5, Next Header at byte 6.
_IPV6_HEADER = 40
_IPV6_PAYLOAD_LENGTH = 4
_IPV6_NEXT_HEADER = 6
_HOP_BY_HOP = 0

_U16_BE = struct.Struct("!H")


class NotIpv6Kind(enum.Enum):
    """Why a frame holds no IPv6 packet."""

    UNSUPPORTED_LINK_TYPE = "unsupported link type"
    LINK_HEADER_TRUNCATED = "frame shorter than its link-layer header"
    IPV4 = "IPv4 packet"
    OTHER_PROTOCOL = "neither IPv6 nor IPv4"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv6Frame:
    """The IPv6 packet in a frame: ``packet`` starts at the IPv6 header, which was at ``offset``
    in the frame. ``trimmed`` bytes after it (Ethernet padding, an FCS) were dropped; nothing is
    dropped when the Payload Length claims more than the frame holds, so the IPv6 parser can
    report the truncation."""

    packet: bytes
    offset: int
    trimmed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class NotIpv6:
    """A frame without an IPv6 packet. ``value`` is the deciding code point where there is one:
    the EtherType, address family, IP version nibble or link type."""

    kind: NotIpv6Kind
    reason: str
    value: int | None = None


Ipv6Extract = Ipv6Frame | NotIpv6


def extract_ipv6(link_type: int, data: bytes) -> Ipv6Extract:
    """The IPv6 packet carried in a frame of ``link_type``, or why there is none."""
    if link_type == LINKTYPE_ETHERNET:
        if len(data) < _ETHERNET_HEADER:
            return _short(link_type, len(data), _ETHERNET_HEADER)
        return _after_ethertype(data, _ETHERNET_TYPE, link_type)
    if link_type == LINKTYPE_IPV6:
        return _ipv6_at(data, 0)
    if link_type == LINKTYPE_RAW:
        return _by_version(data, 0, link_type)
    if link_type == LINKTYPE_IPV4:
        return NotIpv6(kind=NotIpv6Kind.IPV4, reason="IPv4 packet (link type 228)", value=4)
    if link_type == LINKTYPE_LINUX_SLL:
        if len(data) < _SLL_HEADER:
            return _short(link_type, len(data), _SLL_HEADER)
        return _after_ethertype(data, _SLL_PROTOCOL, link_type)
    if link_type == LINKTYPE_LINUX_SLL2:
        if len(data) < _SLL2_HEADER:
            return _short(link_type, len(data), _SLL2_HEADER)
        protocol = _U16_BE.unpack_from(data, _SLL2_PROTOCOL)[0]
        return _by_ethertype(data, protocol, _SLL2_HEADER)
    if link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < _NULL_HEADER:
            return _short(link_type, len(data), _NULL_HEADER)
        return _by_address_family(data, link_type)
    return NotIpv6(
        kind=NotIpv6Kind.UNSUPPORTED_LINK_TYPE,
        reason=f"link type {link_type} not supported",
        value=link_type,
    )


def _short(link_type: int, length: int, needed: int) -> NotIpv6:
    return NotIpv6(
        kind=NotIpv6Kind.LINK_HEADER_TRUNCATED,
        reason=f"{length}-byte frame, link type {link_type} needs {needed} header bytes",
        value=link_type,
    )


def _after_ethertype(data: bytes, type_offset: int, link_type: int) -> Ipv6Extract:
    """Follow an EtherType at ``type_offset`` through any stacked VLAN tags."""
    ethertype = _U16_BE.unpack_from(data, type_offset)[0]
    position = type_offset + 2
    while ethertype in _VLAN_TAGS:
        if position + _VLAN_TAG > len(data):
            return _short(link_type, len(data), position + _VLAN_TAG)
        ethertype = _U16_BE.unpack_from(data, position + 2)[0]
        position += _VLAN_TAG
    if link_type == LINKTYPE_ETHERNET and ethertype < _ETHERTYPE_MIN:
        return NotIpv6(
            kind=NotIpv6Kind.OTHER_PROTOCOL,
            reason=f"802.3 length field {ethertype} (LLC frame, not Ethernet II)",
            value=ethertype,
        )
    return _by_ethertype(data, ethertype, position)


def _by_ethertype(data: bytes, ethertype: int, start: int) -> Ipv6Extract:
    if ethertype == ETHERTYPE_IPV6:
        return _ipv6_at(data, start)
    if ethertype == ETHERTYPE_IPV4:
        return NotIpv6(kind=NotIpv6Kind.IPV4, reason="IPv4 packet", value=ethertype)
    return NotIpv6(
        kind=NotIpv6Kind.OTHER_PROTOCOL,
        reason=f"ethertype 0x{ethertype:04x} (not IPv6)",
        value=ethertype,
    )


def _by_version(data: bytes, start: int, link_type: int) -> Ipv6Extract:
    if len(data) <= start:
        return _short(link_type, len(data), start + 1)
    version = data[start] >> 4
    if version == 6:
        return _ipv6_at(data, start)
    if version == 4:
        return NotIpv6(kind=NotIpv6Kind.IPV4, reason="IPv4 packet", value=4)
    return NotIpv6(
        kind=NotIpv6Kind.OTHER_PROTOCOL, reason=f"IP version {version} (not IPv6)", value=version
    )


def _by_address_family(data: bytes, link_type: int) -> Ipv6Extract:
    # LINKTYPE_NULL stores the family in the capturing host's byte order, which the file does not
    # record; AF values are small, so the byte order that gives a small number is the right one.
    if link_type == LINKTYPE_LOOP:
        family = _MAGIC_BE.unpack_from(data)[0]
    else:
        family = _MAGIC_LE.unpack_from(data)[0]
        if family > 0xFFFF:
            family = _MAGIC_BE.unpack_from(data)[0]
    if family in _AF_INET6:
        return _ipv6_at(data, _NULL_HEADER)
    if family == _AF_INET:
        return NotIpv6(kind=NotIpv6Kind.IPV4, reason="IPv4 packet", value=family)
    return NotIpv6(
        kind=NotIpv6Kind.OTHER_PROTOCOL,
        reason=f"address family {family} (not IPv6)",
        value=family,
    )


def _ipv6_at(data: bytes, start: int) -> Ipv6Frame:
    """The IPv6 packet from ``start``, cut to 40 + Payload Length when the frame holds more."""
    available = len(data) - start
    if available >= _IPV6_HEADER:
        payload_length = _U16_BE.unpack_from(data, start + _IPV6_PAYLOAD_LENGTH)[0]
        # RFC 2675 2: a jumbogram has Payload Length 0 and a Hop-by-Hop header; keep it whole.
        jumbo = payload_length == 0 and data[start + _IPV6_NEXT_HEADER] == _HOP_BY_HOP
        end = _IPV6_HEADER + payload_length
        if end < available and not jumbo:
            return Ipv6Frame(
                packet=bytes(data[start : start + end]), offset=start, trimmed=available - end
            )
    return Ipv6Frame(packet=bytes(data[start:]), offset=start)
