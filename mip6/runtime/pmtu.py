"""Path MTU discovery for the host (RFC 8201), sans-I/O.

:class:`PathMtuCache` keeps one estimate per destination, lowered by Packet Too Big messages
(:func:`about`) and aged back to the link MTU. The estimate is the size of the packet that
leaves this node, Mobile IPv6 headers included: the host subtracts what its node's send path
adds (a tunnel, a Home Address option, a type 2 routing header) when it sizes its own packets.
"""

from __future__ import annotations

from typing import NamedTuple

from mip6.wire import protocols

MINIMUM_MTU = 1280  # RFC 8200 5
LINK_MTU = 1500  # a TUN device's default (mip6.runtime.links)
# RFC 8201 4: no attempt to detect an increase "less than 5 minutes after a Packet Too Big
# message has been received"; "The recommended setting for this timer is twice its minimum
# value (10 minutes)."
PMTU_AGING = 600.0
MAX_DESTINATIONS = 1024

_SKIPPED = frozenset((protocols.HOP_BY_HOP, protocols.DESTINATION_OPTIONS, protocols.ROUTING))


class Invoking(NamedTuple):
    """Whom a packet quoted in an ICMPv6 error was from and for, as the upper layer that sent
    it saw it: the Home Address option's address as the source, a type 2 routing header's as
    the destination, the inner packet of an IPv6-in-IPv6 tunnel. 16-byte addresses."""

    source: bytes
    destination: bytes


def about(invoking: bytes) -> Invoking | None:
    """The upper-layer addresses of a (possibly truncated: RFC 4443 2.4 (c)) quoted packet;
    None if too little of it is there."""
    for _ in range(4):  # a tunnel in a tunnel at most
        if len(invoking) < 40 or invoking[0] >> 4 != 6:
            return None
        source, destination = invoking[8:24], invoking[24:40]
        kind, offset = invoking[6], 40
        for _ in range(16):
            if kind == protocols.FRAGMENT:
                stop = offset + 8
            elif kind in _SKIPPED and offset + 2 <= len(invoking):
                stop = offset + ((invoking[offset + 1] + 1) << 3)
            else:
                break
            if stop > len(invoking):
                break
            if kind == protocols.ROUTING and invoking[offset + 2] == 2 and stop - offset == 24:
                destination = invoking[offset + 8 : offset + 24]  # RFC 3775 6.4
            elif kind == protocols.DESTINATION_OPTIONS:
                source = _home_address(invoking, offset, stop) or source  # RFC 3775 6.3
            kind, offset = invoking[offset], stop
        if kind != protocols.IPV6:
            return Invoking(source, destination)
        invoking = invoking[offset:]  # RFC 2473: the packet that was tunnelled
    return None


def _home_address(data: bytes, start: int, end: int) -> bytes | None:
    offset = start + 2
    while offset + 2 <= end:
        if data[offset] == 0:  # Pad1
            offset += 1
        elif data[offset] == 201 and data[offset + 1] == 16 and offset + 18 <= end:
            return data[offset + 2 : offset + 18]
        else:
            offset += 2 + data[offset + 1]
    return None


class PathMtuCache:
    """Path MTU estimates per destination (16-byte addresses), in bytes. ``link_mtu`` is the
    estimate without news (RFC 8201 4: "the MTU of the first hop"); a lowered estimate goes
    back to it ``aging`` seconds after the Packet Too Big that set it; at most
    ``max_destinations`` are kept (the oldest forgotten first)."""

    def __init__(
        self,
        *,
        link_mtu: int = LINK_MTU,
        aging: float = PMTU_AGING,
        max_destinations: int = MAX_DESTINATIONS,
    ) -> None:
        if not MINIMUM_MTU <= link_mtu <= 0xFFFF:
            raise ValueError(f"link MTU {link_mtu} is not in {MINIMUM_MTU}..65535")
        self.link_mtu = link_mtu
        self.aging = aging
        self.max_destinations = max_destinations
        self._estimates: dict[bytes, tuple[int, float]] = {}  # destination -> (mtu, until)

    def __len__(self) -> int:
        return len(self._estimates)

    def get(self, now: float, destination: bytes) -> int:
        found = self._estimates.get(destination)
        if found is None:
            return self.link_mtu
        if found[1] <= now:
            # RFC 8201 4: after the timer, "the node SHOULD ... increase the estimate"; back
            # to the first hop's MTU, and the next Packet Too Big lowers it again.
            del self._estimates[destination]
            return self.link_mtu
        return found[0]

    def lower(self, now: float, destination: bytes, mtu: int) -> int | None:
        """A Packet Too Big saying ``mtu`` for ``destination``: the new estimate, or None when
        the message changes nothing: one claiming no less than the estimate (RFC 8201 4: "A
        node MUST NOT increase its estimate of the Path MTU in response to the contents of a
        Packet Too Big message"), or less than the minimum (RFC 8201 4: "If a node receives a
        Packet Too Big message reporting a next-hop MTU that is less than the IPv6 minimum
        link MTU, it MUST discard it")."""
        if mtu < MINIMUM_MTU or mtu >= self.get(now, destination):
            return None
        estimates = self._estimates
        estimates.pop(destination, None)
        while len(estimates) >= self.max_destinations:
            del estimates[next(iter(estimates))]
        estimates[destination] = (mtu, now + self.aging)
        return mtu

    def rows(self, now: float) -> dict[bytes, int]:
        """The live estimates below the link MTU."""
        return {d: mtu for d, (mtu, until) in self._estimates.items() if until > now}
