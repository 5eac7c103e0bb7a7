"""TCP segment header and options (RFC 9293 3.1, 3.2; options of RFC 2018 and RFC 7323).

Only the wire format: no state, no sequence arithmetic. ``buf`` is the upper-layer payload handed
over by :mod:`mip6.wire.ipv6` and ``source``/``destination`` the pseudo-header addresses it chose
(RFC 8200 8.1, RFC 3775 6.3). Data Offset and Checksum are computed on emit; ``overrides=``
forces raw values for tests.

Options are exactly what is on the wire, padding included, as :mod:`mip6.wire.tlv` does for IPv6
options: every ``NoOperation`` is kept and an ``EndOfOptionList`` carries the zero bytes that
follow it up to the Data Offset, so ``emit(parse(b)) == b`` for every valid ``b`` (one exception:
a received checksum of 0xFFFF where 0x0000 is computed, both valid, is re-emitted as 0x0000).
Builders call :func:`aligned_tcp_options` to pad the list to a multiple of 4 bytes.

Deviations: the three reserved bits (RFC 9293 3.1 "Rsrvd") are ignored on parse and sent as
zero; the bit next to them, NS (RFC 3540, historic) or AE (Accurate ECN), is kept in ``flags``.
Non-zero bytes after End of Option List are rejected, although RFC 9293 only says the padding
"is composed of zeros" and most stacks ignore it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from mip6.wire import protocols
from mip6.wire.checksum import upper_layer_checksum, verify_upper_layer
from mip6.wire.errors import BadChecksum, EmitError, Malformed
from mip6.wire.fields import check_addresses, check_overrides, check_uint, need

#   RFC 9293 3.1:
#    0                   1                   2                   3
#    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |          Source Port          |       Destination Port        |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                        Sequence Number                        |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                    Acknowledgment Number                      |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |  Data |     |N|C|E|U|A|P|R|S|F|                               |
#   | Offset|Rsrvd|S|W|C|R|C|S|S|Y|I|            Window             |
#   |       |     | |R|E|G|K|H|T|N|N|                               |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |           Checksum            |         Urgent Pointer        |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                           [Options]                           |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                                                               :
#   :                             Data                              :
#   (RFC 9293 draws four Rsrvd bits; RFC 3540 gave the last one to NS, AccECN calls it AE.)
SOURCE_PORT = 0
DESTINATION_PORT = 2
SEQUENCE_NUMBER = 4
ACKNOWLEDGMENT_NUMBER = 8
DATA_OFFSET = 12  # high nibble; reserved bits and NS/AE in the low nibble
FLAGS = 13
WINDOW = 14
CHECKSUM = 16
URGENT_POINTER = 18
OPTIONS = 20
HEADER_LENGTH = 20
MAX_OPTIONS_LENGTH = 40  # Data Offset is 4 bits: at most 15 words, 5 of them fixed
_HEADER = struct.Struct("!HHIIHHHH")

_FIELDS = (
    "source_port",
    "destination_port",
    "sequence_number",
    "acknowledgment_number",
    "data_offset",
    "reserved",
    "flags",
    "window",
    "checksum",
    "urgent_pointer",
)
_FIELD_BITS = {
    "source_port": 16,
    "destination_port": 16,
    "sequence_number": 32,
    "acknowledgment_number": 32,
    "data_offset": 4,
    "reserved": 3,
    "flags": 9,
    "window": 16,
    "checksum": 16,
    "urgent_pointer": 16,
}


class TcpFlags(enum.IntFlag):
    """The control bits, numbered as the 9 low bits of header bytes 12-13 (RFC 9293 3.1)."""

    FIN = 0x001
    SYN = 0x002
    RST = 0x004
    PSH = 0x008
    ACK = 0x010
    URG = 0x020
    ECE = 0x040  # RFC 3168
    CWR = 0x080  # RFC 3168
    AE = 0x100  # Accurate ECN; was NS, RFC 3540 (historic)
    NS = 0x100


NO_FLAGS = TcpFlags(0)

EOL = 0
NOP = 1
MSS = 2
WSCALE = 3
SACK_PERMITTED = 4
SACK = 5
TIMESTAMPS = 8

#   RFC 9293 3.2: "Kind: 1 byte; Length: 1 byte" followed by Length - 2 bytes of data, except
#   End of Option List and No-Operation, which are a single Kind byte.
_MSS = struct.Struct("!BBH")
_WSCALE = struct.Struct("!BBB")
_TIMESTAMPS = struct.Struct("!BBII")
_SACK_BLOCK = struct.Struct("!II")


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfOptionList:
    """Kind 0 (RFC 9293 3.2). ``padding`` holds the zero bytes after it up to the Data Offset:
    "This might not coincide with the end of the TCP header according to the Data Offset
    field." It can only be the last option."""

    kind: ClassVar[int] = EOL
    padding: bytes = b""

    def emit(self) -> bytes:
        if any(self.padding):
            raise EmitError("TCP header padding after End of Option List must be zeros")
        return b"\x00" + self.padding


@dataclass(frozen=True, slots=True, kw_only=True)
class NoOperation:
    """Kind 1 (RFC 9293 3.2), used between options, e.g. to align them on word boundaries."""

    kind: ClassVar[int] = NOP

    def emit(self) -> bytes:
        return b"\x01"


@dataclass(frozen=True, slots=True, kw_only=True)
class MaximumSegmentSize:
    """Kind 2, Length 4 (RFC 9293 3.2, 3.7.1): "MUST only be sent in the initial connection
    request (i.e., in segments with the SYN control bit set)". In bytes."""

    kind: ClassVar[int] = MSS
    length: ClassVar[int] = 4
    maximum_segment_size: int

    def __post_init__(self) -> None:
        check_uint("maximum_segment_size", self.maximum_segment_size, 16)

    def emit(self) -> bytes:
        return _MSS.pack(MSS, 4, self.maximum_segment_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowScale:
    """Kind 3, Length 3 (RFC 7323 2.2). The window is shifted left by ``shift_count`` bits."""

    kind: ClassVar[int] = WSCALE
    length: ClassVar[int] = 3
    shift_count: int

    def __post_init__(self) -> None:
        check_uint("shift_count", self.shift_count, 8)

    @property
    def effective_shift_count(self) -> int:
        # RFC 7323 2.3: "If a Window Scale option is received with a shift.cnt value larger than
        # 14, the TCP SHOULD log the error but MUST use 14 instead of the specified value."
        return min(self.shift_count, 14)

    def emit(self) -> bytes:
        return _WSCALE.pack(WSCALE, 3, self.shift_count)


@dataclass(frozen=True, slots=True, kw_only=True)
class SackPermitted:
    """Kind 4, Length 2 (RFC 2018 2): only in a SYN segment."""

    kind: ClassVar[int] = SACK_PERMITTED
    length: ClassVar[int] = 2

    def emit(self) -> bytes:
        return b"\x04\x02"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sack:
    """Kind 5, Length 2 + 8n (RFC 2018 3): ``blocks`` of (Left Edge, Right Edge) sequence
    numbers. "a SACK option that specifies n blocks will have a length of 8*n+2 bytes, so the
    40 bytes available for TCP options can specify a maximum of 4 blocks"."""

    kind: ClassVar[int] = SACK
    blocks: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.blocks) <= 4:
            raise EmitError(f"a SACK option holds 1 to 4 blocks, not {len(self.blocks)}")
        for left_edge, right_edge in self.blocks:
            check_uint("left_edge", left_edge, 32)
            check_uint("right_edge", right_edge, 32)

    def emit(self) -> bytes:
        blocks = b"".join(_SACK_BLOCK.pack(left, right) for left, right in self.blocks)
        return bytes((SACK, 2 + len(blocks))) + blocks


@dataclass(frozen=True, slots=True, kw_only=True)
class Timestamps:
    """Kind 8, Length 10 (RFC 7323 3.2): TSval and TSecr, in the sender's timestamp clock."""

    kind: ClassVar[int] = TIMESTAMPS
    length: ClassVar[int] = 10
    tsval: int
    tsecr: int

    def __post_init__(self) -> None:
        check_uint("tsval", self.tsval, 32)
        check_uint("tsecr", self.tsecr, 32)

    def emit(self) -> bytes:
        return _TIMESTAMPS.pack(TIMESTAMPS, 10, self.tsval, self.tsecr)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownTcpOption:
    """An option this codec does not interpret, kept verbatim. RFC 9293 3.1: "A TCP implementation
    MUST ignore without error any TCP option it does not implement"."""

    kind: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint("kind", self.kind, 8)
        if self.kind in _FIXED_LENGTHS or self.kind in (EOL, NOP, SACK):
            raise EmitError(f"TCP option kind {self.kind} has its own Repr")
        if len(self.data) > 253:
            raise EmitError(f"TCP option data of {len(self.data)} bytes exceeds 253")

    def emit(self) -> bytes:
        return bytes((self.kind, 2 + len(self.data))) + self.data


TcpOption = (
    EndOfOptionList
    | NoOperation
    | MaximumSegmentSize
    | WindowScale
    | SackPermitted
    | Sack
    | Timestamps
    | UnknownTcpOption
)

_FIXED_LENGTHS = {MSS: 4, WSCALE: 3, SACK_PERMITTED: 2, TIMESTAMPS: 10}


def aligned_tcp_options(options: Iterable[TcpOption]) -> tuple[TcpOption, ...]:
    """``options`` followed by an End of Option List and zero padding up to a multiple of 4 bytes
    (RFC 9293 3.1 "Padding"); unchanged when already a multiple of 4. A trailing End of Option
    List in ``options`` is replaced, so the result is canonical. NOPs inside are kept."""
    out = list(options)
    if out and isinstance(out[-1], EndOfOptionList):
        out.pop()
    size = sum(len(option.emit()) for option in out)
    if size % 4:
        out.append(EndOfOptionList(padding=bytes(-(size + 1) % 4)))
    return tuple(out)


def emit_tcp_options(options: Iterable[TcpOption]) -> bytes:
    """The options as bytes; ``EmitError`` unless they fill whole 32-bit words, at most 40 bytes."""
    parts: list[bytes] = []
    options = tuple(options)
    for index, option in enumerate(options):
        if isinstance(option, EndOfOptionList) and index != len(options) - 1:
            raise EmitError("End of Option List must be the last TCP option")
        parts.append(option.emit())
    raw = b"".join(parts)
    if len(raw) % 4:
        raise EmitError(f"TCP options of {len(raw)} bytes do not end on a 32-bit boundary")
    if len(raw) > MAX_OPTIONS_LENGTH:
        raise EmitError(f"TCP options of {len(raw)} bytes exceed {MAX_OPTIONS_LENGTH}")
    return raw


def parse_tcp_options(buf: bytes, start: int, end: int) -> tuple[TcpOption, ...]:
    """Parse the options in ``buf[start:end]`` strictly; offsets in errors are into ``buf``."""
    options: list[TcpOption] = []
    offset = start
    while offset < end:
        kind = buf[offset]
        if kind == EOL:
            padding = bytes(buf[offset + 1 : end])
            if any(padding):
                first = offset + 1 + next(i for i, byte in enumerate(padding) if byte)
                raise Malformed(
                    "non-zero TCP header padding after End of Option List", first, "padding"
                )
            options.append(EndOfOptionList(padding=padding))
            break
        if kind == NOP:
            options.append(NoOperation())
            offset += 1
            continue
        # The bytes are there (Data Offset was checked against the buffer); the header is wrong.
        if offset + 2 > end:
            raise Malformed(f"TCP option kind {kind} has no length byte", offset + 1, "length")
        length = buf[offset + 1]
        if length < 2:
            raise Malformed(
                f"TCP option kind {kind} length {length} is below 2", offset + 1, "length"
            )
        if offset + length > end:
            raise Malformed(
                f"TCP option kind {kind} length {length} overruns the Data Offset",
                offset + 1,
                "length",
            )
        expected = _FIXED_LENGTHS.get(kind)
        if expected is not None and length != expected:
            raise Malformed(
                f"TCP option kind {kind} length {length}, must be {expected}", offset + 1, "length"
            )
        options.append(_decode_option(buf, offset, kind, length))
        offset += length
    return tuple(options)


def _decode_option(buf: bytes, offset: int, kind: int, length: int) -> TcpOption:
    if kind == MSS:
        return MaximumSegmentSize(maximum_segment_size=_MSS.unpack_from(buf, offset)[2])
    if kind == WSCALE:
        return WindowScale(shift_count=buf[offset + 2])
    if kind == SACK_PERMITTED:
        return SackPermitted()
    if kind == TIMESTAMPS:
        _kind, _length, tsval, tsecr = _TIMESTAMPS.unpack_from(buf, offset)
        return Timestamps(tsval=tsval, tsecr=tsecr)
    if kind == SACK:
        count, rest = divmod(length - 2, 8)
        if rest or not 1 <= count <= 4:
            raise Malformed(
                f"SACK option length {length} is not 2 + 8n with n from 1 to 4",
                offset + 1,
                "length",
            )
        blocks = tuple(_SACK_BLOCK.unpack_from(buf, offset + 2 + 8 * i) for i in range(count))
        return Sack(blocks=blocks)
    return UnknownTcpOption(kind=kind, data=bytes(buf[offset + 2 : offset + length]))


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpSegment:
    """One TCP segment. Sequence numbers are raw 32-bit values; ``window`` is the unscaled
    16-bit field; ``urgent_pointer`` is meaningful only with URG."""

    protocol: ClassVar[int] = protocols.TCP
    source_port: int
    destination_port: int
    sequence_number: int = 0
    acknowledgment_number: int = 0
    flags: TcpFlags = NO_FLAGS
    window: int = 0
    urgent_pointer: int = 0
    options: tuple[TcpOption, ...] = ()
    payload: bytes = b""

    def __post_init__(self) -> None:
        check_uint("source_port", self.source_port, 16)
        check_uint("destination_port", self.destination_port, 16)
        check_uint("sequence_number", self.sequence_number, 32)
        check_uint("acknowledgment_number", self.acknowledgment_number, 32)
        check_uint("flags", self.flags, 9)
        check_uint("window", self.window, 16)
        check_uint("urgent_pointer", self.urgent_pointer, 16)
        if type(self.flags) is not TcpFlags:
            object.__setattr__(self, "flags", TcpFlags(self.flags))
        if type(self.options) is not tuple:
            object.__setattr__(self, "options", tuple(self.options))

    @property
    def header_length(self) -> int:
        return HEADER_LENGTH + sum(len(option.emit()) for option in self.options)

    def find(self, kind: type) -> TcpOption | None:
        return next((o for o in self.options if isinstance(o, kind)), None)

    @classmethod
    def parse(cls, buf: bytes, *, source: bytes, destination: bytes) -> TcpSegment:
        need(buf, 0, HEADER_LENGTH, "TCP header")
        (
            source_port,
            destination_port,
            sequence_number,
            acknowledgment_number,
            offset_flags,
            window,
            checksum,
            urgent_pointer,
        ) = _HEADER.unpack_from(buf, 0)
        # RFC 9293 3.1: "Data Offset (DOffset): 4 bits. The number of 32-bit words in the TCP
        # header. This indicates where the data begins."
        header_length = 4 * (offset_flags >> 12)
        if header_length < HEADER_LENGTH:
            raise Malformed(
                f"TCP Data Offset {header_length // 4} is below 5", DATA_OFFSET, "data_offset"
            )
        if header_length > len(buf):
            raise Malformed(
                f"TCP Data Offset {header_length // 4} overruns the {len(buf)}-byte segment",
                DATA_OFFSET,
                "data_offset",
            )
        options = parse_tcp_options(buf, OPTIONS, header_length)
        if not verify_upper_layer(source, destination, protocols.TCP, buf):
            raise BadChecksum(
                f"TCP checksum 0x{checksum:04x} does not verify", CHECKSUM, "checksum"
            )
        return cls(
            source_port=source_port,
            destination_port=destination_port,
            sequence_number=sequence_number,
            acknowledgment_number=acknowledgment_number,
            # RFC 9293 3.1: "Rsrvd: A set of control bits reserved for future use. Must be zero in
            # generated segments and must be ignored in received segments"
            flags=TcpFlags(offset_flags & 0x1FF),
            window=window,
            urgent_pointer=urgent_pointer,
            options=options,
            payload=bytes(buf[header_length:]),
        )

    def emit(
        self, *, source: bytes, destination: bytes, overrides: Mapping[str, int] | None = None
    ) -> bytes:
        """The segment with Data Offset and Checksum computed. ``overrides`` sets raw fields
        (``data_offset``, ``reserved``, ``flags``, ``checksum``, ...); the checksum is computed
        after the other overrides unless it is overridden itself."""
        check_addresses(source, destination)
        raw_options = emit_tcp_options(self.options)
        fields = {
            "source_port": self.source_port,
            "destination_port": self.destination_port,
            "sequence_number": self.sequence_number,
            "acknowledgment_number": self.acknowledgment_number,
            "data_offset": (HEADER_LENGTH + len(raw_options)) // 4,
            "reserved": 0,
            "flags": int(self.flags),
            "window": self.window,
            "checksum": 0,
            "urgent_pointer": self.urgent_pointer,
        }
        forced = check_overrides(overrides, _FIELDS)
        fields.update(forced)
        for name in _FIELDS:
            check_uint(name, fields[name], _FIELD_BITS[name])
        segment = (
            _HEADER.pack(
                fields["source_port"],
                fields["destination_port"],
                fields["sequence_number"],
                fields["acknowledgment_number"],
                fields["data_offset"] << 12 | fields["reserved"] << 9 | fields["flags"],
                fields["window"],
                fields["checksum"],
                fields["urgent_pointer"],
            )
            + raw_options
            + self.payload
        )
        if "checksum" in forced:
            return segment
        # RFC 9293 3.1: the checksum covers the pseudo-header (RFC 8200 8.1 for IPv6), the
        # header and the data; unlike UDP, a computed zero is sent as zero.
        checksum = upper_layer_checksum(source, destination, protocols.TCP, segment)
        return segment[:CHECKSUM] + checksum.to_bytes(2, "big") + segment[URGENT_POINTER:]


# tcpdump's tcp_flag_values, in its printing order.
_FLAG_LETTERS = (
    (TcpFlags.FIN, "F"),
    (TcpFlags.SYN, "S"),
    (TcpFlags.RST, "R"),
    (TcpFlags.PSH, "P"),
    (TcpFlags.ACK, "."),
    (TcpFlags.URG, "U"),
    (TcpFlags.ECE, "E"),
    (TcpFlags.CWR, "W"),
    (TcpFlags.AE, "e"),
)

# tcpdump's tcp_option_values for kinds this codec keeps as UnknownTcpOption (data shown in hex).
_OPTION_NAMES = {
    6: "echo",
    7: "echoreply",
    11: "cc",
    12: "ccnew",
    13: "ccecho",
    19: "md5",
    20: "scps",
    28: "uto",
    29: "tcp-ao",
    30: "mptcp",
    34: "tfo",
    254: "exp",
}


def describe_option(option: TcpOption) -> str:
    """One option as tcpdump prints it inside ``options [...]``."""
    match option:
        case EndOfOptionList():
            return "eol"
        case NoOperation():
            return "nop"
        case MaximumSegmentSize():
            return f"mss {option.maximum_segment_size}"
        case WindowScale():
            return f"wscale {option.shift_count}"
        case SackPermitted():
            return "sackOK"
        case Sack():
            return f"sack {len(option.blocks)} " + "".join(
                f"{{{left}:{right}}}" for left, right in option.blocks
            )
        case Timestamps():
            return f"TS val {option.tsval} ecr {option.tsecr}"
        case UnknownTcpOption():
            name = _OPTION_NAMES.get(option.kind, f"unknown-{option.kind}")
            return f"{name} 0x{option.data.hex()}" if option.data else name
    raise TypeError(f"not a TCP option: {option!r}")


def describe(segment: TcpSegment) -> str:
    """tcpdump-like summary with absolute sequence numbers (as ``tcpdump -S``), e.g.
    ``TCP 80 > 40000 [S.] seq 1 ack 2 win 65535 options [mss 1460] len 0``. As in tcpdump, ``seq``
    is shown only with data or SYN/FIN/RST (``seq first:next`` with data), ``ack`` only with ACK
    and ``urg`` only with URG; ``len`` is the payload length."""
    flags = segment.flags
    letters = "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "none"
    parts = [f"TCP {segment.source_port} > {segment.destination_port} [{letters}]"]
    length = len(segment.payload)
    if length:
        parts.append(
            f"seq {segment.sequence_number}:{(segment.sequence_number + length) & 0xFFFFFFFF}"
        )
    elif flags & (TcpFlags.SYN | TcpFlags.FIN | TcpFlags.RST):
        parts.append(f"seq {segment.sequence_number}")
    if flags & TcpFlags.ACK:
        parts.append(f"ack {segment.acknowledgment_number}")
    parts.append(f"win {segment.window}")
    if flags & TcpFlags.URG:
        parts.append(f"urg {segment.urgent_pointer}")
    if segment.options:
        parts.append("options [" + ",".join(describe_option(o) for o in segment.options) + "]")
    parts.append(f"len {length}")
    return " ".join(parts)
