"""The hub's forwarding decision, sans-I/O: which link a raw IPv6 packet leaves on.

Links are numbered ``0 .. len(link_names) - 1``. A table maps IPv6 prefixes to links; a packet is
forwarded on the link of the longest prefix that contains its destination address (RFC 4632 5.1
longest match, applied to IPv6). :meth:`Router.forward` returns that link's number, or a
:class:`Drop` (an ``IntEnum`` whose values are negative, so ``result < 0`` tests for a drop) and
counts the drop against the arrival link.

As a router does (RFC 8200 3, RFC 4291 2.5), :meth:`Router.forward`:

* decrements the Hop Limit in place, and drops a packet whose Hop Limit was 0 or 1 on arrival
  ("the packet is discarded if Hop Limit was zero when received or is decremented to zero");
  no ICMPv6 Time Exceeded is sent: the hub has no address of its own;
* never forwards a packet with an unspecified, loopback or link-local source, nor one whose
  destination is unspecified, loopback, link-local or multicast of interface- or link-local scope
  (RFC 4291 2.5.2, 2.5.3, 2.5.6, 2.7);
* never sends a packet back out the link it arrived on, unless that link allows hairpinning.

Only the fixed IPv6 header is read; nothing is parsed beyond it. The decision for a (source,
destination) pair is cached in :attr:`Router.decisions`, so a packet costs one 32-byte copy, one
dictionary lookup and the Hop Limit. A driver on a hot path may read that dictionary itself
(see its description) and call :meth:`Router.forward` only when it finds no plain answer there.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv6Address, IPv6Network
from typing import Final

# RFC 8200 3: Version in the top 4 bits of byte 0, Hop Limit at byte 7, Source Address at bytes
# 8-23, Destination Address at bytes 24-39.
IPV6_HEADER: Final = 40
_HOP_LIMIT: Final = 7
_SOURCE: Final = 8
_DESTINATION: Final = 24
ADDRESSES: Final = slice(_SOURCE, IPV6_HEADER)  # the key of Router.decisions
HOP_LIMIT: Final = _HOP_LIMIT

ROUTE_CACHE_SIZE: Final = 65536
"""(Source, destination) pairs whose decision is remembered; the cache is emptied when it fills
(a bound, not a policy: lab traffic flows between a handful of addresses)."""


class Drop(enum.IntEnum):
    """Why :meth:`Router.forward` did not forward a packet."""

    MALFORMED = -1  # shorter than an IPv6 header, or IP version is not 6
    NO_ROUTE = -2  # no prefix contains the destination
    HOP_LIMIT = -3  # Hop Limit 0 or 1 on arrival
    SAME_LINK = -4  # the route leads back out the arrival link, which does not hairpin
    SCOPE = -5  # a source or destination a router must not forward (see the module docstring)

    @property
    def label(self) -> str:
        """The name used in statistics: ``no_route``, ``hop_limit``, ..."""
        return self.name.lower()


class Router:
    """Longest-prefix-match forwarding between numbered links.

    ``link_names`` names the links (for statistics and for routes given by name); ``hairpin``
    names the links on which a packet may leave by the link it arrived on; ``pinned`` maps a
    link to the one every packet arriving on it leaves by, whatever its destination (a tester
    cabled to the node under test: its packets for a mobile node's home address reach the home
    agent it tests). A pinned packet still has its scope checked and its Hop Limit decremented.
    """

    __slots__ = (
        "_hairpin",
        "_routes",
        "_tables",
        "decisions",
        "drops",
        "link_names",
        "pinned",
    )

    def __init__(
        self,
        link_names: Sequence[str],
        hairpin: Iterable[str] = (),
        pinned: Mapping[str, str] | None = None,
    ) -> None:
        if len(set(link_names)) != len(link_names):
            raise ValueError(f"link names must be unique: {list(link_names)}")
        self.link_names: tuple[str, ...] = tuple(link_names)
        hairpin = set(hairpin)
        unknown = hairpin - set(self.link_names)
        if unknown:
            raise ValueError(f"hairpin names unknown links: {sorted(unknown)}")
        self._hairpin = [name in hairpin for name in self.link_names]
        # per arrival link: the link its packets are pinned to, or -1 (routed)
        self.pinned: list[int] = [-1] * len(self.link_names)
        for source, target in (pinned or {}).items():
            self.pinned[self._link_number(source)] = self._link_number(target)
        self._routes: dict[IPv6Network, int] = {}
        # One table per prefix length, longest first: prefix length -> {prefix bits: link}.
        self._tables: list[tuple[int, dict[int, int]]] = []
        # Source and destination address (packet[ADDRESSES]) -> the link number, or a Drop value
        # for pairs never forwarded. Emptied (in place) when routes change. For a packet whose
        # pair maps to a link >= 0 other than its arrival link, IP version 6 and Hop Limit > 1,
        # arriving on a link that is not pinned, forward() would do nothing but decrement the
        # Hop Limit and return that link: a driver may do exactly that itself, and must call
        # forward() for every other packet.
        self.decisions: dict[bytes, int] = {}
        self.drops: list[dict[str, int]] = [
            {reason.label: 0 for reason in Drop} for _ in self.link_names
        ]

    # -- the table -----------------------------------------------------------------------------

    def add_route(self, prefix: str | IPv6Network, link: str | int) -> None:
        """Packets to ``prefix`` leave on ``link`` (a name or number); replaces a route for the
        same prefix. Host bits in ``prefix`` are an error (``2001:db8::1/32``)."""
        network = IPv6Network(prefix)
        self._routes[network] = self._link_number(link)
        self._rebuild()

    def remove_route(self, prefix: str | IPv6Network) -> None:
        """Forget the route for exactly ``prefix``; KeyError if there is none."""
        del self._routes[IPv6Network(prefix)]
        self._rebuild()

    @property
    def routes(self) -> dict[IPv6Network, str]:
        """The table, prefix -> link name, longest prefixes first."""
        ordered = sorted(self._routes.items(), key=lambda item: -item[0].prefixlen)
        return {network: self.link_names[link] for network, link in ordered}

    def lookup(self, destination: IPv6Address | bytes) -> int | None:
        """The link number the longest matching prefix names, or None without a match."""
        address = int(
            destination if isinstance(destination, IPv6Address) else IPv6Address(destination)
        )
        for length, table in self._tables:
            link = table.get(address >> (128 - length))
            if link is not None:
                return link
        return None

    # -- the decision --------------------------------------------------------------------------

    def forward(self, in_link: int, packet: bytearray | memoryview) -> int:
        """Where ``packet``, arrived on link ``in_link``, leaves: a link number (>= 0), or a
        :class:`Drop` (< 0), counted in :attr:`drops`. ``packet`` must be writable: on success its
        Hop Limit has been decremented in place. (A ``memoryview`` is the fast case: copying the
        addresses out of one with ``tobytes`` costs a third of ``bytes()`` of a slice.)"""
        if type(packet) is not memoryview:
            packet = memoryview(packet)
        if len(packet) < IPV6_HEADER or packet[0] >> 4 != 6:
            return self._drop(in_link, Drop.MALFORMED)
        addresses = packet[ADDRESSES].tobytes()
        out = self.pinned[in_link]
        if out >= 0:
            # not through the cache: the same addresses may arrive on other links, routed
            if _out_of_scope(addresses):
                out = int(Drop.SCOPE)
        else:
            out = self.decisions.get(addresses)
            if out is None:
                out = self._decide(addresses)
        if out < 0:
            return self._drop(in_link, Drop(out))
        if out == in_link and not self._hairpin[in_link]:
            return self._drop(in_link, Drop.SAME_LINK)
        hop_limit = packet[_HOP_LIMIT]
        if hop_limit <= 1:
            return self._drop(in_link, Drop.HOP_LIMIT)
        packet[_HOP_LIMIT] = hop_limit - 1
        return out

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """Drops per arrival link name, per :attr:`Drop.label`."""
        return {
            name: dict(counts) for name, counts in zip(self.link_names, self.drops, strict=True)
        }

    # -- internals -----------------------------------------------------------------------------

    def _decide(self, addresses: bytes) -> int:
        """The decision for a source address followed by a destination address (32 bytes)."""
        if _out_of_scope(addresses):
            out = int(Drop.SCOPE)
        else:
            link = self.lookup(addresses[_DESTINATION - _SOURCE :])
            out = int(Drop.NO_ROUTE) if link is None else link
        if len(self.decisions) >= ROUTE_CACHE_SIZE:
            self.decisions.clear()
        self.decisions[addresses] = out
        return out

    def _drop(self, in_link: int, reason: Drop) -> Drop:
        self.drops[in_link][reason.label] += 1
        return reason

    def _link_number(self, link: str | int) -> int:
        if isinstance(link, int):
            if not 0 <= link < len(self.link_names):
                raise ValueError(f"no link number {link}")
            return link
        try:
            return self.link_names.index(link)
        except ValueError:
            raise ValueError(f"no link named {link!r}") from None

    def _rebuild(self) -> None:
        tables: dict[int, dict[int, int]] = {}
        for network, link in self._routes.items():
            length = network.prefixlen
            tables.setdefault(length, {})[int(network.network_address) >> (128 - length)] = link
        self._tables = sorted(tables.items(), key=lambda item: -item[0])
        self.decisions.clear()


_ZERO_15: Final = bytes(15)


def _unspecified_or_loopback(address: bytes) -> bool:
    """``::`` or ``::1`` (RFC 4291 2.5.2, 2.5.3)."""
    return address[:15] == _ZERO_15 and address[15] <= 1


def _out_of_scope(addresses: bytes) -> bool:
    """A source followed by a destination (32 bytes) a router must not forward (see the module
    docstring)."""
    split = _DESTINATION - _SOURCE
    return _not_forwardable_source(addresses[:split]) or _not_forwardable_destination(
        addresses[split:]
    )


def _not_forwardable_source(address: bytes) -> bool:
    """Unspecified, loopback or link-local unicast (fe80::/10)."""
    if address[0] == 0xFE and address[1] & 0xC0 == 0x80:
        return True
    return _unspecified_or_loopback(address)


def _not_forwardable_destination(address: bytes) -> bool:
    """Unspecified, loopback, link-local unicast (fe80::/10) or multicast of scope 0, 1 or 2
    (RFC 4291 2.7: ff00::/8 with the scope in the low 4 bits of the second byte)."""
    if address[0] == 0xFE and address[1] & 0xC0 == 0x80:
        return True
    if address[0] == 0xFF:
        return address[1] & 0x0F <= 2
    return _unspecified_or_loopback(address)
