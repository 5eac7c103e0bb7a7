"""IPv6 extension headers: Hop-by-Hop and Destination Options (RFC 8200 4.3, 4.6) with the Home
Address option (RFC 3775 6.3), Routing headers (RFC 8200 4.4; type 2 from RFC 3775 6.4, type 0
deprecated by RFC 5095) and the Fragment header (RFC 8200 4.5).

An extension header ``Repr`` does not store its own Next Header or Hdr Ext Len: the packet chain
(:mod:`mip6.wire.ipv6`) derives both, so a chain can never disagree with itself. Hence the
signatures here: ``parse_at(buf, offset) -> (repr, next_header, end)`` and
``emit(next_header) -> bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import ClassVar

from mip6.wire import protocols
from mip6.wire.errors import EmitError, Malformed
from mip6.wire.fields import address, check_uint, need
from mip6.wire.tlv import TlvOption, aligned, emit_options, parse_options

#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |  Next Header  |  Hdr Ext Len  |                               |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
NEXT_HEADER = 0
HDR_EXT_LEN = 1
OPTIONS = 2

HOME_ADDRESS_OPTION = 0xC9  # RFC 3775 6.3: 201


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeAddressOption:
    """RFC 3775 6.3 Home Address destination option: alignment 8n+6, Option Length 16."""

    option_type: ClassVar[int] = HOME_ADDRESS_OPTION
    alignment: ClassVar[tuple[int, int]] = (8, 6)
    home_address: IPv6Address

    def emit_data(self) -> bytes:
        return self.home_address.packed


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownIpv6Option:
    """An option this codec does not interpret, kept verbatim. RFC 8200 4.2: the two high-order
    bits of the type say what a node that does not recognise it must do; the third says whether
    the data may change en route."""

    option_type: int
    data: bytes = b""
    alignment: ClassVar[tuple[int, int]] = (1, 0)

    def __post_init__(self) -> None:
        check_uint("option_type", self.option_type, 8)
        if self.option_type in (0, 1):
            raise EmitError("option types 0 and 1 are Pad1 and PadN")

    @property
    def action(self) -> int:
        """00 skip, 01 discard, 10 discard + ICMP, 11 discard + ICMP unless multicast."""
        return self.option_type >> 6

    @property
    def may_change(self) -> bool:
        return bool(self.option_type & 0x20)

    def emit_data(self) -> bytes:
        return self.data


def _decode_ipv6_option(option_type: int, data: bytes, offset: int) -> TlvOption:
    if option_type == HOME_ADDRESS_OPTION:
        if len(data) != 16:
            raise Malformed(
                f"Home Address option length {len(data)}, must be 16", offset + 1, "opt_data_len"
            )
        return HomeAddressOption(home_address=IPv6Address(data))
    return UnknownIpv6Option(option_type=option_type, data=data)


def _emit_generic(next_header: int, body: bytes) -> bytes:
    total = 2 + len(body)
    if total % 8:
        raise EmitError(f"extension header length {total} is not a multiple of 8")
    if total > 2048:
        raise EmitError(f"extension header length {total} exceeds 2048")
    check_uint("next_header", next_header, 8)
    return bytes((next_header, total // 8 - 1)) + body


def _read_generic(buf: bytes, offset: int, what: str) -> tuple[int, int]:
    """Next Header and end offset of a header in the generic (8 + 8*Hdr Ext Len) format."""
    need(buf, offset, 2, what)
    end = offset + 8 * (buf[offset + HDR_EXT_LEN] + 1)
    if end > len(buf):
        raise Malformed(
            f"{what} Hdr Ext Len overruns the packet", offset + HDR_EXT_LEN, "hdr_ext_len"
        )
    return buf[offset + NEXT_HEADER], end


@dataclass(frozen=True, slots=True, kw_only=True)
class _OptionsHeader:
    options: tuple[TlvOption, ...] = ()

    protocol: ClassVar[int]
    name: ClassVar[str]

    @classmethod
    def aligned(cls, options: Iterable[TlvOption]) -> _OptionsHeader:
        """A header holding ``options`` with the padding RFC 8200 4.2 alignment requires."""
        return cls(options=aligned(options, start=OPTIONS))

    @classmethod
    def parse_at(cls, buf: bytes, offset: int) -> tuple[_OptionsHeader, int, int]:
        next_header, end = _read_generic(buf, offset, cls.name)
        options = parse_options(
            buf, offset + OPTIONS, end, _decode_ipv6_option, header_start=offset
        )
        return cls(options=options), next_header, end

    def emit(self, next_header: int) -> bytes:
        return _emit_generic(next_header, emit_options(self.options, start=OPTIONS))

    def find(self, kind: type) -> TlvOption | None:
        return next((o for o in self.options if isinstance(o, kind)), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class HopByHopOptions(_OptionsHeader):
    """RFC 8200 4.3. Only valid directly after the IPv6 header."""

    protocol: ClassVar[int] = protocols.HOP_BY_HOP
    name: ClassVar[str] = "hop-by-hop options header"


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationOptions(_OptionsHeader):
    """RFC 8200 4.6; carries the Home Address option after a Routing header (RFC 3775 6.3)."""

    protocol: ClassVar[int] = protocols.DESTINATION_OPTIONS
    name: ClassVar[str] = "destination options header"

    @property
    def home_address(self) -> IPv6Address | None:
        hao = self.find(HomeAddressOption)
        return hao.home_address if isinstance(hao, HomeAddressOption) else None


#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |  Next Header  | Hdr Ext Len=2 | Routing Type=2|Segments Left=1|
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                            Reserved                           |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                         Home Address (128)                    |
ROUTING_TYPE = 2
SEGMENTS_LEFT = 3
ROUTING_DATA = 4
_ROUTING_FIXED = struct.Struct("!BBBB")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingType2:
    """RFC 3775 6.4 type 2 Routing header: exactly one address, the mobile node's home address.

    ``segments_left`` is 1 on the wire; a node that has processed the header sees 0. Other values
    are kept so the receiver (RFC 3775 6.4: must be 1) can reject them with the right reaction.
    """

    protocol: ClassVar[int] = protocols.ROUTING
    routing_type: ClassVar[int] = 2
    home_address: IPv6Address
    segments_left: int = 1

    def __post_init__(self) -> None:
        check_uint("segments_left", self.segments_left, 8)

    @property
    def final_destination(self) -> IPv6Address | None:
        return self.home_address if self.segments_left else None

    def emit(self, next_header: int) -> bytes:
        check_uint("next_header", next_header, 8)
        return (
            _ROUTING_FIXED.pack(next_header, 2, 2, self.segments_left)
            + bytes(4)
            + self.home_address.packed
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingType0:
    """RFC 2460 type 0 Routing header, parsed so it can be shown and refused: RFC 5095 deprecates
    it and requires a node to treat it as an unrecognized Routing Type."""

    protocol: ClassVar[int] = protocols.ROUTING
    routing_type: ClassVar[int] = 0
    deprecated: ClassVar[bool] = True
    addresses: tuple[IPv6Address, ...]
    segments_left: int

    def __post_init__(self) -> None:
        check_uint("segments_left", self.segments_left, 8)

    @property
    def final_destination(self) -> IPv6Address | None:
        return self.addresses[-1] if self.segments_left and self.addresses else None

    def emit(self, next_header: int) -> bytes:
        body = (
            bytes((0, self.segments_left)) + bytes(4) + b"".join(a.packed for a in self.addresses)
        )
        return _emit_generic(next_header, body)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownRouting:
    """A Routing header of a type this codec does not interpret; type-specific data kept as is."""

    protocol: ClassVar[int] = protocols.ROUTING
    routing_type: int
    segments_left: int
    data: bytes = b"\x00\x00\x00\x00"

    def __post_init__(self) -> None:
        check_uint("routing_type", self.routing_type, 8)
        check_uint("segments_left", self.segments_left, 8)
        if self.routing_type in (0, 2):
            raise EmitError("routing types 0 and 2 have their own Repr")

    @property
    def final_destination(self) -> IPv6Address | None:
        return None  # RFC 8200 8.1 needs the type's semantics to know it; use the header's dst

    def emit(self, next_header: int) -> bytes:
        return _emit_generic(
            next_header, bytes((self.routing_type, self.segments_left)) + self.data
        )


RoutingHeader = RoutingType2 | RoutingType0 | UnknownRouting


def parse_routing_at(buf: bytes, offset: int) -> tuple[RoutingHeader, int, int]:
    """Parse the Routing header at ``offset``: (repr, next_header, end)."""
    need(buf, offset, 4, "routing header")
    next_header, end = _read_generic(buf, offset, "routing header")
    routing_type = buf[offset + ROUTING_TYPE]
    segments_left = buf[offset + SEGMENTS_LEFT]
    if routing_type == 2:
        # RFC 3775 6.4: "Hdr Ext Len: 2"
        if buf[offset + HDR_EXT_LEN] != 2:
            raise Malformed(
                "type 2 routing header Hdr Ext Len must be 2", offset + HDR_EXT_LEN, "hdr_ext_len"
            )
        home = address(buf, offset + 8)
        return RoutingType2(home_address=home, segments_left=segments_left), next_header, end
    if routing_type == 0:
        count, rest = divmod(end - offset - 8, 16)
        if rest:
            raise Malformed(
                "type 0 routing header length is not 8 + 16n", offset + HDR_EXT_LEN, "hdr_ext_len"
            )
        if segments_left > count:
            raise Malformed(
                f"segments left {segments_left} exceeds {count} addresses",
                offset + SEGMENTS_LEFT,
                "segments_left",
            )
        addresses = tuple(address(buf, offset + 8 + 16 * i) for i in range(count))
        return RoutingType0(addresses=addresses, segments_left=segments_left), next_header, end
    data = bytes(buf[offset + ROUTING_DATA : end])
    return (
        UnknownRouting(routing_type=routing_type, segments_left=segments_left, data=data),
        next_header,
        end,
    )


#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                         Identification                        |
_FRAGMENT = struct.Struct("!BBHI")


@dataclass(frozen=True, slots=True, kw_only=True)
class FragmentHeader:
    """RFC 8200 4.5. ``fragment_offset`` is in 8-octet units, as on the wire."""

    protocol: ClassVar[int] = protocols.FRAGMENT
    fragment_offset: int = 0
    more_fragments: bool = False
    identification: int = 0

    def __post_init__(self) -> None:
        check_uint("fragment_offset", self.fragment_offset, 13)
        check_uint("identification", self.identification, 32)

    @property
    def is_atomic(self) -> bool:
        """RFC 6946: offset 0 and M clear, the whole packet in one "fragment"."""
        return self.fragment_offset == 0 and not self.more_fragments

    @classmethod
    def parse_at(cls, buf: bytes, offset: int) -> tuple[FragmentHeader, int, int]:
        need(buf, offset, 8, "fragment header")
        next_header, _reserved, offset_flags, identification = _FRAGMENT.unpack_from(buf, offset)
        return (
            cls(
                fragment_offset=offset_flags >> 3,
                more_fragments=bool(offset_flags & 1),
                identification=identification,
            ),
            next_header,
            offset + 8,
        )

    def emit(self, next_header: int) -> bytes:
        check_uint("next_header", next_header, 8)
        flags = (self.fragment_offset << 3) | int(self.more_fragments)
        return _FRAGMENT.pack(next_header, 0, flags, self.identification)


ExtensionHeader = HopByHopOptions | DestinationOptions | RoutingHeader | FragmentHeader
