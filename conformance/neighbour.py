"""Neighbour discovery for a tester on an Ethernet cable (sans-I/O: frames in, frames out).

On a LAN nothing routes the tester's packets for it: the implementation under test (IUT)
finds the tester's addresses by Neighbor Solicitation (its routes to the tester's off-link
prefixes point at the tester's link-local address, which it resolves the same way), and the
tester must find the IUT's link-layer address before its first frame. :class:`Neighbours` does
both for one interface: :meth:`Neighbours.solicit` makes the Neighbor Solicitation for the
IUT's address, :meth:`Neighbours.handle` takes every frame the interface receives and returns
the Neighbor Advertisement to send back (if the frame asks for one) and whether the frame is
one the tester's cases should see.

Everything is built and read here with ``struct`` (Ethernet II, the IPv6 header, ICMPv6
Neighbor Solicitation and Advertisement with their link-layer address options, RFC 4861 4.3,
4.4 and 4.6.1); the checksum is the tester's own (:func:`conformance.tester.fill_checksum`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Final

from conformance.tester import fill_checksum

ETHERTYPE_IPV6: Final = 0x86DD
ETH_HEADER: Final = 14
IPV6_HEADER: Final = 40
ICMPV6: Final = 58
NEIGHBOR_SOLICITATION: Final = 135
NEIGHBOR_ADVERTISEMENT: Final = 136
SOURCE_LINK_LAYER: Final = 1  # RFC 4861 4.6.1
TARGET_LINK_LAYER: Final = 2
# RFC 4861 4.4: Router, Solicited, Override flags in the first 32-bit word after the checksum
NA_SOLICITED: Final = 0x40000000
NA_OVERRIDE: Final = 0x20000000
ND_HOP_LIMIT: Final = 255  # RFC 4861 7.1.1/7.1.2: anything else is discarded
UNSPECIFIED: Final = IPv6Address("::")
_ETH = struct.Struct("!6s6sH")
_IPV6 = struct.Struct("!IHBB16s16s")  # version/class/flow, payload length, next header, hops
_ND = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target


def link_local(mac: bytes) -> IPv6Address:
    """The modified EUI-64 link-local address of ``mac`` (RFC 4291 2.5.1 and appendix A)."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return IPv6Address(b"\xfe\x80" + bytes(6) + eui)


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 2.7.1: ff02::1:ffXX:XXXX with the address's low 24 bits."""
    return IPv6Address(IPv6Address("ff02::1:ff00:0").packed[:13] + address.packed[13:])


def multicast_mac(address: IPv6Address) -> bytes:
    """RFC 2464 7: 33:33 and the group's low 32 bits."""
    return b"\x33\x33" + address.packed[12:]


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    mac = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(mac) != 6:
        raise ValueError(f"{text!r} is not a 48-bit MAC address")
    return mac


def frame(destination_mac: bytes, source_mac: bytes, packet: bytes) -> bytes:
    """An Ethernet II frame carrying one IPv6 packet (RFC 2464)."""
    return _ETH.pack(destination_mac, source_mac, ETHERTYPE_IPV6) + packet


def _nd_packet(
    kind: int,
    source: IPv6Address,
    destination: IPv6Address,
    target: IPv6Address,
    flags: int,
    option: int,
    mac: bytes,
) -> bytes:
    body = _ND.pack(kind, 0, 0, flags, target.packed) + bytes([option, 1]) + mac
    header = _IPV6.pack(6 << 28, len(body), ICMPV6, ND_HOP_LIMIT, source.packed, destination.packed)
    return fill_checksum(header + body)


@dataclass(frozen=True, slots=True)
class Solicitation:
    """A Neighbor Solicitation read off a frame."""

    source_mac: bytes
    source: IPv6Address
    target: IPv6Address
    link_layer: bytes | None  # the Source Link-Layer Address option


@dataclass(frozen=True, slots=True)
class Advertisement:
    """A Neighbor Advertisement read off a frame."""

    source_mac: bytes
    target: IPv6Address
    link_layer: bytes | None  # the Target Link-Layer Address option


def _link_layer_option(options: bytes, wanted: int) -> bytes | None:
    """The first ``wanted`` link-layer address option's address (RFC 4861 4.6.1), None if
    there is none; a zero-length option makes the message invalid (4.6)."""
    offset = 0
    while offset + 2 <= len(options):
        kind, length = options[offset], options[offset + 1] * 8
        if length == 0:
            raise ValueError("an ND option of length 0")
        if kind == wanted and length >= 8:
            return options[offset + 2 : offset + 8]
        offset += length
    return None


def read_nd(data: bytes) -> Solicitation | Advertisement | None:
    """The Neighbor Solicitation or Advertisement in Ethernet frame ``data``, None for any other
    frame or one RFC 4861 7.1.1/7.1.2 has a node discard (hop limit not 255, code not 0,
    short, bad options). The ICMPv6 checksum is not checked: the IUT's kernel computed it."""
    if len(data) < ETH_HEADER + IPV6_HEADER + _ND.size:
        return None
    _, source_mac, ethertype = _ETH.unpack_from(data)
    if ethertype != ETHERTYPE_IPV6:
        return None
    _, _, next_header, hops, source, _ = _IPV6.unpack_from(data, ETH_HEADER)
    if next_header != ICMPV6 or hops != ND_HOP_LIMIT:
        return None
    kind, code, _, _, target = _ND.unpack_from(data, ETH_HEADER + IPV6_HEADER)
    if code != 0 or kind not in (NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
        return None
    options = data[ETH_HEADER + IPV6_HEADER + _ND.size :]
    try:
        if kind == NEIGHBOR_SOLICITATION:
            lla = _link_layer_option(options, SOURCE_LINK_LAYER)
            return Solicitation(source_mac, IPv6Address(source), IPv6Address(target), lla)
        lla = _link_layer_option(options, TARGET_LINK_LAYER)
        return Advertisement(source_mac, IPv6Address(target), lla)
    except ValueError:
        return None


def ipv6_destination(data: bytes) -> IPv6Address | None:
    """The IPv6 destination of Ethernet frame ``data``, None if it carries no IPv6 packet."""
    if len(data) < ETH_HEADER + IPV6_HEADER:
        return None
    if _ETH.unpack_from(data)[2] != ETHERTYPE_IPV6:
        return None
    return IPv6Address(data[ETH_HEADER + 24 : ETH_HEADER + 40])


@dataclass(slots=True)
class Neighbours:
    """The tester's neighbour discovery on one interface: it owns ``addresses`` (and its
    link-local address, derived from ``mac``) and talks to the IUT at ``iut_address``."""

    mac: bytes
    addresses: frozenset[IPv6Address]
    iut_address: IPv6Address
    iut_mac: bytes | None = None
    answered: int = 0
    link_local_address: IPv6Address = field(init=False)

    def __post_init__(self) -> None:
        self.link_local_address = link_local(self.mac)

    @classmethod
    def of(cls, mac: bytes, addresses: Iterable[IPv6Address], iut: IPv6Address) -> Neighbours:
        return cls(mac, frozenset(addresses), iut)

    def owns(self, address: IPv6Address) -> bool:
        return address in self.addresses or address == self.link_local_address

    def solicit(self) -> bytes:
        """RFC 4861 7.2.2: a Neighbor Solicitation for the IUT's address to its
        solicited-node group, from the tester's link-local address with its link-layer
        address (so the IUT's answer can be unicast without resolving it back)."""
        group = solicited_node(self.iut_address)
        packet = _nd_packet(
            NEIGHBOR_SOLICITATION,
            self.link_local_address,
            group,
            self.iut_address,
            0,
            SOURCE_LINK_LAYER,
            self.mac,
        )
        return frame(multicast_mac(group), self.mac, packet)

    def handle(self, data: bytes) -> tuple[bytes | None, bool]:
        """``(reply, deliver)`` for a frame the interface received: the Neighbor
        Advertisement to send back (or None), and whether the frame is one for the cases: an
        IPv6 packet unicast to the tester's link-layer address and addressed to one of the
        tester's addresses (the ND the tester answers itself is not)."""
        nd = read_nd(data)
        if isinstance(nd, Advertisement):
            if nd.target == self.iut_address:
                self.iut_mac = nd.link_layer or nd.source_mac
            return None, False
        if isinstance(nd, Solicitation):
            if nd.source == self.iut_address and nd.link_layer is not None:
                self.iut_mac = nd.link_layer  # RFC 4861 7.2.3: the sender's cache learns too
            return self._advertise(nd), False
        destination = ipv6_destination(data)
        return None, (
            destination is not None and data[:6] == self.mac and destination in self.addresses
        )

    def _advertise(self, ns: Solicitation) -> bytes | None:
        """RFC 4861 7.2.4: a solicited advertisement for a target the tester owns, unicast to
        the solicitor. Duplicate address detection probes (unspecified source) are not
        answered: the tester plays mobile nodes away from home, whose home addresses a home
        agent under test must be able to defend (RFC 3775 10.4.1), and none of its addresses
        is the IUT's to configure."""
        if not self.owns(ns.target) or ns.source == UNSPECIFIED:
            return None
        packet = _nd_packet(
            NEIGHBOR_ADVERTISEMENT,
            ns.target,
            ns.source,
            ns.target,
            NA_SOLICITED | NA_OVERRIDE,
            TARGET_LINK_LAYER,
            self.mac,
        )
        self.answered += 1
        return frame(ns.link_layer or ns.source_mac, self.mac, packet)
