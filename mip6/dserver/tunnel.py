"""Clients without Mobile IPv6 (DSERVER.md section 3): the contact node's tunnel table and what
each member knows of the clients it serves through it. Sans-I/O: ``now`` comes in with every
call.

A client that does not speak Mobile IPv6 cannot be route-optimized, so every packet it sends
to the contact address C goes to the home agent, which tunnels it to the contact node (C's
registered care-of address). The seeds kept such clients at the contact node. Here the contact
node looks the client up in its :class:`TunnelTable` and tunnels the packet on (RFC 2473,
IPv6-in-IPv6, outer source its own address) to the member the table names; that member's
mobile node takes the tunnel from the contact node as it takes the relay's (RFC 3775 10.4.6),
and its answers, which have no binding to follow, go reverse-tunnelled to the contact node,
which sends them on through the home agent as the registered mobile node (the HoTI relay's
path, :mod:`.member`). The client sees C both ways and never a Mobility Header after its
first refusal.

The table is a binding cache whose Binding Updates travel on the member channel (TUNNEL,
answered by TUNNEL_ACK, :mod:`.messages`): a member that takes such a client in a handoff, or
keeps it after a failed one, sends TUNNEL with the number the handoff gave it (the INIT's, or
the donor's rebinding number: the windows of :mod:`.handoff`), and the table takes only a
number later than the one it holds (RFC 3775 9.5.1's comparison, modulo 2**16), so a late
TUNNEL from an earlier acceptor never takes the client back. The acknowledgement is the
handoff's BOUND.

Bounded: at most ``capacity`` clients, each forgotten ``lifetime`` seconds after its last
packet through the table (or its last TUNNEL); a TUNNEL for a new client that finds the table
full of live entries is refused (NO_ROOM): that handoff fails and the client stays where it
is. A member's entries go when a view drops it; the buddy that resumes its clients (their
replicas say they are tunnelled) binds them anew, a step above the dead member's number.

What a member keeps (:class:`TunnelledClients`): the clients it serves through the tunnel and
the number of their tunnel binding, so that a handoff numbers its INIT above it and, when
another member becomes the contact node (issue 15's takeover), it can announce them again to
that member's empty table.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv6Address

from mip6.dserver.expiring import ExpiryOrdered
from mip6.dserver.messages import TunnelStatus
from mip6.wire import protocols
from mip6.wire.errors import WireError
from mip6.wire.icmpv6 import (
    PARAMETER_PROBLEM,
    UNRECOGNIZED_NEXT_HEADER,
    ParameterProblem,
    parse_icmpv6,
)

DEFAULT_CAPACITY = 4096
# RFC 3775 13's MAX_RR_BINDING_LIFETIME: what a route-optimized client's binding would last
DEFAULT_LIFETIME = 420.0


def later(sequence: int, than: int) -> bool:
    """RFC 3775 9.5.1: ``sequence`` is later than ``than``, modulo 2**16."""
    return 0 < (sequence - than) & 0xFFFF < 0x8000


@dataclass(slots=True)
class TunnelEntry:
    member: IPv6Address
    sequence: int
    expires: float


class TunnelTable:
    """The contact node's: client -> the member whose clients' packets it tunnels there."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, lifetime: float = DEFAULT_LIFETIME
    ) -> None:
        if capacity < 1:
            raise ValueError("a tunnel table needs room for one entry")
        if lifetime <= 0:
            raise ValueError("a tunnel entry needs a lifetime above 0 seconds")
        self.capacity = capacity
        self.lifetime = lifetime
        # every entry lives ``lifetime`` from its last use, and a use moves it to the end:
        # insertion order is expiry order
        self._entries: ExpiryOrdered[IPv6Address, TunnelEntry] = ExpiryOrdered()
        self.counters = {
            "bound": 0,
            "out_of_window": 0,
            "full": 0,
            "expired": 0,
            "forwarded": 0,
            "dropped_member": 0,
        }

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, client: object) -> bool:
        return client in self._entries

    def bind(
        self, now: float, client: IPv6Address, member: IPv6Address, sequence: int
    ) -> tuple[TunnelStatus, int]:
        """``member`` serves ``client`` from ``sequence`` on: the status and the number the
        table holds for the client afterwards. The same TUNNEL again (a retransmission, an
        announcement to a new contact node) is accepted; a number not later than the one held
        is refused with that number."""
        self.expire(now)
        entry = self._entries.get(client)
        if entry is not None:
            same = entry.member == member and entry.sequence == sequence
            if not same and not later(sequence, entry.sequence):
                self.counters["out_of_window"] += 1
                return TunnelStatus.SEQUENCE_OUT_OF_WINDOW, entry.sequence
            del self._entries[client]
        elif len(self._entries) >= self.capacity:
            self.counters["full"] += 1
            return TunnelStatus.NO_ROOM, sequence
        self._entries[client] = TunnelEntry(member, sequence, now + self.lifetime)
        self.counters["bound"] += 1
        return TunnelStatus.ACCEPTED, sequence

    def member_for(self, now: float, client: IPv6Address) -> IPv6Address | None:
        """Where ``client``'s packet goes (its entry lives on from now), None when the table
        has no live entry for it."""
        entry = self._entries.get(client)
        if entry is None:
            return None
        if entry.expires <= now:
            self.expire(now)
            return None
        entry.expires = now + self.lifetime
        self._entries.move_to_end(client)
        return entry.member

    def sequence(self, client: IPv6Address) -> int | None:
        entry = self._entries.get(client)
        return entry.sequence if entry is not None else None

    def drop_member(self, member: IPv6Address) -> int:
        """``member`` left the view: its entries go (how many)."""
        gone = [client for client, entry in self._entries.items() if entry.member == member]
        for client in gone:
            del self._entries[client]
        self.counters["dropped_member"] += len(gone)
        return len(gone)

    def expire(self, now: float) -> None:
        self.counters["expired"] += self._entries.expire(now)

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has work (for the engine's timer), None when empty."""
        return self._entries.next_expiry()

    def rows(self, now: float) -> list[dict[str, object]]:
        """For ``mip6 show tunnel``."""
        return [
            {
                "client": str(client),
                "member": str(entry.member),
                "sequence": entry.sequence,
                "expires_in": round(entry.expires - now, 3),
            }
            for client, entry in self._entries.items()
        ]


class TunnelledClients:
    """A member's: the clients without Mobile IPv6 it serves (client -> the number of its
    tunnel binding) and the TUNNELs it awaits an answer to (client -> their number). At most
    one of each per client; a member holds entries only for clients it has connections of
    (the member's sweep forgets the rest), so the member's connection bound bounds these."""

    def __init__(self) -> None:
        self.serving: dict[IPv6Address, int] = {}
        self.pending: dict[IPv6Address, int] = {}

    def __contains__(self, client: object) -> bool:
        return client in self.serving or client in self.pending

    def asked(self, client: IPv6Address, sequence: int) -> None:
        self.pending[client] = sequence

    def answered(self, client: IPv6Address, sequence: int, status: TunnelStatus | int) -> bool:
        """The contact node's answer to the TUNNEL numbered ``sequence``; False when this
        member awaits no answer to it (an earlier TUNNEL's, one given up on). Accepted, the
        client is served through the tunnel from here on."""
        if self.pending.get(client) != sequence:
            return False
        del self.pending[client]
        if status is TunnelStatus.ACCEPTED:
            self.serving[client] = sequence
        return True

    def sequence(self, client: IPv6Address) -> int | None:
        """The client's last tunnel number here (awaited or acknowledged)."""
        pending = self.pending.get(client)
        return pending if pending is not None else self.serving.get(client)

    def forget(self, client: IPv6Address) -> None:
        self.serving.pop(client, None)
        self.pending.pop(client, None)


def home_agent_tunnelled_source(
    data: bytes, home_agent: bytes, own: bytes, contact: bytes
) -> bytes | None:
    """The source (packed) of the packet for C inside ``data``, when ``data`` is the home
    agent's tunnel to this member (RFC 2473 as the home agent builds it, RFC 3775 10.4.1: an
    outer header with no extension header, Next Header 41); None for anything else, which the
    mobile node takes as ever. Read in place: the contact node asks for every packet."""
    if (
        len(data) < 80
        or data[6] != protocols.IPV6
        or data[8:24] != home_agent
        or data[24:40] != own
        or data[64:80] != contact
    ):
        return None
    return data[48:64]


def mobility_header_refused(packet: bytes, ours: Collection[bytes]) -> IPv6Address | None:
    """The node that answered a Mobility Header from one of ``ours`` (C, or the member's own
    address) with an ICMPv6 Parameter Problem, code 1 (unrecognized Next Header type), whose
    pointer names the Next Header field that holds 135 (RFC 4443 3.4; RFC 8200 4: what a
    node that does not know the Mobility Header sends, as a Linux kernel without MIPv6
    does); None for any other packet. ``packet`` is one the mobile node delivered (its
    tunnel removed); the usual ICMPv6 right behind the IPv6 header is told apart in place
    before anything is parsed."""
    if len(packet) < 48 + 40 or packet[6] != protocols.ICMPV6 or packet[40] != PARAMETER_PROBLEM:
        return None
    if packet[41] != UNRECOGNIZED_NEXT_HEADER:
        return None
    try:
        message = parse_icmpv6(packet[40:], source=packet[8:24], destination=packet[24:40])
    except WireError:
        return None
    if not isinstance(message, ParameterProblem):
        return None
    invoking = message.invoking_packet
    pointer = message.pointer
    if (
        len(invoking) < 40
        or invoking[8:24] not in ours
        or invoking[24:40] != packet[8:24]  # about a packet we sent to the one answering
        or not 6 <= pointer < len(invoking)
        or invoking[pointer] != protocols.MOBILITY
    ):
        return None
    return IPv6Address(packet[8:24])
