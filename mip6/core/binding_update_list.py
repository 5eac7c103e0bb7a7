"""The mobile node's Binding Update List (RFC 3775 11.1): one entry per destination (its home
agent, each correspondent), with what was sent, what was acknowledged, the return routability
state, and the retransmission and rate-limit bookkeeping of RFC 3775 11.8.

An entry's state changes only through :func:`transition`, by the table
:data:`TRANSITIONS`; an input its state has no entry for raises :class:`BulProtocolError`.

Also the exportable slice of an entry, for the distributed server (ARCHITECTURE 5): a member
that takes over a client imports the donor's sequence number and, if still fresh, its tokens.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address


class BulState(enum.Enum):
    """Where one binding stands."""

    RETURN_ROUTABILITY = "return_routability"  # HoTI/CoTI out, tokens awaited
    READY = "ready"  # tokens in hand, Binding Update not sent yet ("RR in advance")
    WAITING_ACK = "waiting_ack"  # Binding Update out, Binding Acknowledgement awaited
    BOUND = "bound"  # acknowledged (or sent without A) and not expired
    FAILED = "failed"  # rejected, expired, or the correspondent does not speak the MH


class BulInput(enum.Enum):
    """What moves an entry from one state to another."""

    # register(): a home registration (or deregistration) is due, sent now or when the
    # MAX_UPDATE_RATE limit allows (11.8); either way the entry awaits its acknowledgement.
    HOME_REGISTRATION_STARTED = "home_registration_started"
    RR_STARTED = "rr_started"  # HoTI and/or CoTI sent for the missing tokens (11.6.1)
    # Return routability asked for with both tokens still fresh (5.2.7), Binding Update held
    # back by the caller ("RR in advance"): nothing to send.
    TOKENS_FRESH = "tokens_fresh"
    TOKENS_COMPLETE = "tokens_complete"  # the last HoT/CoT arrived, Binding Update held back
    BU_SENT = "bu_sent"  # a Binding Update went out (11.7.1, 11.7.2)
    BA_ACCEPTED = "ba_accepted"  # 11.7.3, status below 128 (a deregistration leaves the list)
    BA_REJECTED = "ba_rejected"  # 11.7.3, status 128 or more except 135-138 (those send again)
    EXPIRED = "expired"  # the granted lifetime is over
    MOVED = "moved"  # a new care-of address: a correspondent binding no longer applies (11.5)
    # 11.3.6, Binding Error status 1: the correspondent has no binding for our home address.
    BINDING_ERROR_UNKNOWN_BINDING = "binding_error_unknown_binding"
    # 11.3.6, Binding Error status 2: the correspondent does not speak the Mobility Header.
    BINDING_ERROR_UNRECOGNIZED_MH_TYPE = "binding_error_unrecognized_mh_type"


_ALL = frozenset(BulState)
# One row per input: the states it is taken in, and where it leads. Inputs taken in every state
# are those the engine acts on whatever the entry is doing (a command, a fresh send, a Binding
# Error); the others it only gives after checking the state. RFC 3775 11.8 retransmits without
# end at MAX_BINDACK_TIMEOUT, so no input says "retransmissions exhausted".
_ROWS: tuple[tuple[BulInput, frozenset[BulState], BulState], ...] = (
    (BulInput.HOME_REGISTRATION_STARTED, _ALL, BulState.WAITING_ACK),
    (BulInput.RR_STARTED, _ALL, BulState.RETURN_ROUTABILITY),
    (BulInput.TOKENS_FRESH, _ALL, BulState.READY),
    (BulInput.TOKENS_COMPLETE, frozenset({BulState.RETURN_ROUTABILITY}), BulState.READY),
    (BulInput.BU_SENT, _ALL, BulState.WAITING_ACK),
    (BulInput.BA_ACCEPTED, frozenset({BulState.WAITING_ACK}), BulState.BOUND),
    (BulInput.BA_REJECTED, frozenset({BulState.WAITING_ACK}), BulState.FAILED),
    (BulInput.EXPIRED, frozenset({BulState.BOUND}), BulState.FAILED),
    (BulInput.MOVED, _ALL - {BulState.FAILED}, BulState.RETURN_ROUTABILITY),
    (BulInput.BINDING_ERROR_UNKNOWN_BINDING, _ALL, BulState.RETURN_ROUTABILITY),
    (BulInput.BINDING_ERROR_UNRECOGNIZED_MH_TYPE, _ALL, BulState.FAILED),
)
TRANSITIONS: dict[tuple[BulState, BulInput], BulState] = {
    (state, bul_input): target for bul_input, states, target in _ROWS for state in states
}


class BulProtocolError(Exception):
    """An entry was given an input its state has no transition for. The engine checks the
    state before it gives the guarded inputs, so this is a bug in the engine (a local error),
    never something a peer's packet can cause."""

    def __init__(self, state: BulState, bul_input: BulInput) -> None:
        super().__init__(
            f"binding update list: no transition from {state.name} on {bul_input.name}"
        )
        self.state = state
        self.input = bul_input


@dataclass(slots=True)
class Tokens:
    """Keygen tokens with their nonce indices and when they arrived (RFC 3775 5.2.7:
    usable for MAX_TOKEN_LIFETIME)."""

    home_nonce_index: int | None = None
    home_keygen_token: bytes | None = None
    home_received: float = 0.0
    care_of_nonce_index: int | None = None
    care_of_keygen_token: bytes | None = None
    care_of_received: float = 0.0
    care_of_for: IPv6Address | None = None  # the care-of address the care-of token is for


@dataclass(slots=True)
class BulEntry:
    destination: IPv6Address  # the home agent or a correspondent
    home_address: IPv6Address
    home_registration: bool
    sequence: int  # of the last Binding Update sent
    state: BulState
    care_of_address: IPv6Address | None = None  # in the last Binding Update sent
    lifetime: float = 0.0  # requested in the last Binding Update
    granted: float = 0.0  # by the last accepted Binding Acknowledgement
    expires: float = 0.0
    acknowledged_sequence: int | None = None
    retransmit_timeout: float = 0.0
    first_registration: bool = True
    tokens: Tokens = field(default_factory=Tokens)
    home_init_cookie: bytes | None = None
    care_of_init_cookie: bytes | None = None
    rr_timeout: float = 0.0
    send_when_ready: bool = True  # False: "RR in advance", the caller sends the BU later
    recent_sends: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    deregistering: bool = False
    mobility_header_unsupported: bool = False  # Binding Error status 2 received (11.3.6)
    # A Binding Update that may have created a binding at the destination went out (here, or
    # at the member of a distributed server the entry was imported from): from then on a
    # Binding Error 2 is not believed (11.3.6, see MobileNode._unrecognized_mh_type_applies).
    binding_update_sent: bool = False
    # the list the entry is in (BindingUpdateList.put): a change of what the mobile node's
    # fast-path decisions read of it is a change of the list's version
    owner: BindingUpdateList | None = field(default=None, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name in _DECIDING:
            owner = getattr(self, "owner", None)  # not set yet inside __init__
            if owner is not None:
                owner.version += 1

    def usable(self, now: float, care_of_address: IPv6Address | None) -> bool:
        """True when packets may use this binding: acknowledged for the current care-of
        address and not expired."""
        # identity first: the mobile node passes the very address object the entry was bound
        # with, and IPv6Address.__eq__ costs a member a few percent of its time per handoff
        return (
            self.state is BulState.BOUND
            and not self.deregistering
            and (self.care_of_address is care_of_address or self.care_of_address == care_of_address)
            and self.expires > now
        )


# what MobileNode.fast_decision reads of an entry (with usable())
_DECIDING = frozenset(
    ("destination", "home_registration", "state", "care_of_address", "expires", "deregistering")
)


def transition(entry: BulEntry, bul_input: BulInput) -> BulState:
    """Move ``entry`` by :data:`TRANSITIONS`; raises :class:`BulProtocolError`, leaving the
    entry as it was, when its state has no transition for ``bul_input``."""
    target = TRANSITIONS.get((entry.state, bul_input))
    if target is None:
        raise BulProtocolError(entry.state, bul_input)
    entry.state = target
    return target


@dataclass(frozen=True, slots=True)
class CorrespondentState:
    """What one member of a distributed server hands another about one correspondent: enough
    to continue its binding with the next Sequence Number, reusing fresh tokens."""

    correspondent: IPv6Address
    home_address: IPv6Address
    sequence: int
    home_nonce_index: int | None
    home_keygen_token: bytes | None
    home_token_age: float | None  # seconds since it arrived, at export time
    # the care-of keygen token and the care-of address it is for (RFC 3775 5.2.5): reused
    # only by a mobile node at that address (the member that exported it, binding the
    # correspondent back after a handoff that failed)
    care_of_nonce_index: int | None = None
    care_of_keygen_token: bytes | None = None
    care_of_token_age: float | None = None
    care_of_for: IPv6Address | None = None


class BindingUpdateList:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # keyed by the packed address: an IPv6Address hashes by printing itself, and the
        # mobile node looks up the destination of every packet it sends
        self._entries: dict[bytes, BulEntry] = {}
        # Goes up with every put, remove and change of what an entry's fast-path decisions
        # read (BulEntry.__setattr__): the daemon's fast path forgets the mobile node's
        # decisions when it changes, which it reads before every wait (an O(1) read: a
        # tuple of every entry's fields cost a member with 300 clients 27 us each time).
        self.version = 0

    def get(self, destination: IPv6Address) -> BulEntry | None:
        return self._entries.get(destination.packed)

    def get_packed(self, destination: bytes) -> BulEntry | None:
        """:meth:`get` for an address as a packet carries it (16 bytes)."""
        return self._entries.get(destination)

    def put(self, entry: BulEntry) -> None:
        key = entry.destination.packed
        if key not in self._entries and len(self._entries) >= self.capacity:
            raise OverflowError("binding update list is full")
        self._entries[key] = entry
        entry.owner = self
        self.version += 1

    def remove(self, destination: IPv6Address) -> None:
        if self._entries.pop(destination.packed, None) is not None:
            self.version += 1

    def __iter__(self) -> Iterator[BulEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
