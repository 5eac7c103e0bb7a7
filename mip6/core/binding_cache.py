"""The binding cache (RFC 3775 9.1) shared by correspondent nodes and home agents, and the
Binding Update checks both apply before their own (RFC 3775 9.5.1).

Bounded: ``capacity`` entries at most; a Binding Update that would need one more is refused
with status 130 (insufficient resources) by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address

from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet


@dataclass(slots=True)
class BindingCacheEntry:
    """RFC 3775 9.1: home address, care-of address, lifetime, flags, sequence number, usage."""

    home_address: IPv6Address
    care_of_address: IPv6Address
    expires: float  # on the engine's clock
    sequence: int  # the Sequence Number of the last accepted Binding Update
    home_registration: bool
    lifetime: float  # granted, seconds
    last_used: float  # for RFC 3775 9.5.5: is the entry "in active use"?
    correspondent_address: IPv6Address  # our address the Binding Update was sent to
    refresh_requested: bool = False  # a Binding Refresh Request went out for this lifetime


class BindingCache:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("binding cache capacity must be at least 1")
        self.capacity = capacity
        self._entries: dict[IPv6Address, BindingCacheEntry] = {}

    def get(self, home_address: IPv6Address) -> BindingCacheEntry | None:
        return self._entries.get(home_address)

    def has_room_for(self, home_address: IPv6Address) -> bool:
        return home_address in self._entries or len(self._entries) < self.capacity

    def put(self, entry: BindingCacheEntry) -> None:
        if not self.has_room_for(entry.home_address):
            raise OverflowError("binding cache is full")
        self._entries[entry.home_address] = entry

    def remove(self, home_address: IPv6Address) -> BindingCacheEntry | None:
        return self._entries.pop(home_address, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BindingCacheEntry]:
        return iter(list(self._entries.values()))


def sequence_newer(new: int, old: int) -> bool:
    """RFC 3775 9.5.1: sequence numbers compare modulo 2**16; ``new`` is greater than ``old``
    when 0 < (new - old) mod 2**16 < 2**15."""
    return 0 < (new - old) % 0x10000 < 0x8000


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """What a Binding Update asks for, with the addresses resolved as RFC 3775 9.5.1 says."""

    update: mh.BindingUpdate
    home_address: IPv6Address  # the Home Address option, else the Source Address
    care_of_address: IPv6Address  # the Alternate Care-of Address option, else the Source Address
    source: IPv6Address  # where the packet came from (the BA goes back here)

    @property
    def deregistration(self) -> bool:
        """RFC 3775 9.5.1: a Lifetime of zero, or a care-of address equal to the home address,
        asks for the binding to be deleted."""
        return self.update.lifetime_units_4s == 0 or self.care_of_address == self.home_address


def binding_request(packet: Ipv6Packet) -> BindingRequest | None:
    """Resolve a Binding Update's addresses; None when RFC 3775 9.5.1 says discard it: the home
    address or care-of address is not a unicast routable address."""
    update = packet.payload
    assert isinstance(update, mh.BindingUpdate)
    home = packet.home_address or packet.source
    alternate = update.find(mh.AlternateCareOfAddress)
    care_of = (
        alternate.alternate_care_of_address
        if isinstance(alternate, mh.AlternateCareOfAddress)
        else packet.source
    )
    if not (unicast_routable(home) and unicast_routable(care_of)):
        return None
    return BindingRequest(update, home, care_of, packet.source)


def unicast_routable(address: IPv6Address) -> bool:
    """Global unicast in the RFC 3775 sense: not multicast (ff00::/8), link-local (fe80::/10),
    loopback (::1) or unspecified (::). Tested on the bits: ``IPv6Address.is_link_local``
    builds a network object per call, and every Binding Update asks twice."""
    value = int(address)
    top = value >> 112
    return not (top >> 8 == 0xFF or top >> 6 == 0x3FA or value <= 1)
