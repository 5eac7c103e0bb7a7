"""The mobile node's Binding Update List (RFC 3775 11.1): one entry per destination (its home
agent, each correspondent), with what was sent, what was acknowledged, the return routability
state, and the retransmission and rate-limit bookkeeping of RFC 3775 11.8.

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
    FAILED = "failed"  # rejected, or retransmissions exhausted


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

    def usable(self, now: float, care_of_address: IPv6Address | None) -> bool:
        """True when packets may use this binding: acknowledged for the current care-of
        address and not expired."""
        return (
            self.state is BulState.BOUND
            and not self.deregistering
            and self.care_of_address == care_of_address
            and self.expires > now
        )


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


class BindingUpdateList:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[IPv6Address, BulEntry] = {}

    def get(self, destination: IPv6Address) -> BulEntry | None:
        return self._entries.get(destination)

    def put(self, entry: BulEntry) -> None:
        if entry.destination not in self._entries and len(self._entries) >= self.capacity:
            raise OverflowError("binding update list is full")
        self._entries[entry.destination] = entry

    def remove(self, destination: IPv6Address) -> None:
        self._entries.pop(destination, None)

    def __iter__(self) -> Iterator[BulEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
