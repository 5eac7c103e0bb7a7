"""The contact node's HoTI/HoT relay table (DSERVER.md section 4; SPEC-dserver 4.4).

A client's Home Test for the contact address reaches the contact node (the home agent tunnels
everything for that address to it), but the member that asked for it is the acceptor of a
handoff. The acceptor tunnels its HoTI to the contact node, which records who asked and sends
the HoTI on as the registered mobile node; when the HoT comes back, the entry says which member
gets it, and is forgotten (the seeds: "requiring only a minimum of state").

The seeds keyed the mapping by (replica, client). An entry here is keyed by (client, home init
cookie): RFC 3775 6.1.6 has the HoT carry the HoTI's cookie, so two members running return
routability with the same client at once (two handoffs racing) each get their own HoT, never
the other's.

Bounded: at most ``capacity`` entries, each for ``lifetime`` seconds; a HoTI that finds the
table full of live entries is refused (the acceptor's return routability times out and its
handoff fails or retries, as DSERVER.md 4 rule 6 bounds every wait). Sans-I/O: ``now`` comes
in with every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from mip6.dserver.expiring import ExpiryOrdered

DEFAULT_CAPACITY = 4096
# RFC 3775 13: MAX_RR_BINDING_LIFETIME is not the bound here; a HoT answers within a few round
# trips or the acceptor's HoTI retransmission (11.8, starting at 1 s) replaces the entry.
DEFAULT_LIFETIME = 4.0


@dataclass(frozen=True, slots=True)
class RelayEntry:
    acceptor: IPv6Address
    expires: float


class RelayTable:
    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, lifetime: float = DEFAULT_LIFETIME
    ) -> None:
        if capacity < 1:
            raise ValueError("a relay table needs room for one entry")
        self.capacity = capacity
        self.lifetime = lifetime
        # insertion order is expiry order: every entry lives ``lifetime`` from when it was put
        self._entries: ExpiryOrdered[tuple[IPv6Address, bytes], RelayEntry] = ExpiryOrdered()
        self.counters = {
            "relayed_hoti": 0,
            "relayed_hot": 0,
            "full": 0,
            "expired": 0,
            "unknown_hot": 0,
        }

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, now: float, client: IPv6Address, cookie: bytes, acceptor: IPv6Address) -> bool:
        """Record that ``acceptor`` sent a HoTI with ``cookie`` to ``client``; False (and
        counted) when the table is full of live entries. A retransmitted HoTI (same client
        and cookie) renews its entry."""
        self.expire(now)
        key = (client, cookie)
        if key not in self._entries and len(self._entries) >= self.capacity:
            self.counters["full"] += 1
            return False
        self._entries.pop(key, None)
        self._entries[key] = RelayEntry(acceptor, now + self.lifetime)
        self.counters["relayed_hoti"] += 1
        return True

    def take(self, now: float, client: IPv6Address, cookie: bytes) -> IPv6Address | None:
        """The member a HoT from ``client`` with ``cookie`` goes to; the entry is forgotten.
        None (counted) when no live entry matches: the HoT is the contact node's own, or
        late."""
        self.expire(now)
        entry = self._entries.pop((client, cookie), None)
        if entry is None:
            self.counters["unknown_hot"] += 1
            return None
        self.counters["relayed_hot"] += 1
        return entry.acceptor

    def expire(self, now: float) -> None:
        self.counters["expired"] += self._entries.expire(now)

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has work (for the engine's timer), None when empty."""
        return self._entries.next_expiry()

    def rows(self, now: float) -> list[dict[str, object]]:
        """For ``mip6 show relay``."""
        return [
            {
                "client": str(client),
                "cookie": cookie.hex(),
                "acceptor": str(entry.acceptor),
                "expires_in": round(entry.expires - now, 3),
            }
            for (client, cookie), entry in self._entries.items()
        ]
