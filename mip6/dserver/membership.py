"""Dynamic membership of a distributed server (DSERVER.md section 5; SPEC-dserver 8.1, the
XtreemOS protocol of the seeds' D 2.3), as a sans-I/O engine: messages, timers and commands in,
:data:`Action` values out; the clock (``now``) and randomness (``rng``) are injected.

Roles (SPEC-dserver 2.1, 8.1):

- the *core*: the contact node and its backups, ordered by join id; the contact node is the
  live core member with the lowest join id, with no preemption (8.1 "The contact node is always
  selected as the backup node with the lowest ID"; a member that comes back joins again and
  gets a new, higher id). The core holds at most ``max_core`` members (8.1: "typically less
  than 5" backups);
- *snodes*: any number (up to ``max_members`` in all), registered with the contact node.

Views. The contact node owns the view: a number that grows with every change, the join id
counter, the core and the snodes (:class:`~mip6.dserver.messages.View`). A change to the core
goes through two-phase commit led by the contact node (8.1); a change to the snodes alone does
not (8.1: "A 2-phase commit is *not* necessary"), the contact node sends the new view to every
member at once. Every member holds a view, and any message carrying a view number lower than
the receiver's gets the receiver's view back, so a lost update is repaired by the next heartbeat
or registration (deviation: the seeds' snodes know only the contact node, but our policies
choose among all members, so every member holds the whole view).

Two-phase commit. The coordinator (the acting contact node) batches the queued changes into one
proposed view numbered above every number it has seen, and sends VIEW_PREPARE to the core
members it keeps. A participant votes yes when the number is above everything it committed or
promised, the coordinator is the first member of the proposed core, every member its own view
puts before the coordinator is absent from the proposal (a takeover names the members it
replaces), and it is not itself acting as contact node; a yes is a promise for that number. A
no carries the participant's highest number: the coordinator aborts and proposes above it. A
participant that has not voted after ``vote_timeout`` (the prepare is sent again at half of it)
is treated as failed (8.1: "the contact node considers it to be failed and retries a 2-phase
commit that contains the information about the new backup and about the failed one"). On
commit the coordinator sends VIEW_COMMIT to the participants and the view to every member old
and new (a removed member learns it that way; B4 "the new backup is informed" is the
JOIN_ANSWER plus that view). Numbers are never reused, so no two different cores are committed
under one number unless two members coordinate at once, which the lease below prevents (but
for the partition it does not cover).

Failure detection (8.1 B5): every core member heartbeats its predecessor, the nearest core
member before it that it does not suspect; the contact node heartbeats the last one (a ring:
deviation, the seeds leave the last backup unwatched until the next join's 2PC, which would
leave a dead member in the views). A predecessor silent for ``failure_timeout`` is suspected:
reported to the contact node (LEAVE, reason UNREACHABLE) and skipped, so the member watches the
next one (T 4.1.3 "it will monitor n-2"). A member with no unsuspected core member before it
takes over as contact node and proposes the view without the members it suspects (8.1 "its
successor takes over"). A falsely suspected member is removed like a dead one and learns it
from the next view or from PLEASE_REJOIN (B7), and joins again. Snodes re-register every
``register_interval``; the contact node removes one silent for ``snode_timeout``; an snode whose
registrations go unanswered that long asks the contact address who the contact node is (Q1).
The transport's "peer unreachable" (a handoff to it failed, 8.1 "when a handoff to them fails")
is reported the same way for an snode; a core member is left to its watcher's heartbeats, which
judge it sooner than a handoff times out and do not remove a live member that was only busy.

Split brain: the rule enforced. A core member acts as contact node only while it holds a
*lease*. Each heartbeat echoes the sequence of the newest answer its sender has received; the
answerer knows when it sent that answer, and the watcher will not suspect it before
``failure_timeout`` after receiving it, so the answerer's lease from that watcher runs to
``sent + failure_timeout - lease_margin``. The lease holds while every core member that
heartbeated us in the last ``failure_timeout`` has such a bound in the future (and at least one
did, unless we are the only live core member); a new successor of our own 2PC gets a bound from
the commit's send time. When the lease runs out the contact node steps down (``SteppedDown``;
it is taken up again with a fresh echo). So when the successor takes over because answers
stopped reaching it, whatever messages were lost, the old contact node has stepped down at
least ``lease_margin`` earlier: on clocks that run at the same rate the two never act at once,
and a rate difference up to ``lease_margin / failure_timeout`` is absorbed. A graceful leave of
the contact node steps down first, then tells its successor, which takes over at once. The
exception (not covered here; DSERVER 5 and issue 15 item 4: the home agent's binding decides):
a member cut off from every member before it for ``failure_timeout`` (a partition, not lost
messages: the lease binds only the watchers the contact node hears from) takes over in its own
eyes while the others carry on. A contact node cut off from all the others steps down when its
lease runs out, but once it has suspected every other core member (one failure timeout each,
around the ring) it acts again alone, and commits a view of itself under the number the other
side uses too: there is no majority to stop it, since a core of two must survive the death of
either member (tests: ``test_contact_node_partitioned_...`` pins this).

Timers (``MembershipConfig``): heartbeats every 100 ms and three missed (300 ms) replace a dead
contact node within about 0.4 s (suspicion is checked at each heartbeat tick).

Logging: role and view changes are events (:class:`BecameContactNode`, :class:`SteppedDown`,
:class:`ViewChanged`, ...) for the runtime to log; the protocol's own decisions, which have no
event (a suspicion, a vote refused, a commit, participants treated as failed), are logged here
with structured ``extra`` fields.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from mip6.core.actions import CancelTimer, StartTimer
from mip6.dserver import messages as msg

log = logging.getLogger(__name__)

ANSWERS_KEPT = 8  # heartbeat answers a member remembers per watcher (for their echoes)
_UNSPECIFIED = IPv6Address("::")


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timers in seconds; each is a configuration key (DSERVER 5). SPEC-dserver 8.1 gives no
    value for any of them (11.5)."""

    heartbeat_interval: float = 0.1
    failure_timeout: float = 0.3  # three heartbeats missed: the predecessor is suspected
    lease_margin: float = 0.05  # the contact node steps down this much before a successor can
    vote_timeout: float = 0.2  # a 2PC participant silent this long is treated as failed
    register_interval: float = 0.5  # snode re-registration (8.1 S1)
    snode_timeout: float = 1.5  # the contact node forgets a silent snode; the snode asks (Q1)
    join_retry: float = 0.5  # JOIN, REGISTER while joining, LEAVE: sent again this often
    leave_timeout: float = 1.0  # a leave that is never acknowledged completes anyway
    max_core: int = 5  # the contact node and its backups
    max_members: int = 256
    max_pending: int = 32  # changes queued for the next view

    def __post_init__(self) -> None:
        if not 0 < self.lease_margin < self.failure_timeout - self.heartbeat_interval:
            raise ValueError("lease_margin must be positive and leave a heartbeat of lease")
        if not 1 <= self.max_core <= msg.MAX_CORE:
            raise ValueError(f"max_core must be 1..{msg.MAX_CORE}")
        if not self.max_core <= self.max_members <= msg.MAX_CORE + msg.MAX_SNODES:
            raise ValueError("max_members out of range")


class Destination(enum.Enum):
    """Where a message goes that has no member address: the contact address C, which the
    home agent tunnels to whichever member registered it last (8.1 Q1 "By definition, the
    current contact node will receive it")."""

    CONTACT_ADDRESS = "contact_address"


class Timer(enum.Enum):
    TICK = "tick"  # heartbeats, registrations, retries, suspicion checks
    LEASE = "lease"  # the contact node's lease runs out
    VOTE = "vote"  # the 2PC's wait for votes


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    peer: IPv6Address | Destination
    message: msg.MembershipMessage


@dataclass(frozen=True, slots=True)
class ViewChanged:
    view: msg.View


@dataclass(frozen=True, slots=True)
class BecameContactNode:
    """Take over the contact address (SPEC-dserver 2.5): register it at the home agent."""

    view_number: int


class StepDownReason(enum.Enum):
    LEASE_EXPIRED = "lease_expired"  # no fresh echo from our watchers: a successor may act
    LEAVING = "leaving"
    REMOVED = "removed"  # a view without us (taken over, or falsely suspected)


@dataclass(frozen=True, slots=True)
class SteppedDown:
    reason: StepDownReason


class Role(enum.Enum):
    IDLE = "idle"
    JOINING = "joining"
    CORE = "core"  # the contact node or a backup
    SNODE = "snode"
    LEAVING = "leaving"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class Joined:
    join_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class Left:
    """The leave completed (a view without us arrived, or ``leave_timeout`` ran out)."""


@dataclass(frozen=True, slots=True)
class Removed:
    """A view without us, or PLEASE_REJOIN, while we were in the group (not leaving): the
    group took us for dead, and we join again (B7)."""


Action = (
    Send
    | StartTimer
    | CancelTimer
    | ViewChanged
    | BecameContactNode
    | SteppedDown
    | Joined
    | Left
    | Removed
)


class Input(enum.Enum):
    FOUND = "found"  # the first member creates the group
    JOIN = "join"
    ADMITTED_CORE = "admitted_core"
    ADMITTED_SNODE = "admitted_snode"
    REMOVED = "removed"  # a view without us
    LEAVE = "leave"
    GONE = "gone"  # the leave completed


TRANSITIONS: dict[tuple[Role, Input], Role] = {
    (Role.IDLE, Input.FOUND): Role.CORE,
    (Role.IDLE, Input.JOIN): Role.JOINING,
    (Role.JOINING, Input.ADMITTED_CORE): Role.CORE,
    (Role.JOINING, Input.ADMITTED_SNODE): Role.SNODE,
    (Role.JOINING, Input.LEAVE): Role.LEFT,
    (Role.CORE, Input.REMOVED): Role.JOINING,  # B7: join again
    (Role.SNODE, Input.REMOVED): Role.JOINING,
    (Role.SNODE, Input.ADMITTED_CORE): Role.CORE,  # promoted: the core had room
    (Role.CORE, Input.LEAVE): Role.LEAVING,
    (Role.SNODE, Input.LEAVE): Role.LEAVING,
    (Role.LEAVING, Input.REMOVED): Role.LEFT,
    (Role.LEAVING, Input.GONE): Role.LEFT,
}


class MembershipStateError(Exception):
    """A local command the role does not allow (join twice, leave before joining)."""


# -- internal records -------------------------------------------------------------------------


@dataclass(slots=True)
class _Watcher:
    """A core member that heartbeats us: when we last heard it, how long its echoes grant us
    the lease, and when we sent our recent answers (by sequence)."""

    last_heard: float
    bound: float = float("-inf")
    answers: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Change:
    """A queued change: ``add`` as core (a JOIN, with its request) or snode; or a removal."""

    address: IPv6Address
    add: bool
    core: bool = False
    request: int = 0


@dataclass(slots=True)
class _Transaction:
    transaction: int
    view: msg.View
    participants: frozenset[IPv6Address]
    changes: list[_Change]
    votes: set[IPv6Address] = field(default_factory=set)
    resent: bool = False


@dataclass(frozen=True, slots=True)
class _Promise:
    transaction: int
    view: msg.View
    coordinator: IPv6Address


class Membership:
    """One member's membership engine. ``address`` is the member's own address M."""

    def __init__(
        self, address: IPv6Address, rng: random.Random, config: MembershipConfig | None = None
    ) -> None:
        self.address = address
        self.rng = rng
        self.config = config or MembershipConfig()
        self.role = Role.IDLE
        self.view: msg.View | None = None
        self.join_id = 0
        self.acting = False  # acting as contact node (first live core member, lease held)
        self.backup_capable = True  # the member holds the home agent's SA: it may be a backup
        self._as_backup = True  # the next JOIN asks for the core (not after a FULL answer)
        self.suspected: set[IPv6Address] = set()
        self.unexpected = 0  # inputs the role had no transition for
        self.unreachable_core_ignored = 0  # transport reports on core members (peer_unreachable)
        # watching our predecessor
        self._watched: IPv6Address | None = None
        self._sequence = 0
        self._newest_answer = 0
        self._last_answer = 0.0
        # watched by others (the lease)
        self._watchers: dict[IPv6Address, _Watcher] = {}
        # coordinator
        self._queue: dict[IPv6Address, _Change] = {}
        self._transaction: _Transaction | None = None
        self._highest = 0  # the highest view number seen committed or promised
        self._snode_seen: dict[IPv6Address, float] = {}
        # participant
        self._promise: _Promise | None = None
        # joining, snode, leaving
        self._request = 0
        self._last_sent = float("-inf")  # the last JOIN/REGISTER/LEAVE attempt
        self._contact_heard = 0.0  # an snode's last answer from the contact node
        self._contact_hint: IPv6Address | None = None  # from a JOIN_ANSWER or CONTACT_ANSWER
        self._query = 0
        self._leave_deadline = 0.0
        self._out: list[Action] = []

    # -- commands ---------------------------------------------------------------------------

    def found(self, now: float) -> list[Action]:
        """Create the group: this member is its first contact node, join id 1."""
        self._transition(Input.FOUND, local=True)
        self.join_id = 1
        view = msg.View(
            number=1,
            next_join_id=2,
            core=(msg.MemberEntry(join_id=1, address=self.address),),
        )
        self._install(now, view)
        self._out.append(Joined(join_id=1, role=Role.CORE))
        self._start_ticks(now)
        return self._flush()

    def join(self, now: float, *, backup: bool = True) -> list[Action]:
        """Join through the contact address: as a backup (JOIN, 8.1 B1) when ``backup`` (the
        member holds the home agent's SA) and the core has room, else as an snode (REGISTER,
        S1); an snode that may be a backup asks again whenever its view shows room."""
        self._transition(Input.JOIN, local=True)
        self.backup_capable = self._as_backup = backup
        self._start_joining(now)
        self._start_ticks(now)
        return self._flush()

    def outbid(self, now: float) -> list[Action]:
        """The home agent holds the contact address for another member (issue 15 item 4: its
        binding decides): this one, which acted as contact node, was cut off while a successor
        took over. It is out of the group whatever its view says, and joins again through the
        contact address, which now reaches the one that holds it."""
        if self.role in (Role.CORE, Role.SNODE):
            self._removed(now)
        return self._flush()

    def leave(self, now: float) -> list[Action]:
        """Leave gracefully: the contact node steps down and hands over to its successor at
        once (T 4.2.3: so that another node takes over "in time"); any other member asks the
        contact node to remove it. Completes with :class:`Left`."""
        if self.role is Role.JOINING:
            self._transition(Input.LEAVE, local=True)
            self._out.append(Left())
            self._out.append(CancelTimer(Timer.TICK))
            return self._flush()
        self._transition(Input.LEAVE, local=True)
        self._leave_deadline = now + self.config.leave_timeout
        self._set_acting(now, False, StepDownReason.LEAVING)
        self._abort_transaction()
        self._send_leave(now)
        return self._flush()

    # -- inputs -----------------------------------------------------------------------------

    def handle_message(
        self, now: float, peer: IPv6Address, message: msg.MembershipMessage
    ) -> list[Action]:
        """A message from member ``peer`` (the channel's authenticated identity)."""
        if self.role in (Role.IDLE, Role.LEFT):
            return []
        match message:
            case msg.Heartbeat():
                self._on_heartbeat(now, peer, message)
            case msg.HeartbeatAnswer():
                self._on_heartbeat_answer(now, peer, message)
            case msg.ViewPrepare():
                self._on_prepare(now, peer, message)
            case msg.ViewVote():
                self._on_vote(now, peer, message)
            case msg.ViewCommit():
                promise = self._promise
                if promise is not None and promise.transaction == message.transaction:
                    self._adopt(now, promise.view)
            case msg.ViewAbort():
                if self._promise is not None and self._promise.transaction == message.transaction:
                    self._promise = None
            case msg.ViewUpdate():
                self._adopt(now, message.view)
            case msg.Join():
                self._on_join(now, peer, message)
            case msg.JoinAnswer():
                self._on_join_answer(now, peer, message)
            case msg.Register():
                self._on_register(now, peer, message)
            case msg.Registered():
                if self.role in (Role.JOINING, Role.SNODE):
                    self._contact_heard = now
                    self._contact_hint = peer
                    self._stale_peer(peer, message.view_number)
            case msg.PleaseRejoin():
                admitted = self.role in (Role.CORE, Role.SNODE, Role.LEAVING)
                if admitted and self.view is not None and message.view_number > self.view.number:
                    self._removed(now)
            case msg.ContactQuery():
                if self.acting:
                    number = self.view.number if self.view else 0
                    self._send(peer, msg.ContactAnswer(nonce=message.nonce, view_number=number))
            case msg.ContactAnswer():
                if message.nonce == self._query and self._query:
                    self._query = 0
                    self._contact_hint = peer
                    self._contact_heard = now
                    self._stale_peer(peer, message.view_number)
            case msg.Leave():
                self._on_leave(now, peer, message)
        return self._flush()

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        if token == Timer.TICK:
            self._tick(now)
        elif token == Timer.LEASE:
            self._evaluate(now)
        elif token == Timer.VOTE:
            self._vote_timeout(now)
        return self._flush()

    def peer_unreachable(self, now: float, peer: IPv6Address) -> list[Action]:
        """The transport found ``peer`` unreachable (a handoff to it failed, its channel could
        not be opened). An snode is reported to the contact node (8.1: "when a handoff to them
        fails"); never suspected here on that alone (the lease counts on heartbeat silence
        only). A core member is not: its watcher's heartbeats judge it, within
        ``failure_timeout``, sooner than any handoff times out, and a handoff that timed out
        on a live but busy member removed it, and its clients were resumed by its buddy while
        it still served them."""
        entry = self._entry(peer)
        if entry is None or peer == self.address:
            return self._flush()
        if self.view is not None and entry in self.view.core:
            self.unreachable_core_ignored += 1
        else:
            self._report(now, entry, msg.LeaveReason.UNREACHABLE)
        return self._flush()

    # -- queries ----------------------------------------------------------------------------

    @property
    def contact(self) -> IPv6Address | None:
        """The contact node's own address as this member knows it."""
        if self.role is Role.CORE and self.view is not None:
            live = self._live_core()
            return live[0].address if live else None
        if self._contact_hint is not None:
            return self._contact_hint
        if self.view is not None and self.view.contact is not None:
            return self.view.contact.address
        return None

    def last_heard(self, peer: IPv6Address) -> float | None:
        """When ``peer`` was last heard on the protocol's own exchanges: its heartbeat to us,
        its answer to ours (our predecessor; since we began watching it, if it has not
        answered yet), its registration (an snode, at the contact
        node), the contact node's answer to an snode; None if it never was."""
        times = []
        watcher = self._watchers.get(peer)
        if watcher is not None:
            times.append(watcher.last_heard)
        if peer == self._watched and self._last_answer:
            times.append(self._last_answer)
        if peer in self._snode_seen:
            times.append(self._snode_seen[peer])
        if peer == self._contact_hint and self._contact_heard:
            times.append(self._contact_heard)
        return max(times) if times else None

    # -- heartbeats and the lease -----------------------------------------------------------

    def _live_core(self) -> list[msg.MemberEntry]:
        assert self.view is not None
        return [e for e in self.view.core if e.address not in self.suspected]

    def _predecessor(self) -> IPv6Address | None:
        """The nearest unsuspected core member before us, cyclically (the contact node
        watches the last one: the ring)."""
        live = self._live_core()
        index = next((i for i, e in enumerate(live) if e.address == self.address), None)
        if index is None or len(live) < 2:
            return None
        return live[index - 1].address

    def _tick(self, now: float) -> None:
        config = self.config
        if self.role is Role.CORE:
            self._out.append(StartTimer(now + config.heartbeat_interval, Timer.TICK))
            self._watch(now)
            self._evaluate(now)
            if self.acting:
                self._expire_snodes(now)
                self._progress(now)
            else:
                for suspect in sorted(self.suspected):
                    entry = self._entry(suspect)
                    if entry is not None:
                        self._report(now, entry, msg.LeaveReason.UNREACHABLE)
        elif self.role is Role.SNODE:
            self._out.append(StartTimer(now + config.register_interval, Timer.TICK))
            if now - self._contact_heard >= config.snode_timeout:
                # the contact node we register with is silent: ask who it is (8.1 Q1)
                self._contact_hint = None
                self._query = self.rng.randrange(1, 1 << 32)
                self._send(Destination.CONTACT_ADDRESS, msg.ContactQuery(nonce=self._query))
            self._register(now)
            view = self.view
            room = view is not None and len(view.core) < self.config.max_core
            if self.backup_capable and room and now - self._last_sent >= config.join_retry:
                self._last_sent = now
                self._request = self.rng.randrange(1, 1 << 32)
                promotion = msg.Join(request=self._request)
                self._send(self.contact or Destination.CONTACT_ADDRESS, promotion)
        elif self.role is Role.JOINING:
            self._out.append(StartTimer(now + config.heartbeat_interval, Timer.TICK))
            if now - self._last_sent >= config.join_retry:
                self._send_join(now)
        elif self.role is Role.LEAVING:
            self._out.append(StartTimer(now + config.heartbeat_interval, Timer.TICK))
            if now >= self._leave_deadline:
                self._gone()
            elif now - self._last_sent >= config.join_retry:
                self._send_leave(now)

    def _watch(self, now: float) -> None:
        predecessor = self._predecessor()
        if predecessor != self._watched:
            # a new predecessor: its silence is counted from now (T 4.1.3 "monitor n-2")
            self._watched = predecessor
            self._newest_answer = 0
            self._last_answer = now
        if predecessor is None:
            return
        if now - self._last_answer >= self.config.failure_timeout:
            self._suspect(now, predecessor)
            self._watch(now)
            return
        self._sequence = self._sequence % 0xFFFFFFFF + 1
        number = self.view.number if self.view else 0
        heartbeat = msg.Heartbeat(
            sequence=self._sequence, echo=self._newest_answer, view_number=number
        )
        self._send(predecessor, heartbeat)

    def _suspect(self, now: float, member: IPv6Address) -> None:
        log.info(
            "membership: predecessor suspected",
            extra={
                "member": str(self.address),
                "suspect": str(member),
                "silent_since": self._last_answer,
            },
        )
        self.suspected.add(member)
        entry = self._entry(member)
        if entry is not None:
            self._report(now, entry, msg.LeaveReason.UNREACHABLE)

    def _on_heartbeat(self, now: float, peer: IPv6Address, heartbeat: msg.Heartbeat) -> None:
        if self.role is Role.JOINING:
            # the contact node admitted us and watches us (we are the last of its ring) before
            # its answer and the view reach us, which under load and loss took longer than a
            # failure timeout: unanswered, it removed us again and again. We answer; we are
            # not acting, so no lease hangs on it
            number = self.view.number if self.view is not None else 0
            self._send(peer, msg.HeartbeatAnswer(sequence=heartbeat.sequence, view_number=number))
            return
        if self.view is None or self.role not in (Role.CORE, Role.LEAVING):
            return
        if not any(e.address == peer for e in self.view.core):
            if heartbeat.view_number < self.view.number:
                # B7: "we consider you to have failed, please join again"
                self._send(peer, msg.PleaseRejoin(view_number=self.view.number))
            return
        watcher = self._watchers.get(peer)
        if watcher is None:
            watcher = self._watchers[peer] = _Watcher(last_heard=now)
        watcher.last_heard = now
        sent = watcher.answers.get(heartbeat.echo)
        if sent is not None:
            # the watcher received the answer we sent at `sent`: it cannot suspect us
            # before sent + failure_timeout
            bound = sent + self.config.failure_timeout - self.config.lease_margin
            watcher.bound = max(watcher.bound, bound)
        watcher.answers[heartbeat.sequence] = now
        while len(watcher.answers) > ANSWERS_KEPT:
            del watcher.answers[next(iter(watcher.answers))]
        self._send(
            peer, msg.HeartbeatAnswer(sequence=heartbeat.sequence, view_number=self.view.number)
        )
        self._stale_peer(peer, heartbeat.view_number)
        self._evaluate(now)

    def _on_heartbeat_answer(
        self, now: float, peer: IPv6Address, answer: msg.HeartbeatAnswer
    ) -> None:
        if peer != self._watched or peer in self.suspected:
            return
        self._last_answer = now
        self._newest_answer = max(self._newest_answer, answer.sequence)
        self._stale_peer(peer, answer.view_number)

    def _lease(self, now: float) -> float | None:
        """Until when we may act as contact node (None: without limit, no live core member
        but us could take over), or -inf when no watcher vouches for us."""
        live = self._live_core()
        if len(live) < 2:
            return None
        recent = [
            w for w in self._watchers.values() if now - w.last_heard < self.config.failure_timeout
        ]
        if not recent:
            return float("-inf")
        return min(w.bound for w in recent)

    def _evaluate(self, now: float) -> None:
        """Act as contact node or not (the rule in the module docstring)."""
        if self.role is not Role.CORE or self.view is None:
            return
        live = self._live_core()
        first = bool(live) and live[0].address == self.address
        lease = self._lease(now) if first else float("-inf")
        acting = first and (lease is None or lease > now)
        if acting and lease is not None:
            self._out.append(StartTimer(lease, Timer.LEASE))
        self._set_acting(now, acting, StepDownReason.LEASE_EXPIRED)

    def _set_acting(self, now: float, acting: bool, reason: StepDownReason) -> None:
        if acting == self.acting:
            return
        self.acting = acting
        assert self.view is not None
        if acting:
            # a new contact node gives every snode a full timeout to register with it
            self._snode_seen = {e.address: now for e in self.view.snodes}
            self._out.append(BecameContactNode(view_number=self.view.number))
            for suspect in sorted(self.suspected):
                self._queue_change(_Change(address=suspect, add=False))
            self._progress(now)
        else:
            self._out.append(CancelTimer(Timer.LEASE))
            self._out.append(SteppedDown(reason=reason))
            self._abort_transaction()

    # -- views ------------------------------------------------------------------------------

    def _entry(self, address: IPv6Address) -> msg.MemberEntry | None:
        if self.view is None:
            return None
        return next((e for e in self.view.members() if e.address == address), None)

    def _stale_peer(self, peer: IPv6Address, number: int) -> None:
        """A peer holding an older view gets ours (the repair of lost updates)."""
        if self.view is not None and number < self.view.number:
            self._send(peer, msg.ViewUpdate(view=self.view))

    def _adopt(self, now: float, view: msg.View) -> None:
        if self.view is not None and view.number <= self.view.number:
            return
        self._install(now, view)

    def _install(self, now: float, view: msg.View) -> None:
        self.view = view
        self._highest = max(self._highest, view.number)
        if self._promise is not None and self._promise.view.number <= view.number:
            self._promise = None
        core = {e.address for e in view.core}
        self.suspected &= core
        self._watchers = {a: w for a, w in self._watchers.items() if a in core}
        self._queue = {
            a: c for a, c in self._queue.items() if c.add != (self._entry(a) is not None)
        }
        self._out.append(ViewChanged(view=view))
        entry = self._entry(self.address)
        if entry is None:
            if self.role in (Role.CORE, Role.SNODE, Role.LEAVING):
                self._removed(now)
            return
        in_core = entry in view.core
        if self.role is Role.SNODE and in_core:
            self.join_id = entry.join_id
            self._transition(Input.ADMITTED_CORE)
            self._out.append(Joined(join_id=entry.join_id, role=self.role))
            self._out.append(StartTimer(now, Timer.TICK))
        elif self.role is Role.JOINING:
            self.join_id = entry.join_id
            self._transition(Input.ADMITTED_CORE if in_core else Input.ADMITTED_SNODE)
            self._out.append(Joined(join_id=entry.join_id, role=self.role))
            self._contact_heard = now
            self._out.append(StartTimer(now, Timer.TICK))
        self._evaluate(now)

    def _removed(self, now: float) -> None:
        """A view without us, or PLEASE_REJOIN: join again (B7), or the leave is done."""
        was_leaving = self.role is Role.LEAVING
        self._set_acting(now, False, StepDownReason.REMOVED)
        self._transition(Input.REMOVED)
        if was_leaving:
            self._out.append(Left())
            self._out.append(CancelTimer(Timer.TICK))
            return
        self._out.append(Removed())
        log.info("membership: removed, joining again", extra={"member": str(self.address)})
        self._start_joining(now)

    # -- two-phase commit: coordinator ------------------------------------------------------

    def _queue_change(self, change: _Change) -> None:
        if change.address == self.address:
            return
        if change.address in self._queue or len(self._queue) < self.config.max_pending:
            self._queue[change.address] = change

    def _progress(self, now: float) -> None:
        """Turn the queued changes into the next view: by 2PC when the core changes, else at
        once (8.1 S2)."""
        if not self.acting or self._transaction is not None or not self._queue:
            return
        assert self.view is not None
        changes = list(self._queue.values())
        self._queue.clear()
        removed = {c.address for c in changes if not c.add}
        core = [e for e in self.view.core if e.address not in removed]
        snodes = [e for e in self.view.snodes if e.address not in removed]
        counter = self.view.next_join_id
        accepted: list[tuple[_Change, int]] = []
        for change in (c for c in changes if c.add):
            if change.core and any(e.address == change.address for e in snodes):
                if len(core) >= self.config.max_core:
                    continue
                # an snode that may be a backup fills a free place in the core (beyond the
                # seeds, which never refill it): with a new id, so it comes last
                snodes = [e for e in snodes if e.address != change.address]
            listed = change.address in {e.address for e in core + snodes}
            if listed or len(core) + len(snodes) >= self.config.max_members:
                continue
            if change.core and len(core) >= self.config.max_core:
                self._send(
                    change.address,
                    msg.JoinAnswer(
                        status=msg.JoinStatus.FULL,
                        request=change.request,
                        join_id=0,
                        contact=self.address,
                    ),
                )
                continue
            entry = msg.MemberEntry(join_id=counter, address=change.address)
            (core if change.core else snodes).append(entry)
            accepted.append((change, counter))
            counter += 1
        view = msg.View(
            number=max(self.view.number, self._highest) + 1,
            next_join_id=counter,
            core=tuple(core),
            snodes=tuple(snodes),
        )
        if view.core == self.view.core:
            self._commit(now, view, changes)
            return
        participants = frozenset(e.address for e in core if e in self.view.core) - {self.address}
        transaction = _Transaction(
            transaction=self.rng.getrandbits(64),
            view=view,
            participants=participants,
            changes=changes,
        )
        self._transaction = transaction
        if not participants:
            self._commit(now, view, changes)
            return
        for participant in sorted(participants):
            self._send(participant, msg.ViewPrepare(transaction=transaction.transaction, view=view))
        self._out.append(StartTimer(now + self.config.vote_timeout / 2, Timer.VOTE))

    def _on_vote(self, now: float, peer: IPv6Address, vote: msg.ViewVote) -> None:
        transaction = self._transaction
        if transaction is None or vote.transaction != transaction.transaction:
            return
        if peer not in transaction.participants:
            return
        self._highest = max(self._highest, vote.highest)
        if not vote.yes:
            log.info(
                "membership: view refused",
                extra={"member": str(self.address), "by": str(peer), "highest": vote.highest},
            )
            self._requeue(transaction)
            self._abort_transaction()
            return
        transaction.votes.add(peer)
        if transaction.votes == transaction.participants:
            self._out.append(CancelTimer(Timer.VOTE))
            for participant in sorted(transaction.participants):
                self._send(participant, msg.ViewCommit(transaction=transaction.transaction))
            self._commit(now, transaction.view, transaction.changes)

    def _vote_timeout(self, now: float) -> None:
        transaction = self._transaction
        if transaction is None:
            return
        silent = transaction.participants - transaction.votes
        if not transaction.resent:
            # a prepare or vote lost: ask once more before treating anyone as failed
            transaction.resent = True
            for participant in sorted(silent):
                self._send(
                    participant,
                    msg.ViewPrepare(transaction=transaction.transaction, view=transaction.view),
                )
            self._out.append(StartTimer(now + self.config.vote_timeout / 2, Timer.VOTE))
            return
        log.info(
            "membership: participants did not vote, treated as failed",
            extra={"member": str(self.address), "silent": sorted(str(s) for s in silent)},
        )
        self._requeue(transaction)
        self._abort_transaction()
        for member in silent:
            self._queue_change(_Change(address=member, add=False))
        self._progress(now)

    def _requeue(self, transaction: _Transaction) -> None:
        for change in transaction.changes:
            self._queue_change(change)

    def _abort_transaction(self) -> None:
        transaction = self._transaction
        if transaction is None:
            return
        self._transaction = None
        self._out.append(CancelTimer(Timer.VOTE))
        for participant in sorted(transaction.participants):
            self._send(participant, msg.ViewAbort(transaction=transaction.transaction))

    def _commit(self, now: float, view: msg.View, changes: list[_Change]) -> None:
        self._transaction = None
        old = self.view
        assert old is not None
        successor_before = self._successor(old)
        self._install(now, view)
        successor = self._successor(view)
        if successor is not None and successor != successor_before:
            # the new successor learns it watches us from this commit, sent now: it cannot
            # suspect us before now + failure_timeout (the lease, module docstring)
            bound = now + self.config.failure_timeout - self.config.lease_margin
            self._watchers[successor] = _Watcher(last_heard=now, bound=bound)
        log.info(
            "membership: view committed",
            extra={"member": str(self.address), "view": view.number, "core": len(view.core)},
        )
        removed = {e.address for e in old.members()} - {e.address for e in view.members()}
        for member in sorted({e.address for e in view.members()} | removed):
            if member != self.address:
                self._send(member, msg.ViewUpdate(view=view))
        for change in changes:
            entry = self._entry(change.address)
            if change.add and entry is not None:
                self._answer_admission(change, entry)
        self._evaluate(now)
        self._progress(now)

    def _successor(self, view: msg.View) -> IPv6Address | None:
        core = [e.address for e in view.core]
        if self.address not in core or len(core) < 2:
            return None
        return core[(core.index(self.address) + 1) % len(core)]

    def _answer_admission(self, change: _Change, entry: msg.MemberEntry) -> None:
        assert self.view is not None
        if change.core:
            answer: msg.MembershipMessage = msg.JoinAnswer(
                status=msg.JoinStatus.ACCEPTED,
                request=change.request,
                join_id=entry.join_id,
                contact=self.address,
            )
        else:
            answer = msg.Registered(join_id=entry.join_id, view_number=self.view.number)
        self._send(change.address, answer)

    # -- two-phase commit: participant ------------------------------------------------------

    def _on_prepare(self, now: float, peer: IPv6Address, prepare: msg.ViewPrepare) -> None:
        view = prepare.view
        promise = self._promise
        if promise is not None and promise.transaction == prepare.transaction:
            # the coordinator asked again: our vote was lost
            self._vote(peer, prepare.transaction, True)
            return
        reason = self._refusal(peer, view)
        if reason is not None:
            log.info(
                "membership: vote no",
                extra={"member": str(self.address), "coordinator": str(peer), "why": reason},
            )
            self._vote(peer, prepare.transaction, False)
            return
        self._promise = _Promise(transaction=prepare.transaction, view=view, coordinator=peer)
        self._highest = max(self._highest, view.number)
        self._vote(peer, prepare.transaction, True)

    def _refusal(self, peer: IPv6Address, view: msg.View) -> str | None:
        if self.role not in (Role.CORE, Role.LEAVING) or self.view is None:
            return "not a core member"
        if view.number <= self._highest:
            return "number not above every number seen"
        if view.contact is None or view.contact.address != peer:
            return "coordinator not first in the proposed core"
        proposed = {e.address for e in view.members()}
        for entry in self.view.core:
            if entry.address == peer:
                break
            if entry.address in proposed:
                return "a member before the coordinator kept"
        if self.acting:
            return "we act as contact node"
        mine = next((e for e in view.core if e.address == self.address), None)
        if mine is None or mine.join_id != self.join_id:
            return "we are not in the proposed core"
        return None

    def _vote(self, coordinator: IPv6Address, transaction: int, yes: bool) -> None:
        vote = msg.ViewVote(transaction=transaction, highest=self._highest, yes=yes)
        self._send(coordinator, vote)

    # -- joins, registrations, leaves -------------------------------------------------------

    def _start_joining(self, now: float) -> None:
        self.view = None
        self.join_id = 0
        self.suspected.clear()
        self._watchers.clear()
        self._watched = None
        self._promise = None
        self._queue.clear()
        self._transaction = None
        self._contact_hint = None
        self._request = self.rng.randrange(1, 1 << 32)
        self._send_join(now)

    def _send_join(self, now: float) -> None:
        self._last_sent = now
        destination: IPv6Address | Destination = self._contact_hint or Destination.CONTACT_ADDRESS
        if self._as_backup:
            self._send(destination, msg.Join(request=self._request))
        else:
            self._send(destination, msg.Register(join_id=0, view_number=0))

    def _on_join(self, now: float, peer: IPv6Address, join: msg.Join) -> None:
        if not self.acting:
            contact = self.contact if self.contact is not None else _UNSPECIFIED
            answer = msg.JoinAnswer(
                status=msg.JoinStatus.NOT_CONTACT, request=join.request, join_id=0, contact=contact
            )
            self._send(peer, answer)
            return
        entry = self._entry(peer)
        if entry is not None and self.view is not None and entry in self.view.core:
            # a duplicate (our answer lost): the same answer again, and the view
            self._answer_admission(
                _Change(address=peer, add=True, core=True, request=join.request), entry
            )
            self._send(peer, msg.ViewUpdate(view=self.view))
            return
        self._queue_change(_Change(address=peer, add=True, core=True, request=join.request))
        self._progress(now)

    def _on_join_answer(self, now: float, peer: IPv6Address, answer: msg.JoinAnswer) -> None:
        if self.role is Role.SNODE or answer.request != self._request:
            return  # an snode asking to be promoted just asks again later
        if self.role is not Role.JOINING:
            return
        if answer.status == msg.JoinStatus.FULL:
            self._as_backup = False  # the core is full: serve as an snode (8.1 S1)
            self._contact_hint = peer
            self._send_join(now)
        elif answer.status == msg.JoinStatus.NOT_CONTACT and answer.contact != _UNSPECIFIED:
            self._contact_hint = answer.contact
        # ACCEPTED: the view that follows admits us (_install)

    def _register(self, now: float) -> None:
        number = self.view.number if self.view else 0
        destination: IPv6Address | Destination = self.contact or Destination.CONTACT_ADDRESS
        self._send(destination, msg.Register(join_id=self.join_id, view_number=number))

    def _on_register(self, now: float, peer: IPv6Address, register: msg.Register) -> None:
        if not self.acting or self.view is None:
            return
        entry = self._entry(peer)
        if entry is not None and entry in self.view.snodes:
            # 8.1 S1: "If the snode was already known by the contact node, nothing happens"
            if register.join_id not in (0, entry.join_id):
                self._send(peer, msg.PleaseRejoin(view_number=self.view.number))
                return
            self._snode_seen[peer] = now
            self._answer_admission(_Change(address=peer, add=True), entry)
            self._stale_peer(peer, register.view_number)
        elif entry is None and register.join_id == 0:
            self._queue_change(_Change(address=peer, add=True))
            self._progress(now)
        elif entry is None:
            # removed (found silent) while it lived: B7, it joins again with a new id
            self._send(peer, msg.PleaseRejoin(view_number=self.view.number))

    def _expire_snodes(self, now: float) -> None:
        assert self.view is not None
        for entry in self.view.snodes:
            seen = self._snode_seen.setdefault(entry.address, now)
            if now - seen >= self.config.snode_timeout:
                self._queue_change(_Change(address=entry.address, add=False))
        members = {e.address for e in self.view.snodes}
        self._snode_seen = {a: t for a, t in self._snode_seen.items() if a in members}

    def _report(self, now: float, entry: msg.MemberEntry, reason: msg.LeaveReason) -> None:
        """``entry`` is gone: queue its removal if we act as contact node, else tell the
        contact node (unless it is the one gone: then its successor takes over)."""
        if self.acting:
            self._queue_change(_Change(address=entry.address, add=False))
            self._progress(now)
            return
        contact = self.contact
        if contact is not None and contact not in (entry.address, self.address):
            leave = msg.Leave(reason=reason, join_id=entry.join_id, member=entry.address)
            self._send(contact, leave)

    def _send_leave(self, now: float) -> None:
        self._last_sent = now
        if self.view is None:
            return
        leave = msg.Leave(reason=msg.LeaveReason.LEAVING, join_id=self.join_id, member=self.address)
        live = self._live_core()
        if live and live[0].address == self.address:
            # the contact node hands over to its successor (it stepped down first)
            successor = live[1].address if len(live) > 1 else None
            if successor is None:
                self._gone()  # the last core member: the group ends with us
                return
            self._send(successor, leave)
        elif self.contact is not None:
            self._send(self.contact, leave)

    def _on_leave(self, now: float, peer: IPv6Address, leave: msg.Leave) -> None:
        entry = self._entry(leave.member)
        if entry is None or entry.join_id != leave.join_id or leave.member == self.address:
            return
        if leave.reason == msg.LeaveReason.LEAVING and peer != leave.member:
            return  # only a member itself says it leaves
        if leave.reason == msg.LeaveReason.LEAVING and leave.member == self._watched:
            # our predecessor leaves (the contact node handing over): no need to wait for
            # its silence, it stepped down before it told us
            self.suspected.add(leave.member)
            self._evaluate(now)
        self._report(now, entry, msg.LeaveReason.UNREACHABLE)

    def _gone(self) -> None:
        self._transition(Input.GONE)
        self._out.append(Left())
        self._out.append(CancelTimer(Timer.TICK))

    # -- plumbing ---------------------------------------------------------------------------

    def _start_ticks(self, now: float) -> None:
        # a random phase, so that members started together do not tick together
        interval = self.config.heartbeat_interval
        self._out.append(StartTimer(now + self.rng.uniform(0, interval), Timer.TICK))

    def _transition(self, role_input: Input, *, local: bool = False) -> None:
        target = TRANSITIONS.get((self.role, role_input))
        if target is None:
            if local:
                raise MembershipStateError(f"{role_input.value} not allowed as {self.role.value}")
            self.unexpected += 1
            return
        self.role = target

    def _send(self, peer: IPv6Address | Destination, message: msg.MembershipMessage) -> None:
        self._out.append(Send(peer=peer, message=message))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out
