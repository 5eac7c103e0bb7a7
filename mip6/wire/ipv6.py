"""The IPv6 packet (RFC 8200 3) as a chain: fixed header, extension headers, upper-layer payload.

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Traffic Class |           Flow Label                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Source Address (128) / Destination Address (128)

``Ipv6Packet`` derives Payload Length and every Next Header from its contents, so a packet built
in code is always self-consistent. The upper-layer checksum pseudo-header uses the home address
of a Home Address option as source (RFC 3775 6.3) and the final destination of a Routing header
as destination (RFC 8200 8.1), whichever extension header carries them.

An ``Ipv6Packet`` is itself a payload (Next Header 41), which is IPv6-in-IPv6 (RFC 2473).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import ClassVar

from mip6.wire import protocols
from mip6.wire.errors import EmitError, Malformed, Truncated, WireError
from mip6.wire.esp import EspPacket
from mip6.wire.fields import check_overrides, check_uint, need
from mip6.wire.icmpv6 import Icmpv6Message, parse_icmpv6
from mip6.wire.ipv6ext import (
    DestinationOptions,
    ExtensionHeader,
    FragmentHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType0,
    RoutingType2,
    UnknownRouting,
    parse_routing_at,
)
from mip6.wire.mobility import MobilityMessage, parse_mobility_header
from mip6.wire.tcp import TcpSegment
from mip6.wire.udp import UdpDatagram

HEADER_LENGTH = 40
VERSION = 0
PAYLOAD_LENGTH = 4
NEXT_HEADER = 6
HOP_LIMIT = 7
SOURCE = 8
DESTINATION = 24
_FIXED = struct.Struct("!IHBB16s16s")


def fixed_header(
    payload_length: int,
    next_header: int,
    source: bytes,
    destination: bytes,
    hop_limit: int = 64,
) -> bytes:
    """The 40-byte IPv6 header (RFC 8200 3), traffic class and flow label zero, for packets
    built without a Repr (their tests hold them to :meth:`Ipv6Packet.emit`)."""
    return _FIXED.pack(6 << 28, payload_length, next_header, hop_limit, source, destination)


#: RFC 8200 sets no limit; we stop after this many so a crafted chain costs bounded work.
MAX_EXTENSION_HEADERS = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class RawPayload:
    """Bytes behind a Next Header this codec does not dissect (or a non-first fragment)."""

    protocol: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint("protocol", self.protocol, 8)

    def emit(
        self, *, source: bytes, destination: bytes, overrides: Mapping[str, int] | None = None
    ) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True, kw_only=True)
class NoNextHeader:
    """Next Header 59. RFC 8200 4.7: octets after it are ignored, and passed on unchanged."""

    protocol: ClassVar[int] = protocols.NO_NEXT_HEADER
    data: bytes = b""

    def emit(
        self, *, source: bytes, destination: bytes, overrides: Mapping[str, int] | None = None
    ) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class Layer:
    """Where one parsed header sits in the buffer: for decoders that show raw fields."""

    start: int
    end: int
    repr: object
    next_header: int | None  # the Next Header value this header carries (None for payloads)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv6Packet:
    """A whole IPv6 packet. ``traffic_class`` 8 bits, ``flow_label`` 20 bits."""

    protocol: ClassVar[int] = protocols.IPV6
    source: IPv6Address
    destination: IPv6Address
    payload: Payload
    extension_headers: tuple[ExtensionHeader, ...] = ()
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0

    def __post_init__(self) -> None:
        check_uint("hop_limit", self.hop_limit, 8)
        check_uint("traffic_class", self.traffic_class, 8)
        check_uint("flow_label", self.flow_label, 20)

    # -- what receivers look for ---------------------------------------------------------

    @property
    def home_address(self) -> IPv6Address | None:
        """The Home Address option's address (RFC 3775 6.3), if any Destination Options header
        in the chain carries one."""
        for header in self.extension_headers:
            if isinstance(header, DestinationOptions):
                home = header.home_address
                if home is not None:
                    return home
        return None

    @property
    def routing_header(self) -> RoutingType2 | RoutingType0 | UnknownRouting | None:
        for header in self.extension_headers:
            if isinstance(header, RoutingType2 | RoutingType0 | UnknownRouting):
                return header
        return None

    @property
    def pseudo_source(self) -> IPv6Address:
        """Source for upper-layer checksums: RFC 3775 6.3 swaps in the home address."""
        return self.home_address or self.source

    @property
    def final_destination(self) -> IPv6Address:
        """RFC 8200 8.1: the last address of a Routing header with segments left, else the
        Destination Address. With several Routing headers (a type 0 before a type 2, RFC 3775
        6.4), the last one that names a destination wins, as it is processed last."""
        final = self.destination
        for header in self.extension_headers:
            if isinstance(header, RoutingType2 | RoutingType0 | UnknownRouting):
                final = header.final_destination or final
        return final

    # -- codec ---------------------------------------------------------------------------

    def emit(
        self,
        *,
        source: bytes | None = None,
        destination: bytes | None = None,
        overrides: Mapping[str, int] | None = None,
    ) -> bytes:
        """Wire bytes. ``source``/``destination`` exist so a packet can be an IPv6-in-IPv6
        payload and are unused. ``overrides`` forces version, payload_length or next_header."""
        source_packed = self.source.packed
        destination_packed = self.destination.packed
        if self.extension_headers:
            pseudo_source = self.pseudo_source.packed
            pseudo_destination = self.final_destination.packed
        else:
            pseudo_source, pseudo_destination = source_packed, destination_packed
        payload = self.payload.emit(source=pseudo_source, destination=pseudo_destination)
        chain = [*self.extension_headers, self.payload]
        parts = [
            header.emit(chain[i + 1].protocol) for i, header in enumerate(self.extension_headers)
        ]
        parts.append(payload)
        body = b"".join(parts)
        o = check_overrides(overrides, ("version", "payload_length", "next_header"))
        payload_length = o.get("payload_length", len(body))
        if not 0 <= payload_length <= 0xFFFF:
            raise EmitError(f"payload of {len(body)} bytes needs a jumbogram (RFC 2675)")
        word = (o.get("version", 6) << 28) | (self.traffic_class << 20) | self.flow_label
        return (
            _FIXED.pack(
                word,
                payload_length,
                o.get("next_header", chain[0].protocol),
                self.hop_limit,
                source_packed,
                destination_packed,
            )
            + body
        )

    @classmethod
    def parse(
        cls,
        buf: bytes,
        *,
        source: bytes | None = None,
        destination: bytes | None = None,
        layers: list[Layer] | None = None,
    ) -> Ipv6Packet:
        """Parse a whole packet; ``buf`` must end where Payload Length says. Errors carry offsets
        from the start of ``buf``. ``layers``, when given, receives where each header sits."""
        return _parse_packet(bytes(buf), 0, layers)


Payload = (
    MobilityMessage
    | Icmpv6Message
    | UdpDatagram
    | TcpSegment
    | EspPacket
    | NoNextHeader
    | RawPayload
    | Ipv6Packet
)


def _parse_packet(buf: bytes, base: int, layers: list[Layer] | None) -> Ipv6Packet:
    """Parse the packet at ``buf[base:]`` (``base`` > 0 for a tunnelled inner packet)."""
    need(buf, base, HEADER_LENGTH, "IPv6 header")
    word, payload_length, next_header, hop_limit, src, dst = _FIXED.unpack_from(buf, base)
    if word >> 28 != 6:
        raise Malformed(f"version {word >> 28}, must be 6", base + VERSION, "version")
    end = base + HEADER_LENGTH + payload_length
    if end > len(buf):
        raise Truncated(
            f"Payload Length {payload_length}, {len(buf) - base - HEADER_LENGTH} bytes present",
            base + PAYLOAD_LENGTH,
            "payload_length",
        )
    if end < len(buf):
        raise Malformed(
            f"{len(buf) - end} bytes beyond Payload Length {payload_length}",
            base + PAYLOAD_LENGTH,
            "payload_length",
        )
    source = IPv6Address(src)
    destination = IPv6Address(dst)
    if layers is not None:
        layers.append(Layer(base, base + HEADER_LENGTH, None, next_header))

    packet = buf if end == len(buf) else buf[:end]
    headers: list[ExtensionHeader] = []
    offset = base + HEADER_LENGTH
    home_address: IPv6Address | None = None
    final_destination = destination
    fragmented = False
    while next_header in _EXTENSION_PARSERS and not fragmented:
        if len(headers) == MAX_EXTENSION_HEADERS:
            raise Malformed("too many extension headers", offset, "next_header")
        if next_header == protocols.HOP_BY_HOP and headers:
            # RFC 8200 4.1: Hop-by-Hop Options only immediately after the IPv6 header.
            raise Malformed("Hop-by-Hop Options header not first", offset, "next_header")
        header, following, header_end = _EXTENSION_PARSERS[next_header](packet, offset)
        if layers is not None:
            layers.append(Layer(offset, header_end, header, following))
        headers.append(header)
        if isinstance(header, DestinationOptions):
            for option in header.options:
                if isinstance(option, HomeAddressOption):
                    if home_address is not None:
                        # One home address per packet: Linux's ipv6_dest_hao drops a
                        # duplicate ("hao duplicated"), and a second one would make the
                        # checksum pseudo-header ambiguous (RFC 3775 6.3).
                        raise Malformed(
                            "more than one Home Address option", offset, "home_address_option"
                        )
                    home_address = option.home_address
        elif isinstance(header, RoutingType2 | RoutingType0 | UnknownRouting):
            final_destination = header.final_destination or final_destination
        elif isinstance(header, FragmentHeader):
            fragmented = not header.is_atomic
        next_header, offset = following, header_end

    segment = buf[offset:end]
    if fragmented:
        payload: Payload = RawPayload(protocol=next_header, data=segment)  # needs reassembly
    elif next_header == protocols.IPV6:
        payload = _parse_packet(packet, offset, layers)
    else:
        parser = _UPPER_PARSERS.get(next_header)
        if parser is None:
            payload = RawPayload(protocol=next_header, data=segment)
        else:
            pseudo_source = home_address.packed if home_address is not None else src
            final_packed = dst if final_destination is destination else final_destination.packed
            try:
                payload = parser(segment, source=pseudo_source, destination=final_packed)
            except WireError as error:
                raise error.shifted(offset) from None
    if layers is not None and next_header != protocols.IPV6:
        layers.append(Layer(offset, end, payload, None))
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=payload,
        extension_headers=tuple(headers),
        hop_limit=hop_limit,
        traffic_class=(word >> 20) & 0xFF,
        flow_label=word & 0xFFFFF,
    )


def _no_next_header(buf: bytes, *, source: bytes, destination: bytes) -> NoNextHeader:
    return NoNextHeader(data=bytes(buf))


_EXTENSION_PARSERS: dict[int, Callable[[bytes, int], tuple[ExtensionHeader, int, int]]] = {
    protocols.HOP_BY_HOP: HopByHopOptions.parse_at,
    protocols.DESTINATION_OPTIONS: DestinationOptions.parse_at,
    protocols.ROUTING: parse_routing_at,
    protocols.FRAGMENT: FragmentHeader.parse_at,
}

_UPPER_PARSERS: dict[int, Callable[..., Payload]] = {
    protocols.MOBILITY: parse_mobility_header,
    protocols.ICMPV6: parse_icmpv6,
    protocols.UDP: UdpDatagram.parse,
    protocols.TCP: TcpSegment.parse,
    protocols.ESP: EspPacket.parse,
    protocols.NO_NEXT_HEADER: _no_next_header,
}
