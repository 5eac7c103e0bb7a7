"""Byte-level rewrites on the data path, where building a full ``Repr`` per packet would cost
too much: type 2 routing header insertion (correspondent, RFC 3775 9.3.2), Home Address option
insertion (mobile node, 11.3.1), IPv6-in-IPv6 encapsulation (RFC 2473; home agent 10.4.1,
mobile node reverse tunnelling 11.3.1).

None of these touch the upper-layer checksum: the pseudo-header already uses the home address
(RFC 3775 6.3 / RFC 8200 8.1), and these rewrites only move it into an extension header.
Each expects a packet that passed :func:`mip6.wire.walk.walk` or was built by us.

:class:`FastDecision` is how an engine tells the daemon's C fast path (mip6/runtime/fast.py)
what it does, for now, to the data packets of one source and destination: the same rewrites,
done in C without the engine. The engine stays the reference and owns the decisions: it gives
one when asked (``fast_decision``), and ``fast_version`` says when those it gave may no longer
hold, so the daemon forgets them all at once.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
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


class Ingress(enum.IntEnum):
    """Where a packet enters the engine (mip6/runtime/csrc/daemon_fast.h, enum dfast_ingress)."""

    UPPER = 0  # engine.send: from the node's upper layer
    NETWORK = 1  # engine.handle_packet: from a network link
    TUNNEL = 2  # the inner packet a DECAPSULATE decision took out of its tunnel


class FastAction(enum.IntEnum):
    """What the fast path does to a packet (daemon_fast.h, enum dfast_action)."""

    FORWARD = 0  # nothing: the packet leaves as it came
    INSERT_TYPE2_ROUTING = 1  # insert_type2_routing(data, address): RFC 3775 9.3.2
    # Inbound.delivered() of a packet whose only extension header is a Destination Options
    # header holding the Home Address option ``address`` (RFC 3775 9.3.1); a packet without
    # extension headers leaves as it came
    REMOVE_HOME_ADDRESS_OPTION = 2
    INSERT_HOME_ADDRESS_OPTION = 3  # insert_home_address_option(data, address): 11.3.1
    # NodePipeline.data_fast_path of a packet whose only extension header is a type 2 routing
    # header naming the home address ``address`` (RFC 3775 11.3.3); a packet without extension
    # headers leaves as it came
    REMOVE_TYPE2_ROUTING = 4
    ENCAPSULATE = 5  # encapsulate(data, source, address, hop_limit): RFC 2473 3
    # the same for a packet forwarded into the tunnel: its Hop Limit goes down by one first
    # (RFC 2473 3.1), and one that would leave with 0 stays with the engine
    ENCAPSULATE_FORWARDED = 6
    # the inner packet of an IPv6-in-IPv6 packet without extension headers whose inner source
    # is ``address`` (a home agent's reverse tunnel, RFC 3775 10.4.5; the unspecified address:
    # any source, a mobile node's tunnel from its home agent, 11.3.2), then what the engine
    # decided for the inner packet's addresses (Ingress.TUNNEL)
    DECAPSULATE = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class FastDecision:
    """What the engine does with every TCP, UDP or ICMPv6 packet from one ingress with one
    source and destination address, until its ``fast_version`` changes or ``expires`` (on the
    engine's clock, seconds): ``action`` with ``address`` (16 bytes; an encapsulation's outer
    header goes from ``source`` to ``address`` with ``hop_limit``), then the packet is
    delivered to the upper layer (``deliver``) or transmitted on ``link`` (None: the network
    link). ``verify``: the engine would parse the packet (a received one) and drop it if its
    upper-layer header is bad, so the fast path takes only those whose header checks.
    ``binding`` names the binding the decision applies, for per-binding counters; ``touch(at)``
    tells the engine the binding was last used at ``at`` (RFC 3775 9.5.5 asks whether an entry is
    in active use), called before the engine's timers run."""

    action: FastAction
    deliver: bool = False
    link: str | None = None
    address: bytes = bytes(16)
    source: bytes = bytes(16)
    hop_limit: int = 0
    verify: bool = False
    expires: float = math.inf
    binding: IPv6Address | None = None
    touch: Callable[[float], None] | None = None
