"""The per-packet fast path: find the upper layer and the addresses that matter to Mobile IPv6
without building a ``Repr`` for every header.

The daemon calls this on every data packet to decide what to do with it (deliver, tunnel, apply
a binding); only signalling packets go through the full :class:`~mip6.wire.ipv6.Ipv6Packet`
parser. It reads the same fields the full parser reads, with the same bounds checks, and raises
the same errors; ``tests/wire/test_walk.py`` holds the two to agreement.
"""

from __future__ import annotations

from typing import NamedTuple

from mip6.wire import protocols
from mip6.wire.errors import Malformed, Truncated
from mip6.wire.ipv6 import MAX_EXTENSION_HEADERS
from mip6.wire.ipv6ext import HOME_ADDRESS_OPTION

_OPTIONS_HEADERS = (protocols.HOP_BY_HOP, protocols.DESTINATION_OPTIONS)


class HeaderWalk(NamedTuple):
    """Result of :func:`walk`. Addresses are 16-byte ``bytes``."""

    upper_protocol: int  # Next Header of the first non-extension header (59 for none)
    upper_offset: int  # where that header starts
    source: bytes
    destination: bytes
    home_address: bytes | None  # from a Home Address option (RFC 3775 6.3)
    routing_home_address: bytes | None  # from a type 2 Routing header (RFC 3775 6.4)
    fragmented: bool  # a non-atomic Fragment header: the upper layer needs reassembly


def walk(buf: bytes) -> HeaderWalk:
    """Walk the IPv6 header chain of ``buf`` (RFC 8200 4.1 order; no checksums verified)."""
    length = len(buf)
    if length < 40:
        raise Truncated("IPv6 header needs 40 bytes", 0)
    if buf[0] >> 4 != 6:
        raise Malformed("version is not 6", 0, "version")
    end = 40 + ((buf[4] << 8) | buf[5])
    if end > length:
        raise Truncated("Payload Length overruns the buffer", 4, "payload_length")
    next_header = buf[6]
    offset = 40
    home_address = routing_home = None
    fragmented = False
    count = 0
    while True:
        if next_header == protocols.HOP_BY_HOP and count:
            raise Malformed("Hop-by-Hop Options header not first", offset, "next_header")
        if next_header in _OPTIONS_HEADERS or next_header == protocols.ROUTING:
            if offset + 2 > end:
                raise Truncated("extension header needs 2 bytes", offset)
            header_end = offset + ((buf[offset + 1] + 1) << 3)
            if header_end > end:
                raise Malformed("Hdr Ext Len overruns the packet", offset + 1, "hdr_ext_len")
            if next_header == protocols.ROUTING:
                if buf[offset + 2] == 2 and buf[offset + 3]:
                    if buf[offset + 1] != 2:
                        raise Malformed(
                            "type 2 routing header Hdr Ext Len must be 2", offset + 1, "hdr_ext_len"
                        )
                    routing_home = buf[offset + 8 : offset + 24]
            elif next_header == protocols.DESTINATION_OPTIONS:
                home_address = _find_home_address(buf, offset, header_end, home_address)
        elif next_header == protocols.FRAGMENT:
            header_end = offset + 8
            if header_end > end:
                raise Truncated("fragment header needs 8 bytes", offset)
            if buf[offset + 2] or buf[offset + 3] & 0xF9:  # offset != 0 or M set
                fragmented = True
                next_header = buf[offset]
                offset = header_end
                break
        else:
            break
        count += 1
        if count > MAX_EXTENSION_HEADERS:
            raise Malformed("too many extension headers", offset, "next_header")
        next_header = buf[offset]
        offset = header_end
    return HeaderWalk(
        next_header, offset, buf[8:24], buf[24:40], home_address, routing_home, fragmented
    )


def _find_home_address(buf: bytes, header: int, end: int, found: bytes | None) -> bytes | None:
    """The Home Address option's address in the Destination Options header at ``buf[header:end]``,
    or ``found`` (from an earlier header); a second Home Address option is malformed, and so is
    one off its 8n+6 alignment (RFC 3775 6.3)."""
    offset = header + 2
    while offset < end:
        option_type = buf[offset]
        if option_type == 0:  # Pad1
            offset += 1
            continue
        if offset + 2 > end:
            raise Truncated("option length byte missing", offset + 1, "opt_data_len")
        data_end = offset + 2 + buf[offset + 1]
        if data_end > end:
            raise Malformed("option overruns its header", offset + 1, "opt_data_len")
        if option_type == HOME_ADDRESS_OPTION:
            if data_end - offset != 18:
                raise Malformed("Home Address option length must be 16", offset + 1, "opt_data_len")
            if (offset - header) % 8 != 6:
                raise Malformed(
                    "option type 201 breaks its 8n+6 alignment rule", offset, "alignment"
                )
            if found is not None:
                raise Malformed("more than one Home Address option", offset, "home_address_option")
            found = buf[offset + 2 : data_end]
        offset = data_end
    return found


def type2_routed(buf: bytes) -> tuple[bytes, int] | None:
    """The usual layout of a packet sent through a binding (RFC 3775 6.4, 9.3.2), read in
    place: the fixed header, its Payload Length the buffer's, then one type 2 Routing header
    with one segment left. Its home address and Next Header; None for any other layout (which
    :func:`walk` reads)."""
    if (
        len(buf) < 64
        or buf[6] != protocols.ROUTING
        or 40 + ((buf[4] << 8) | buf[5]) != len(buf)
        or buf[41] != 2  # Hdr Ext Len: 24 bytes
        or buf[42] != 2  # Routing Type 2
        or buf[43] != 1  # Segments Left
    ):
        return None
    return buf[48:64], buf[40]
