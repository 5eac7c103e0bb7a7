"""The handoff of one client between members, as two state machines: the donor's and the
acceptor's (DSERVER.md section 4). Sans-I/O and smaller than an engine: each machine takes an
input and returns :data:`Effect` values that the member engine performs (messages on the member
channel, freezing and thawing the client's connections, Binding Updates through the mobile node
engine, telling the application); its one timer is the engines' own
:class:`~mip6.core.actions.StartTimer` / :class:`~mip6.core.actions.CancelTimer`, with a token
naming the machine (:attr:`Donor.timer`, :attr:`Acceptor.timer`). Transitions are tables; an
input a state has no entry for (a late DONE, a duplicate FAILED, a timer that raced a message)
is ignored and counted: the inputs come from peers and timers, so a missing entry is never a
local bug to raise about.

Donor (the member that holds the client; a policy whose first answer is this member ends it at
once in COMPLETED, a local handoff; the same answer after failed attempts means none is left)::

    start ──> PREPARING ──PREPARED──> INITIATED ──DONE──> COMPLETED   (release the frozen copies)
    (RR in advance)   │ NOT_MOVABLE ──> KEPT
                      │                  │ TIMEOUT ──> ABORTING ──DONE──> COMPLETED
                      │                  │               │ FAILED / TIMEOUT (gone)
          FAILED/TIMEOUT                 │ FAILED <──────┘
                      │                  ├─> INITIATED at the next target (the next window)
                  └─> next target, or    └─> REBINDING ──BOUND──> KEPT (thawed; failed_handoff)
                      KEPT (nothing frozen)      │ SUPERSEDED (BA 135: another member holds the
                                                 │ binding) or DONE ──> COMPLETED
                                                 └ TIMEOUT ──> RESET (connections reset, counted)

After an INIT, a FAILED whose reason is SERVED (the acceptor serves the client outside any
handoff: the group moved the client on without this member) completes the handoff to that
acceptor as DONE would: the frozen copies are behind the client, and never bound back.

Rules it keeps (DSERVER.md 4): all of a client's connections move in one INIT (rule 1); the
donor freezes before INIT and never thaws while an acceptor may hold the binding: after an INIT
it thaws only once its own Binding Update is acknowledged (rule 3); every wait is bounded
(rule 6) and the targets tried are handed to the policy, which never offers them again; when no
target is left the application is told (``failed_handoff``). A local handoff (target = this
member) moves no packet (rule 7).

Sequence numbers (rule 3, the seeds' B4). DSERVER 4 asked a retry to reuse the INIT's number so
that a BA 135 would tell an earlier acceptor took the client; but an acceptor retransmitting its
Binding Update must use a greater number each time (RFC 3775 11.8), so a first acceptor whose BU
was lost and retransmitted could take the client with a number above its successor's: two
thawed instances. Instead each INIT gets a window of :data:`SEQUENCE_WINDOW` numbers above the
previous INIT's (an acceptor's retransmissions within its attempt stay inside it), so a later
attempt always outbids an earlier one, and the donor's own rebinding outbids them all; and the
donor moves on from an INIT only once its acceptor has answered: FAILED (it released what it
imported and stopped retransmitting), or, when ``init_timeout`` ran out, the answer to the
donor's own FAILED (ABORTING), which follows the INIT on the ordered channel and so finds the
acceptor either holding the client (DONE) or giving it up; only an acceptor silent for
``abort_timeout`` more is taken for dead, and the next acceptor's window outbids it. Should
its DONE come after all (alive but slow), it holds the client: the handoff completes to it, and
the member tells the acceptor under way to give up (its higher window would take the client).

Acceptor (the member taking the client)::

    PREPARE ──> PREPARING ──TOKENS──> PREPARED ──INIT──> BINDING ──BOUND / CLIENT_PACKET──> ACTIVE
                    │ TIMEOUT /        │ TIMEOUT /   ^        │ REJECTED / TIMEOUT /
                    │ ABORTED          │ ABORTED     │        │ IMPORT_FAILED / ABORTED
                    └──> FAILED <──────┘             │        │
    INIT (no PREPARE) ───────────────────────────────┘        └──> FAILED (imports released)

It imports the connections frozen and has the mobile node engine bind the client (return
routability first if PREPARE did not run it), thaws when the Binding Acknowledgement arrives or
on the client's first authenticated packet at its own address (rule 2), then sends DONE.
ABORTED is the donor's FAILED: it gave up on this acceptor. A handoff it finished is never taken
up again: the member answers late messages about it with the outcome it had.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from mip6.core.actions import CancelTimer, StartTimer
from mip6.dserver.messages import FailureReason
from mip6.dserver.policy import Policy, Selection, TargetFailure

DEFAULT_ATTEMPT_TIMEOUT = 2.0  # seconds one attempt (PREPARE to DONE) may take (DSERVER 4.6)
DEFAULT_REBIND_TIMEOUT = 4.0  # seconds the donor waits for its own binding back
# The donor's wait for an INIT's DONE, over the acceptor's own: its DONE's way back, with room.
INIT_TIMEOUT_FACTOR = 1.5
# Binding Update numbers one INIT's acceptor may use: its BU and the retransmissions its
# attempt has time for (RFC 3775 11.8 doubles from INITIAL_BINDACK_TIMEOUT: two or three).
SEQUENCE_WINDOW = 16


# -- effects: what the member engine performs ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendPrepare:
    target: IPv6Address


@dataclass(frozen=True, slots=True)
class SendInit:
    """INIT to ``target`` with the client's connections (the engine exports them: they are
    frozen by now) and this sequence number; ``resync``: an acceptor before went silent after
    its INIT (see :attr:`Donor.silent`), so the client may stand past the snapshots."""

    target: IPv6Address
    next_sequence: int
    resync: bool = False


@dataclass(frozen=True, slots=True)
class SendAbort:
    """FAILED from the donor to ``target``: the donor gives up on it. Behind the INIT on the
    same ordered channel, so the acceptor answers DONE if it already took the client, else
    releases what it imported and answers FAILED."""

    target: IPv6Address


@dataclass(frozen=True, slots=True)
class SendPrepared:
    donor: IPv6Address


@dataclass(frozen=True, slots=True)
class SendDone:
    donor: IPv6Address


@dataclass(frozen=True, slots=True)
class SendFailed:
    donor: IPv6Address
    reason: FailureReason


@dataclass(frozen=True, slots=True)
class Freeze:
    """Freeze every connection of the client (no output, segments dropped silently)."""


@dataclass(frozen=True, slots=True)
class Thaw:
    """Resume the client's connections here; ``resync``: from the client's next segment (an
    acceptor went silent after its INIT and may have served the client meanwhile)."""

    resync: bool = False


@dataclass(frozen=True, slots=True)
class Release:
    """Give the client's frozen connections up without a RST (another member serves them)."""


@dataclass(frozen=True, slots=True)
class Reset:
    """The client's connections cannot be continued anywhere: reset them, with the reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class RunReturnRoutability:
    """RR for (contact address, client) now, tokens kept (RR in advance)."""


@dataclass(frozen=True, slots=True)
class Bind:
    """Have the client bind the contact address to this member: a Binding Update with
    ``sequence`` (return routability first when the tokens are missing)."""

    sequence: int
    lifetime: int


@dataclass(frozen=True, slots=True)
class Import:
    """Import the INIT's connections, frozen."""


@dataclass(frozen=True, slots=True)
class HandoffCompleted:
    target: IPv6Address


@dataclass(frozen=True, slots=True)
class HandoffFailed:
    """The application's ``failed_handoff``: the client stays here (``kept``) or was reset."""

    tried: tuple[IPv6Address, ...]
    kept: bool


Effect = (
    SendPrepare
    | SendInit
    | SendAbort
    | SendPrepared
    | SendDone
    | SendFailed
    | Freeze
    | Thaw
    | Release
    | Reset
    | RunReturnRoutability
    | Bind
    | Import
    | StartTimer
    | CancelTimer
    | HandoffCompleted
    | HandoffFailed
)


# -- the donor ---------------------------------------------------------------------------------


class DonorState(enum.Enum):
    PREPARING = "preparing"  # PREPARE sent, PREPARED awaited
    INITIATED = "initiated"  # connections frozen, INIT sent, DONE awaited
    ABORTING = "aborting"  # the INIT's time ran out: the acceptor told, its answer awaited
    REBINDING = "rebinding"  # every target failed after an INIT: our own BU awaits its BA
    COMPLETED = "completed"  # the acceptor holds the client; our copies released
    KEPT = "kept"  # the handoff failed, the client stays here (thawed or never frozen)
    RESET = "reset"  # the client could not be rebound: its connections were reset


class DonorInput(enum.Enum):
    PREPARED = "prepared"
    DONE = "done"
    FAILED = "failed"  # FAILED from the acceptor
    TIMEOUT = "timeout"  # the attempt's (or rebinding's) time ran out
    BOUND = "bound"  # our own Binding Update (rebinding) acknowledged
    SUPERSEDED = "superseded"  # BA 135 to our rebinding: another member holds the client
    # the client's connections could not be frozen within the wait for it: a service kept
    # one of them unmovable (a proxy in the middle of an exchange, mip6.apps.proxy)
    NOT_MOVABLE = "not_movable"


_KNOWN = frozenset(FailureReason)
FINAL_DONOR_STATES = frozenset({DonorState.COMPLETED, DonorState.KEPT, DonorState.RESET})
_FAILURES = {
    FailureReason.REFUSED: TargetFailure.REFUSED,
    FailureReason.SERVED: TargetFailure.REFUSED,
    FailureReason.TIMEOUT: TargetFailure.TIMED_OUT,
    FailureReason.CLIENT_UNREACHABLE: TargetFailure.UNREACHABLE,
}


@dataclass(slots=True)
class Donor:
    """One handoff of ``client`` away from ``local``. ``optimized``: PREPARE first (RR in
    advance). ``next_sequence``: the Binding Update sequence number the next INIT's acceptor
    (or, after a failure, this member) uses; each INIT moves it on by :data:`SEQUENCE_WINDOW`.
    Call :meth:`start`, then :meth:`handle` for each input."""

    handoff_id: int
    client: IPv6Address
    local: IPv6Address
    policy: Policy
    next_sequence: int
    lifetime: int
    optimized: bool = True
    attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT
    rebind_timeout: float = DEFAULT_REBIND_TIMEOUT
    init_timeout: float = DEFAULT_ATTEMPT_TIMEOUT * INIT_TIMEOUT_FACTOR
    abort_timeout: float = DEFAULT_ATTEMPT_TIMEOUT
    first_bytes: bytes = b""
    state: DonorState = DonorState.PREPARING
    target: IPv6Address | None = None
    tried: list[IPv6Address] = field(default_factory=list)
    unexpected: int = 0  # inputs ignored in the state they arrived in
    frozen: bool = False
    # an acceptor took an INIT and answered nothing, not even the abort: it may have bound
    # the client and served it before it died, so the client may stand past the frozen
    # snapshots (a chaos run's next acceptor, importing them as they were, met a client
    # 19 kB ahead and the two acknowledged past each other until the client gave up)
    silent: bool = False

    @property
    def timer(self) -> tuple[str, int]:
        """The token of this machine's timer (its expiry is the TIMEOUT input)."""
        return ("handoff_donor", self.handoff_id)

    def start(self, now: float) -> list[Effect]:
        return self._next_target(now)

    def handle(
        self, now: float, received: DonorInput, reason: FailureReason | int = 0
    ) -> list[Effect]:
        step = _DONOR.get((self.state, received))
        if step is None:
            self.unexpected += 1
            return []
        return step(self, now, reason)

    # -- steps (the table below names them) --------------------------------------------------

    def _next_target(self, now: float) -> list[Effect]:
        selection = Selection(
            client=self.client,
            local=self.local,
            now=now,
            tried=frozenset(self.tried),
            first_bytes=self.first_bytes,
        )
        target = self.policy.select_target(selection)
        if target is None or (target == self.local and self.tried):
            # nothing left, or only this member after attempts failed: the handoff failed
            return self._no_target(now)
        if target == self.local:  # chosen at once: a local handoff, no packet moves
            self.target = target
            self.state = DonorState.COMPLETED
            return [CancelTimer(self.timer), HandoffCompleted(target)]
        self.target = target
        self.tried.append(target)
        if self.optimized and not self.frozen:
            self.state = DonorState.PREPARING
            return [SendPrepare(target), StartTimer(now + self.attempt_timeout, self.timer)]
        return [*self._freeze(), *self._init(now, target)]

    def _init(self, now: float, target: IPv6Address) -> list[Effect]:
        """INIT with the current window's first number; the next INIT (or our rebinding) gets
        the window above it."""
        sequence = self.next_sequence
        self.next_sequence = (sequence + SEQUENCE_WINDOW) & 0xFFFF
        return [
            SendInit(target, sequence, resync=self.silent),
            StartTimer(now + self.init_timeout, self.timer),
        ]

    def _no_target(self, now: float) -> list[Effect]:
        """No member left (or the policy chose this one): keep the client. After an INIT an
        acceptor may hold the binding, so the client is rebound here before it thaws."""
        if self.frozen:
            self.state = DonorState.REBINDING
            return [
                Bind(self.next_sequence, self.lifetime),
                StartTimer(now + self.rebind_timeout, self.timer),
            ]
        self.state = DonorState.KEPT
        return [CancelTimer(self.timer), HandoffFailed(tuple(self.tried), kept=True)]

    def _freeze(self) -> list[Effect]:
        self.state = DonorState.INITIATED
        if self.frozen:
            return []
        self.frozen = True
        return [Freeze()]

    def _prepared(self, now: float, reason: FailureReason | int) -> list[Effect]:
        # the INIT's own wait starts now: return routability may have taken a retransmission
        # (a second) and a full snapshot is a quarter megabyte on the channel
        assert self.target is not None
        return [*self._freeze(), *self._init(now, self.target)]

    def _failed(self, now: float, reason: FailureReason | int) -> list[Effect]:
        assert self.target is not None
        if reason == FailureReason.SERVED and self.frozen:
            # the acceptor serves the client outside any handoff, so the group moved it on
            # without us (an earlier acceptor of ours that took it and whose DONE was lost,
            # or a recovery from our replica while a view had us removed): our frozen copies
            # are behind, and binding the client back here, above the number it holds, took
            # it from the member serving it (chaos seed 440: its download was reset)
            return self._completed(now, reason)
        failure = (
            _FAILURES.get(FailureReason(reason), TargetFailure.NO_REASON)
            if reason in _KNOWN
            else TargetFailure.NO_REASON
        )
        self.policy.notify_failure(self.target, failure, now)
        return self._next_target(now)

    def _timed_out(self, now: float, reason: FailureReason | int) -> list[Effect]:
        assert self.target is not None
        self.policy.notify_failure(self.target, TargetFailure.TIMED_OUT, now)
        return self._next_target(now)

    def _silent_after_init(self, now: float, reason: FailureReason | int) -> list[Effect]:
        """No answer to the INIT nor to the abort: the acceptor is gone (see :attr:`silent`)."""
        self.silent = True
        return self._timed_out(now, reason)

    def _abort(self, now: float, reason: FailureReason | int) -> list[Effect]:
        """The INIT's time ran out. The acceptor may still be binding (a large INIT takes long
        on the channel): moving on now could leave two thawed copies. It is told to give up,
        behind the INIT on the ordered channel, and answers for sure."""
        assert self.target is not None
        self.state = DonorState.ABORTING
        return [SendAbort(self.target), StartTimer(now + self.abort_timeout, self.timer)]

    def _not_movable(self, now: float, reason: FailureReason | int) -> list[Effect]:
        """The acceptor is ready but the client cannot be frozen: keep it (nothing was
        frozen), tell the acceptor, and blame no member (the policy is not told)."""
        assert self.target is not None
        self.state = DonorState.KEPT
        return [
            SendAbort(self.target),
            CancelTimer(self.timer),
            HandoffFailed(tuple(self.tried), kept=True),
        ]

    def _completed(self, now: float, reason: FailureReason | int) -> list[Effect]:
        assert self.target is not None
        self.state = DonorState.COMPLETED
        return [CancelTimer(self.timer), Release(), HandoffCompleted(self.target)]

    def _bound(self, now: float, reason: FailureReason | int) -> list[Effect]:
        self.state = DonorState.KEPT
        self.frozen = False
        return [
            CancelTimer(self.timer),
            Thaw(resync=self.silent),
            HandoffFailed(tuple(self.tried), kept=True),
        ]

    def _superseded(self, now: float, reason: FailureReason | int) -> list[Effect]:
        # BA 135 to the donor's own rebinding: an acceptor's Binding Update with this sequence
        # number was taken, so that acceptor thawed and serves the client (it thaws on its BA).
        assert self.target is not None
        self.state = DonorState.COMPLETED
        return [CancelTimer(self.timer), Release(), HandoffCompleted(self.target)]

    def _rebind_timed_out(self, now: float, reason: FailureReason | int) -> list[Effect]:
        # Neither an acceptor nor this member could bind the client: thawing here would send to
        # a client that may route to someone else; reset cleanly instead (DSERVER 4, failures).
        self.state = DonorState.RESET
        self.frozen = False
        return [
            CancelTimer(self.timer),
            Reset("client could not be rebound after a failed handoff"),
            HandoffFailed(tuple(self.tried), kept=False),
        ]


_DonorStep = Callable[[Donor, float, "FailureReason | int"], list[Effect]]
_DONOR: dict[tuple[DonorState, DonorInput], _DonorStep] = {
    (DonorState.PREPARING, DonorInput.PREPARED): Donor._prepared,
    (DonorState.PREPARING, DonorInput.FAILED): Donor._failed,
    (DonorState.PREPARING, DonorInput.TIMEOUT): Donor._timed_out,
    (DonorState.PREPARING, DonorInput.NOT_MOVABLE): Donor._not_movable,
    (DonorState.INITIATED, DonorInput.DONE): Donor._completed,
    (DonorState.INITIATED, DonorInput.FAILED): Donor._failed,
    (DonorState.INITIATED, DonorInput.TIMEOUT): Donor._abort,
    # its answer: DONE (it took the client in time) or FAILED (it released everything); no
    # answer in time: it is gone, and the next acceptor's window outbids whatever it sent
    (DonorState.ABORTING, DonorInput.DONE): Donor._completed,
    (DonorState.ABORTING, DonorInput.FAILED): Donor._failed,
    (DonorState.ABORTING, DonorInput.TIMEOUT): Donor._silent_after_init,
    # a DONE that arrives after we gave up on its acceptor still means it holds the client
    (DonorState.REBINDING, DonorInput.DONE): Donor._completed,
    (DonorState.REBINDING, DonorInput.BOUND): Donor._bound,
    (DonorState.REBINDING, DonorInput.SUPERSEDED): Donor._superseded,
    (DonorState.REBINDING, DonorInput.TIMEOUT): Donor._rebind_timed_out,
}


# -- the acceptor ------------------------------------------------------------------------------


class AcceptorState(enum.Enum):
    IDLE = "idle"
    PREPARING = "preparing"  # return routability running (after PREPARE)
    PREPARED = "prepared"  # tokens in hand, INIT awaited
    BINDING = "binding"  # connections imported frozen, Binding Update out
    ACTIVE = "active"  # thawed, DONE sent: the client is ours
    FAILED = "failed"  # FAILED sent, imports released


class AcceptorInput(enum.Enum):
    PREPARE = "prepare"
    INIT = "init"
    TOKENS = "tokens"  # return routability completed
    BOUND = "bound"  # the client acknowledged our Binding Update
    CLIENT_PACKET = "client_packet"  # an authenticated packet from the client at our address
    REJECTED = "rejected"  # the client refused our Binding Update (135 included)
    IMPORT_FAILED = "import_failed"
    TIMEOUT = "timeout"
    ABORTED = "aborted"  # FAILED from the donor: it gave up on us


FINAL_ACCEPTOR_STATES = frozenset({AcceptorState.ACTIVE, AcceptorState.FAILED})


@dataclass(slots=True)
class Acceptor:
    """One handoff of ``client`` to this member from ``donor``."""

    handoff_id: int
    client: IPv6Address
    donor: IPv6Address
    attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT
    state: AcceptorState = AcceptorState.IDLE
    unexpected: int = 0

    @property
    def timer(self) -> tuple[str, int]:
        """The token of this machine's timer (its expiry is the TIMEOUT input)."""
        return ("handoff_acceptor", self.handoff_id)

    def handle(
        self, now: float, received: AcceptorInput, *, sequence: int = 0, lifetime: int = 0
    ) -> list[Effect]:
        """``sequence`` and ``lifetime``: the INIT's."""
        entry = _ACCEPTOR.get((self.state, received))
        if entry is None:
            self.unexpected += 1
            return []
        target, build = entry
        self.state = target
        return build(self, now, sequence, lifetime)

    def _preparing(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return [RunReturnRoutability(), StartTimer(now + self.attempt_timeout, self.timer)]

    def _prepared(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        # the INIT's own wait: it leaves the donor when PREPARED arrives, and a full snapshot
        # is a quarter megabyte per connection on the channel
        return [SendPrepared(self.donor), StartTimer(now + self.attempt_timeout, self.timer)]

    def _binding(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return [
            Import(),
            Bind(sequence, lifetime),
            StartTimer(now + self.attempt_timeout, self.timer),
        ]

    def _active(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return [CancelTimer(self.timer), Thaw(), SendDone(self.donor)]

    def _fail(self, reason: FailureReason, *, imported: bool) -> list[Effect]:
        return [
            CancelTimer(self.timer),
            *([Release()] if imported else []),
            SendFailed(self.donor, reason),
        ]

    def _unreachable(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return self._fail(FailureReason.CLIENT_UNREACHABLE, imported=False)

    def _init_timeout(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return self._fail(FailureReason.TIMEOUT, imported=False)

    def _rejected(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return self._fail(FailureReason.CLIENT_UNREACHABLE, imported=True)

    def _import_failed(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return self._fail(FailureReason.IMPORT_FAILED, imported=True)

    def _bind_timeout(self, now: float, sequence: int, lifetime: int) -> list[Effect]:
        return self._fail(FailureReason.TIMEOUT, imported=True)


_AcceptorStep = Callable[[Acceptor, float, int, int], list[Effect]]
_ACCEPTOR: dict[tuple[AcceptorState, AcceptorInput], tuple[AcceptorState, _AcceptorStep]] = {
    (AcceptorState.IDLE, AcceptorInput.PREPARE): (AcceptorState.PREPARING, Acceptor._preparing),
    (AcceptorState.IDLE, AcceptorInput.INIT): (AcceptorState.BINDING, Acceptor._binding),
    (AcceptorState.PREPARING, AcceptorInput.TOKENS): (AcceptorState.PREPARED, Acceptor._prepared),
    (AcceptorState.PREPARING, AcceptorInput.TIMEOUT): (AcceptorState.FAILED, Acceptor._unreachable),
    # an INIT that overtakes our PREPARED (the donor's own timer): bind, RR finishes first
    (AcceptorState.PREPARING, AcceptorInput.INIT): (AcceptorState.BINDING, Acceptor._binding),
    (AcceptorState.PREPARED, AcceptorInput.INIT): (AcceptorState.BINDING, Acceptor._binding),
    (AcceptorState.PREPARED, AcceptorInput.TIMEOUT): (AcceptorState.FAILED, Acceptor._init_timeout),
    (AcceptorState.BINDING, AcceptorInput.BOUND): (AcceptorState.ACTIVE, Acceptor._active),
    (AcceptorState.BINDING, AcceptorInput.CLIENT_PACKET): (AcceptorState.ACTIVE, Acceptor._active),
    (AcceptorState.BINDING, AcceptorInput.REJECTED): (AcceptorState.FAILED, Acceptor._rejected),
    (AcceptorState.BINDING, AcceptorInput.IMPORT_FAILED): (
        AcceptorState.FAILED,
        Acceptor._import_failed,
    ),
    (AcceptorState.BINDING, AcceptorInput.TIMEOUT): (AcceptorState.FAILED, Acceptor._bind_timeout),
    (AcceptorState.PREPARING, AcceptorInput.ABORTED): (
        AcceptorState.FAILED,
        Acceptor._init_timeout,
    ),
    (AcceptorState.PREPARED, AcceptorInput.ABORTED): (AcceptorState.FAILED, Acceptor._init_timeout),
    (AcceptorState.BINDING, AcceptorInput.ABORTED): (AcceptorState.FAILED, Acceptor._bind_timeout),
}
