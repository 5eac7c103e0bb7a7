"""Byte-level rewrites on the data path, where building a full ``Repr`` per packet would cost
too much: type 2 routing header insertion (correspondent, RFC 3775 9.3.2), Home Address option
insertion (mobile node, 11.3.1), IPv6-in-IPv6 encapsulation (RFC 2473; home agent 10.4.1,
mobile node reverse tunnelling 11.3.1).

None of these touch the upper-layer checksum: the pseudo-header already uses the home address
(RFC 3775 6.3 / RFC 8200 8.1), and these rewrites only move it into an extension header.
Each expects a packet that passed :func:`mip6.wire.walk.walk` or was built by us.
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

from mip6.wire import protocols
from mip6.wire.ipv6 import fixed_header

# RFC 3775 6.3: Destination Options header of 24 bytes: Next Header, Hdr Ext Len 2, a PadN of
# 4 bytes (so the Home Address option starts at 8n+6), Option Type 201, Option Length 16, Home
# Address. The same bytes DestinationOptions.aligned([HomeAddressOption(...)]) emits.
_HAO_PREFIX = b"\x01\x02\x00\x00\xc9\x10"
HOME_ADDRESS_OPTION_OVERHEAD = 24  # that Destination Options header
TYPE2_ROUTING_OVERHEAD = 24  # RFC 3775 6.4: Hdr Ext Len 2
TUNNEL_OVERHEAD = 40  # RFC 2473 3: the outer IPv6 header


def _insert_after_hop_by_hop(data: bytes, header_type: int, header_body: bytes) -> bytearray:
    """Insert an extension header (``header_body`` starts with its Next Header byte, which is
    filled in here) where RFC 8200 4.1 orders it: after the IPv6 header and any Hop-by-Hop
    Options header."""
    out = bytearray()
    if data[6] == protocols.HOP_BY_HOP:
        end = 40 + (data[41] + 1) * 8
        out += data[:end]
        previous = 40  # the Hop-by-Hop header's Next Header byte
    else:
        end = 40
        out += data[:40]
        previous = 6
    following = out[previous]
    out[previous] = header_type
    out += bytes((following,)) + header_body[1:]
    out += data[end:]
    struct.pack_into("!H", out, 4, len(out) - 40)
    return out


def insert_type2_routing(data: bytes, care_of_address: IPv6Address) -> bytes:
    """Route a packet addressed to a home address via the binding's care-of address: the
    destination becomes the care-of address and a type 2 routing header carries the home
    address (RFC 3775 6.4, 9.3.2)."""
    home = data[24:40]
    header = bytes((0, 2, 2, 1)) + bytes(4) + home  # Hdr Ext Len 2, type 2, Segments Left 1
    out = _insert_after_hop_by_hop(data, protocols.ROUTING, header)
    out[24:40] = care_of_address.packed
    return bytes(out)


def home_address_options(next_header: int, home: bytes) -> bytes:
    """The Destination Options header that carries only a Home Address option (see
    :data:`_HAO_PREFIX`), before a header of type ``next_header``."""
    return bytes((next_header, 2)) + _HAO_PREFIX + home


def insert_home_address_option(data: bytes, care_of_address: IPv6Address) -> bytes:
    """Send from the care-of address carrying the home address in a Home Address option
    (RFC 3775 6.3, 11.3.1). Placed right after any Hop-by-Hop header: RFC 8200 4.1 puts a
    Destination Options header for the final destination after the Routing header, and the
    mobile node's data packets carry none."""
    header = home_address_options(0, data[8:24])
    out = _insert_after_hop_by_hop(data, protocols.DESTINATION_OPTIONS, header)
    out[8:24] = care_of_address.packed
    return bytes(out)


def encapsulate(
    data: bytes, source: IPv6Address, destination: IPv6Address, hop_limit: int = 64
) -> bytes:
    """RFC 2473 3: an outer IPv6 header (Next Header 41) from tunnel entry to tunnel exit point.
    The inner packet is sent whole; a packet too big for the path is the driver's concern."""
    if len(data) > 0xFFFF:
        raise ValueError("inner packet too large for a non-jumbo IPv6 payload")
    return fixed_header(len(data), protocols.IPV6, source.packed, destination.packed, hop_limit) + (
        data
    )
