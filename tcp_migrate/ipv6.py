"""IPv6 as far as the TCP stack needs it: the addresses and where the upper-layer header starts.

:func:`walk` reads the fixed header (RFC 8200 3) and steps over the extension headers of RFC
8200 4 (Hop-by-Hop Options, Routing, Fragment, Destination Options) to the first header that is
none of them; AH, ESP and the Mobility Header end the walk as upper layers would, since the
stack has no use for what follows them. It checks every length it follows against the packet,
so any buffer either gives an answer or raises :class:`MalformedPacket`; it builds no header
object and verifies no checksum (the C core checks TCP's). Two Mobile IPv6 rules are checked
as well, the Home Address option's (RFC 3775 6.3) and the type 2 Routing header's length (RFC
3775 6.4), because both change the addresses TCP's checksum covers. The stack calls it on every
received packet, so a packet without extension headers is answered before the loop.

Byte offsets are from the start of the packet; addresses are 16-byte ``bytes`` in network order.
"""

from __future__ import annotations

import enum

__all__ = ["Fault", "MalformedPacket", "Walk", "walk"]

# RFC 8200 3:
#    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#    |Version| Traffic Class |           Flow Label                  |
#    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#    |         Payload Length        |  Next Header  |   Hop Limit   |
#    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#    |                 Source Address (16 bytes)                     |
#    |              Destination Address (16 bytes)                   |
HEADER_LENGTH = 40
_PAYLOAD_LENGTH = 4
_NEXT_HEADER = 6
_SOURCE = slice(8, 24)
_DESTINATION = slice(24, 40)

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
DESTINATION_OPTIONS = 60
_EXTENSION_HEADERS = frozenset((HOP_BY_HOP, ROUTING, FRAGMENT, DESTINATION_OPTIONS))

# More than this many extension headers is refused: the chain is bounded by the Payload Length
# anyway, this only ends a packet built of nothing but empty headers sooner.
MAX_EXTENSION_HEADERS = 32

PAD1 = 0
HOME_ADDRESS_OPTION = 201  # RFC 3775 6.3
ROUTING_TYPE_2 = 2  # RFC 3775 6.4

Walk = tuple[bytes, bytes, int, int, int, bool]
"""What :func:`walk` returns: ``(source, destination, upper_protocol, upper_offset, upper_end,
fragmented)``. ``upper_protocol`` is the Next Header value naming the first header that is not
an extension header (59 for none), ``upper_offset`` where it starts, ``upper_end`` where the
packet ends (40 + Payload Length; bytes after it are not the packet's), and ``fragmented`` is
true for a Fragment header that is not atomic, whose upper layer needs reassembly (the walk stops
there: what follows is a fragment, not a header). A plain tuple: a named one costs the hot path
a Python call per packet."""


class Fault(enum.Enum):
    """Why :func:`walk` refused a packet."""

    SHORT_HEADER = "shorter than the 40-byte IPv6 header"
    VERSION = "Version is not 6"
    PAYLOAD_LENGTH = "Payload Length overruns the buffer"
    HOP_BY_HOP_NOT_FIRST = "Hop-by-Hop Options header not right after the IPv6 header"
    EXTENSION_HEADER_SHORT = "extension header ends before its fixed part"
    HDR_EXT_LEN = "Hdr Ext Len overruns the packet"
    ROUTING_TYPE_2_LENGTH = "type 2 Routing header whose Hdr Ext Len is not 2"
    OPTION_LENGTH = "option overruns its header"
    HOME_ADDRESS_LENGTH = "Home Address option whose length is not 16"
    HOME_ADDRESS_ALIGNMENT = "Home Address option off its 8n+6 alignment"
    HOME_ADDRESS_REPEATED = "more than one Home Address option"
    TOO_MANY_HEADERS = f"more than {MAX_EXTENSION_HEADERS} extension headers"


class MalformedPacket(Exception):
    """A received packet :func:`walk` cannot read: ``fault`` says which rule it breaks,
    ``offset`` is the byte where it was found."""

    def __init__(self, fault: Fault, offset: int) -> None:
        super().__init__(fault, offset)
        self.fault = fault
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.fault.value} at offset {self.offset}"


def walk(packet: bytes) -> Walk:
    """The addresses of ``packet`` and where its upper-layer header starts (see :data:`Walk`)."""
    length = len(packet)
    if length < HEADER_LENGTH:
        raise MalformedPacket(Fault.SHORT_HEADER, 0)
    if packet[0] >> 4 != 6:
        raise MalformedPacket(Fault.VERSION, 0)
    end = HEADER_LENGTH + ((packet[_PAYLOAD_LENGTH] << 8) | packet[_PAYLOAD_LENGTH + 1])
    # Bytes after the payload are ignored (link-layer padding); a payload past the buffer is not.
    if end > length:
        raise MalformedPacket(Fault.PAYLOAD_LENGTH, _PAYLOAD_LENGTH)
    next_header = packet[_NEXT_HEADER]
    if next_header not in _EXTENSION_HEADERS:
        return packet[_SOURCE], packet[_DESTINATION], next_header, HEADER_LENGTH, end, False
    return _walk_extension_headers(packet, next_header, end)


def _walk_extension_headers(packet: bytes, next_header: int, end: int) -> Walk:
    offset = HEADER_LENGTH
    count = 0
    home_address_seen = False
    while next_header in _EXTENSION_HEADERS:
        # RFC 8200 4.1: "The Hop-by-Hop Options header, when present, must immediately follow
        # the IPv6 header."
        if next_header == HOP_BY_HOP and count:
            raise MalformedPacket(Fault.HOP_BY_HOP_NOT_FIRST, offset)
        if next_header == FRAGMENT:
            # RFC 8200 4.5: 8 bytes; bytes 2-3 hold the Fragment Offset (13 bits), two reserved
            # bits and the M flag.
            header_end = offset + 8
            if header_end > end:
                raise MalformedPacket(Fault.EXTENSION_HEADER_SHORT, offset)
            if packet[offset + 2] or packet[offset + 3] & 0xF9:
                # Offset not 0 or more fragments to come. An atomic fragment is walked through:
                # it holds the whole upper layer (RFC 6946 4).
                return (
                    packet[_SOURCE],
                    packet[_DESTINATION],
                    packet[offset],
                    header_end,
                    end,
                    True,
                )
        else:
            # RFC 8200 4.3-4.6: Next Header, then Hdr Ext Len in 8-octet units not counting
            # the first 8.
            if offset + 2 > end:
                raise MalformedPacket(Fault.EXTENSION_HEADER_SHORT, offset)
            header_end = offset + ((packet[offset + 1] + 1) << 3)
            if header_end > end:
                raise MalformedPacket(Fault.HDR_EXT_LEN, offset + 1)
            if next_header == DESTINATION_OPTIONS:
                home_address_seen = _check_options(packet, offset, header_end, home_address_seen)
            elif next_header == ROUTING and packet[offset + 2] == ROUTING_TYPE_2:
                # RFC 3775 6.4: Hdr Ext Len 2, one home address. With Segments Left not 0 that
                # address becomes the final destination, which TCP's pseudo-header uses (RFC
                # 8200 8.1), so a header of any other length leaves it in doubt.
                if packet[offset + 3] and packet[offset + 1] != 2:
                    raise MalformedPacket(Fault.ROUTING_TYPE_2_LENGTH, offset + 1)
        count += 1
        if count > MAX_EXTENSION_HEADERS:
            raise MalformedPacket(Fault.TOO_MANY_HEADERS, offset)
        next_header = packet[offset]
        offset = header_end
    return packet[_SOURCE], packet[_DESTINATION], next_header, offset, end, False


def _check_options(packet: bytes, header: int, header_end: int, home_address_seen: bool) -> bool:
    """Steps over the options of the Destination Options header at ``packet[header:header_end]``
    (RFC 8200 4.2: Pad1 is one byte, every other option type, length, data) and returns whether
    a Home Address option has been seen in this or an earlier header.

    RFC 3775 6.3: the Home Address option is 16 bytes of data at 8n+6 and appears at most once.
    It replaces the source address in TCP's pseudo-header, so a packet breaking these rules has
    no certain TCP checksum and is refused here, as any Mobile IPv6 node refuses it."""
    offset = header + 2
    while offset < header_end:
        option_type = packet[offset]
        if option_type == PAD1:
            offset += 1
            continue
        if offset + 2 > header_end:
            raise MalformedPacket(Fault.OPTION_LENGTH, offset + 1)
        data_end = offset + 2 + packet[offset + 1]
        if data_end > header_end:
            raise MalformedPacket(Fault.OPTION_LENGTH, offset + 1)
        if option_type == HOME_ADDRESS_OPTION:
            if data_end - offset != 18:
                raise MalformedPacket(Fault.HOME_ADDRESS_LENGTH, offset + 1)
            if (offset - header) % 8 != 6:
                raise MalformedPacket(Fault.HOME_ADDRESS_ALIGNMENT, offset)
            if home_address_seen:
                raise MalformedPacket(Fault.HOME_ADDRESS_REPEATED, offset)
            home_address_seen = True
        offset = data_end
    return home_address_seen
