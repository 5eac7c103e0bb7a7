"""The binding cache (RFC 3775 9.1) shared by correspondent nodes and home agents, and the
Binding Update checks both apply before their own (RFC 3775 9.5.1).

Bounded: ``capacity`` entries at most; a Binding Update that would need one more is refused
with status 130 (insufficient resources) by the caller.

The rules that decide what a Binding Update does to the entry for its home address (registration
type change, sequence number, deletion) are written once here, in :func:`decide_binding_update`,
and do not know which role asks: the correspondent node and the home agent both apply them, then
their own (authorization, home subnet, lifetime limits, room).
"""

from __future__ import annotations

import enum
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

    def touch(self, at: float) -> None:
        """Packets used the entry at ``at`` (the daemon's fast path reports those it carried:
        ``FastDecision.touch``)."""
        self.last_used = max(self.last_used, at)


class BindingCache:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("binding cache capacity must be at least 1")
        self.capacity = capacity
        self._entries: dict[IPv6Address, BindingCacheEntry] = {}
        # Goes up with every put and remove: the daemon's fast path forgets the decisions an
        # engine gave from this cache when it changes (mip6.core.datapath.FastDecision).
        self.version = 0

    def get(self, home_address: IPv6Address) -> BindingCacheEntry | None:
        return self._entries.get(home_address)

    def has_room_for(self, home_address: IPv6Address) -> bool:
        return home_address in self._entries or len(self._entries) < self.capacity

    def put(self, entry: BindingCacheEntry) -> None:
        if not self.has_room_for(entry.home_address):
            raise OverflowError("binding cache is full")
        self._entries[entry.home_address] = entry
        self.version += 1

    def remove(self, home_address: IPv6Address) -> BindingCacheEntry | None:
        self.version += 1
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

    @property
    def kind(self) -> BindingUpdateKind:
        if self.update.home_registration:
            return (
                BindingUpdateKind.HOME_DEREGISTRATION
                if self.deregistration
                else BindingUpdateKind.HOME_REGISTRATION
            )
        return (
            BindingUpdateKind.CORRESPONDENT_DEREGISTRATION
            if self.deregistration
            else BindingUpdateKind.CORRESPONDENT_REGISTRATION
        )


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


# -- what a Binding Update does to the binding cache (RFC 3775 9.5.1) ----------------------------


class BindingState(enum.Enum):
    """What the binding cache holds for one home address; the entry's Home Registration flag
    (RFC 3775 9.1) says which kind of binding it is."""

    NO_BINDING = "no_binding"
    CORRESPONDENT_BINDING = "correspondent_binding"
    HOME_REGISTRATION = "home_registration"


class BindingUpdateKind(enum.Enum):
    """What a Binding Update asks for: its Home Registration (H) bit, and whether it asks for
    the binding to be deleted (:attr:`BindingRequest.deregistration`)."""

    CORRESPONDENT_REGISTRATION = "correspondent_registration"
    CORRESPONDENT_DEREGISTRATION = "correspondent_deregistration"
    HOME_REGISTRATION = "home_registration"
    HOME_DEREGISTRATION = "home_deregistration"


class BindingVerdict(enum.Enum):
    """What to do with the entry. The two refusals are answered with a Binding
    Acknowledgement whatever the A bit (9.5.1 "MUST send back")."""

    STORE = "store"  # create or replace the entry, once the role's own checks pass
    DELETE = "delete"  # remove the entry, if there is one
    REGISTRATION_TYPE_CHANGE_DISALLOWED = "registration_type_change_disallowed"  # BA 139
    SEQUENCE_NUMBER_OUT_OF_WINDOW = "sequence_number_out_of_window"  # BA 135


_S, _K, _V = BindingState, BindingUpdateKind, BindingVerdict
# RFC 3775 9.5.1: "If a binding already exists for the given home address and the home
# registration flag has a different value than the Home Registration (H) bit in the Binding
# Update, then the receiving node MUST send back a Binding Acknowledgement with status code
# 139". RFC 3775 9.5.1 (and 9.5.3, 10.3.2): "If the Lifetime specified in the Binding Update
# is zero or the specified care-of address matches the home address for the binding, then this
# is a request to delete the cached binding for the home address."
BINDING_RULES: dict[tuple[BindingState, BindingUpdateKind], BindingVerdict] = {
    (_S.NO_BINDING, _K.CORRESPONDENT_REGISTRATION): _V.STORE,
    (_S.NO_BINDING, _K.CORRESPONDENT_DEREGISTRATION): _V.DELETE,
    (_S.NO_BINDING, _K.HOME_REGISTRATION): _V.STORE,
    (_S.NO_BINDING, _K.HOME_DEREGISTRATION): _V.DELETE,
    (_S.CORRESPONDENT_BINDING, _K.CORRESPONDENT_REGISTRATION): _V.STORE,
    (_S.CORRESPONDENT_BINDING, _K.CORRESPONDENT_DEREGISTRATION): _V.DELETE,
    (_S.CORRESPONDENT_BINDING, _K.HOME_REGISTRATION): _V.REGISTRATION_TYPE_CHANGE_DISALLOWED,
    (_S.CORRESPONDENT_BINDING, _K.HOME_DEREGISTRATION): _V.REGISTRATION_TYPE_CHANGE_DISALLOWED,
    (_S.HOME_REGISTRATION, _K.CORRESPONDENT_REGISTRATION): _V.REGISTRATION_TYPE_CHANGE_DISALLOWED,
    (_S.HOME_REGISTRATION, _K.CORRESPONDENT_DEREGISTRATION): _V.REGISTRATION_TYPE_CHANGE_DISALLOWED,
    (_S.HOME_REGISTRATION, _K.HOME_REGISTRATION): _V.STORE,
    (_S.HOME_REGISTRATION, _K.HOME_DEREGISTRATION): _V.DELETE,
}

_BA_STATUS = {
    BindingVerdict.REGISTRATION_TYPE_CHANGE_DISALLOWED: (
        mh.BindingAckStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED
    ),
    BindingVerdict.SEQUENCE_NUMBER_OUT_OF_WINDOW: mh.BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW,
}


@dataclass(frozen=True, slots=True)
class BindingDecision:
    """The verdict on one Binding Update, with what its Binding Acknowledgement carries."""

    verdict: BindingVerdict
    sequence: int  # for the BA: the last accepted Sequence Number after a 135, else the BU's

    @property
    def status(self) -> mh.BindingAckStatus | None:
        """The BA status of a refusal; None when the Binding Update goes on."""
        return _BA_STATUS.get(self.verdict)


def binding_state(entry: BindingCacheEntry | None) -> BindingState:
    if entry is None:
        return BindingState.NO_BINDING
    if entry.home_registration:
        return BindingState.HOME_REGISTRATION
    return BindingState.CORRESPONDENT_BINDING


def decide_binding_update(
    entry: BindingCacheEntry | None, request: BindingRequest
) -> BindingDecision:
    """The RFC 3775 9.5.1 rules every node with a binding cache applies to a Binding Update for
    ``request.home_address``, given the entry the caller holds for it (None: no binding): the
    registration type change first, then the sequence number, then deletion or storing."""
    update = request.update
    verdict = BINDING_RULES[(binding_state(entry), request.kind)]
    if verdict is BindingVerdict.REGISTRATION_TYPE_CHANGE_DISALLOWED:
        return BindingDecision(verdict, update.sequence)
    if entry is not None and not sequence_newer(update.sequence, entry.sequence):
        # RFC 3775 9.5.1: a Sequence Number not greater (modulo 2**16) than the last accepted
        # one: "...the receiving node MUST send back a Binding Acknowledgement with status code
        # 135, and the last accepted sequence number in the Sequence Number field of the
        # Binding Acknowledgement."
        return BindingDecision(BindingVerdict.SEQUENCE_NUMBER_OUT_OF_WINDOW, entry.sequence)
    return BindingDecision(verdict, update.sequence)
