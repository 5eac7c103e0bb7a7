"""The member engine (DSERVER.md sections 2-4): one member of a distributed server, sans-I/O.

A member answers for the contact address C (the home address of a mobile node that does not
exist) from its own address M, a permanent care-of address. It composes, without copying them:

- a :class:`~mip6.roles.mobile_node.MobileNode` for C with M as care-of address: its
  per-correspondent bindings are the clients' bindings (return routability, Binding Updates,
  refreshes, Binding Refresh Requests). Only the contact node registers C at the home agent;
  every other member reaches the home agent through the contact node (its HoTI and any packet
  it must reverse-tunnel go to the contact node, which forwards them as the registered mobile
  node, DSERVER 4 "the contact node's relay");
- a :class:`~mip6.runtime.host.Host` holding C and M: a tcp_migrate stack whose connections
  freeze, export and import, the services' listeners on C, and the member channel's listener
  on M;
- the member channel (:mod:`mip6.dserver.connection`) to every other member, on that stack;
- one :class:`~mip6.dserver.handoff.Donor` or :class:`~mip6.dserver.handoff.Acceptor` per
  handoff in progress, whose effects it performs;
- the contact node's :class:`~mip6.dserver.relay.RelayTable` and
  :class:`~mip6.dserver.tunnel.TunnelTable`;
- a distribution :class:`~mip6.dserver.policy.Policy`;
- its UDP services and their clients' flows (:class:`~mip6.dserver.udp.DatagramServices`):
  a handoff freezes, carries (in the same INIT) and releases a client's flows with its
  connections, and a member drops the datagrams of a client it no longer holds.

It offers the engine contract (:mod:`mip6.core.engine`) and owns its host: the runtime gives it
packets and timers, and it performs what the host and the services it runs ask for, so every
callback a service gets runs inside one of the member's entry points, at that entry point's
``now``. Services (:class:`Service`) are sans-I/O too, driven by the stack's callbacks; handing a
client off is :meth:`Member.handoff`, from a service, a command (``mip6 ctl handoff``) or the
contact node's distribution of a new client.

How a handoff maps onto the mobile node (DSERVER 4):

- PREPARE at the acceptor: return routability for (C, client) without the Binding Update
  (``start_route_optimization(send_binding_update=False)``).
- The donor, when it freezes the client's connections, takes the client's Binding Update List
  entry out of its mobile node (``export_correspondent`` + ``forget_correspondent``): no refresh
  or late acknowledgement of its own may compete with the acceptor's Binding Update. Each INIT
  carries the first number of a window above everything sent before it (:mod:`.handoff`).
- INIT at the acceptor: ``import_correspondent`` with that sequence number (tokens from PREPARE
  kept), then ``complete_route_optimization``; the acknowledgement (``route_optimized``) thaws.
  An acceptor whose handoff fails forgets the entry at once (``forget_correspondent``) unless
  something else here needs the client's binding: its return routability goes no further.
- A donor whose handoff failed after an INIT imports its entry back and binds again
  (``rebind``); a BA 135 then means an acceptor took the client (SUPERSEDED), unless every
  acceptor tried has answered FAILED (each has released the client): then the donor outbids the
  number the client holds. An acceptor that serves the client outside any handoff answers an
  INIT with FAILED SERVED instead: the group moved the client on without the donor (an earlier
  acceptor's DONE lost), and the donor lets its frozen copies go. A donor's give-up (FAILED)
  is answered even after a view removed the donor (alive, it waits for the answer). Member
  mobile nodes report BA 135 instead of answering it (``sequence_recovery=False``) so that
  this choice is the member's. While the rebinding is under way (tests or Binding Update
  unanswered) it gets up to RECOVERY_LIMIT rebinding periods, as a recovery does, before the
  client's connections are reset.
- The client's first packet at M carrying C in a type 2 routing header proves its binding points
  here: it thaws an acceptor whose acknowledgement was lost (rule 2).

Clients without Mobile IPv6 (DSERVER 3, :mod:`.tunnel`):

- The contact node takes a new client for one when it answers the first HoTI or CoTI with an
  ICMPv6 Parameter Problem for the Mobility Header, with a Binding Error 2, or not at all
  within ``mipv6_timeout``; it stops route optimization with it and binds it in its own
  tunnel table. Handoffs asked meanwhile wait until the contact node knows (``_bound``).
- Its packets from the home agent's tunnel go on to the member the table names; that member's
  mobile node takes them as the relay's, and its answers, with no binding to follow, go
  reverse-tunnelled to the contact node as ever. A handoff (T flag) binds the table instead of
  the client (TUNNEL, acknowledged by TUNNEL_ACK, which is the acceptor's BOUND and a
  rebinding donor's).
- A Binding Error 1 for a binding a member held (the seeds' B8) has the contact node tunnel
  that client to the member while it binds again.
- A new contact node is told every member's tunnelled clients again.

Member failure (DSERVER 5, issue 15 item 3), with dynamic membership:

- Each client is replicated to the member's buddy (the next member by join id): each of its
  connections as tcp_migrate's regenerable replica with its service's state, and its binding
  number. From its SYN-ACK (SYN-RECEIVED: the client takes the connection as established at
  once), at every request boundary a service marks, when a handoff or recovery lands it here,
  when its binding number changes, and to a new buddy (every client with a replicable
  connection, replicated before or not; the old buddy keeps its copy until the new one
  acknowledges the client's replica, and gets every replica too until the new one has
  acknowledged one); dropped once no connection owes the client anything
  (a connection in TIME_WAIT owes for ten seconds at least, and is replicated with the
  others meanwhile: its acknowledgement of the client's FIN may be lost, and a buddy resumes
  it in TIME_WAIT to acknowledge the FIN sent again). Replicas are ordered by (view number,
  serial): a restarted member numbers its own from 1 again, in later views. The SYN-ACK and
  the answer to a request wait until the buddy acknowledges the replica that covers them
  (REPLICA_ACK; ``hold_until_replicated``).
- When a view drops a member, its buddy resumes that member's clients: imports the replicas
  frozen, binds each client a step above the replica's number (return routability: the
  care-of test alone while the home keygen token the replica carries is fresh, RFC 3775 5.2.7,
  else the home test too, through the contact node) and resynchronizes the connections from
  the client's next segment; a BA 135 a window or more above says a handoff's acceptor bound
  the client: the buddy asks every member (CLIENT_QUERY) and steps aside (no RST) when one
  serves the client (CLIENT_CLAIMED), or goes above that number when none does (the acceptor
  let the client go at its donor's abort, and the donor died before it bound the client
  back).
- A recovery starts by telling every member (CLIENT_RECOVERING, with its replica's serial,
  origin and binding number): two members may hold a dead member's replicas of one client
  (the old buddy's drop was still queued when it died), or two dead members' (the client
  moved from one to the other), and of two recoveries the one with the lower (serial,
  address) steps aside before it binds (serving on past the stale replica, the other reset
  the client); of two members' replicas, whose serials do not compare, the one bound the
  earlier (RFC 3775 9.5.1's order) steps aside; and the higher answers the lower's message with its
  own (the lower may have begun after the higher's message came); a member that holds the
  client's connections (a donor with them frozen included) answers CLIENT_CLAIMED at once,
  connections resumed from a replica once the client has spoken on one. Except a donor whose
  INIT is out to the replica's origin when the replica is bound at that INIT's number or
  above: the origin took the client and died, and the donor takes the recovery for its DONE.
  An answer counts as a claim: should it cross the claim of a recovery that has bound the
  client meanwhile, both sides see two claims and the higher address keeps the client.
- An acceptor's DONE waits until its buddy holds the client's replica (or the donor's abort
  comes): until then the donor's frozen connections are the client's only copy. When the
  buddy is the donor, the DONE goes right behind the replica on their channel instead.
- An acceptor whose donor dies after the INIT adopts the client (the INIT's connections are the
  latest) and says so to every member (CLIENT_CLAIMED): the buddy steps aside.
- A member that hears it was removed while alive drops the replicas it holds, pauses the
  clients it replicated when its buddy is still in the view (their connections frozen:
  nothing more reaches the client than the buddy's replica knows), asks the buddy about each
  (CLIENT_QUERY) and lets go of each one claimed (CLIENT_CLAIMED); one nobody claims within a
  rebinding period it binds again and serves on. A handoff of such a client still preparing
  ends; one frozen for a handoff pauses should the handoff fail.
- A member claimed from (CLIENT_CLAIMED) while it serves the client with connections the
  claimer holds no replica of (a restarted member's new connections) pauses them and asks the
  claimer; unanswered, it binds the client again and serves on.
- A member's new life, for its first recovery period, drops a SYN that reaches it through a
  binding it did not make (an earlier life's) until the group answers its CLIENT_QUERY: a
  member that claims the client (the old life's buddy, resuming its connections) gets the
  client's SYN sent again once it has bound the client; nobody claiming it within
  CLIENT_QUERY_WAIT, the SYN is taken. A client this life bound is never asked about.
- A connection closing at a member (TIME_WAIT, our FIN unacknowledged) is no service of the
  client: it claims neither a recovery of the client's other connections (CLIENT_RECOVERING
  names their ports) nor a CLIENT_QUERY.
- What the client sends a donor's frozen connections (a request that crossed the freeze) is
  kept and sent to each acceptor after the INIT (FROZEN_INPUT), read there as the
  connections thaw (after a resync, once the client's own segment has set the position; see
  mip6.dserver.frozen_input), or by the donor if it keeps the client; such a donor closes
  again the connections its program had closed, since the resync takes their FIN back.
- For a recovery's time after its start and after a view without a member, C answers a segment
  of no connection with nothing rather than a RST: it may be a dead member's connection being
  resumed elsewhere.
- A client whose last connection here has ended keeps its binding here for the lifetime it
  granted: the buddy's replica keeps that binding alone (no connections), and should this
  member die first, the buddy binds the client to itself without claiming it (there is
  nothing of the client's to take from anyone), so the client's next SYN reaches a live
  member. The buddy's own buddy then keeps that binding in turn.
- Not survived: with ``hold_until_replicated: false``, a connection whose member dies between
  its SYN-ACK (or its answer) and the replica's arrival at the buddy; an idle client whose
  member's buddy left the group before the member died (its binding stayed with that buddy:
  the client reaches the group again when the binding expires or the member's new life
  answers); services whose output cannot be regenerated (their connections are not
  replicated).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Address
from typing import Any, NamedTuple, Protocol

from mip6.core import show
from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.binding_cache import sequence_newer
from mip6.core.binding_update_list import BulState, CorrespondentState
from mip6.core.config import MobileNodeConfig
from mip6.core.datapath import FastDecision, Ingress, encapsulate
from mip6.core.engine import UnknownCommand
from mip6.core.ipsec.errors import EspLocalError
from mip6.core.ipsec.policy import SecurityPolicyDatabase
from mip6.core.ipsec.sa import Direction
from mip6.core.node import UpperLayerError
from mip6.dserver import handoff as h
from mip6.dserver import membership as ms
from mip6.dserver import messages as msg
from mip6.dserver import udp
from mip6.dserver.channel import Channel, Closed, Established, MessageReceived, Role
from mip6.dserver.connection import MemberConnection, MemberListener, connect
from mip6.dserver.datagram import HeartbeatReceiver, HeartbeatSender
from mip6.dserver.frozen_input import Kept, carries_data, client_port, with_timestamp_at_least
from mip6.dserver.policy import (
    GroupView,
    LeastLoadedPolicy,
    LocalPolicy,
    LowestLatencyPolicy,
    Policy,
    RandomPolicy,
    RoundRobinPolicy,
    Selection,
    TargetFailure,
)
from mip6.dserver.relay import RelayTable
from mip6.dserver.tunnel import (
    TunnelledClients,
    TunnelTable,
    home_agent_tunnelled_source,
    mobility_header_refused,
)
from mip6.dserver.udp import DatagramService
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.host import TCP_DEFAULTS, TCP_TIMER, Host, IcmpError, UdpEndpoint, stack_ms
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.errors import WireError
from mip6.wire.walk import type2_routed, walk
from tcp_migrate.core import Config, ConnectionStateError, SnapshotError, TcpState
from tcp_migrate.stack import Socket, StackError

log = logging.getLogger(__name__)

DEFAULT_CHANNEL_PORT = 7171
SEQUENCE_UNKNOWN_SPREAD = 1 << 15  # a first binding's number: anywhere in the lower half
RELAY_TIMER = "relay_expiry"
TUNNEL_TIMER = "tunnel_expiry"
MIPV6_WAIT = "mipv6_wait"  # (MIPV6_WAIT, client): a new client's route optimization is late
SWEEP_TIMER = "sweep"
FREEZE_WAIT = "freeze_wait"  # a PREPARED held until the donor's next send (see _prepared)
MOVABLE_WAIT = "movable_wait"  # a PREPARED held until the client's connections are movable
MEMBERSHIP_TIMER = "membership"  # (MEMBERSHIP_TIMER, the membership engine's token)
LEAVE_TIMER = "leave"  # a graceful leave stops waiting for its clients' handoffs
CONTACT_STATE_TIMER = "contact_state"  # the contact node tells its backups C's registration
# the contact node, left alone in the core by suspecting the others, asks the home agent
# whether one of them took C over (see _view_changed)
CONTACT_CHECK_TIMER = "contact_check"
# A successor's first Binding Update for C goes this far above the last number the contact
# node reported (its retransmissions reuse a number, its refreshes are minutes apart), and its
# SAs' Sequence Number counters this far above theirs: more than anything a cut-off contact
# node can still send before it steps down (SecurityAssociation.export), under 2**32 / 4096.
CONTACT_SEQUENCE_SKIP = 8
SA_SEQUENCE_SKIP = 1 << 16
CONTACT_STATE_REPEAT = 10  # the report goes again every this many ticks even when unchanged
# a recovered client's Binding Update: this far above the replica's number (see _recover)
RECOVERY_STEP = h.SEQUENCE_WINDOW // 2
RECOVER_TIMER = "recover"  # (RECOVER_TIMER, client): a recovered client bound in time or reset
# (REPLICA_ACK_TIMER, client): what the client's connections hold back goes out even though no
# REPLICA_ACK came (the buddy is slow or dead: the view will say, and a new buddy gets them)
REPLICA_ACK_TIMER = "replica_ack"
# (CLIENT_QUERY_TIMER, client): a recovery's CLIENT_QUERY had no CLIENT_CLAIMED in time
CLIENT_QUERY_TIMER = "client_query"
# (PAUSE_TIMER, client): a client paused at this member's removal was claimed by nobody
PAUSE_TIMER = "paused"
# (ANSWER_TIMER, client, asker): a CLIENT_QUERY about a client whose connections here were
# resumed and not yet heard from (see _client_queried) is answered now if they still live
ANSWER_TIMER = "answer"
# seconds a recovery waits for a CLIENT_CLAIMED: the answer of a live member is a channel
# round trip away (urgent, ahead of replicas), and a dead one's is never coming. But behind
# the replicas already in the channel's send buffer on a lossy path, and on a channel just
# opened (a new buddy gets every replica at once), it took over a second: the recovery went
# above the acceptor serving the client, its stale replica met the client, and the download
# was reset (a chaos run's). Going above takes this much longer when nobody serves.
CLIENT_QUERY_WAIT = 3.0
# how long a connection's replica outlives its entry into TIME_WAIT (see _owes): this many of
# its retransmission timeouts, and at least TIME_WAIT_GRACE_MIN_MS. The client sends its FIN
# again at its own timer, which ours says nothing about: a chaos run's client, its timer backed
# off to 1.2 s, sent it after three of the member's timeouts, its replica dropped and the
# member dead meanwhile, and met a RST. A FIN again restarts the grace (and TIME_WAIT), so
# only a client whose timer stands above the floor (three back-offs from 1 s) outruns it.
TIME_WAIT_GRACE_RTOS = 3
TIME_WAIT_GRACE_MIN_MS = 10_000
# a resumed connection's longest wait for its client's retransmission (tcp_migrate caps it at
# the stack's longest retransmission timeout, RFC 6298 2.5's 60 s at least)
LONGEST_PEER_WAIT_MS = 60_000
# a recovery binding its client is given this many rebinding periods (rebind_timeout) in all
# while its binding is still under way: return routability goes through the contact node,
# which may have died with the member (its successor takes over in a second or two, and the
# mobile node's HoTI retries back off); the client's TCP waits far longer than that
RECOVERY_LIMIT = 4
LEAVE_HANDOFF_WAIT = 10.0  # seconds a leaving member gives its clients' handoffs
# after a first routing header, the headers that could carry more of the chain
_WALK_NEEDED = frozenset(
    (protocols.HOP_BY_HOP, protocols.ROUTING, protocols.DESTINATION_OPTIONS, protocols.FRAGMENT)
)
_TCP_SYN, _TCP_ACK = 0x02, 0x10  # RFC 9293 3.1 control bits
FROZEN = "frozen"  # the donor's phase (history) when it freezes the client's connections
# timeouts in a row after which a client connection's sender state is logged at each sweep
BACKED_OFF = 3
SWEEP_INTERVAL = 5.0  # seconds between sweeps of bindings no connection needs any more


POLICIES = ("random", "round_robin", "least_loaded", "lowest_latency", "local")


def named_policy(name: str, view: GroupView, rng: random.Random) -> Policy:
    """The built-in policy a configuration names (content-aware and user-written policies
    are objects: :class:`Member`'s ``policy``)."""
    if name == "random":
        return RandomPolicy(view, rng)
    if name == "round_robin":
        return RoundRobinPolicy(view)
    if name == "least_loaded":
        return LeastLoadedPolicy(view)
    if name == "lowest_latency":
        return LowestLatencyPolicy(view)
    if name == "local":
        return LocalPolicy()
    raise ValueError(f"no policy {name!r} (known: {', '.join(POLICIES)})")


# The host TCP's settings a member sets itself (a ``tcp`` block may not), and why.
TCP_FIXED = {
    # a handoff message behind an unacknowledged one would otherwise wait for the peer's
    # delayed ACK (RFC 9293 3.7.4), 160 ms of the client's gap
    "nodelay": "a member sends without Nagle's delay (its handoff messages would wait)",
    "time_wait_ms": "a member's TIME-WAIT is member.time_wait (seconds)",
}


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """One member. ``contact_node`` is the contact node's own address (the member whose
    ``own_address`` it is registers C); ``members`` every member's own address (static
    membership) or, with ``membership`` set (dynamic membership, :mod:`.membership`), the
    members this one may already know: the contact node founds the group, every other member
    joins it through the contact address, and the policy chooses among the members of the
    committed view. ``group_key`` (32 bytes or more) keys the member channel and is never
    shown."""

    contact_address: IPv6Address
    home_agent: IPv6Address
    own_address: IPv6Address
    contact_node: IPv6Address
    members: tuple[IPv6Address, ...]
    group_key: bytes = field(repr=False)
    channel_port: int = DEFAULT_CHANNEL_PORT
    home_prefix_length: int = 64
    prepare: bool = True  # RR in advance (PREPARE before INIT)
    distribute: bool = True  # the contact node hands each new client to the policy's member
    attempt_timeout: float = h.DEFAULT_ATTEMPT_TIMEOUT
    rebind_timeout: float = h.DEFAULT_REBIND_TIMEOUT
    binding_lifetime: int = 420
    relay_capacity: int = 4096
    relay_lifetime: float = 5.0
    # clients without Mobile IPv6 (DSERVER 3, mip6.dserver.tunnel): seconds a new client's
    # return routability may take before the contact node takes it for one (an ICMPv6
    # Parameter Problem or a Binding Error 2 says so at once); the contact node's tunnel
    # table's size, and how long an entry lives after its client's last packet
    # long: a Mobile IPv6 client's return routability through a contact node being taken
    # over can take seconds (the chaos runs misjudged clients at 3 s), and a client without
    # it says so at once as a rule (Linux: the Parameter Problem)
    mipv6_timeout: float = 10.0
    tunnel_capacity: int = 4096
    tunnel_lifetime: float = 420.0
    max_handoffs: int = 4096  # handoffs in progress, either side
    policy: str = "random"  # a name of POLICIES, when no Policy object is given
    # A server closes first and keeps each finished client in TIME-WAIT: with the stack's
    # defaults (1,024 connections, 240 s) a member could finish about 4 clients a second.
    # Linux holds TIME-WAIT 60 s; timestamps guard a reused 4-tuple (RFC 7323 5.8, RFC 6191).
    max_connections: int = 16384
    time_wait: float = 60.0  # seconds
    # bytes of each connection's send ring (None: the stack's); what a full snapshot can
    # carry at most (the seeds' experiments: "about 90 kB" of socket state)
    send_buffer: int | None = None
    mobile_node: MobileNodeConfig | None = None  # constants; addresses are set from the above
    tcp: Config | None = None  # the host's TCP (default TCP_DEFAULTS), but for TCP_FIXED's keys
    membership: ms.MembershipConfig | None = None  # None: the static ``members`` list
    # dynamic membership: may join the core and take the contact address over (with ESP, a
    # backup needs the contact address's SA configured, as the contact node has it)
    backup: bool = True
    # dynamic membership: each client's connections replicated to the buddy (issue 15 item 3)
    replication: bool = True
    # a connection's SYN-ACK and answers wait for the buddy's REPLICA_ACK (a round trip
    # between members on each; false: sent at once, lost with the member if it dies first)
    hold_until_replicated: bool = True
    # seconds a connection holds back what it sends for a replica the buddy has not
    # acknowledged before it sends it anyway
    replica_ack_timeout: float = 1.0
    # UDP services (mip6.dserver.udp): flows at most, seconds before an idle flow is
    # forgotten, seconds a handed-off client's datagrams are dropped here
    udp_flows: int = udp.MAX_FLOWS
    udp_flow_idle: float = udp.FLOW_IDLE
    udp_straggler_time: float = udp.STRAGGLER_TIME

    @property
    def is_contact_node(self) -> bool:
        return self.own_address == self.contact_node


class Service(Protocol):
    """An application on the contact address, driven by its sockets' callbacks."""

    # Whether a connection whose output is not regenerable may be replicated to the buddy
    # with its unacknowledged bytes (tcp_migrate's full replica): the service's state then
    # describes every point of the connection, as a handoff's does, and the service asks
    # for a replica (Member.request_replicate, holding the socket) whenever it sends. False:
    # such a client is not replicated (counted ``replica_not_regenerable``): a proxy's
    # exchange with a server on this box goes on nowhere else.
    full_replicas: bool

    def accepted(self, member: Member, sock: Socket) -> None:
        """A new client connection (the service sets ``sock.on_change``)."""

    def export_state(self, sock: Socket) -> tuple[bytes, bool]:
        """The connection's application state, and whether its output is regenerable (the
        snapshot then leaves unacknowledged bytes out: DSERVER 4 rule 5)."""

    def handed_in(self, member: Member, sock: Socket, state: bytes) -> None:
        """A connection imported (frozen) with its application state; output the service
        writes now leaves once it thaws."""

    def handed_off(self, sock: Socket) -> None:
        """Another member serves ``sock`` now: forget it."""

    def handoff_failed(self, client: IPv6Address, tried: tuple[IPv6Address, ...]) -> None:
        """The seeds' ``failed_handoff``: the client stayed here (or was reset)."""

    def movable(self, sock: Socket) -> bool:
        """Whether the connection may be frozen for a handoff now. While False, a handoff of its
        client (whoever asked: the contact node's distribution, ``mip6 ctl handoff``, a
        leave) waits at its freeze, half an attempt at most, and then ends with the client
        kept (without PREPARE, which freezes at once, it is refused): a proxy in the middle
        of an exchange with a server that stays on this box (:mod:`mip6.apps.proxy`) could
        not go on with it anywhere else."""


@dataclass(slots=True)
class _Outgoing:
    """A handoff this member gives: the machine, the frozen sockets, the client's binding."""

    donor: h.Donor
    socks: list[Socket] = field(default_factory=list)
    binding: CorrespondentState | None = None
    binding_at: float = 0.0  # when ``binding`` was taken out of the mobile node (its tokens' ages)
    inits: dict[IPv6Address, int] = field(default_factory=dict)  # each INIT's target: its number
    refused_by: set[IPv6Address] = field(default_factory=set)  # answered FAILED: released
    outbid: int | None = None  # a BA 135's number, to outbid when the rebinding times out
    rebinding_since: float | None = None  # when this donor began to bind the client back
    # a window below the first INIT's number: every acceptor's is at least that far above
    # (the number the replicas of the frozen client carry; see replicate)
    base_sequence: int = 0
    started: float = 0.0
    phases: list[tuple[float, str]] = field(default_factory=list)
    # what the client sent the frozen connections (see mip6.dserver.frozen_input)
    frozen_input: Kept = field(default_factory=Kept)


@dataclass(slots=True)
class _Incoming:
    acceptor: h.Acceptor
    init: msg.Init | None = None
    socks: list[Socket] = field(default_factory=list)
    started: float = 0.0
    phases: list[tuple[float, str]] = field(default_factory=list)
    client_packed: bytes = b""  # the acceptor's client, as packets carry it
    tunnelled: bool = False  # the client speaks no Mobile IPv6 (PREPARE's or INIT's T flag)
    waited_for_view: bool = False  # its timeout was put off once (see _wait_for_view)
    frozen_input: Kept = field(default_factory=Kept)  # the donor's FROZEN_INPUT, till the thaw


@dataclass(frozen=True, slots=True)
class _Recovery:
    socks: list[Socket]  # the client's connections imported from the replica, frozen
    sequence: int | None  # the replica's binding number; None: its sender had not bound it
    origin: IPv6Address  # the member that served the client (dead, or removed while alive)
    started: float  # when: it binds the client within RECOVERY_LIMIT rebinding periods
    serial: int | None = None  # the replica's (None: an adopted INIT's connections)
    view: int = 0  # the view number the replica was taken in
    # the number a later binding holds (BA 135) while CLIENT_QUERY asks who serves the client
    asked: int | None = None
    tunnelled: bool = False  # no Mobile IPv6: bound by the contact node's tunnel table
    idle: bool = False  # only the binding: the client had no connection at the dead member


class _Sent(NamedTuple):
    """Where a client's last replica went, and the connections (4-tuples) it carried."""

    buddy: IPv6Address
    keys: frozenset[tuple[bytes, int, bytes, int]]


class _SynQuery(NamedTuple):
    """A new life's question about a client whose SYN came through an earlier life's binding
    (see Member._old_binding_syn): "unasked" (no view yet), "asked" (until the answer's
    time), "claimed" (until a rebinding period has passed) or "free" (SYNs are taken)."""

    state: str
    until: float


@dataclass(frozen=True, slots=True)
class _HeldReplica:
    replica: msg.Replica
    received: float  # when it came: it is at least this old when it is resumed

    def binding_expired(self, now: float) -> bool:
        """The client's binding to the sender has run out (the replica's lifetime, an upper
        bound: counted from its arrival)."""
        return self.received + self.replica.lifetime <= now


class Member:
    def __init__(
        self,
        *,
        config: MemberConfig,
        rng: random.Random,
        random_bytes: Callable[[int], bytes],
        policy: Policy | None = None,
        security: SecurityPolicyDatabase | None = None,
        tcp_secret: bytes | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self.random_bytes = random_bytes
        self.contact_address = config.contact_address
        self.own_address = config.own_address
        self._contact_packed = config.contact_address.packed  # compared with every packet
        self._own_packed = config.own_address.packed
        contact_node = config.is_contact_node
        self._is_contact_node = contact_node  # asked for every packet; changes on takeover
        self.contact_node = config.contact_node  # the member that registers C, as we know it
        self._security = security  # the contact address's SA, used if this member takes over
        # the contact node's lease ran out (membership's split-brain rule): C's registration
        # is not refreshed until it holds the lease again; a refresh that fell due meanwhile
        self._lease_lost = False
        self._lease_lost_at = 0.0
        self._refresh_due = False
        # a backup: the contact node's last report of C's registration (CONTACT_STATE);
        # the contact node: what it last sent each backup
        self._contact_state: msg.ContactState | None = None
        self._contact_state_sent: dict[IPv6Address, msg.ContactState] = {}
        self._contact_state_ticks = 0
        # replication (issue 15 item 3): the replicas other members sent us (member -> client
        # -> replica), where our clients' replicas went (client -> buddy), and the clients
        # recovered from a dead member whose binding is being moved here (client -> recovery)
        self._replicas: dict[IPv6Address, dict[IPv6Address, _HeldReplica]] = {}
        self._replicated: dict[IPv6Address, _Sent] = {}
        # clients whose replica moved to a new buddy: the old holders, dropped there once the
        # new buddy acknowledges a replica numbered at least this (see _follow_buddy)
        self._moving: dict[IPv6Address, tuple[frozenset[IPv6Address], int]] = {}
        # the buddy replicas went to, and the one before it until the new one acknowledges
        # a replica (see replicate)
        self._last_buddy: IPv6Address | None = None
        self._fallback_buddy: IPv6Address | None = None
        self._buddyless = False  # no buddy since the replicas were sent (see _follow_buddy)
        # clients paused when the group removed this member alive: their connections, frozen
        # until the buddy resuming them claims them or PAUSE_TIMER (see _pause_replicated)
        self._paused: dict[IPv6Address, list[Socket]] = {}
        # clients frozen for a handoff when the group removed this member alive: should the
        # handoff fail, they pause at its thaw instead of being served on (client -> buddy)
        self._pause_at_thaw: dict[IPv6Address, IPv6Address] = {}
        # the buddy when a view without this member came (see _view_changed)
        self._buddy_at_removal: IPv6Address | None = None
        self._letting_go: list[Socket] = []  # see let_go
        # client -> when this member last sent CLIENT_CLAIMED for it (see _claim, _claimed)
        self._claims_sent: dict[IPv6Address, float] = {}
        self._replicate_queued: set[IPv6Address] = set()  # request_replicate, not yet run
        self._recovering: dict[IPv6Address, _Recovery] = {}
        # until then a SYN through a binding this life did not make waits for the group's
        # answer (see _old_binding_syn)
        self._new_life_until = 0.0
        self._syn_queries: dict[IPv6Address, _SynQuery] = {}
        # connections holding back what they send, each until the REPLICA_ACK of a replica
        # with at least this serial (one taken after the hold) comes (see request_replicate)
        self._held_for: dict[Socket, int] = {}
        # clients whose holds waited once past replica_ack_timeout (see _replica_ack_due)
        self._ack_waited: set[IPv6Address] = set()
        # handoffs accepted here whose DONE waits for the buddy's replica: donor, message
        self._done_after_replica: dict[IPv6Address, tuple[IPv6Address, msg.Done]] = {}
        self._replica_serial = 0
        # until then a segment to C for no connection here gets no RST: the connection may be
        # a dead member's, being resumed by its buddy (see _withhold_rst)
        self._quiet_until = 0.0
        self._view_order: list[IPv6Address] = []  # the committed view's members by join id
        self._core: tuple[IPv6Address, ...] = ()  # the committed view's core
        self._join_ids: dict[IPv6Address, int] = {}  # each member's join id in that view
        # C's registration may go above the home agent's number (BA 135) until its first
        # acknowledgement: the founder's (a binding left from an earlier run), a successor's
        # without a report. After that, a BA 135 means another member registered C since.
        self._home_sequence_free = contact_node
        base = config.mobile_node or MobileNodeConfig(
            home_address=config.contact_address, home_agent=config.home_agent
        )
        mobile_config = replace(
            base,
            home_address=config.contact_address,
            # only the contact node talks to the home agent; the others go through it
            home_agent=config.home_agent if contact_node else config.contact_node,
            home_prefix_length=config.home_prefix_length,
            correspondent_registration_lifetime=float(config.binding_lifetime),
            route_optimization=False,  # the member decides whom to route-optimize with
        )
        self.mobile = MobileNode(
            config=mobile_config,
            rng=rng,
            care_of_address=config.own_address,
            care_of_at_start=config.own_address if contact_node else None,
            home_registration=contact_node,
            tunnel_relay=None if contact_node else config.contact_node,
            security=security if contact_node else None,
            sequence_recovery=False,
            home_test_relay=self._relay_home_test if contact_node else None,
            # dynamic membership: a BA 135 to C's registration is the member's to judge
            home_sequence_recovery=config.membership is None,
        )
        self.host = Host(
            addresses=(config.own_address, config.contact_address),
            secret=tcp_secret or random_bytes(32),
            tcp_config=replace(
                config.tcp or TCP_DEFAULTS,
                nodelay=True,
                time_wait_ms=int(config.time_wait * 1000),
            ),
            max_connections=config.max_connections,
            rng=rng,
            send_overhead=self.mobile.send_overhead,
        )
        if config.send_buffer is not None:
            self.host.stack.send_capacity = config.send_buffer
        self.membership = (
            ms.Membership(config.own_address, rng, config.membership)
            if config.membership is not None
            else None
        )
        if self.membership is not None and config.replication:
            self.host.stack.withhold_rst = self._withhold_rst
        # dynamic membership: the members of the committed view, once it comes
        initial = set(config.members) if self.membership is None else set()
        self.view = GroupView(initial | {config.own_address})
        self.policy: Policy = policy or named_policy(config.policy, self.view, rng)
        self.relay = RelayTable(config.relay_capacity, config.relay_lifetime)
        # clients without Mobile IPv6: the contact node's table of where their packets go,
        # and the ones this member serves through it (mip6.dserver.tunnel)
        self.tunnels = TunnelTable(config.tunnel_capacity, config.tunnel_lifetime)
        self.tunnelled = TunnelledClients()
        # new clients whose first route optimization the contact node runs: one still
        # unbound at its MIPV6_WAIT speaks no Mobile IPv6 (a handoff or a binding ends the wait)
        self._awaiting_mipv6: set[IPv6Address] = set()
        # handoffs asked for such a client meanwhile: (target, elsewhere, first bytes)
        self._handoff_when_known: dict[IPv6Address, tuple[IPv6Address | None, bool, bytes]] = {}
        self._home_agent_packed = config.home_agent.packed
        self.services: dict[int, Service] = {}
        # UDP services on C and their clients' flows (mip6.dserver.udp)
        self.udp = udp.DatagramServices(
            self.host,
            config.contact_address,
            lambda: self._now,
            self._new_datagram_client,
            max_flows=config.udp_flows,
            flow_idle=config.udp_flow_idle,
            straggler_time=config.udp_straggler_time,
        )
        self._listeners: list[Any] = []
        self._service_listeners: dict[int, Any] = {}
        self._channels: dict[IPv6Address, MemberConnection] = {}
        self._outgoing: dict[int, _Outgoing] = {}
        self._incoming: dict[tuple[IPv6Address, int], _Incoming] = {}
        # handoffs finished here, the last max_handoffs of each side, oldest first: an
        # acceptor's (donor, id) -> whether it took the client; a donor's ids
        self._finished_incoming: dict[tuple[IPv6Address, int], bool] = {}
        self._finished_outgoing: dict[int, None] = {}
        self._by_client: dict[IPv6Address, int] = {}  # client -> its donor handoff here
        self._distribute_when_bound: set[IPv6Address] = set()
        # client (packed) -> (acceptor, handoff id, its packet came): PREPARED held until a send
        self._freeze_after_send: dict[bytes, tuple[IPv6Address, int, bool]] = {}
        # client (packed) -> (acceptor, handoff id): PREPARED held until the client's
        # connections are movable again (see _prepared_input)
        self._held_for_movable: dict[bytes, tuple[IPv6Address, int]] = {}
        # clients (packed) whose connections are frozen here: their new SYNs are dropped
        self._frozen_clients: set[bytes] = set()
        # the last SYN of a new connection each frozen client sent here: taken should the
        # handoff keep the client (see _packet)
        self._syn_during_handoff: dict[bytes, bytes] = {}
        # the last SYN of a new connection each paused client sent here: taken should the
        # pause end unclaimed (see _packet)
        self._syn_while_paused: dict[bytes, bytes] = {}
        # client -> the number of this member's Binding Update the client's packets came
        # through while it waited for its acknowledgement (see _client_packet)
        self._sent_through: dict[IPv6Address, int] = {}
        # a client's kept packets (FROZEN_INPUT) for connections still resynchronizing, with
        # when to forget them (see _replay)
        self._replay_after_resync: dict[bytes, tuple[list[Socket], list[bytes], float]] = {}
        self._pending: list[Action] = []  # actions produced inside callbacks
        self._deferred: list[Callable[[], None]] = []  # work callbacks asked for
        self._now = 0.0
        self.history: list[dict[str, Any]] = []  # finished handoffs, newest last (bounded)
        self.counters: dict[str, int] = {}
        # dynamic membership: heartbeats as datagrams (mip6.dserver.datagram says why)
        # made at start and only then, so that a static group draws nothing more from
        # random_bytes (its seeded runs stay what they were)
        self._heartbeat_sender: HeartbeatSender | None = None
        self._heartbeat_receiver = HeartbeatReceiver(config.group_key, self.counters)
        self._heartbeat_port: UdpEndpoint | None = None
        self._stopped = False
        self._leaving = False  # a graceful leave is handing the clients on (then leaves)

    # -- the engine contract -------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        return self._run(now, self._start)

    def _start(self, now: float) -> None:
        self._emit(StartTimer(now + SWEEP_INTERVAL, SWEEP_TIMER))
        channel_listener = self.host.listen(self.config.channel_port, self.own_address)
        self._listeners.append(
            MemberListener(channel_listener, self._make_channel, self._channel_event)
        )
        self._mobile(self.mobile.start(now))
        if self.membership is not None:
            # a member that does not know the contact node reaches it at the contact address
            # (SPEC-dserver 8.1 Q1): the home agent tunnels that to whoever registered C
            self._heartbeat_sender = HeartbeatSender(
                self.config.group_key, self.own_address, self.random_bytes
            )
            self._heartbeat_port = self.host.udp_bind(
                self.config.channel_port, self._heartbeat_datagram
            )
            contact_listener = self.host.listen(self.config.channel_port, self.contact_address)
            self._listeners.append(
                MemberListener(contact_listener, self._make_channel, self._channel_event)
            )
            self._emit(StartTimer(now, CONTACT_STATE_TIMER))
            # a member started again after it died finds its old life's clients still bound
            # to its address while its buddy resumes them: no RST for them meanwhile
            config = self.membership.config
            self._quiet(config.failure_timeout + config.vote_timeout)
            self._new_life_until = self._quiet_until
            if self.config.is_contact_node:
                self._membership(self.membership.found(now))
            else:
                self._membership(self.membership.join(now, backup=self.config.backup))

    def serve(self, port: int, service: Service) -> None:
        """Run ``service`` on the contact address's ``port``."""
        if port in self.services:
            raise ValueError(f"port {port} is already served")
        listener = self.host.listen(port, self.contact_address)
        listener.on_change = lambda listener: self._accept(listener, service)
        # replicated from its SYN-ACK: the client takes the connection as established then,
        # and a member that dies before the client's first data would otherwise take it along
        listener.on_half_open = self._half_open
        self.services[port] = service
        self._listeners.append(listener)
        self._service_listeners[port] = listener

    def serve_datagrams(self, port: int, service: DatagramService) -> None:
        """Run ``service`` on the contact address's UDP ``port`` (:mod:`mip6.dserver.udp`)."""
        self.udp.serve(port, service)

    def _half_open(self, sock: Socket) -> None:
        self._watch_received(sock)
        self.request_replicate(IPv6Address(sock.key[2]), hold=(sock,))

    def _watch_received(self, sock: Socket) -> None:
        """What the client sends on ``sock`` is acknowledged only once a replica covers it
        (see request_replicate): acknowledged by a member that died before replicating it,
        a request (or an echo's line) never came again, and the buddy could only skip it."""
        if self._replicates():
            sock.on_received = self._received

    def _received(self, sock: Socket) -> None:
        if not sock.frozen:
            self.request_replicate(IPv6Address(sock.key[2]), hold=(sock,))

    def stop_serving(self, port: int) -> None:
        """The service on ``port`` accepts no more clients (its connections go on)."""
        listener = self._service_listeners.pop(port, None)
        if listener is not None:
            listener.close()
            self._listeners.remove(listener)

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        return self._run(now, functools.partial(self._packet, data=data))

    def send(self, now: float, data: bytes) -> list[Action]:
        return self.mobile.send(now, data)

    def poll(self, now: float) -> list[Action]:
        """What calls made outside the entry points left due: an asyncio application's writes
        and reads on its sockets, a ``request_handoff`` (the driver calls this soon after)."""
        return self._run(now, lambda now: None)

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        return self._run(now, functools.partial(self._timer, token=token))

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        return self.mobile.upper_layer_error(now, invoking, message)

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        return self.mobile.send_overhead(now, source, destination)

    # -- the daemon's C fast path (mip6.runtime.fast: FastPath, FastHost) ---------------------

    def fast_path_wanted(self) -> bool:
        """Whether the daemon's C fast path should run this member at all: not where it
        replicates its clients (dynamic membership with replication). There every request's
        acknowledgement and answer wait for a replica, so C would carry little, and the chaos
        runs of session 25 lost connections with it on (seeds 771, 773, 774; see the README)
        that they never lost on the Python path; the cause is not fully known yet."""
        return not self._replicates()

    def _replicates(self) -> bool:
        """Whether this member replicates its clients to a buddy (dynamic membership with
        replication)."""
        return self.membership is not None and self.config.replication

    def fast_version(self) -> Hashable:
        """The mobile node's, and whether this member is in the state where its own work on a
        client's data segment is none: the C fast path then takes established connections'
        segments (never a SYN) to the stack itself (:meth:`fast_delivered`)."""
        return (self.mobile.fast_version(), self._fast_quiet())

    def fast_decision(
        self, now: float, ingress: Ingress, source: bytes, destination: bytes
    ) -> FastDecision | None:
        """The mobile node's decisions (its type 2 routing headers removed, its Home Address
        options inserted), while nothing here looks at a client's data segments."""
        if not self._fast_quiet():
            return None
        return self.mobile.fast_decision(now, ingress, source, destination)

    def _fast_quiet(self) -> bool:
        """Nothing of _packet's own work applies to a data segment: no handoff coming in
        (_client_packet), no recovery, no replay after a resync, no freeze waiting for an
        answer to go out, and at the contact node no tunnel for clients without Mobile IPv6
        (_tunnel_on). SYNs, which _packet also looks at, the fast path never takes."""
        return not (
            self._incoming
            or self._recovering
            or self._replay_after_resync
            or self._freeze_after_send
            or (self._is_contact_node and self.tunnels)
        )

    def fast_opens(self) -> bool:
        """Whether the fast path may answer a SYN to a served port itself: quiet, and none of
        _packet's rules for SYNs applies (a frozen or paused client's new connection, an old
        binding's SYN after a restart), and the SYN-ACK need not wait for a replica
        (_half_open's hold, dynamic membership with replication)."""
        return (
            self._fast_quiet()
            and not self._frozen_clients
            and not self._paused
            and self._now >= self._new_life_until
            and not self._replicates()
        )

    def fast_delivered(self, now: float, delivered: list[tuple[Socket, bool]]) -> list[Action]:
        """Connections the fast path gave segments (and sent their answers), each with whether
        RCV.NXT moved: the stack's bookkeeping after them (:meth:`Host.after_input`)."""
        return self._run(
            now, lambda now: self._host_actions_pending(now, self.host.after_input(now, delivered))
        )

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        """``handoff``: a client's address, or (client, member) to name the acceptor; the
        client goes to another member (the policy's choice when the named one fails).
        ``leave``: leave the group gracefully (dynamic membership). ``clear_binding``: a
        client's address: its binding for the contact address is deleted (the seeds'
        ``Close(true)``, :meth:`request_clear_binding`), so its next connection reaches the
        contact node (labnet's experiments start each download so)."""
        if name == "leave":
            self._check_can_leave()
            return self._run(now, self._leave)
        if name == "clear_binding":
            return self._run(now, lambda now: self._clear_binding(IPv6Address(argument)))
        if name != "handoff":
            raise UnknownCommand(name, "member")
        client, target = (argument, None) if isinstance(argument, str) else tuple(argument)
        address = IPv6Address(client)
        # an operator's command answers what cannot start (the engine's own callers learn it
        # from handoff's None): accepted, a handoff of a client served elsewhere read as done
        if address in self._by_client or address in self._handoff_when_known:
            raise ValueError(f"a handoff of {address} is under way")
        if address in self._paused or address in self._recovering:
            raise ValueError(f"{address} waits for its recovery here or at the buddy")
        if (
            not self.client_sockets(address)
            and not self.udp.holds(address)
            and address not in self._awaiting_mipv6
        ):
            raise ValueError(f"{address} is not served by this member")
        return self._run(
            now,
            lambda now: self.handoff(
                address, IPv6Address(target) if target else None, elsewhere=True
            ),
        )

    def stop(self, now: float) -> list[Action]:
        """Leave: services stop, open connections are reset, the home registration (contact
        node) is deleted. Handing clients to others first is graceful leave (membership)."""
        self._stopped = True
        for listener in self._listeners:
            listener.close()
        actions = self._host_actions(now, self.host.close(now))
        return actions + self._mobile_now(now, self.mobile.stop(now))

    def stopped(self) -> bool:
        return self.mobile.stopped()

    def describe(self, what: str, now: float) -> dict[str, Any]:
        if what == "clients":
            return {"what": what, "rows": self._client_rows(now)}
        if what == "handoffs":
            return {"what": what, "rows": self._handoff_rows()}
        if what == "relay":
            return {"what": what, "rows": self.relay.rows(now)}
        if what == "tunnel":
            return {"what": what, "rows": self.tunnels.rows(now)}
        if what == "members":
            return {"what": what, "rows": self._member_rows(now)}
        if what == "tcp":
            return show.rows(what, self.host.describe()["connections"])
        if what == "udp":
            return show.rows(what, self.udp.rows())
        if what == "stats":
            membership = self.membership
            return show.counters(
                what,
                ("", self.counters),
                ("relay.", self.relay.counters),
                ("udp.", self.udp.service_counters()),
                ("tunnel.", self.tunnels.counters),
                ("mobile.", self.mobile.counters),
                ("host.", self.host.describe()["counters"]),
                (
                    "membership.",
                    {
                        "unexpected": membership.unexpected,
                        "unreachable_core_ignored": membership.unreachable_core_ignored,
                    }
                    if membership is not None
                    else {},
                ),
            )
        return self.mobile.describe(what, now)

    # -- one entry point's work ----------------------------------------------------------------

    def _run(self, now: float, work: Callable[[float], object]) -> list[Action]:
        """Every entry point: do ``work`` at ``now``, then whatever callbacks deferred, then
        collect the host's output through the mobile node's send path."""
        self._now = now
        work(now)
        while self._deferred:
            deferred, self._deferred = self._deferred, []
            for job in deferred:
                job()
        self._host_actions_pending(now, self.host.poll(now))
        if self._letting_go:
            # after what the stack had to send for them, held ones once their replica's
            # acknowledgement let it go (see let_go)
            ms_now = stack_ms(now)
            for sock in [sock for sock in self._letting_go if sock.held is None]:
                self.host.stack.release(ms_now, sock)
                self._letting_go.remove(sock)
        ready = [c for c, (_, _, answered) in self._freeze_after_send.items() if answered]
        if ready:
            # after the stack's answer to the client's packet has left (see _prepared)
            for client in ready:
                self._freeze_waited(client)
            self._host_actions_pending(now, self.host.poll(now))
        movable = [c for c in self._held_for_movable if self._client_movable(IPv6Address(c))]
        if movable:
            for client in movable:
                self._movable_waited(client, movable=True)
            self._host_actions_pending(now, self.host.poll(now))
        actions, self._pending = self._pending, []
        return actions

    def _emit(self, *actions: Action) -> None:
        self._pending.extend(actions)

    def _host_actions_pending(self, now: float, host_actions: list[Any]) -> None:
        self._pending += self._host_actions(now, host_actions)

    def _host_actions(self, now: float, host_actions: list[Any]) -> list[Action]:
        out: list[Action] = []
        for action in host_actions:
            if isinstance(action, Transmit):
                out += self._mobile_now(now, self.mobile.send(now, action.data))
            elif isinstance(action, IcmpError):
                out += self.mobile.upper_layer_error(now, action.invoking, action.message)
            else:  # the host's TCP timer, kept among the engine's (see handle_timer)
                out.append(action)
        return out

    def _mobile(self, actions: list[Action]) -> None:
        self._pending += self._mobile_now(self._now, actions)

    def _mobile_now(self, now: float, actions: list[Action]) -> list[Action]:
        """The mobile node's actions: delivered packets go to the host, events that concern a
        handoff drive it; the rest is the runtime's."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Deliver):
                if self._is_contact_node and self._refused_mobility_header(action.data):
                    continue
                out += self._host_actions(now, self.host.deliver(now, action.data))
            elif isinstance(action, Event):
                out.append(action)
                self._deferred.append(functools.partial(self._mobile_event, action))
            else:
                out.append(action)
        return out

    # -- packets -------------------------------------------------------------------------------

    def _packet(self, now: float, data: bytes) -> None:
        if self._is_contact_node and self._from_member_tunnel(now, data):
            return
        if self._is_contact_node and self.tunnels and self._tunnel_on(now, data):
            return
        if self._frozen_clients and self._new_connection_of_frozen_client(data):
            # the handoff moves the connections there were at the freeze; one opened now
            # would stay here when the binding moves, and the client's next segment would
            # meet the acceptor's RST. The client sends its SYN again (RFC 9293 3.8.1), by
            # then to the member that holds its binding. Kept here (the handoff failed and
            # this member bound the client again), it is taken then: its next copy may be
            # seconds away (RFC 6298 5.5's backoff), and a chaos run's client lost its whole
            # download's time to SYNs dropped at a donor whose attempts all failed, and then
            # to that donor's death.
            self._count("syn_during_handoff_dropped")
            self._syn_during_handoff[_client_of(data)] = data
            return
        if self._paused and self._new_connection_of_paused_client(data):
            # as for a frozen client: the claim of whoever resumed the client lets its
            # connections here go, and one opened now, which the claimer holds no replica
            # of, went with them (a chaos run: a member removed alive took a paused
            # client's new connection, its buddy's claim came 20 ms later, and the
            # download stalled at 0 bytes). The client sends its SYN again, by then to the
            # claimer; nobody claiming the client, it is taken here (_pause_over).
            self._count("syn_while_paused_dropped")
            self._syn_while_paused[_client_of(data)] = data
            return
        if now < self._new_life_until and self._old_binding_syn(data):
            return
        if (self._incoming or self._recovering) and self._through_binding(data):
            self._client_packet(now, data[8:24])
        self._mobile(self.mobile.handle_packet(now, data))
        if self._replay_after_resync:
            self._replay_if_resynced(data)
        if self._freeze_after_send:
            source = data[8:24]
            waiting = self._freeze_after_send.get(source)
            if waiting is not None:
                self._freeze_after_send[source] = (*waiting[:2], True)

    def _take_dropped_syn(
        self, kept: dict[bytes, bytes], client: IPv6Address, counter: str
    ) -> None:
        """The last SYN of ``client``'s that ``_packet`` dropped and ``kept``, taken once this
        entry point is done (the frozen handoff kept the client, or the pause ended unclaimed)."""
        syn = kept.pop(client.packed, None)
        if syn is not None:
            self._count(counter)
            self._deferred.append(functools.partial(self._packet, self._now, syn))

    def _new_connection_of_paused_client(self, data: bytes) -> bool:
        """A SYN (without ACK) from a client paused here (see _pause_replicated)."""
        return IPv6Address(_client_of(data)) in self._paused and _bare_syn(_inner(data))

    def _new_connection_of_frozen_client(self, data: bytes) -> bool:
        """A SYN (without ACK) from a client whose connections are frozen here, through its
        binding or, at the contact node, through the home agent's tunnel."""
        return _client_of(data) in self._frozen_clients and _bare_syn(_inner(data))

    def _old_binding_syn(self, data: bytes) -> bool:
        """Whether ``data``, in this life's first recovery period, is a SYN to drop: one
        through a binding this life did not make (no Binding Update List entry, nothing of
        the client's here), from a client an earlier life served, whose connections its
        buddy may be resuming now, its binding still under way. Taken, the new connection
        stayed here when that binding moved the client away, and was lost when this member
        yielded to the buddy's claim (a chaos run's echo dialogue). The group is asked first
        (CLIENT_QUERY, once this life has a view): while a member claims the client (for a
        rebinding period) its SYNs are dropped, and the client sends them again, to that
        member once it has bound the client (RFC 9293 3.8.1); nobody claiming it within
        CLIENT_QUERY_WAIT of the question, they are taken."""
        source = IPv6Address(data[8:24])
        query = self._syn_queries.get(source)
        if query is not None and query.state == "free":
            return False
        if (
            not _bare_syn(data)
            or not self._through_binding(data)
            or self.mobile.bul.get(source) is not None
            or self.client_sockets(source)
            or source in self._recovering
            or source in self._by_client
        ):
            return False
        if query is not None and query.until <= self._now:
            if query.state == "asked":  # nobody claims the client
                self._syn_queries[source] = _SynQuery("free", self._new_life_until)
                return False
            query = None  # a claim ran out, or the view came: asked (again)
        self._count("syn_through_old_binding_held")
        if query is None:
            others = self.view.members - {self.own_address}
            if not others:  # no view yet: asked at the next SYN
                self._syn_queries[source] = _SynQuery("unasked", self._now)
                return True
            log.info("replication: a SYN from %s through an earlier life's binding: asked", source)
            self._syn_queries[source] = _SynQuery("asked", self._now + CLIENT_QUERY_WAIT)
            for member in others:
                self._send(member, msg.ClientQuery(client=source))
        return True

    def _through_binding(self, data: bytes) -> bool:
        """A client's packet to this member's own address with C in a type 2 routing header:
        its binding points here. A Binding Acknowledgement comes this way too, whatever its
        status (RFC 3775 9.5.4): only the client's traffic proves it, so not Mobility Header.
        The usual layout (the routing header first) is read in place; others are walked."""
        routed = type2_routed(data)
        if routed is not None and routed[1] not in _WALK_NEEDED:
            home, upper = routed
            return (
                home == self._contact_packed
                and data[24:40] == self._own_packed
                and upper != protocols.MOBILITY
            )
        try:
            chain = walk(data)
        except WireError:
            return False
        return (
            chain.routing_home_address == self._contact_packed
            and chain.destination == self._own_packed
            and chain.upper_protocol != protocols.MOBILITY
        )

    def _from_member_tunnel(self, now: float, data: bytes) -> bool:
        """DSERVER 4, the relay: a member's packet from C tunnelled to the contact node, which
        sends it on through the home agent as the registered mobile node. A HoTI's (client,
        cookie) is remembered, so that the HoT coming back goes to that member."""
        if len(data) < 80 or data[6] != protocols.IPV6 or data[24:40] != self.own_address.packed:
            return False
        source = data[8:24]
        if source not in self.view.packed or source == self._own_packed:
            return False
        member = IPv6Address(source)
        inner = data[40:]
        if inner[8:24] != self.contact_address.packed:
            self._count("relay_refused_source")
            return True
        try:
            chain = walk(inner)
        except WireError:
            self._count("relay_malformed")
            return True
        client = IPv6Address(chain.destination)
        if chain.upper_protocol == protocols.MOBILITY:
            try:
                payload = mh.parse_mobility_header(
                    inner[chain.upper_offset :], source=chain.source, destination=chain.destination
                )
            except WireError:
                self._count("relay_malformed")
                return True
            if isinstance(payload, mh.HomeTestInit):
                if not self.relay.add(now, client, payload.home_init_cookie, member):
                    return True  # the table is full of live entries (counted there)
                self._arm_relay_expiry()
        self._count("relay_forwarded")
        packet = encapsulate(inner, self.own_address, self.config.home_agent)
        security = self.mobile.security
        if security is not None:
            try:
                protected = security.output(packet)
            except EspLocalError:
                self._count("relay_cannot_protect")
                return True
            if protected is None:
                return True
            packet = protected
        self._emit(Transmit(packet))
        return True

    def _arm_relay_expiry(self) -> None:
        """Entries leave the relay table when their life ends, not only when the next HoTI
        makes room (a table nobody adds to would keep its dead entries)."""
        expiry = self.relay.next_expiry()
        self._emit(CancelTimer(RELAY_TIMER) if expiry is None else StartTimer(expiry, RELAY_TIMER))

    def _relay_home_test(self, now: float, inner: bytes, hot: mh.HomeTest) -> list[Action]:
        """A HoT that matches no entry of ours: an acceptor's, if the relay table knows it."""
        client = IPv6Address(inner[8:24])
        acceptor = self.relay.take(now, client, hot.home_init_cookie)
        self._arm_relay_expiry()
        if acceptor is None:
            return []
        return [Transmit(encapsulate(inner, self.own_address, acceptor))]

    # -- clients without Mobile IPv6 (DSERVER 3, mip6.dserver.tunnel) -------------------------

    def _tunnel_on(self, now: float, data: bytes) -> bool:
        """The contact node: a packet of a client without Mobile IPv6, from the home agent's
        tunnel, goes on to the member serving the client (True), tunnelled from here."""
        client = home_agent_tunnelled_source(
            data, self._home_agent_packed, self._own_packed, self._contact_packed
        )
        if client is None:
            return False
        member = self.tunnels.member_for(now, IPv6Address(client))
        if member is None or member == self.own_address:
            return False
        self.tunnels.counters["forwarded"] += 1
        self._emit(Transmit(encapsulate(data[40:], self.own_address, member)))
        return True

    def _arm_tunnel_expiry(self) -> None:
        expiry = self.tunnels.next_expiry()
        self._emit(
            CancelTimer(TUNNEL_TIMER) if expiry is None else StartTimer(expiry, TUNNEL_TIMER)
        )

    def _refused_mobility_header(self, packet: bytes) -> bool:
        """A client's ICMPv6 Parameter Problem for our HoTI or CoTI: it speaks no Mobile IPv6
        (True: the message is taken here, as the kernel of such a client would take it)."""
        client = mobility_header_refused(packet, (self._contact_packed, self._own_packed))
        if client is None:
            return False
        self._without_mipv6(client, "ICMPv6 Parameter Problem for the Mobility Header")
        return True

    def _without_mipv6(self, client: IPv6Address, why: str) -> None:
        """The contact node found that ``client`` speaks no Mobile IPv6 (DSERVER 3): it stops
        trying to bind it, serves it through the home agent's tunnel and hands it on like any
        other client, the tunnel following it."""
        self._awaiting_mipv6.discard(client)
        self._emit(CancelTimer((MIPV6_WAIT, client)))
        if client in self.tunnelled or client in self._by_client:
            return  # known already, or a handoff has it (its acceptor binds it as it can)
        entry = self.mobile.bul.get(client)
        if entry is not None and entry.state is BulState.BOUND:
            return  # bound: it does speak Mobile IPv6 (a forged error)
        self._count("client_without_mipv6")
        log.info("%s speaks no Mobile IPv6 (%s): served through the tunnel", client, why)
        if entry is not None:
            self._emit(*self.mobile.forget_correspondent(self._now, client))
        # its tunnel binding's acknowledgement distributes it (_bound), as a route-optimized
        # client's Binding Acknowledgement would
        self._bind_tunnel(client, self.rng.randrange(SEQUENCE_UNKNOWN_SPREAD))

    def _binding_lost(self, client: IPv6Address) -> None:
        """A Binding Error 1 from a client this member serves (the seeds' B8: it holds no
        binding for us; the mobile node has stopped route optimization with it and binds it
        again): until then its packets go to the home agent and so to the contact node, which
        tunnels them here at once."""
        if self._is_contact_node or not self.client_sockets(client):
            return  # the home agent's tunnel reaches the contact node as it is
        entry = self.mobile.bul.get(client)
        if entry is None:
            return
        self._count("binding_error_tunnelled")
        self._bind_tunnel(client, entry.sequence, route_optimized=True)

    def _bind_tunnel(
        self, client: IPv6Address, sequence: int, *, route_optimized: bool = False
    ) -> None:
        """Have the contact node tunnel ``client``'s packets here from ``sequence`` on; its
        answer is the binding's (:meth:`_tunnel_answered`). ``route_optimized``: the client
        speaks Mobile IPv6 and lost its binding; the tunnel bridges the time its binding takes
        to come back, and this member does not serve it through the tunnel after that."""
        if not route_optimized:
            self.tunnelled.asked(client, sequence)
        if not self._is_contact_node:
            self._send(self.contact_node, msg.Tunnel(client=client, sequence=sequence))
            return
        status, held = self.tunnels.bind(self._now, client, self.own_address, sequence)
        self._arm_tunnel_expiry()
        self._deferred.append(
            functools.partial(self._tunnel_answered, client, sequence, held, status)
        )

    def _tunnel_asked(self, member: IPv6Address, message: msg.Tunnel) -> None:
        """TUNNEL from ``member``: the contact node's table takes it, or says why not."""
        if not self._is_contact_node:
            status, held = msg.TunnelStatus.NOT_CONTACT_NODE, message.sequence
        elif member not in self.view.members:
            return  # a member that left; its clients are resumed by its buddy
        else:
            status, held = self.tunnels.bind(self._now, message.client, member, message.sequence)
            self._arm_tunnel_expiry()
        self._send(
            member,
            msg.TunnelAck(
                client=message.client, sequence=message.sequence, held=held, status=status
            ),
        )

    def _tunnel_answered(
        self, client: IPv6Address, sequence: int, held: int, status: msg.TunnelStatus | int
    ) -> None:
        """The contact node's answer to this member's TUNNEL: accepted, it is the binding's
        acknowledgement (a handoff's acceptor thaws, a donor keeps its client); a later
        number held means another member took the client."""
        if not self.tunnelled.answered(client, sequence, status):
            return  # not awaited: a stray, or a B8 bridge (nothing waits on it)
        if status is msg.TunnelStatus.ACCEPTED:
            self._bound(client)
        elif status is msg.TunnelStatus.SEQUENCE_OUT_OF_WINDOW:
            self._count("tunnel_out_of_window")
            if client in self._recovering:
                # a window or more above the replica's: a handoff's acceptor bound it (see
                # _out_of_window; the step stays below any acceptor's window)
                self._recovery_ask(client, held)
            outgoing = self._outgoing_of(client)
            if outgoing is not None and outgoing.donor.state is h.DonorState.REBINDING:
                if set(outgoing.donor.tried) <= outgoing.refused_by:
                    # every acceptor released it: their numbers are failed attempts'
                    self._bind_tunnel(client, (held + 1) & 0xFFFF)
                else:
                    self._donor_input(outgoing.donor.handoff_id, h.DonorInput.SUPERSEDED)
            self._rejected(client)
        else:
            name = status.name.lower() if isinstance(status, msg.TunnelStatus) else status
            self._count(f"tunnel_refused_{name}")
            self._rejected(client)

    def _announce_tunnels(self) -> None:
        """A new contact node (a takeover) starts with an empty table: the clients this
        member serves through the tunnel are bound there again, with the numbers they had,
        and the TUNNELs the old one did not answer go to the new one."""
        for client in {*self.tunnelled.serving, *self.tunnelled.pending}:
            sequence = self.tunnelled.sequence(client)
            if sequence is not None:
                self._count("tunnel_announced")
                self._bind_tunnel(client, sequence)

    def _client_packet(self, now: float, client: bytes) -> None:
        """The client's packet reached this member's own address through its binding: an
        acceptor whose acknowledgement was lost takes it as the acknowledgement (rule 2), and
        so does a member recovering the client of a dead one; and so do its replicas (the
        client holds the binding's number: see replicate)."""
        address = IPv6Address(client)
        entry = self.mobile.bul.get(address)
        if entry is not None and entry.state is not BulState.BOUND:
            self._sent_through[address] = entry.sequence
        if address in self._recovering:
            self._recovered(address)
        for key, incoming in list(self._incoming.items()):
            if (
                incoming.client_packed == client
                and incoming.acceptor.state is h.AcceptorState.BINDING
            ):
                self._acceptor_input(key, h.AcceptorInput.CLIENT_PACKET)

    def _timer(self, now: float, token: Hashable) -> None:
        match token:
            case "tcp":
                self._host_actions_pending(now, self.host.handle_timer(now, TCP_TIMER))
            case "contact_state":  # CONTACT_STATE_TIMER (every member, each heartbeat)
                self._report_contact_state()
                self._drop_finished_replicas()
                self._forget_released_holds()
                if self.membership is not None:
                    interval = self.membership.config.heartbeat_interval
                    self._emit(StartTimer(now + interval, CONTACT_STATE_TIMER))
            case ("recover", IPv6Address() as client):  # RECOVER_TIMER
                self._recovery_due(client)
            case ("paused", IPv6Address() as client):  # PAUSE_TIMER
                self._pause_over(client)
            case ("client_query", IPv6Address() as client):  # CLIENT_QUERY_TIMER
                self._query_unanswered(client)
            case ("answer", IPv6Address() as client, IPv6Address() as asker):  # ANSWER_TIMER
                if self._serves_heard(client):
                    log.info("replication: %s claimed for %s's question (heard)", client, asker)
                    self._send_claim((asker,), client)
            case ("replica_ack", IPv6Address() as client):  # REPLICA_ACK_TIMER
                self._replica_ack_due(client)
            case "contact_check":  # CONTACT_CHECK_TIMER
                self._check_registration()
            case "leave":  # LEAVE_TIMER
                self._leave_when_handed_on(waited=True)
            case "relay_expiry":
                self.relay.expire(now)
                self._arm_relay_expiry()
            case "tunnel_expiry":  # TUNNEL_TIMER
                self.tunnels.expire(now)
                self._arm_tunnel_expiry()
            case ("mipv6_wait", IPv6Address() as client):  # MIPV6_WAIT
                if client in self._awaiting_mipv6:
                    self._without_mipv6(client, "no return routability answer")
            case "sweep":
                self._sweep(now)
                self._emit(StartTimer(now + SWEEP_INTERVAL, SWEEP_TIMER))
            case ("handoff_donor", int() as handoff_id):
                if not self._outbid_due(handoff_id) and not self._rebinding_extended(handoff_id):
                    self._donor_input(handoff_id, h.DonorInput.TIMEOUT)
            case ("movable_wait", int() as handoff_id):  # MOVABLE_WAIT
                outgoing = self._outgoing.get(handoff_id)
                client = outgoing.donor.client.packed if outgoing is not None else b""
                held = self._held_for_movable.get(client)
                if held is not None and held[1] == handoff_id:
                    self._movable_waited(client, movable=False)
            case ("freeze_wait", int() as handoff_id):  # FREEZE_WAIT
                outgoing = self._outgoing.get(handoff_id)
                client = outgoing.donor.client.packed if outgoing is not None else b""
                waiting = self._freeze_after_send.get(client)
                if waiting is not None and waiting[1] == handoff_id:
                    self._freeze_waited(client)
            case ("handoff_acceptor", (IPv6Address() as donor, int() as handoff_id)):
                if not self._wait_for_view((donor, handoff_id)):
                    self._acceptor_input((donor, handoff_id), h.AcceptorInput.TIMEOUT)
            case (str() as kind, membership_token) if (
                kind == MEMBERSHIP_TIMER and self.membership is not None
            ):
                if not self._stopped:  # a stopped member is gone from the group, as a dead one
                    self._membership(self.membership.handle_timer(now, membership_token))
            case ("refresh", IPv6Address() as destination) if (
                self._lease_lost and self._is_contact_node and destination == self.mobile.home_agent
            ):
                self._refresh_due = True  # see _lease_lost
            case _:
                self._mobile(self.mobile.handle_timer(now, token))

    # -- services ------------------------------------------------------------------------------

    def _accept(self, listener: Any, service: Service) -> None:
        while (sock := listener.accept()) is not None:
            self._count("clients_accepted")
            client = IPv6Address(sock.key[2])
            if self._is_contact_node and client not in self._by_client:
                # before the service sees the connection: a handoff it asks for at once then
                # finds the client's binding begun, and numbers its INITs above it
                self._deferred.append(functools.partial(self._new_client, client))
            service.accepted(self, sock)

    def _new_client(self, client: IPv6Address) -> None:
        """The contact node's first contact with ``client`` (it came through the home agent's
        tunnel): route optimization at once (DSERVER 3), then the policy's choice once the
        client is bound here (the INIT then carries a sequence number the client accepts)."""
        if client in self._by_client:
            return  # being handed off already: the acceptor binds it
        if client in self.tunnelled:  # no Mobile IPv6 (DSERVER 3): hand it on as it is
            if self.config.distribute:
                self.handoff(client)
            return
        entry = self.mobile.bul.get(client)
        if entry is None:
            if self._bul_full():  # served here through the home agent's tunnel, unbound
                self._count("route_optimization_no_room")
                return
            self._mobile(self.mobile.start_route_optimization(self._now, client))
            self._awaiting_mipv6.add(client)
            self._emit(StartTimer(self._now + self.config.mipv6_timeout, (MIPV6_WAIT, client)))
        if self.config.distribute:
            if entry is not None and entry.state is BulState.BOUND:
                self.handoff(client)
            else:
                self._distribute_when_bound.add(client)

    def _new_datagram_client(self, client: IPv6Address) -> None:
        """A client's first datagram here: at the contact node, a new client (as _accept)."""
        if self._is_contact_node and client not in self._by_client:
            self._deferred.append(functools.partial(self._new_client, client))

    def _movable(self, sock: Socket) -> bool:
        service = self.services.get(sock.key[1])
        return service is None or service.movable(sock)

    def client_sockets(self, client: IPv6Address) -> list[Socket]:
        """The live connections of ``client`` to the contact address here."""
        client_packed, contact_packed = client.packed, self.contact_address.packed
        return [
            sock
            for sock in self.host.stack.connections
            if sock.key[2] == client_packed
            and sock.key[0] == contact_packed
            and sock.state is not TcpState.CLOSED
        ]

    # -- handoff: the donor --------------------------------------------------------------------

    def handoff(
        self,
        client: IPv6Address,
        target: IPv6Address | None = None,
        *,
        elsewhere: bool = False,
        first_bytes: bytes = b"",
    ) -> int | None:
        """Hand ``client`` (all its connections) to ``target`` or to the policy's choice
        (``elsewhere``: another member than this one; ``first_bytes``: the client's request,
        for a content-aware policy); the handoff's id, or None when one is already in
        progress for it. Not from inside a socket callback: use :meth:`request_handoff`
        there."""
        if (
            client in self._by_client
            or client in self._handoff_when_known  # one asked already waits (see below)
            or client in self._paused  # its buddy may be resuming it
            or len(self._outgoing) >= self.config.max_handoffs
        ):
            self._count("handoff_busy")
            return None
        if client in self._awaiting_mipv6:
            # the contact node does not know yet how the client can be reached elsewhere
            # (its binding, or the tunnel: DSERVER 3; an acceptor's return routability with a
            # client without Mobile IPv6 would only fail the attempt): the handoff starts
            # once it does (_bound), within mipv6_timeout
            self._count("handoff_awaiting_mipv6")
            self._handoff_when_known[client] = (target, elsewhere, first_bytes)
            return None
        socks = self.client_sockets(client)
        if not socks and not self.udp.holds(client):
            # not ours to give: an INIT without connections would still bind the client to
            # the acceptor, taking it from the member that serves it
            self._count("handoff_not_here")
            return None
        if not self.config.prepare and not all(self._movable(sock) for sock in socks):
            # freezing at once (no PREPARE), it cannot wait for the client to be movable;
            # with PREPARE the freeze waits for it (_prepared_input)
            self._count("handoff_not_movable")
            return None
        if (
            self.mobile.bul.get(client) is None
            and self.tunnelled.sequence(client) is None
            and not self._is_contact_node
            and not self._accepting(client)
            and not self._bul_full()
        ):
            # not bound here: a client that reached this member's new life through the
            # binding its old one made, or came back through the binding this member made
            # before it forgot it (_sweep: its last connection had closed). An INIT would
            # carry a guessed number, below the client's about half the time: every acceptor
            # would meet BA 135 and the handoff fail (a kernel client's second download on a
            # real network), and a death then left the client to nobody (a chaos run's
            # stall). Bound first (above the client's number on BA 135, RFC 3775 11.7.3),
            # then handed on as asked (_bound)
            self._count("handoff_binding_first")
            log.info("%s is not bound here: bound first, then handed on", client)
            self._mobile(self.mobile.start_route_optimization(self._now, client))
            self._handoff_when_known[client] = (target, elsewhere, first_bytes)
            return None
        policy: Policy = self.policy if not elsewhere else _Elsewhere(self.policy)
        if target is not None:
            policy = _Chosen(target, policy)
        if self.membership is not None:
            policy = _Reporting(policy, self._unreachable)
        donor = h.Donor(
            handoff_id=self.rng.getrandbits(64),
            client=client,
            local=self.own_address,
            policy=policy,
            next_sequence=self._next_sequence(client),
            lifetime=self.config.binding_lifetime,
            optimized=self.config.prepare,
            attempt_timeout=self.config.attempt_timeout,
            rebind_timeout=self.config.rebind_timeout,
            init_timeout=self.config.attempt_timeout * h.INIT_TIMEOUT_FACTOR,
            abort_timeout=self.config.attempt_timeout,
            first_bytes=first_bytes,
        )
        base = (donor.next_sequence - h.SEQUENCE_WINDOW) & 0xFFFF
        outgoing = _Outgoing(donor, base_sequence=base, started=self._now)
        self._outgoing[donor.handoff_id] = outgoing
        self._by_client[client] = donor.handoff_id
        self._count("handoff_started")
        log.info("handoff %016x: %s from %s", donor.handoff_id, client, self.own_address)
        self._donor_effects(outgoing, donor.start(self._now))
        return donor.handoff_id

    def handoff_waits(self, client: IPv6Address) -> bool:
        """A handoff of ``client`` was asked and waits until the contact node knows whether
        the client speaks Mobile IPv6 (see :meth:`handoff`): it starts within
        ``mipv6_timeout``."""
        return client in self._handoff_when_known

    def _outgoing_of(self, client: IPv6Address) -> _Outgoing | None:
        """The handoff of ``client`` this member is giving, if any."""
        handoff_id = self._by_client.get(client)
        return self._outgoing.get(handoff_id) if handoff_id is not None else None

    def request_replicate(self, client: IPv6Address, *, hold: Iterable[Socket] = ()) -> None:
        """Replicate ``client`` to this member's buddy once the current callback has returned
        (a service at a request boundary: issue 15 item 3). Dynamic membership only: a static
        group's services call this for every request, and nothing is queued for them.

        Until the buddy acknowledges the replica (REPLICA_ACK) the client's connections hold
        back what they send (tcp_migrate's ``Socket.hold``): the connections in ``hold``,
        whose SYN-ACK or answer to a request (and its acknowledgement) is being made. What
        the client has from this member is then always something the buddy can resume from:
        sent before the replica, the client took the connection as established, or its
        request as read, and a death before the replica came lost the connection (the chaos
        runs' last failures). The cost is a round trip to the buddy on each connection's
        set-up and each request."""
        if not self._replicates():
            return
        held = [sock for sock in hold if not sock.frozen and sock.state is not TcpState.CLOSED]
        if held and self.config.hold_until_replicated and self.buddy() is not None:
            needed = (self._replica_serial + 1) & 0xFFFFFFFF  # the replica taken after now
            for sock in held:
                sock.hold()
                self._held_for[sock] = needed
            self._emit(
                StartTimer(self._now + self.config.replica_ack_timeout, (REPLICA_ACK_TIMER, client))
            )
        # once per client and entry point: a connection's accept and its request often come
        # in one, and the replica taken after both holds both
        if client not in self._replicate_queued:
            self._replicate_queued.add(client)
            self._deferred.append(functools.partial(self._replicate_queued_client, client))

    def _release_held(self, client: IPv6Address, acknowledged: int | None = None) -> None:
        """The client's connections send what they held back (see request_replicate): those
        a replica numbered ``acknowledged`` covers, or all. A paused client's wait for its
        pause's end (see _pause_replicated)."""
        if client in self._paused:
            return
        waiting = False
        for sock in self.client_sockets(client):
            needed = self._held_for.get(sock)
            if needed is None:
                continue
            if acknowledged is None or (acknowledged - needed) & 0xFFFFFFFF < 1 << 31:
                del self._held_for[sock]
                sock.release_hold(stack_ms(self._now))
            else:
                waiting = True
        if not waiting:
            self._ack_waited.discard(client)
            self._emit(CancelTimer((REPLICA_ACK_TIMER, client)))
            self._send_done_after_replica(client)

    def _send_done_after_replica(self, client: IPv6Address) -> None:
        """The DONE of a handoff accepted here goes now that the client's connections have
        nothing held (see the acceptor's SendDone)."""
        waiting = self._done_after_replica.pop(client, None)
        if waiting is not None:
            donor, done = waiting
            self._send(donor, done)

    def _replica_ack_due(self, client: IPv6Address) -> None:
        """No REPLICA_ACK in ``replica_ack_timeout``. The buddy may have died: once, the
        client's connections hold on for the time the group takes to notice a death and
        commit the view without it (its new buddy then gets the client's replica, and its
        acknowledgement releases them); what went out unreplicated instead, the buddy could
        not resume. Then they send anyway: the buddy is alive but slow."""
        # a DONE waits on, as the connections hold on: until the buddy holds the client
        # the donor's frozen snapshot is its only copy (the client had nothing from here
        # since), and should this member die now, the donor takes the client back. A DONE
        # sent here lost a chaos run's clients, their acceptor killed 1.1 s after binding
        # them (its channel to its buddy had lost its SYN). Its wait ends with the holds
        # (_release_held), or at the donor's abort, its INIT run out (_answer_again)
        if not any(sock in self._held_for for sock in self.client_sockets(client)):
            self._ack_waited.discard(client)
            return
        if self.membership is not None and client not in self._ack_waited:
            self._ack_waited.add(client)
            self._count("replica_ack_waited")
            config = self.membership.config
            wait = config.failure_timeout + config.vote_timeout
            self._emit(StartTimer(self._now + wait, (REPLICA_ACK_TIMER, client)))
            return
        self._count("replica_ack_late")
        self._release_held(client)

    def _forget_released_holds(self) -> None:
        """Connections gone (handed off, closed) while they held: nothing to release."""
        for sock in [sock for sock in self._held_for if sock.held is None]:
            del self._held_for[sock]

    def _replicate_queued_client(self, client: IPv6Address) -> None:
        self._replicate_queued.discard(client)
        if not self.replicate(client):
            self._release_held(client)  # nothing the buddy could resume: nothing to wait for

    def request_handoff(
        self,
        client: IPv6Address,
        target: IPv6Address | None = None,
        *,
        elsewhere: bool = True,
        first_bytes: bytes = b"",
    ) -> None:
        """:meth:`handoff` once the current callback has returned (services call this from
        their sockets' callbacks, inside the stack); ``elsewhere``: never this member."""
        self._deferred.append(
            functools.partial(
                self.handoff, client, target, elsewhere=elsewhere, first_bytes=first_bytes
            )
        )

    def request_clear_binding(self, client: IPv6Address) -> None:
        """The seeds' ``Close(true)`` / ``client_close``: once the current callback (or the next
        :meth:`poll`) runs, ask ``client`` to delete its binding for the contact address (a
        Lifetime 0 Binding Update, retried until acknowledged), so that its next connection
        reaches the contact node. Not while a handoff of the client is under way, either side:
        the binding is the handoff's then."""
        self._deferred.append(functools.partial(self._clear_binding, client))

    def _clear_binding(self, client: IPv6Address) -> None:
        if client in self._by_client or any(
            incoming.acceptor.client == client for incoming in self._incoming.values()
        ):
            return
        self._mobile(self.mobile.clear_binding(self._now, client))

    def _next_sequence(self, client: IPv6Address) -> int:
        """The first INIT's number: a window above the client's binding here, so that the
        Binding Updates this member's mobile node may still send for it before the freeze
        (a refresh, a retransmission) stay below (see :mod:`mip6.dserver.handoff`)."""
        entry = self.mobile.bul.get(client)
        tunnelled = self.tunnelled.sequence(client)
        if tunnelled is not None:
            return (tunnelled + h.SEQUENCE_WINDOW) & 0xFFFF
        if entry is None:
            return self.rng.randrange(SEQUENCE_UNKNOWN_SPREAD)
        return (entry.sequence + h.SEQUENCE_WINDOW) & 0xFFFF

    def _donor_input(
        self,
        handoff_id: int,
        received: h.DonorInput,
        reason: msg.FailureReason | int = 0,
        *,
        recorded: bool = False,
    ) -> None:
        """``recorded``: the input's phase is in the history already (when it arrived)."""
        outgoing = self._outgoing.get(handoff_id)
        if outgoing is None:
            self._count("handoff_unknown_input")
            return
        if not recorded:
            outgoing.phases.append((self._now, received.value))
        self._donor_effects(outgoing, outgoing.donor.handle(self._now, received, reason))

    def _donor_effects(self, outgoing: _Outgoing, effects: list[h.Effect]) -> None:
        donor = outgoing.donor
        client = donor.client
        for effect in effects:
            match effect:
                case h.SendPrepare(target=target):
                    self._send(
                        target,
                        msg.Prepare(
                            handoff_id=donor.handoff_id,
                            client=client,
                            tunnelled=client in self.tunnelled,
                        ),
                    )
                case h.SendAbort(target=target):
                    self._send_abort(donor, target)
                case h.Freeze():
                    self._freeze(outgoing)
                case h.SendInit(target=target, next_sequence=sequence, resync=resync):
                    self._send_init(outgoing, target, sequence, resync)
                case h.Thaw(resync=resync):
                    if resync:
                        # a silent acceptor may have served the client past our freeze
                        self._resync_owing(outgoing.socks, self._frozen_at(outgoing))
                    self._frozen_clients.discard(client.packed)
                    self.udp.thaw(client)
                    buddy = self._pause_at_thaw.pop(client, None)
                    if buddy is not None and all(self._replicable(s) for s in outgoing.socks):
                        # removed alive during the handoff: the buddy may be resuming the
                        # client from its replica (see _pause_replicated)
                        self._pause(client, outgoing.socks, buddy)
                        continue
                    self._thaw(outgoing.socks)
                    # kept: what the client sent meanwhile is read here after all
                    self._replay(client, outgoing.socks, outgoing.frozen_input.take())
                    # and the replica goes on with it
                    self.request_replicate(client, hold=outgoing.socks)
                    self._take_dropped_syn(
                        self._syn_during_handoff, client, "syn_during_handoff_taken"
                    )
                case h.Release():
                    self._release(outgoing.socks, handed_off=True)
                    self.udp.release(client)
                case h.Reset(reason=reason):
                    for sock in outgoing.socks:
                        sock.abort()
                    self.udp.forget(client)
                    self._count("handoff_reset")
                    log.warning("handoff %016x: %s reset: %s", donor.handoff_id, client, reason)
                case h.Bind(sequence=sequence):
                    self._rebind(outgoing, sequence)
                case h.StartTimer() | h.CancelTimer():
                    self._emit(effect)
                case h.HandoffCompleted(target=target):
                    self._finish_outgoing(outgoing, f"completed to {target}")
                    if target != self.own_address:
                        self._drop_replica(client)
                        self.tunnelled.forget(client)
                    self._count("handoff_completed" if target != self.own_address else "local")
                case h.HandoffFailed(tried=tried, kept=kept):
                    self._finish_outgoing(outgoing, "kept" if kept else "reset")
                    self._count("handoff_failed")
                    for service in self._services_of(outgoing.socks or self.client_sockets(client)):
                        service.handoff_failed(client, tried)

    def _send_abort(self, donor: h.Donor, target: IPv6Address) -> None:
        """FAILED to ``target``: this donor gives the handoff up (the acceptor lets go)."""
        log.info("handoff %016x: %s given up at %s", donor.handoff_id, donor.client, target)
        self._send(
            target,
            msg.Failed(
                handoff_id=donor.handoff_id,
                client=donor.client,
                reason=msg.FailureReason.TIMEOUT,
            ),
        )

    def _freeze(self, outgoing: _Outgoing) -> None:
        """Freeze every connection of the client and take its binding out of the mobile node
        (see the module docstring): from now on only acceptors, with the INIT's numbers, and
        this member's rebinding, above them, bind the client."""
        donor = outgoing.donor
        ms = stack_ms(self._now)
        outgoing.phases.append((self._now, FROZEN))
        self._frozen_clients.add(donor.client.packed)
        outgoing.socks = self.client_sockets(donor.client)
        for sock in outgoing.socks:
            sock.freeze(ms)
            sock.on_frozen_input = functools.partial(self._frozen_input, outgoing)
        self.udp.freeze(donor.client)
        if self.mobile.bul.get(donor.client) is not None:
            outgoing.binding = self.mobile.export_correspondent(self._now, donor.client)
            outgoing.binding_at = self._now
            self._emit(*self.mobile.forget_correspondent(self._now, donor.client))

    def _frozen_at(self, outgoing: _Outgoing) -> float:
        """When the donor froze the client's connections (the handoff's start if not yet)."""
        return next((at for at, phase in outgoing.phases if phase == FROZEN), outgoing.started)

    def _resync_owing(self, socks: list[Socket], since: float) -> None:
        """Each of ``socks`` that owes its client something resynchronizes from the client's
        next segment (tcp_migrate's resync): the client may stand past these connections,
        frozen at ``since``, because another member served it meanwhile."""
        age_ms = int((self._now - since) * 1000)
        for sock in socks:
            if sock.state in _RESYNCABLE:
                sock.conn.resync(age_ms=age_ms, peer_wait_ms=LONGEST_PEER_WAIT_MS)
                if sock.closed_by_app:
                    # the resync took back our FIN, for the program to close again once it
                    # has written from the resynchronized offset (tcp_migrate): one that
                    # had closed here before the freeze will not, so it is closed again
                    # (a chaos run's donor kept its client after a silent acceptor, sent
                    # the rest of the last response and never the FIN the client waited for)
                    sock.close()

    def _send_init(
        self, outgoing: _Outgoing, target: IPv6Address, sequence: int, resync: bool
    ) -> None:
        donor = outgoing.donor
        log.info(
            "handoff %016x: INIT of %s to %s, sequence %d",
            donor.handoff_id,
            donor.client,
            target,
            sequence,
        )
        outgoing.inits[target] = sequence
        connections = []
        for sock in outgoing.socks:
            service = self.services.get(sock.key[1])
            state, regenerable = service.export_state(sock) if service else (b"", False)
            connections.append(
                msg.ConnectionState(
                    snapshot=sock.export(not regenerable),
                    regenerable=regenerable,
                    application_state=state,
                )
            )
        self._send(
            target,
            msg.Init(
                handoff_id=donor.handoff_id,
                client=donor.client,
                next_sequence=sequence,
                lifetime=donor.lifetime,
                connections=(*connections, *self.udp.export(donor.client)),
                tunnelled=donor.client in self.tunnelled,
                resync=resync,
            ),
        )
        if outgoing.frozen_input.packets:
            self._send_frozen_input(outgoing, target, tuple(outgoing.frozen_input.packets))

    def _frozen_input(self, outgoing: _Outgoing, sock: Socket, packet: bytes) -> None:
        """A packet of the client's reached ``sock``, frozen for ``outgoing``: kept, and
        passed to the acceptor holding the INIT (see mip6.dserver.frozen_input)."""
        if not carries_data(packet):
            return
        if not outgoing.frozen_input.add(packet):
            self._count("handoff_frozen_input_dropped")
            return
        self._count("handoff_frozen_input_kept")
        donor = outgoing.donor
        if donor.state is h.DonorState.INITIATED and donor.target is not None:
            # (called inside the stack's input: the channel's send waits for its end)
            self._deferred.append(
                functools.partial(self._send_frozen_input, outgoing, donor.target, (packet,))
            )

    def _send_frozen_input(
        self, outgoing: _Outgoing, target: IPv6Address, packets: tuple[bytes, ...]
    ) -> None:
        donor = outgoing.donor
        self._send(
            target,
            msg.FrozenInput(handoff_id=donor.handoff_id, client=donor.client, packets=packets),
        )

    def _frozen_input_received(self, peer: IPv6Address, message: msg.FrozenInput) -> None:
        """The donor's FROZEN_INPUT for a handoff accepted here: read when the connections
        thaw, or now if they have."""
        incoming = self._incoming.get((peer, message.handoff_id))
        if incoming is not None and (
            not incoming.socks or any(sock.frozen for sock in incoming.socks)
        ):
            incoming.frozen_input.extend(message.packets)
            return
        if incoming is not None or self._finished_incoming.get((peer, message.handoff_id)):
            socks = self.client_sockets(message.client)
            self._replay(message.client, socks, list(message.packets))
            return
        self._count("handoff_frozen_input_ignored")

    def _replay(self, client: IPv6Address, socks: list[Socket], packets: list[bytes]) -> None:
        """The client's kept packets to this member's stack for ``socks``; once their resync
        is done when one is resynchronizing (see mip6.dserver.frozen_input)."""
        if not packets or not socks:
            return
        if any(sock.conn.resyncing for sock in socks):
            until = self._now + RECOVERY_LIMIT * self.config.rebind_timeout
            self._replay_after_resync[client.packed] = (socks, packets, until)
            while len(self._replay_after_resync) > self.config.max_connections:
                self._replay_after_resync.pop(next(iter(self._replay_after_resync)))
            return
        by_port = {sock.key[3]: sock for sock in socks}
        for packet in packets:
            sock = by_port.get(client_port(packet) or -1)
            if sock is not None:
                recent = int(sock.conn.raw.ts_recent)
                packet = with_timestamp_at_least(packet, recent, sock.key[2], sock.key[0])
            self._count("handoff_frozen_input_read")
            self._host_actions_pending(self._now, self.host.deliver(self._now, packet))

    def _replay_if_resynced(self, data: bytes) -> None:
        """After a client's segment: kept packets waiting for its connections' resync go
        once it is done (or are forgotten when it never will be)."""
        client = _client_of(data)
        waiting_now = self._replay_after_resync
        for key in [k for k, (_, _, until) in waiting_now.items() if until < self._now]:
            del waiting_now[key]
        waiting = self._replay_after_resync.get(client)
        if waiting is None:
            return
        socks, packets, _ = waiting
        live = [sock for sock in socks if sock.state is not TcpState.CLOSED]
        if any(sock.conn.resyncing for sock in live):
            return
        del self._replay_after_resync[client]
        self._replay(IPv6Address(client), live, packets)

    def _rebind(self, outgoing: _Outgoing, sequence: int) -> None:
        """The donor keeps its client after an INIT: its binding comes back here first."""
        if outgoing.rebinding_since is None:
            outgoing.rebinding_since = self._now
        donor = outgoing.donor
        if donor.client in self.tunnelled:
            self._bind_tunnel(donor.client, sequence)
            return
        state = outgoing.binding or CorrespondentState(
            correspondent=donor.client,
            home_address=self.contact_address,
            sequence=0,
            home_nonce_index=None,
            home_keygen_token=None,
            home_token_age=None,
        )
        if self.mobile.bul.get(donor.client) is None and self._bul_full():
            # no room to bind it back: the rebinding's timer resets the client cleanly
            self._count("binding_no_room")
            return
        self.mobile.import_correspondent(
            self._now, replace(state, sequence=(sequence - 1) & 0xFFFF)
        )
        self._mobile(self.mobile.complete_route_optimization(self._now, donor.client))

    def _finish_outgoing(self, outgoing: _Outgoing, outcome: str) -> None:
        donor = outgoing.donor
        self._outgoing.pop(donor.handoff_id, None)
        self._finished_outgoing[donor.handoff_id] = None
        while len(self._finished_outgoing) > self.config.max_handoffs:
            self._finished_outgoing.pop(next(iter(self._finished_outgoing)))
        if self._by_client.get(donor.client) == donor.handoff_id:
            del self._by_client[donor.client]
        self._frozen_clients.discard(donor.client.packed)
        self._syn_during_handoff.pop(donor.client.packed, None)
        self._pause_at_thaw.pop(donor.client, None)
        waiting = self._freeze_after_send.get(donor.client.packed)
        if waiting is not None and waiting[1] == donor.handoff_id:
            del self._freeze_after_send[donor.client.packed]
            self._emit(CancelTimer((FREEZE_WAIT, donor.handoff_id)))
        held = self._held_for_movable.get(donor.client.packed)
        if held is not None and held[1] == donor.handoff_id:
            del self._held_for_movable[donor.client.packed]
            self._emit(CancelTimer((MOVABLE_WAIT, donor.handoff_id)))
        self._remember(
            "donor", donor.handoff_id, donor.client, outgoing.started, outgoing.phases, outcome
        )
        self._emit(
            Event(
                "handoff_finished",
                {
                    "handoff_id": donor.handoff_id,
                    "client": donor.client,
                    "outcome": outcome,
                    "tried": tuple(donor.tried),
                },
            )
        )
        if self._leaving:
            # deferred: a Release after DONE is still to run for this handoff
            self._deferred.append(self._leave_when_handed_on)

    # -- handoff: the acceptor -----------------------------------------------------------------

    def _acceptor_input(
        self,
        key: tuple[IPv6Address, int],
        received: h.AcceptorInput,
        *,
        sequence: int = 0,
        lifetime: int = 0,
    ) -> None:
        incoming = self._incoming.get(key)
        if incoming is None:
            return
        incoming.phases.append((self._now, received.value))
        effects = incoming.acceptor.handle(
            self._now, received, sequence=sequence, lifetime=lifetime
        )
        acceptor = incoming.acceptor
        for effect in effects:
            match effect:
                case h.RunReturnRoutability() if incoming.tunnelled:
                    # no Mobile IPv6, no tokens to get: prepared at once
                    self._deferred.append(
                        functools.partial(self._acceptor_input, key, h.AcceptorInput.TOKENS)
                    )
                case h.RunReturnRoutability():
                    self._mobile(
                        self.mobile.start_route_optimization(
                            self._now, acceptor.client, send_binding_update=False
                        )
                    )
                case h.SendPrepared(donor=donor):
                    self._send(
                        donor, msg.Prepared(handoff_id=acceptor.handoff_id, client=acceptor.client)
                    )
                case h.Import():
                    if not self._import(incoming):
                        self._deferred.append(
                            functools.partial(
                                self._acceptor_input, key, h.AcceptorInput.IMPORT_FAILED
                            )
                        )
                    elif incoming.init is not None and incoming.init.resync:
                        # an acceptor before us went silent: the client may stand past these
                        self._count("handoff_import_resync")
                        self._resync_owing(incoming.socks, incoming.started)
                case h.Bind(sequence=bind_sequence) if incoming.tunnelled:
                    self._bind_tunnel(acceptor.client, bind_sequence)
                case h.Bind(sequence=bind_sequence):
                    if self.mobile.bul.get(acceptor.client) is None and self._bul_full():
                        self._count("binding_no_room")
                        self._deferred.append(
                            functools.partial(self._acceptor_input, key, h.AcceptorInput.REJECTED)
                        )
                        continue
                    self.mobile.import_correspondent(
                        self._now,
                        CorrespondentState(
                            correspondent=acceptor.client,
                            home_address=self.contact_address,
                            sequence=(bind_sequence - 1) & 0xFFFF,
                            home_nonce_index=None,
                            home_keygen_token=None,
                            home_token_age=None,
                        ),
                    )
                    self._mobile(
                        self.mobile.complete_route_optimization(self._now, acceptor.client)
                    )
                case h.Thaw():
                    self.udp.thaw(acceptor.client)
                    self._thaw(incoming.socks)
                    self._replay(acceptor.client, incoming.socks, incoming.frozen_input.take())
                    # this member's buddy now: nothing the old one cannot resume goes out
                    self.request_replicate(acceptor.client, hold=incoming.socks)
                case h.SendDone(donor=donor):
                    done = msg.Done(handoff_id=acceptor.handoff_id, client=acceptor.client)
                    if any(s in self._held_for for s in self.client_sockets(acceptor.client)):
                        # once this member's buddy holds the client (the thaw's replica):
                        # the donor keeps its frozen connections until then, and should
                        # this member die first it takes the client back (its rebinding),
                        # as nothing went to the client from here meanwhile. A DONE at once
                        # lost the client with an acceptor killed just after its thaw
                        self._done_after_replica[acceptor.client] = (donor, done)
                    else:
                        self._send(donor, done)
                    self._count("handoff_accepted")
                    self._finish_incoming(key, "accepted")
                case h.Release():
                    self._release(incoming.socks, handed_off=True)
                    # the donor keeps the client: should our Binding Update have reached it,
                    # its datagrams here until the donor rebinds it are not ours to answer
                    self.udp.release(acceptor.client)
                    incoming.socks = []
                    self._emit(*self.mobile.forget_correspondent(self._now, acceptor.client))
                    if incoming.tunnelled:
                        self.tunnelled.forget(acceptor.client)
                case h.SendFailed(donor=donor, reason=reason):
                    self._send(
                        donor,
                        msg.Failed(
                            handoff_id=acceptor.handoff_id, client=acceptor.client, reason=reason
                        ),
                    )
                    self._count(f"handoff_refused_{reason.name.lower()}")
                    self._finish_incoming(key, f"failed: {reason.name.lower()}")
                    busy, live = self._binding_users()
                    if acceptor.client not in busy | live:
                        # the return routability or Binding Update begun for the handoff goes
                        # no further (Release forgot it when connections had been imported).
                        # Left to the sweep, its HoTIs went on through the contact node's
                        # relay, and a chaos run's last one, a second after the failure, left
                        # an entry there past the run's end
                        self._emit(*self.mobile.forget_correspondent(self._now, acceptor.client))
                case h.StartTimer(at=at):
                    self._emit(StartTimer(at, ("handoff_acceptor", key)))
                case h.CancelTimer():
                    self._emit(CancelTimer(("handoff_acceptor", key)))

    def _import(self, incoming: _Incoming) -> bool:
        assert incoming.init is not None
        for connection in incoming.init.connections:
            if connection.datagram:
                if not self.udp.import_(incoming.init.client, connection):
                    return False
                continue
            try:
                sock = self.host.stack.import_connection(connection.snapshot)
            except (StackError, ValueError) as error:
                self._count("import_failed")
                log.warning("handoff %016x: import failed: %s", incoming.acceptor.handoff_id, error)
                return False
            incoming.socks.append(sock)
            service = self.services.get(sock.key[1])
            if service is None or sock.key[0] != self._contact_packed:
                self._count("import_no_service")
                return False
            self._watch_received(sock)
            service.handed_in(self, sock, connection.application_state)
        return True

    def _send_failed(
        self, peer: IPv6Address, message: msg.HandoffMessage, reason: msg.FailureReason
    ) -> None:
        """FAILED about ``message``'s handoff and client."""
        self._send(
            peer, msg.Failed(handoff_id=message.handoff_id, client=message.client, reason=reason)
        )

    def _answer_again(self, donor: IPv6Address, message: msg.HandoffMessage) -> None:
        """The answer a finished handoff gave, for a message about it that came late."""
        key = (donor, message.handoff_id)
        accepted = self._finished_incoming[key]
        self._count("handoff_answered_again")
        if accepted:
            waiting = self._done_after_replica.get(message.client)
            if waiting is not None and waiting[1].handoff_id == message.handoff_id:
                # the donor gives up waiting (its INIT ran out): the DONE goes unreplicated
                # rather than leave two members serving the client
                self._count("handoff_done_unreplicated")
                self._send_done_after_replica(message.client)
            else:
                self._send(donor, msg.Done(handoff_id=message.handoff_id, client=message.client))
        else:
            self._send_failed(donor, message, msg.FailureReason.TIMEOUT)

    def _finish_incoming(self, key: tuple[IPv6Address, int], outcome: str) -> None:
        incoming = self._incoming.pop(key, None)
        if incoming is None:
            return
        log.info("handoff %016x: %s from %s %s", key[1], incoming.acceptor.client, key[0], outcome)
        # an adoption took the client too (see _adopt): a donor removed alive that gives up
        # on this member hears DONE, not FAILED, which sent it on to the next member with
        # its frozen copies, to bind the client away from this one
        self._finished_incoming[key] = outcome in ("accepted", "adopted")
        while len(self._finished_incoming) > self.config.max_handoffs:
            self._finished_incoming.pop(next(iter(self._finished_incoming)))
        acceptor = incoming.acceptor
        self._remember(
            "acceptor",
            acceptor.handoff_id,
            acceptor.client,
            incoming.started,
            incoming.phases,
            outcome,
        )

    # -- the mobile node's events --------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Forget the bindings of clients that have no connection here any more and no
        handoff in progress: without this the Binding Update List fills with every client ever
        served and refreshes them forever. The client's binding expires on its own; a client
        that comes back reaches this member through it and is answered through the contact
        node's tunnel until it is bound again."""
        self.udp.expire(now)
        for held in self._replicas.values():
            # an idle client's binding to its member has expired at the client: nothing to
            # bind elsewhere should the member die (see _idle_replica)
            for client in [
                c
                for c, kept in held.items()
                if not kept.replica.connections and kept.binding_expired(now)
            ]:
                del held[client]
        self._log_backed_off()
        busy, live = self._binding_users()
        for entry in list(self.mobile.bul):
            client = entry.destination
            if entry.home_registration or client in busy or client in live:
                continue
            self._count("binding_forgotten")
            self._emit(*self.mobile.forget_correspondent(now, client))
        for client in [c for c in self._handoff_when_known if c not in live]:
            del self._handoff_when_known[client]  # gone before anyone knew how to reach it
        for client in list(self.tunnelled.serving):
            if client not in busy and client not in live:
                # its entry in the contact node's table lives on until it has been idle for
                # tunnel_lifetime: a client served here again is bound anew
                self.tunnelled.forget(client)

    def _log_backed_off(self) -> None:
        """One line per sweep for each client connection whose retransmission timer has
        expired BACKED_OFF times in a row or more (at least seven of its timeouts without
        an acknowledgement): its sender's state, for the trace of a client that waited (a
        chaos run's client heard nothing for 17 s from a live member after one loss)."""
        contact = self._contact_packed
        for sock in self.host.stack.connections:
            raw = sock.conn.raw
            if sock.key[0] != contact or raw.backoff < BACKED_OFF:
                continue
            log.warning(
                "tcp: %s port %d backed off %d times: rto %d ms (srtt %d), una %d nxt %d "
                "max %d rxt %d recover %d, cwnd %d ssthresh %d wnd %d, %d SACK blocks, "
                "dupacks %d, flags %#x, %s%s",
                IPv6Address(sock.key[2]),
                sock.key[3],
                raw.backoff,
                raw.rto_ms,
                raw.srtt_ms,
                raw.snd_una,
                raw.snd_nxt,
                raw.snd_max,
                raw.snd_rxt,
                raw.recover,
                raw.cwnd,
                raw.ssthresh,
                raw.snd_wnd,
                raw.sack_count,
                raw.dupacks,
                raw.flags,
                sock.state.name,
                ", frozen" if sock.frozen else (", held" if sock.held is not None else ""),
            )

    def _binding_users(self) -> tuple[set[IPv6Address], set[IPv6Address]]:
        """The clients whose binding here a handoff in progress needs, and those a connection
        or a datagram flow here needs (see _sweep)."""
        busy = set(self._by_client) | {i.acceptor.client for i in self._incoming.values()}
        busy |= self._distribute_when_bound
        live = {
            IPv6Address(sock.key[2])
            for sock in self.host.stack.connections
            if sock.key[0] == self.contact_address.packed
        }
        live |= self.udp.clients()
        return busy, live

    def _accepting(self, client: IPv6Address) -> bool:
        """A handoff of ``client`` to this member is under way: its acceptor binds it."""
        return any(i.acceptor.client == client for i in self._incoming.values())

    def _bul_full(self) -> bool:
        """No room for another client's binding (one place stays for the home registration)."""
        return len(self.mobile.bul) + 1 >= self.mobile.bul.capacity

    def _mobile_event(self, event: Event) -> None:
        fields = event.fields
        match event.name:
            case "route_optimized":
                self._bound(fields["correspondent"])
                if self._now < self._new_life_until:
                    # bound by this life: its SYNs come through this life's binding, even
                    # once the entry is swept with the client's last connection (asked
                    # about, a chaos run's client's SYN waited a retransmission, 16 s, and
                    # its fetch stalled)
                    self._syn_queries[fields["correspondent"]] = _SynQuery(
                        "free", self._new_life_until
                    )
                if fields["correspondent"] in self._replicated:
                    # the buddy's replica may have been taken before the client acknowledged
                    # (the request came first): without a binding, a recovery from it outbids
                    # whatever number the client reports, an acceptor's that a handoff since
                    # gave it too, and took the client from the member serving it
                    self.request_replicate(fields["correspondent"])
            case "return_routability_complete":
                for key, incoming in list(self._incoming.items()):
                    if incoming.acceptor.client == fields["correspondent"]:
                        self._acceptor_input(key, h.AcceptorInput.TOKENS)
            case "sequence_out_of_window" if fields["destination"] == self.mobile.home_agent:
                self._home_agent_holds_another(fields["sequence"])
            case "sequence_out_of_window":
                self._out_of_window(fields["destination"], fields["sequence"])
            case "home_registered":
                self._home_sequence_free = False
                if self._is_contact_node:
                    self._recoveries_test_again()
            case "binding_rejected":
                self._rejected(fields["destination"])
            case "route_optimization_unsupported" if self._is_contact_node:
                self._without_mipv6(fields["correspondent"], "Binding Error 2")
            case "route_optimization_unsupported":
                self._distribute_when_bound.discard(fields["correspondent"])
            case "binding_error" if fields["bound"]:
                self._binding_lost(fields["correspondent"])
            case "binding_update_sent" if fields["destination"] in self._replicated:
                # a new number (a rebinding, an outbid): the buddy's replica carries it, or a
                # recovery from it would take the number for a later member's and step aside
                self.request_replicate(fields["destination"])

    def _home_agent_holds_another(self, sequence: int) -> None:
        """BA 135 to C's registration (issue 15 item 4, the home agent decides): unless this
        member may still go above the home agent's number, another member registered C
        after it, a successor that took the contact address over while this one was cut off.
        It steps down: no registration of C, no distribution, whatever membership believes
        (the seeds' split brain: SPEC-dserver 10.1)."""
        if not self._is_contact_node:
            return
        if self._home_sequence_free:
            self._mobile(self.mobile.register_above(self._now, sequence))
            return
        self._count("contact_outbid")
        log.warning(
            "membership: the home agent holds %s for another member: stepping down",
            self.contact_address,
        )
        self._step_down()
        if self.membership is not None:
            # cut off while a successor took over: out of its group, whatever this view says
            self._membership(self.membership.outbid(self._now))

    def _bound(self, client: IPv6Address) -> None:
        if client in self._awaiting_mipv6:
            self._awaiting_mipv6.discard(client)
            self._emit(CancelTimer((MIPV6_WAIT, client)))
        asked = self._handoff_when_known.pop(client, None)
        if asked is not None and (self.client_sockets(client) or self.udp.holds(client)):
            target, elsewhere, first_bytes = asked
            self._deferred.append(
                functools.partial(
                    self.handoff, client, target, elsewhere=elsewhere, first_bytes=first_bytes
                )
            )
        if client in self._recovering:
            self._recovered(client)
        for key, incoming in list(self._incoming.items()):
            if incoming.acceptor.client == client:
                self._acceptor_input(key, h.AcceptorInput.BOUND)
        outgoing = self._outgoing_of(client)
        if outgoing is not None and outgoing.donor.state is h.DonorState.REBINDING:
            self._donor_input(outgoing.donor.handoff_id, h.DonorInput.BOUND)
        if client in self._distribute_when_bound:
            self._distribute_when_bound.discard(client)
            if self.client_sockets(client) or self.udp.holds(client):
                self.handoff(client)

    def _out_of_window(self, client: IPv6Address, sequence: int) -> None:
        """BA 135: the client holds a later Binding Update from another member."""
        if client in self._recovering:
            replicated = self._recovering[client].sequence
            # (a client the dead member had not bound yet, new at the contact node, has a
            # number from its earlier binding with whoever served it before)
            ahead = (sequence - replicated) & 0xFFFF if replicated is not None else 0
            if ahead < h.SEQUENCE_WINDOW:  # below any acceptor's (see _recover)
                # the dead member bound it again after its replica (or had not bound it at
                # all): go above that, with the recovery's time from now (the client
                # answered; return routability through a contact node that was being taken
                # over can have used most of it)
                self._mobile(self.mobile.rebind(self._now, client, sequence))
                self._arm_recovery(client)
            else:
                # a window or more above the replica's number: a handoff's acceptor bound
                # it after the replica was sent. Serving it (the dead member's REPLICA_DROP
                # died with it), outbidding it would take the client from the connection it
                # is on; released (the donor's abort, the donor dead before it bound the
                # client back), nobody serves the client. The group says which
                self._recovery_ask(client, sequence)
            return
        outgoing = self._outgoing_of(client)
        if outgoing is not None and outgoing.donor.state is h.DonorState.REBINDING:
            if set(outgoing.donor.tried) <= outgoing.refused_by:
                # every acceptor answered FAILED, having released the client: the number
                # the client holds is a failed attempt's, outbid it
                self._mobile(self.mobile.rebind(self._now, client, sequence))
            else:
                # an acceptor that never answered took the client. Alive, it thawed and its
                # DONE is on the way (a DONE in REBINDING completes the handoff); dead, the
                # client is bound to nobody. Which one is known when the rebinding's time is
                # up, long after any acceptor's own attempt ended: then outbid (_outbid_due)
                outgoing.outbid = sequence
            return
        binding = self._binding_acceptors(client)
        for key in binding:
            self._acceptor_input(key, h.AcceptorInput.REJECTED)
        if not binding:
            # our own binding, no handoff: RFC 3775 11.7.3's answer
            self._mobile(self.mobile.rebind(self._now, client, sequence))

    def _rebinding(self, handoff_id: int) -> _Outgoing | None:
        """The handoff ``handoff_id`` if its donor is binding the client back (REBINDING)."""
        outgoing = self._outgoing.get(handoff_id)
        if outgoing is None or outgoing.donor.state is not h.DonorState.REBINDING:
            return None
        return outgoing

    def _outbid_due(self, handoff_id: int) -> bool:
        """The rebinding's time is up after a BA 135 and no acceptor answered: each would
        have sent DONE or FAILED within its own attempt, so the one that took the client is
        gone. Bind the client here above its number, once, with one more rebinding period;
        True when that was done (the timer is not the machine's TIMEOUT then)."""
        outgoing = self._rebinding(handoff_id)
        if outgoing is None or outgoing.outbid is None:
            return False
        sequence, outgoing.outbid = outgoing.outbid, None
        self._count("handoff_outbid")
        outgoing.phases.append((self._now, "outbid"))
        self._mobile(self.mobile.rebind(self._now, outgoing.donor.client, sequence))
        self._emit(StartTimer(self._now + self.config.rebind_timeout, outgoing.donor.timer))
        return True

    def _rebinding_extended(self, handoff_id: int) -> bool:
        """The donor's rebinding period is over while its binding is still under way (return
        routability, or a Binding Update unanswered): it gets another, up to RECOVERY_LIMIT in
        all, as a recovery does; True when it did (the timer is not the machine's TIMEOUT
        then). A chaos run's donor, its acceptor's Binding Acknowledgement and then three of
        its own Care-of Test Inits lost on a congested link, reset a download after one
        period (4 s): the client's TCP waits far longer, and its connection stays frozen here
        until the client takes this member's binding."""
        outgoing = self._rebinding(handoff_id)
        if outgoing is None or outgoing.rebinding_since is None:
            return False
        entry = self.mobile.bul.get(outgoing.donor.client)
        limit = outgoing.rebinding_since + RECOVERY_LIMIT * self.config.rebind_timeout
        if entry is None or entry.state in (BulState.BOUND, BulState.FAILED) or self._now >= limit:
            return False
        self._count("handoff_rebind_extended")
        self._emit(
            StartTimer(min(self._now + self.config.rebind_timeout, limit), outgoing.donor.timer)
        )
        return True

    def _rejected(self, client: IPv6Address) -> None:
        for key in self._binding_acceptors(client):
            self._acceptor_input(key, h.AcceptorInput.REJECTED)

    def _binding_acceptors(self, client: IPv6Address) -> list[tuple[IPv6Address, int]]:
        """The handoffs of ``client`` to this member whose Binding Update is out: an
        acknowledgement's verdict is theirs (one in PREPARE has sent none)."""
        return [
            key
            for key, incoming in self._incoming.items()
            if incoming.acceptor.client == client
            and incoming.acceptor.state is h.AcceptorState.BINDING
        ]

    # -- the member channel --------------------------------------------------------------------

    def _make_channel(self, role: Role) -> Channel:
        return Channel(
            role=role,
            group_key=self.config.group_key,
            identity=self.own_address,
            random_bytes=self.random_bytes,
        )

    def _send(self, peer: IPv6Address, message: msg.Message) -> None:
        connection = self._channels.get(peer)
        if connection is None or connection.closed:
            connection = connect(
                functools.partial(self.host.connect, self._now, source=self.own_address),
                peer,
                self.config.channel_port,
                self._make_channel,
                self._channel_event,
            )
            self._channels[peer] = connection
        connection.send(message)

    def _channel_event(self, connection: MemberConnection, event: object) -> None:
        # called from the stack's callbacks: the work waits for the entry point's end
        self._deferred.append(functools.partial(self._channel_event_now, connection, event))

    def _channel_event_now(self, connection: MemberConnection, event: object) -> None:
        peer = connection.peer
        if isinstance(event, Established):
            # dynamic membership: whoever holds the group key may talk membership (a member
            # joining is in no view yet); handoff messages still need a member of the view
            if self.membership is None and peer not in self.view.members:
                self._count("channel_unknown_member")
                connection.sock.close()
                return
            # a channel accepted on the contact address (a member joining, or asking who the
            # contact node is: DSERVER 5, Q1) is not the channel to that member: what went on
            # it would leave from the contact address, through the home agent's tunnel (a
            # chaos run's contact node sent its buddy every replica that way: four lossy links
            # and the home agent where one would do, and its holds waited seconds). Messages
            # to the member open a channel between the two members' own addresses
            if connection.local != self.own_address:
                return
            existing = self._channels.get(peer)
            if existing is None or existing.closed:
                self._channels[peer] = connection
            return
        if isinstance(event, Closed):
            self._count(f"channel_closed_{event.reason.name.lower()}")
            if self._channels.get(peer) is connection:
                del self._channels[peer]
            if connection.established and connection.local == self.own_address:
                self._replicate_again(peer)
            if not connection.established:
                # refused before any message could reach the peer (a wrong group key, an
                # impostor): nothing was handed over, so the attempt fails now, not at its timer
                for outgoing in list(self._outgoing.values()):
                    if outgoing.donor.target == peer:
                        outgoing.refused_by.add(peer)
                        self._donor_input(
                            outgoing.donor.handoff_id,
                            h.DonorInput.FAILED,
                            msg.FailureReason.REFUSED,
                        )
            return
        if not isinstance(event, MessageReceived) or not connection.established:
            return
        # who sent it: the identity the peer proved with the group key, which on a channel
        # this member opened to the contact address is the contact node's own address
        peer = connection.identity or peer
        message = event.message
        self._count(f"received_{type(message).__name__.lower()}")
        if isinstance(message, msg.Replica | msg.ReplicaDrop):
            self._replica_message(peer, message)
            return
        if isinstance(message, msg.ReplicaAck):
            if peer == self.buddy():
                self._fallback_buddy = None  # the new buddy's channel carries replicas
            self._moved(peer, message.client, message.serial)
            self._release_held(message.client, message.serial)
            return
        if isinstance(message, msg.ClientClaimed):
            self._claimed(peer, message.client)
            return
        if isinstance(message, msg.ClientQuery):
            self._client_queried(peer, message.client)
            return
        if isinstance(message, msg.ClientRecovering):
            self._other_recovery(peer, message)
            return
        if isinstance(message, msg.Tunnel):
            self._tunnel_asked(peer, message)
            return
        if isinstance(message, msg.TunnelAck):
            self._tunnel_answered(message.client, message.sequence, message.held, message.status)
            return
        if isinstance(message, msg.ContactState):
            if not self._is_contact_node:
                self._contact_state = _newer_state(self._contact_state, message)
            return
        if isinstance(message, msg.MembershipMessage):
            if self.membership is None:
                self._count("membership_message_ignored")  # static membership
                return
            self._membership(self.membership.handle_message(self._now, peer, message))
            return
        if (
            self.membership is not None
            and peer not in self.view.members
            and not self._answers_own_handoff(peer, message)
        ):
            self._count("handoff_message_from_non_member")
            return
        match message:
            case msg.Prepare() | msg.Init():
                self._offered(peer, message)
            case msg.Prepared():
                self._prepared(peer, message.handoff_id)
            case msg.Done():
                self._from_acceptor(peer, message.handoff_id, h.DonorInput.DONE)
            case msg.FrozenInput():
                self._frozen_input_received(peer, message)
            case msg.Failed() if (peer, message.handoff_id) in self._incoming:
                # from the donor: it gave up on us (behind its INIT on this channel)
                self._acceptor_input((peer, message.handoff_id), h.AcceptorInput.ABORTED)
            case msg.Failed() if (peer, message.handoff_id) in self._finished_incoming:
                self._answer_again(peer, message)
            case msg.Failed() if message.handoff_id in self._outgoing:
                outgoing = self._outgoing[message.handoff_id]
                if peer in outgoing.donor.tried:
                    outgoing.refused_by.add(peer)  # it released whatever it imported
                self._from_acceptor(peer, message.handoff_id, h.DonorInput.FAILED, message.reason)
            case msg.Failed() if message.handoff_id not in self._finished_outgoing:
                # a donor's give-up for a handoff we never heard of (its PREPARE or INIT lost
                # with a channel): nothing here, so it may go on
                self._send_failed(peer, message, msg.FailureReason.REFUSED)
            case msg.Failed():
                self._count("handoff_stray_answer")

    def _answers_own_handoff(self, peer: IPv6Address, message: msg.Message) -> bool:
        """Whether ``message`` is one end's word to the other in a handoff this member took
        part in: an acceptor's answer (DONE or FAILED) to a handoff of this member's that
        tried it, or a donor's give-up (FAILED) of a handoff it offered this member. It
        counts from a member the view has removed since: removed by a false suspicion it
        serves on. An acceptor's DONE says the client took its binding: dropped, the attempt
        ran out, the next acceptor bound the client above it, and two members served the
        client (a chaos run's stalled downloads). A donor's give-up asks whether this member
        took the client: unanswered, the donor took this member for dead and bound the
        client again above it (chaos seed 440, the same outcome)."""
        if not isinstance(message, msg.Done | msg.Failed):
            return False
        key = (peer, message.handoff_id)
        if isinstance(message, msg.Failed) and (
            key in self._incoming or key in self._finished_incoming
        ):
            return True
        outgoing = self._outgoing.get(message.handoff_id)
        return outgoing is not None and peer in outgoing.donor.tried

    def _prepared(self, peer: IPv6Address, handoff_id: int) -> None:
        """The acceptor holds the tokens: freeze now, or just after this member's next send.

        A sender whose window is in flight is idle until the client's acknowledgement comes
        back, and a freeze in that idle time leaves the client's pipe empty for the whole
        handoff: its gap is the handoff plus up to a round trip. When the client's
        connections have bytes in flight, the freeze waits for the client's next packet here
        and for what the stack sends in answer (see :meth:`_run`), at most a smoothed round
        trip of theirs (half the attempt's time at most), so that the client has a window
        to read while the handoff goes on."""
        outgoing = self._outgoing.get(handoff_id)
        wait = 0.0
        if outgoing is not None and outgoing.donor.target == peer:
            client = outgoing.donor.client
            for sock in self.client_sockets(client):
                raw = sock.conn.raw
                if raw.snd_nxt != raw.snd_una and not sock.frozen:
                    wait = max(wait, raw.srtt_ms / 1000)
            wait = min(wait, self.config.attempt_timeout / 2)
        if wait <= 0 or outgoing is None:
            self._prepared_input(peer, handoff_id, recorded=False)
            return
        outgoing.phases.append((self._now, h.DonorInput.PREPARED.value))
        self._freeze_after_send[outgoing.donor.client.packed] = (peer, handoff_id, False)
        self._emit(StartTimer(self._now + wait, (FREEZE_WAIT, handoff_id)))

    def _freeze_waited(self, client: bytes) -> None:
        """The wait of :meth:`_prepared` ends: the PREPARED goes to the donor's machine
        (which checks that it still waits for it from that acceptor)."""
        peer, handoff_id, _ = self._freeze_after_send.pop(client)
        self._emit(CancelTimer((FREEZE_WAIT, handoff_id)))
        self._prepared_input(peer, handoff_id, recorded=True)

    def _prepared_input(self, peer: IPv6Address, handoff_id: int, *, recorded: bool) -> None:
        """PREPARED to the donor's machine, which freezes the client: only once every
        connection of the client is movable (:meth:`Service.movable`; a service may have
        become busy since the handoff began). Until then it is held, at most half an
        attempt's time; then the handoff ends with the client kept (NOT_MOVABLE)."""
        outgoing = self._outgoing.get(handoff_id)
        if (
            outgoing is None
            or outgoing.donor.target != peer
            or outgoing.donor.state is not h.DonorState.PREPARING
            or self._client_movable(outgoing.donor.client)
        ):
            # (a stray or late answer goes on to be counted as one)
            self._from_acceptor(peer, handoff_id, h.DonorInput.PREPARED, recorded=recorded)
            return
        if not recorded:
            outgoing.phases.append((self._now, h.DonorInput.PREPARED.value))
        self._count("handoff_waited_movable")
        self._held_for_movable[outgoing.donor.client.packed] = (peer, handoff_id)
        wait = self.config.attempt_timeout / 2
        self._emit(StartTimer(self._now + wait, (MOVABLE_WAIT, handoff_id)))

    def _movable_waited(self, client: bytes, *, movable: bool) -> None:
        peer, handoff_id = self._held_for_movable.pop(client)
        self._emit(CancelTimer((MOVABLE_WAIT, handoff_id)))
        if movable:
            self._from_acceptor(peer, handoff_id, h.DonorInput.PREPARED, recorded=True)
        else:
            self._count("handoff_not_movable")
            self._from_acceptor(peer, handoff_id, h.DonorInput.NOT_MOVABLE, recorded=True)

    def _client_movable(self, client: IPv6Address) -> bool:
        return all(self._movable(sock) for sock in self.client_sockets(client))

    def _from_acceptor(
        self,
        peer: IPv6Address,
        handoff_id: int,
        received: h.DonorInput,
        reason: msg.FailureReason | int = 0,
        *,
        recorded: bool = False,
    ) -> None:
        outgoing = self._outgoing.get(handoff_id)
        if outgoing is None or peer not in outgoing.donor.tried:
            self._count("handoff_stray_answer")
            return
        if received is h.DonorInput.DONE:
            # from any acceptor tried: a DONE late for an attempt given up on still means
            # that acceptor thawed and holds the client (earlier attempts' Binding Updates
            # then meet BA 135 and they release theirs; the one under way is told below)
            donor = outgoing.donor
            if donor.target != peer:
                self._count("handoff_late_done")
                log.warning(
                    "handoff %016x: DONE from %s, tried before %s (%s)",
                    handoff_id,
                    peer,
                    donor.target,
                    donor.state.value,
                )
                if (
                    donor.target is not None
                    and donor.target != self.own_address
                    and donor.state in (h.DonorState.PREPARING, h.DonorState.INITIATED)
                ):
                    # the attempt under way gives up: its INIT is a window above the late
                    # acceptor's, and bound, it took the client from the member serving it
                    # (both then bound it in turn at each other's Binding Error: a chaos
                    # run's stalled download). Still binding, it lets go
                    self._send_abort(donor, donor.target)
            outgoing.donor.target = peer
        elif outgoing.donor.target != peer:
            self._count("handoff_late_answer")
            return
        self._donor_input(handoff_id, received, reason, recorded=recorded)

    def _offered(self, donor: IPv6Address, message: msg.Prepare | msg.Init) -> None:
        key = (donor, message.handoff_id)
        if key in self._finished_incoming:
            # a handoff this member already answered: never taken up again (an INIT that
            # arrives after we said FAILED would bind a client the donor gave to another)
            self._answer_again(donor, message)
            return
        if message.client in self._recovering or self._serves_outside_handoffs(message.client):
            # this member serves the client already, or resumes it from a replica: the
            # import would fail on the connections' 4-tuples, and the attempt's binding and
            # release had reached its mobile node first (a chaos run's recovery then bound
            # the client with that INIT's number, above the donor's binding, and reset it).
            # Served here, an INIT's donor is told so (SERVED): its frozen copies are behind
            # the client and it lets them go; refused, a donor whose every acceptor had
            # refused bound the client back above the number it held, away from this member
            # (chaos seed 440). A recovery's replica may be older than the donor's copies:
            # that INIT is refused as before
            served = isinstance(message, msg.Init) and message.client not in self._recovering
            self._count("handoff_refused_served")
            reason = msg.FailureReason.SERVED if served else msg.FailureReason.REFUSED
            self._send_failed(donor, message, reason)
            self._incoming.pop(key, None)
            return
        incoming = self._incoming.get(key)
        if incoming is None:
            if (
                len(self._incoming) >= self.config.max_handoffs
                or self._stopped
                or (self.mobile.bul.get(message.client) is None and self._bul_full())
            ):
                self._count("handoff_refused_busy")
                self._send_failed(donor, message, msg.FailureReason.REFUSED)
                return
            incoming = _Incoming(
                h.Acceptor(
                    handoff_id=message.handoff_id,
                    client=message.client,
                    donor=donor,
                    attempt_timeout=self.config.attempt_timeout,
                ),
                started=self._now,
                client_packed=message.client.packed,
            )
            self._incoming[key] = incoming
        incoming.tunnelled = message.tunnelled
        if isinstance(message, msg.Prepare):
            self._acceptor_input(key, h.AcceptorInput.PREPARE)
            return
        log.info(
            "handoff %016x: INIT of %s from %s, sequence %d",
            message.handoff_id,
            message.client,
            donor,
            message.next_sequence,
        )
        giving = self._outgoing_of(message.client)
        if giving is not None:
            if giving.donor.frozen:
                # the client comes back to us through the member we handed it to, so that one
                # took it: its DONE is late (a lossy channel); our frozen copies go now, or
                # their 4-tuples would refuse the import
                self._count("handoff_done_implied")
                self._donor_input(giving.donor.handoff_id, h.DonorInput.DONE)
            else:
                self._count("handoff_refused_own")  # we still serve it: not another's to give
                self._send_failed(donor, message, msg.FailureReason.REFUSED)
                self._incoming.pop(key, None)
                return
        if not message.connections:
            # nothing to import, only a binding to take from whoever serves the client
            self._count("handoff_refused_empty")
            self._incoming.pop(key, None)
            self._send_failed(donor, message, msg.FailureReason.REFUSED)
            return
        for older in self._binding_acceptors(message.client):
            # an earlier INIT for this client, still binding: a donor that gave up on us
            # and handed the client on, which came back. The newer INIT carries the higher
            # sequence number; the older attempt fails and releases what it imported.
            self._acceptor_input(older, h.AcceptorInput.TIMEOUT)
        incoming.init = message
        self._acceptor_input(
            key,
            h.AcceptorInput.INIT,
            sequence=message.next_sequence,
            lifetime=message.lifetime,
        )

    def _serves_outside_handoffs(self, client: IPv6Address) -> bool:
        """Whether ``client`` has connections here, served and no handoff's import, that
        still carry its exchanges (a handoff away from here is the donor's business, see
        _offered). One closing after its last response does not count: the client's next
        connection, handed here, is welcome (counted, a netns buffer sweep's second download
        was refused while its first one's close lingered here)."""
        if self._outgoing_of(client) is not None:
            return False
        imported = {
            id(sock)
            for incoming in self._incoming.values()
            if incoming.acceptor.client == client
            for sock in incoming.socks
        }
        return any(
            id(sock) not in imported and sock.state in _SERVING
            for sock in self.client_sockets(client)
        )

    # -- membership (dynamic) ------------------------------------------------------------------

    def _check_can_leave(self) -> None:
        if self.membership is None:
            raise ValueError("static membership: a member leaves the group by stopping")
        if self._is_contact_node:
            raise ValueError(
                "the contact node cannot leave gracefully yet: stop it, and a backup takes "
                "the contact address over"
            )
        if self.membership.role is not ms.Role.SNODE and self.membership.role is not ms.Role.CORE:
            raise ValueError(f"not a member of the group ({self.membership.role.value})")

    def _leave(self, now: float) -> None:
        """Graceful leave (issue 15 item 1): no new clients here, every client handed to
        another member, then the membership engine's leave (the contact node removes us).
        Clients no member took within LEAVE_HANDOFF_WAIT stay served here after the leave."""
        if self._leaving:
            return
        self._leaving = True
        for port in list(self._service_listeners):
            self.stop_serving(port)
        contact = self.contact_address.packed
        clients = {
            sock.key[2]
            for sock in self.host.stack.connections
            if sock.key[0] == contact and sock.state is not TcpState.CLOSED
        }
        for client in sorted(clients):
            self.handoff(IPv6Address(client), elsewhere=True)
        self._emit(StartTimer(now + LEAVE_HANDOFF_WAIT, LEAVE_TIMER))
        self._leave_when_handed_on()

    def _leave_when_handed_on(self, *, waited: bool = False) -> None:
        if not self._leaving or self.membership is None:
            return
        if self._outgoing and not waited:
            return
        self._leaving = False
        self._emit(CancelTimer(LEAVE_TIMER))
        self._membership(self.membership.leave(self._now))

    def _membership(self, actions: list[ms.Action]) -> None:
        """Performs the membership engine's actions: its messages go over the member channel
        (to the contact address: a channel to C, which the home agent tunnels to the member
        that registered it), its timers are the member's, a new view is what the policy
        chooses from."""
        for action in actions:
            match action:
                case ms.Send(
                    peer=IPv6Address() as peer, message=msg.Heartbeat() | msg.HeartbeatAnswer()
                ) if self._heartbeat_port is not None and self._heartbeat_sender is not None:
                    self._heartbeat_port.sendto(
                        self._heartbeat_sender.seal(action.message),  # type: ignore[arg-type]
                        (str(peer), self.config.channel_port),
                        str(self.own_address),
                    )
                case ms.Send(peer=ms.Destination.CONTACT_ADDRESS, message=message):
                    self._send(self.contact_address, message)
                case ms.Send(peer=IPv6Address() as peer, message=message):
                    self._send(peer, message)
                case StartTimer(at=at, token=token):
                    self._emit(StartTimer(at, (MEMBERSHIP_TIMER, token)))
                case CancelTimer(token=token):
                    self._emit(CancelTimer((MEMBERSHIP_TIMER, token)))
                case ms.ViewChanged(view=view):
                    self._view_changed(view)
                case ms.Joined(join_id=join_id, role=role):
                    self._membership_event("joined", join_id=join_id, role=role.value)
                case ms.Left():
                    self._membership_event("left")
                case ms.Removed():
                    self._membership_event("removed")
                    # every member that replicated to this one took it for dead and sends
                    # its replicas to another buddy now (to this one again once it is back
                    # in its view and the buddy again): kept, one of them resumed a client
                    # its sender had handed on since (its drop went to the other buddy), and
                    # took the client from the member serving it (a chaos run's resets)
                    self._replicas.clear()
                    self._pause_replicated()
                case ms.BecameContactNode(view_number=number):
                    self._membership_event("became_contact_node", view_number=number)
                    self._lease_regained()
                    self._take_over()
                case ms.SteppedDown(reason=ms.StepDownReason.LEASE_EXPIRED):
                    # no fresh echo from the watchers: a successor may act from
                    # lease_margin on, so C's registration must not be renewed from here
                    # (it would overwrite the successor's); while the home agent sends C's
                    # packets here, nobody else has them, so the rest goes on
                    self._membership_event("stepped_down", reason="lease_expired")
                    if not self._lease_lost:
                        self._lease_lost = True
                        self._lease_lost_at = self._now
                case ms.SteppedDown(reason=reason):
                    self._membership_event("stepped_down", reason=reason.value)
                    self._step_down()

    def _heartbeat_datagram(self, data: bytes, remote: Any, local: Any) -> None:
        # called from the host's delivery: the work waits for the entry point's end
        self._deferred.append(functools.partial(self._heartbeat_now, data))

    def _heartbeat_now(self, data: bytes) -> None:
        opened = self._heartbeat_receiver.open(data)
        if opened is not None and self.membership is not None:
            sender, message = opened
            self._count(f"received_{type(message).__name__.lower()}")
            self._membership(self.membership.handle_message(self._now, sender, message))

    def _membership_event(self, name: str, **fields: Any) -> None:
        self._count(f"membership_{name}")
        log.info("membership: %s %s", name, fields, extra={"membership": name, **fields})
        self._emit(Event(f"membership_{name}", fields))

    def _lease_regained(self) -> None:
        """The contact node holds its lease again. Lost longer than ``lease_margin``, a
        successor may have taken C over meanwhile (membership cannot tell from here when the
        lease came back because this member is alone: a partition), so it registers C again at
        once: the home agent's BA 135 then says another member holds C and it steps down
        (:meth:`_home_agent_holds_another`), one round trip after, not at its next refresh."""
        if not self._lease_lost:
            return
        self._lease_lost = False
        margin = self.membership.config.lease_margin if self.membership is not None else 0.0
        due = self._refresh_due or self._now - self._lease_lost_at > margin
        self._refresh_due = False
        if due:
            self._check_registration()

    def _check_registration(self) -> None:
        """Register C again now (above this member's own last number, below any successor's,
        which skipped ahead): accepted, nothing changes; BA 135, another member holds C."""
        if self._is_contact_node:
            self._count("contact_registration_checked")
            self._mobile(self.mobile.handle_timer(self._now, ("refresh", self.mobile.home_agent)))

    def _registration_state(self) -> msg.ContactState | None:
        """C's home registration as the acting contact node holds it, or None."""
        entry = self.mobile.bul.get(self.mobile.home_agent)
        if not self._is_contact_node or entry is None or not entry.home_registration:
            return None
        counters: list[msg.SaCounter] = []
        if self.mobile.security is not None:
            for sa in self.mobile.security.security_associations()[: msg.MAX_SA_COUNTERS]:
                outbound = sa.direction is Direction.OUTBOUND
                counters.append(
                    msg.SaCounter(
                        spi=sa.spi,
                        outbound=outbound,
                        number=sa.sequence_counter if outbound else sa.replay_top,
                    )
                )
        return msg.ContactState(binding_sequence=entry.sequence, counters=tuple(counters))

    def _report_contact_state(self) -> None:
        """The acting contact node tells each backup what changed of C's registration (its
        Binding Update sequence number, its SAs' counters), so a successor continues both
        (DSERVER 5)."""
        state = self._registration_state()
        view = self.membership.view if self.membership is not None else None
        if state is None or view is None:
            return
        backups = {entry.address for entry in view.core} - {self.own_address}
        self._contact_state_ticks += 1
        again = self._contact_state_ticks % CONTACT_STATE_REPEAT == 0
        for backup in backups:
            if again or self._contact_state_sent.get(backup) != state:
                self._contact_state_sent[backup] = state
                self._send(backup, state)
        for gone in set(self._contact_state_sent) - backups:
            del self._contact_state_sent[gone]

    def _continue_registration(self) -> int | None:
        """A successor continues the dead contact node's registration from its last report:
        the SAs' counters above its (they are this member's copies of the same SAs), and the
        Binding Update number to start above. None when no report came: the home agent's BA
        135 then gives the number (RFC 3775 11.7.3), and with ESP the SAs start where they
        were configured, which a home agent that saw the old counters refuses as replays."""
        state = self._contact_state
        if state is None:
            if self._security is not None:
                self._count("takeover_without_contact_state")
                log.warning("membership: taking C over without the contact node's SA counters")
            return None
        if self._security is not None:
            reported = {(c.spi, c.outbound): c.number for c in state.counters}
            for sa in self._security.security_associations():
                outbound = sa.direction is Direction.OUTBOUND
                number = reported.get((sa.spi, outbound))
                if number is not None:
                    sa.continue_after(number, skip=SA_SEQUENCE_SKIP if outbound else 0)
        return (state.binding_sequence + CONTACT_SEQUENCE_SKIP) & 0xFFFF

    def _take_over(self) -> None:
        """Issue 15 item 2: this member is the contact node now. It registers C at the home
        agent from its own address (RFC 3775 11.7.3 takes its Binding Update above the last
        one the home agent accepted), relays for the others with an empty relay table (a
        handoff whose HoT the dead contact node was to relay fails and is retried), and
        distributes the new clients that reach it through the home agent's tunnel."""
        if self._is_contact_node:
            return  # the founder, or a lease taken up again without a step down between
        sequence_after = self._continue_registration()
        self._home_sequence_free = sequence_after is None
        self._is_contact_node = True
        self.contact_node = self.own_address
        self._contact_state = None
        self._count("contact_takeover")
        log.warning("membership: taking the contact address %s over", self.contact_address)
        self._announce_tunnels()  # into this member's own table, empty until now
        self._mobile(
            self.mobile.take_home_registration(
                self._now,
                home_agent=self.config.home_agent,
                security=self._security,
                home_test_relay=self._relay_home_test,
                sequence_after=sequence_after,
            )
        )

    def _step_down(self) -> None:
        """No longer the contact node (it leaves, a view without it, or one naming another):
        it drops C's registration, so a successor's is never overwritten by it, and goes
        through the home agent directly until a view names the new contact node."""
        if not self._is_contact_node:
            return
        self._is_contact_node = False
        self._lease_lost = self._refresh_due = False
        self._mobile(self.mobile.relay_through(self._now, self.config.home_agent))

    def _follow(self, contact: IPv6Address) -> None:
        """A view names ``contact`` as the contact node: the home agent is reached through
        it (HoTIs, reverse-tunnelled packets)."""
        if contact == self.own_address or contact == self.contact_node:
            return
        if self._is_contact_node:
            self._step_down()
        self.contact_node = contact
        self._mobile(self.mobile.relay_through(self._now, contact))
        self._announce_tunnels()
        self._recoveries_test_again()

    def _recoveries_test_again(self) -> None:
        """The way to the home agent changed (a new contact node to relay through, or this
        member registered C itself): a recovery's return routability went through the dead
        contact node, so its HoTI goes again now (the back-off had put the next try seconds
        on, and a recovery's time ran out waiting), and it gets its time again from now."""
        for client in self._recovering:
            entry = self.mobile.bul.get(client)
            if entry is not None and entry.state is BulState.RETURN_ROUTABILITY:
                self._count("recover_test_init_again")
                self._mobile(self.mobile.start_route_optimization(self._now, client))
            self._arm_recovery(client)

    def _view_changed(self, view: msg.View) -> None:
        """The committed view's members are the ones the policy may choose (this member is
        always among them: a member removed by mistake joins again, B7)."""
        if view.contact is not None:
            self._follow(view.contact.address)
        members = {entry.address for entry in view.members()} | {self.own_address}
        if self.own_address not in {entry.address for entry in view.members()}:
            # a view without this member (before Removed comes, see _pause_replicated): the
            # buddy its clients' replicas went to until now
            self._buddy_at_removal = self.buddy()
        gone_members = self.view.members - members
        if gone_members and self.membership is not None:
            self._quiet(self.membership.config.vote_timeout)
            for key, incoming in list(self._incoming.items()):
                if key[0] in gone_members and incoming.acceptor.state is h.AcceptorState.BINDING:
                    self._adopt(key)
        for gone in gone_members:
            self.view.remove(gone)
            self.tunnels.drop_member(gone)
        for new in members - self.view.members:
            self.view.add(new)
        self._new_incarnations(view)
        self._view_order = [e.address for e in sorted(view.members(), key=lambda e: e.join_id)]
        core = tuple(entry.address for entry in view.core)
        if self._is_contact_node and core == (self.own_address,) and len(self._core) > 1:
            # alone by suspecting every other core member: no lease holds then (membership's
            # partition exception), and one of them may have suspected this one and taken C
            # over; by a failure timeout from now any that could has, and its number is above
            # this member's (successors skip ahead), so C's registration is checked then
            assert self.membership is not None
            at = self._now + self.membership.config.failure_timeout
            self._emit(StartTimer(at, CONTACT_CHECK_TIMER))
        self._core = core
        for sender, held in list(self._replicas.items()):
            # a member that chose this one as its buddy in an earlier view and is not in this
            # one died or left: its clients are served here. This member's own views may
            # never have had it (it joined as the sender was dying); a replica sent under a
            # view not yet seen here is a newer member's, not a dead one's
            if sender not in members and any(
                h.replica.view_number < view.number for h in held.values()
            ):
                self._recover_from(sender)
        self._replicas = {m: r for m, r in self._replicas.items() if m in members}
        self._follow_buddy()
        self._membership_event(
            "view",
            number=view.number,
            core=[str(e.address) for e in view.core],
            snodes=[str(e.address) for e in view.snodes],
        )

    def _new_incarnations(self, view: msg.View) -> None:
        """A member back with a new join id is a new life of it (it died and was restarted):
        the channel to its old life is dead (what goes on it is lost until the RST comes), so
        it is dropped, and the replicas its old life held are sent again."""
        join_ids = {entry.address: entry.join_id for entry in view.members()}
        for member, join_id in join_ids.items():
            old = self._join_ids.get(member)
            if old is None or old == join_id or member == self.own_address:
                continue
            connection = self._channels.pop(member, None)
            if connection is not None and not connection.closed:
                connection.sock.abort()
            self._replicate_again(member)
        # a member back after it was out of the view, whose channel has gone unanswered for a
        # retransmission timeout: its old life's (it died and was restarted; its join id in
        # the view between was none). Kept, the replicas for the new life went on it, into
        # segments that life answers with a RST only at the next backed-off retransmission
        # (3.4 s in a chaos run: the restarted buddy held 14 of its predecessor's ~60
        # clients when that one died, the rest stalled). A channel that is answered is the
        # same life's (removed by mistake, it joined again) and stays.
        for member in join_ids.keys() - self._join_ids.keys() - {self.own_address}:
            connection = self._channels.get(member)
            if connection is not None and not connection.closed and connection.sock.conn.backoff:
                del self._channels[member]
                connection.sock.abort()
                self._replicate_again(member)
        self._join_ids = join_ids

    def _unreachable(self, member: IPv6Address) -> None:
        """A handoff to ``member`` timed out or could not reach it (8.1: "when a handoff to
        them fails"): the contact node hears of it and removes the member if it is dead."""
        if self.membership is not None and member != self.own_address:
            self._membership(self.membership.peer_unreachable(self._now, member))

    # -- replication (issue 15 item 3) ---------------------------------------------------------

    def buddy(self) -> IPv6Address | None:
        """The member this one replicates its clients to: the next in the view by join id
        (the last one's is the first), None alone or with static membership."""
        if self.membership is None:
            return None
        return _buddy_in(self._view_order, self.own_address, set(self._view_order))

    def replicate(self, client: IPv6Address) -> bool:
        """Send the buddy a replica of ``client``: each of its connections here, replicated
        running (tcp_migrate's regenerable form, or its full one for a service whose output
        cannot be made again but whose state says where it stands: ``full_replicas``), with
        its application state, and the client's binding. False (counted) when there is no
        buddy, nothing to replicate, or a connection whose service can be replicated neither
        way (a proxy's)."""
        buddy = self.buddy() if self.config.replication else None
        # the connections that still owe the client data or our FIN (a finished download's
        # has nothing to resume; tcp_migrate resyncs these, a closing one's FIN sent again),
        # frozen ones too: a handoff of the client may be under way (the replica is dropped
        # when it completes), and a new buddy must get the client even then, or a donor that
        # dies while it rebinds the client after a failed attempt takes the client along
        # and those in TIME_WAIT whose acknowledgement of the client's FIN may have been lost
        # (_owes): a replica of the client's next connection left them out, and the FIN sent
        # again after this member's death met a member with no such connection (a chaos run)
        ms_now = stack_ms(self._now)
        socks = [sock for sock in self.client_sockets(client) if _owes(sock, ms_now)]
        if buddy is None or not socks:
            return False
        if len(socks) > msg.MAX_CONNECTIONS:  # more than one message carries
            self._count("replica_too_many_connections")
            return False
        connections = []
        for sock in socks:
            service = self.services.get(sock.key[1])
            state, regenerable = service.export_state(sock) if service else (b"", False)
            if not regenerable and not (service is not None and service.full_replicas):
                self._count("replica_not_regenerable")
                return False
            try:
                snapshot = (
                    sock.conn.export(include_unacked=not regenerable)
                    if sock.frozen
                    else sock.conn.replica(ms_now, include_unacked=not regenerable)
                )
            except SnapshotError:
                self._count("replica_not_exportable")
                return False
            connections.append(
                msg.ConnectionState(
                    snapshot=snapshot, regenerable=regenerable, application_state=state
                )
            )
        entry = self.mobile.bul.get(client)
        # bound only once the client took a binding of this member's (it acknowledged one,
        # or sent through it: an acceptor thawed by the client's first packet, its
        # acknowledgement lost; unbound, a chaos run's recovery from such an acceptor's
        # replica went unrecognised by the donor, which claimed the client back from a
        # frozen state the acceptor had served past, and the client was reset): a number
        # only sent may be far from the client's (a new life's first Binding Update), and a
        # recovery that met the client's own then took it for another member's binding and
        # stepped aside; unbound, a recovery outbids whatever number the client reports.
        # Once bound, the last number sent (a rebinding above the client's is the client's)
        bound = entry is not None and (
            entry.acknowledged_sequence is not None
            or entry.state is BulState.BOUND
            or self._sent_through.get(client) == entry.sequence
        )
        sequence = entry.sequence if entry is not None and bound else None
        outgoing = self._outgoing_of(client)
        if (
            outgoing is not None
            and outgoing.donor.state is not h.DonorState.REBINDING
            and (bound or outgoing.binding is not None)
        ):
            # a handoff under way (the client frozen, its binding out of the mobile node, or
            # about to be): a window below the first INIT's number, whatever the mobile node
            # sent after it was chosen (a Binding Update sent again moved the binding's
            # number on by one, and a recovery from it then took an acceptor's BA 135 for
            # the dead member's own outbid and took the client from the acceptor serving it)
            sequence = outgoing.base_sequence
        recovery = self._recovering.get(client)
        if recovery is not None and sequence is None:
            # resumed here, not bound yet: the number of the replica it was resumed from
            # (None: an adopted INIT's, which every other member stepped aside for)
            sequence = recovery.sequence
        tunnelled = self.tunnelled.sequence(client)
        if tunnelled is not None:
            sequence = tunnelled
        replica = msg.Replica(
            client=client,
            binding_sequence=sequence if sequence is not None else 0,
            bound=sequence is not None,
            lifetime=self.config.binding_lifetime,
            view_number=self._view_number(),
            connections=tuple(connections),
            serial=self._next_replica_serial(),
            tunnelled=tunnelled is not None,
            home_token=None if tunnelled is not None else self._home_token(client, outgoing),
        )
        self._replicated[client] = _Sent(buddy, frozenset(sock.key for sock in socks))
        self._count("replica_sent")
        self._send(buddy, replica)
        fallback = self._fallback_buddy
        if fallback is not None and fallback != buddy and fallback in self.view.members:
            # the new buddy has acknowledged nothing yet: the old one gets the replica too,
            # and its acknowledgement releases what the replica covers. A new buddy's
            # channel opens slowly when its SYN is lost (a second, then one segment in
            # flight and three seconds to send it again: RFC 5681 3.1, RFC 6298 5.7): a chaos
            # run's member, its buddy a member just started again, sent its clients' new
            # connections' replicas there alone for three seconds and died, and they were
            # lost. It forgets them once the new buddy acknowledges this replica or a later
            # one (_moved)
            self._count("replica_sent_fallback")
            self._send(fallback, replica)
            olds, _ = self._moving.get(client, (frozenset(), 0))
            self._moving[client] = (olds | {fallback}, replica.serial)
        waiting = self._done_after_replica.get(client)
        if waiting is not None and waiting[0] == buddy:
            # the donor is the buddy: the DONE follows the replica on the one channel, so the
            # donor holds the replica before it lets its frozen copy go, and waiting for its
            # acknowledgement only adds a round trip to a member busy with the handoff (a
            # chaos run's loaded donor gave this acceptor up meanwhile, and the client was
            # reset by the next acceptor's resync)
            self._count("handoff_done_behind_replica")
            self._send_done_after_replica(client)
        return True

    def _home_token(self, client: IPv6Address, outgoing: _Outgoing | None) -> msg.HomeToken | None:
        """The home keygen token this member holds for ``client`` (its Binding Update List
        entry's, or the handoff's under way once the entry went out with the binding), for
        the replica: a recovery reusing it needs only the care-of test (RFC 3775 5.2.7), two
        crossings of the member's own link each way instead of the home test's path through
        the contact node and the home agent (two chaos runs' recoveries lost all five tries
        of return routability in 16 s, and reset the client)."""
        entry = self.mobile.bul.get(client)
        if entry is not None and entry.tokens.home_keygen_token is not None:
            token, index = entry.tokens.home_keygen_token, entry.tokens.home_nonce_index
            age = self._now - entry.tokens.home_received
        elif outgoing is not None and outgoing.binding is not None:
            binding = outgoing.binding
            token, index = binding.home_keygen_token, binding.home_nonce_index
            age = (binding.home_token_age or 0.0) + self._now - outgoing.binding_at
        else:
            return None
        if token is None or index is None:
            return None
        return msg.HomeToken(
            nonce_index=index, keygen_token=token, age_ms=min(int(age * 1000), 0xFFFFFFFF)
        )

    def _quiet(self, before_recovery: float) -> None:
        """No RST from C for ``before_recovery`` plus a recovery's longest time:
        a dead member's clients may reach this member meanwhile (the home agent's tunnel, a
        binding to the address this member took over with its new life) while their
        connections are being resumed by the dead member's buddy."""
        until = self._now + before_recovery + RECOVERY_LIMIT * self.config.rebind_timeout
        self._quiet_until = max(self._quiet_until, until)

    def _withhold_rst(self, local: bytes, port: int, remote: bytes) -> bool:
        """Only for the services' ports: a member's channel to C that reached this member
        (the contact node changed under it, or this member's new life) is reset at once, so
        the member connects again; withheld, it hung for the quiet time, and a member joining
        again through it did not join in time."""
        quiet = self._now < self._quiet_until
        return quiet and local == self._contact_packed and port in self.services

    def _next_replica_serial(self) -> int:
        self._replica_serial = (self._replica_serial + 1) & 0xFFFFFFFF
        return self._replica_serial

    def _view_number(self) -> int:
        """The number of the view this member holds (0 before its first)."""
        view = self.membership.view if self.membership is not None else None
        return view.number if view is not None else 0

    def _replicate_again(self, peer: IPv6Address) -> None:
        """The channel to ``peer`` closed: the replicas sent on it may not have arrived (a
        peer that died and came back answers with a RST), so the ones it should hold go
        again, on a new channel."""
        for client, sent in list(self._replicated.items()):
            if sent.buddy == peer:
                del self._replicated[client]
                self.request_replicate(client)

    def _drop_finished_replicas(self) -> None:
        """The replicas of clients that no connection here owes anything any more (their
        last one ended: the client acknowledged our FIN, or it is gone) lose their
        connections at the buddy: kept, a buddy that resumed one after this member died
        would resume a connection the client has closed. What stays is the binding, while
        the client holds one to this member (see _idle_replica); otherwise the replica is
        dropped."""
        for client in [c for c in self._moving if c not in self._replicated]:
            self._drop_moved(client, keep=None)  # replicated nowhere now: nothing to move
        if not self._replicated:
            return
        contact = self.contact_address.packed
        ms_now = stack_ms(self._now)
        owed = {
            sock.key[2]
            for sock in self.host.stack.connections
            if sock.key[0] == contact and _owes(sock, ms_now)
        }
        for client in [c for c in self._replicated if c.packed not in owed]:
            idle = self._idle_replica(client)
            if idle is None:
                self._count("replica_dropped_finished")
                self._drop_replica(client)
                continue
            sent = self._replicated.pop(client)
            self._count("replica_sent_idle")
            log.info(
                "replication: %s idle, its binding %d kept at %s",
                client,
                idle.binding_sequence,
                sent.buddy,
            )
            self._send(sent.buddy, idle)
            self._drop_moved(client, keep=sent.buddy)

    def _idle_replica(self, client: IPv6Address) -> msg.Replica | None:
        """The replica of a client bound here that has no connection here (its last one
        ended): its binding alone, for as long as the client holds it (RFC 3775 9.5.2: the
        lifetime the client granted). The client's next SYN comes here through that
        binding; should this member die first, the buddy binds the client to itself
        (_recover), and the SYN, sent again (RFC 9293 3.8.1), reaches the buddy instead of
        a dead address until the binding expires (a chaos run's client, between two
        downloads, lost its next one that way). None when the client is not bound here, has
        a connection here its replica carries (it came back: an idle replica taken after it
        replaced that one at the buddy), or a handoff or recovery of it is under way (they
        say where the client goes)."""
        entry = self.mobile.bul.get(client)
        ms_now = stack_ms(self._now)
        if (
            entry is None
            or entry.state is not BulState.BOUND
            or any(_owes(sock, ms_now) for sock in self.client_sockets(client))
            or self.tunnelled.sequence(client) is not None
            or self._outgoing_of(client) is not None
            or client in self._recovering
            or client in self._paused
        ):
            return None
        lifetime = int(entry.expires - self._now)
        if lifetime <= 0:
            return None
        return msg.Replica(
            client=client,
            binding_sequence=entry.sequence,
            lifetime=lifetime,
            view_number=self._view_number(),
            connections=(),
            serial=self._next_replica_serial(),
            home_token=self._home_token(client, None),
        )

    def _drop_replica(self, client: IPv6Address) -> None:
        self._sent_through.pop(client, None)
        sent = self._replicated.pop(client, None)
        if sent is not None:
            log.info("replication: the replica of %s at %s dropped", client, sent.buddy)
            self._send(sent.buddy, msg.ReplicaDrop(client=client))
        self._drop_moved(client, keep=sent.buddy if sent is not None else None)

    def _moved(self, peer: IPv6Address, client: IPv6Address, serial: int) -> None:
        """The buddy ``peer`` acknowledged replica ``serial`` of ``client``: once that covers
        the replica that moved the client to it, the old holders forget the client."""
        moving = self._moving.get(client)
        sent = self._replicated.get(client)
        if moving is None or sent is None or sent.buddy != peer:
            return
        if (serial - moving[1]) & 0xFFFFFFFF < 1 << 31:
            self._drop_moved(client, keep=peer)

    def _drop_moved(self, client: IPv6Address, keep: IPv6Address | None) -> None:
        """The old holders of a moved replica of ``client`` forget it (all but ``keep``)."""
        olds, _ = self._moving.pop(client, (frozenset(), 0))
        for old in olds - {keep}:
            if old in self.view.members:
                log.info("replication: %s's replica dropped at %s, its old holder", client, old)
                self._send(old, msg.ReplicaDrop(client=client))

    def _follow_buddy(self) -> None:
        """A new buddy (the old one died or left, or a member joined between): it gets the
        replicas of every client replicated so far, and of every client with a connection
        that owes it something and was never replicated (taken before this member had a
        buddy: a new life's first connections, from clients still bound to its address,
        went unreplicated until their next request, and a chaos run's died with it)."""
        buddy = self.buddy()
        if buddy is None:
            # removed (or alone): the replicas stay where they are, for the old buddy resumes
            # this member's clients from them (dropped there before its own view dropped
            # this member, it had nothing to resume them from); the next buddy gets them all,
            # whoever it is (the old one's new life too)
            self._buddyless = True
            return
        again, self._buddyless = self._buddyless, False
        if buddy != self._last_buddy:
            # until the new buddy acknowledges a replica, each goes to the old one too, if it
            # is alive (see replicate)
            self._fallback_buddy = self._last_buddy
            self._last_buddy = buddy
        for client, sent in list(self._replicated.items()):
            held_by = sent.buddy
            if held_by != buddy or again:
                del self._replicated[client]
                if held_by == buddy:
                    self.replicate(client)
                    continue
                log.info("replication: %s's replica moves from %s to %s", client, held_by, buddy)
                # make before break: the old buddy (if alive) forgets it once the new one
                # acknowledges its replica (_moved). Dropped at once, a member that died
                # while a new buddy's channel was opening (its SYN lost: a second) took the
                # clients not yet replicated there along (a chaos run's 16 stalled). Should
                # it die first, both may resume the client, and the recoveries' rule (the
                # higher serial goes on) keeps one
                replicated = self.replicate(client)
                olds, _ = self._moving.get(client, (frozenset(), 0))  # (a fallback's too)
                self._moving[client] = (olds | {held_by}, self._replica_serial)
                if not replicated:  # nothing went to the new buddy: the old ones forget it now
                    self._drop_moved(client, keep=None)
        contact = self.contact_address.packed
        ms_now = stack_ms(self._now)
        never = {
            IPv6Address(sock.key[2])
            for sock in self.host.stack.connections
            if sock.key[0] == contact and _owes(sock, ms_now) and self._replicable(sock)
        } - self._replicated.keys()
        arriving = {incoming.acceptor.client for incoming in self._incoming.values()}
        for client in never - arriving - self._recovering.keys() - self._paused.keys():
            # (a handoff's or a recovery's landing replicates those)
            self.request_replicate(client)

    def _replica_message(self, peer: IPv6Address, message: msg.Replica | msg.ReplicaDrop) -> None:
        # from any member that proved the group key, in this member's view or not yet: a
        # member that just joined hears from its new predecessor before the view that says so
        # (it goes when a view without the sender comes)
        if self.membership is None:
            self._count("replica_without_membership")
            return
        held = self._replicas.setdefault(peer, {})
        if isinstance(message, msg.ReplicaDrop):
            dropped = held.pop(message.client, None)
            log.info(
                "replication: %s's replica of %s dropped (serial %s)",
                peer,
                message.client,
                dropped.replica.serial if dropped is not None else "none held",
            )
            return
        # acknowledged kept or not: the sender holds its client's traffic back until then
        self._send(peer, msg.ReplicaAck(client=message.client, serial=message.serial))
        if message.client not in held and len(held) >= self.config.max_connections:
            self._count("replica_table_full")
            return
        held[message.client] = _HeldReplica(message, self._now)
        self._count("replica_kept")
        # one line per replica: what a recovery resumes is then in the holder's log
        log.info(
            "replication: %s's replica %d of %s kept (view %d, bound at %s)",
            peer,
            message.serial,
            message.client,
            message.view_number,
            message.binding_sequence if message.bound else "none",
        )
        recovery = self._recovering.get(message.client)
        if (
            recovery is not None
            and recovery.origin == peer
            and recovery.serial is not None
            and _later_replica(message, recovery.view, recovery.serial)
        ):
            self._refresh_recovery(message.client, held[message.client])

    def _recover_from(self, member: IPv6Address) -> None:
        """``member`` left the view (dead, or removed): serve the clients it replicated here."""
        for client, held in self._replicas.pop(member, {}).items():
            self._recover(client, held, member)

    def _recover(self, client: IPv6Address, held: _HeldReplica, origin: IPv6Address) -> None:
        """Import the client's connections frozen, to resynchronize from its next segment
        (tcp_migrate's resync), and bind it here above the dead member's number: return
        routability through the contact node, then a Binding Update. The connections thaw
        when it is acknowledged (or the client's packet comes through the binding); they are
        reset if that does not happen within ``rebind_timeout``."""
        # (a connection of the client's closing here is no service of it: the import of one
        # on its 4-tuple fails below)
        if self._holds_client(client) or client in self._by_client or client in self._recovering:
            self._count("recover_skipped_served")
            return
        replica = held.replica
        idle = not replica.connections  # the binding alone (see _idle_replica)
        if idle and (
            self.mobile.bul.get(client) is not None
            or self.client_sockets(client)
            or held.binding_expired(self._now)
        ):
            # bound here since, or the client's binding to the dead member has expired: its
            # next SYN reaches the group without us
            self._count("recover_idle_skipped")
            return
        socks = self._resume(held)
        if not socks and not idle:
            return
        self._recovering[client] = _Recovery(
            socks,
            replica.binding_sequence if replica.bound else None,
            origin,
            self._now,
            replica.serial,
            replica.view_number,
            tunnelled=replica.tunnelled,
            idle=idle,
        )
        self._count("recover_idle_started" if idle else "recover_started")
        announce = msg.ClientRecovering(
            client=client,
            serial=replica.serial,
            origin=origin,
            binding_sequence=replica.binding_sequence if replica.bound else None,
            ports=_client_ports(socks),
        )
        # an idle client's announcement goes to its dead member too: removed from the view
        # alive, it may have taken the client's next connection since, and claims the client
        for member in (self.view.members | ({origin} if idle else set())) - {self.own_address}:
            self._send(member, announce)
        if replica.tunnelled:
            # no Mobile IPv6: the contact node's table is its binding (mip6.dserver.tunnel),
            # bound above the dead member's number as a Binding Update would be
            self._bind_tunnel(client, (replica.binding_sequence + RECOVERY_STEP) & 0xFFFF)
            self._arm_recovery(client)
            return
        before = self.mobile.bul.get(client)
        token = replica.home_token
        log.warning(
            "replication: serving %s for a dead member (its binding here was %s): %s's "
            "replica %d of view %d, bound at %s, %s",
            client,
            before.state.value if before is not None else "none",
            origin,
            replica.serial,
            replica.view_number,
            replica.binding_sequence if replica.bound else "none",
            ", ".join(sock.state.name for sock in socks),
        )
        self.mobile.import_correspondent(
            self._now,
            CorrespondentState(
                correspondent=client,
                home_address=self.contact_address,
                # the Binding Update goes RECOVERY_STEP above the replica's number: above
                # the dead member's own later ones, below any handoff acceptor's (a window
                # above), whose BA 135 then says another member took the client
                sequence=(replica.binding_sequence + RECOVERY_STEP - 1) & 0xFFFF,
                # the dead member's home keygen token, aged since (the mobile node sends the
                # home test again if it is stale, or the client's BA says its nonce expired)
                home_nonce_index=token.nonce_index if token is not None else None,
                home_keygen_token=token.keygen_token if token is not None else None,
                home_token_age=(
                    token.age_ms / 1000 + self._now - held.received if token is not None else None
                ),
            ),
        )
        self._mobile(self.mobile.start_route_optimization(self._now, client))
        self._arm_recovery(client)

    def _resume(self, held: _HeldReplica) -> list[Socket]:
        """The replica's connections imported frozen, each to resynchronize from its client's
        next segment (tcp_migrate's resync), its service told."""
        socks: list[Socket] = []
        # the dead member's timestamp clocks ran on at most this long after the replica
        # (plus its transit, which the time to notice the death covers): the resumed
        # connections' clocks jump that far, past every TSval it sent
        age_ms = int((self._now - held.received) * 1000)
        for connection in held.replica.connections:
            try:
                sock = self.host.import_connection(self._now, connection.snapshot)
            except (SnapshotError, ConnectionStateError, StackError):
                self._count("recover_import_failed")
                continue
            try:
                sock.conn.resync(age_ms=age_ms, peer_wait_ms=self._peer_wait_ms())
            except ConnectionStateError:
                # a state resync does not take: the imported connection goes again at once
                # (kept, it stayed frozen here, recorded nowhere, to the end of a chaos run)
                self._count("recover_resync_refused")
                log.warning(
                    "replication: %s's connection %s not resumed: resync refuses %s",
                    IPv6Address(sock.key[2]),
                    sock.key[3],
                    sock.state.name,
                )
                self.host.stack.detach(sock)
                continue
            service = self.services.get(sock.key[1])
            self._watch_received(sock)
            if service is not None:
                service.handed_in(self, sock, connection.application_state)
            socks.append(sock)
        return socks

    def _refresh_recovery(self, client: IPv6Address, held: _HeldReplica) -> None:
        """A newer replica from the member whose client a recovery resumes, before the
        recovery has bound the client: that member was removed from the view alive (a false
        suspicion) and serves on until this member's binding takes the client, holding back
        what it sends until this member acknowledges the replica that covers it. The
        recovery goes on from the newer replica: from the older one, a keep-alive connection
        whose client had since sent its next request could only be reset (a chaos run's)."""
        recovery = self._recovering[client]
        for sock in recovery.socks:
            service = self.services.get(sock.key[1])
            if service is not None:
                service.handed_off(sock)
            self.host.stack.detach(sock)  # (its 4-tuple is taken again at once)
        socks = self._resume(held)
        self._count("recover_refreshed")
        if not socks:
            # nothing of the newer replica could be imported: the recovery ends as one
            # another member serves (its sender does)
            self._recovering[client] = replace(recovery, socks=[])
            self._recovery_superseded(client)
            return
        self._recovering[client] = replace(
            recovery, socks=socks, serial=held.replica.serial, view=held.replica.view_number
        )
        self.request_replicate(client)

    def _peer_wait_ms(self) -> int | None:
        """How long a resumed connection waits for its client's bytes beyond the replica
        (tcp_migrate's resync): members that held every acknowledgement until a replica
        covered it (``hold_until_replicated``, a group-wide setting) never took bytes the
        client will not send again, however late its backed-off timer; otherwise the
        default, after which what the dead member took is skipped."""
        return LONGEST_PEER_WAIT_MS if self.config.hold_until_replicated else None

    def _wait_for_view(self, key: tuple[IPv6Address, int]) -> bool:
        """An acceptor whose Binding Update the client has not answered in its attempt's time
        waits once for the view to say whether the donor is alive (True: the timeout is put
        off): the client may have taken the update (its acknowledgement lost), and if the
        donor died, FAILED would leave the client bound here to nobody."""
        incoming = self._incoming.get(key)
        if (
            self.membership is None
            or incoming is None
            or incoming.waited_for_view
            or incoming.acceptor.state is not h.AcceptorState.BINDING
        ):
            return False
        incoming.waited_for_view = True
        config = self.membership.config
        wait = config.failure_timeout + config.vote_timeout
        self._count("acceptor_waited_for_view")
        self._emit(StartTimer(self._now + wait, ("handoff_acceptor", key)))
        return True

    def _adopt(self, key: tuple[IPv6Address, int]) -> None:
        """The donor died after its INIT, the client frozen for this member: the connections
        imported from the INIT are the latest anyone holds (the donor sent nothing after the
        freeze), so this member binds the client (above its own number, at once) and serves
        it, as a recovery, and tells every member (CLIENT_CLAIMED): the donor's buddy would
        otherwise resume the client from an older replica, below this member's binding."""
        incoming = self._incoming[key]
        client, socks = incoming.acceptor.client, incoming.socks
        incoming.socks = []
        self._emit(CancelTimer(("handoff_acceptor", key)))
        self._finish_incoming(key, "adopted")
        # resumed as a replica would be: should the donor's buddy have resumed the client
        # before the claim reached it, the client stands past the freeze (a full snapshot's
        # unacknowledged bytes stay, and go from where the client stands). A frozen donor
        # acknowledged nothing after its snapshot: the client's bytes beyond it will come
        self._resync_owing(socks, incoming.started)
        entry = self.mobile.bul.get(client)
        # no number to step aside for (None): the claim has every other member step aside,
        # and a number the client holds above ours is an older binding's (the donor started
        # from a guess, or an attempt before ours failed), to be outbid
        self._recovering[client] = _Recovery(socks, None, key[0], self._now)
        self._count("handoff_adopted")
        log.warning("handoff %016x: the donor died; %s served here", key[1], client)
        if entry is not None:
            self._mobile(self.mobile.rebind(self._now, client, entry.sequence))
        self._arm_recovery(client)
        self._claim(client, key[0])

    def _claim(self, client: IPv6Address, origin: IPv6Address) -> None:
        """CLIENT_CLAIMED to every member, and to the one that served the client before: it
        may be alive (removed from the view by a false suspicion) and serving on."""
        self._send_claim((self.view.members | {origin}) - {self.own_address}, client)

    def _send_claim(self, members: Iterable[IPv6Address], client: IPv6Address) -> None:
        """CLIENT_CLAIMED to ``members``, remembered for a rebinding period: a rival claim in
        that time is a race (_claimed). An answer to a CLIENT_QUERY or CLIENT_RECOVERING is
        a claim too: the asker may have bound the client before the answer came, its claim
        crossing it, and each side must then take the other's message for a rival claim and
        settle the race by the same rule (a chaos run's crossing left the client to nobody:
        the asker yielded to the answer as to a rival's claim, the answerer to the claim)."""
        horizon = self._now - self.config.rebind_timeout
        for old in [c for c, at in self._claims_sent.items() if at < horizon]:
            del self._claims_sent[old]
        self._claims_sent[client] = self._now
        for member in members:
            self._send(member, msg.ClientClaimed(client=client))

    def _claimed(self, claimer: IPv6Address, client: IPv6Address) -> None:
        """CLIENT_CLAIMED: another member adopted ``client`` (see _adopt), resumed it from
        this member's replica (a view removed this member while it was alive: see
        _recovered), or serves it (the answer to this member's CLIENT_QUERY). Its replicas
        here go, but the claimer's own (this member is its buddy: they resume the client
        should the claimer die; dropped, a chaos run's contact node died with a client
        nobody resumed), and so does a recovery of it (from a dead donor's replica, older
        than the adopter's INIT, under a binding below the adopter's). This
        member's own service of the client yields too, without a RST, handoff or not:
        serving on, two members answered the client, each binding it above the other (a
        loaded chaos run's resets); the claimer's binding wins at the client and its
        connections resynchronize from where this member left the client."""
        for origin, held in self._replicas.items():
            if origin != claimer:
                held.pop(client, None)
        if client in self._syn_queries:  # (see _old_binding_syn)
            until = self._now + self.config.rebind_timeout
            self._syn_queries[client] = _SynQuery("claimed", until)
        claimed_at = self._claims_sent.get(client)
        if claimed_at is not None and self._now - claimed_at < self.config.rebind_timeout:
            # both resumed the client (two held a dead member's replica of it: its drop at
            # the old buddy was still queued when it died) and each claims it: yielded
            # both, nobody served it (a chaos run's stalls). The higher address keeps it
            # and binds it again above whatever the client holds (RFC 3775 11.7.3 on BA
            # 135), the other lets it go
            if self.own_address > claimer:
                self._count("claim_race_kept")
                if self._outgoing_of(client) is not None:
                    # a donor that answered: its handoff goes on, and its next INIT's window
                    # is above whatever the claimer bound
                    return
                entry = self.mobile.bul.get(client)
                if entry is not None:
                    self._mobile(self.mobile.rebind(self._now, client, entry.sequence))
                return
            self._count("claim_race_yielded")
            del self._claims_sent[client]
        was_paused = self._paused.pop(client, None) is not None
        if was_paused:
            self._emit(CancelTimer((PAUSE_TIMER, client)))
            self._syn_while_paused.pop(client.packed, None)  # it comes again to the claimer
        if client in self._recovering:
            self._recovery_superseded(client)
            return
        outgoing = self._outgoing_of(client)
        if outgoing is not None:
            self._emit(CancelTimer(outgoing.donor.timer))
            self._finish_outgoing(outgoing, "claimed")
        elif not was_paused and self._unknown_to(claimer, client):
            # the claimer resumed no replica of these connections (one of a dead member's,
            # or of this member's earlier life, which the client may have finished since):
            # yielding, they were lost (a chaos run: a member restarted, took a client's
            # new connection, and let it go to the claim of its old life's buddy, whose
            # resumed connection the client had closed). They pause while the claimer is
            # asked (CLIENT_QUERY): it answers if it serves the client (they go then), else
            # they are served on here, the client bound here again (_pause_over)
            ms_now = stack_ms(self._now)
            socks = [sock for sock in self.client_sockets(client) if not sock.frozen]
            for sock in socks:
                sock.freeze(ms_now)
            self._count("claim_questioned")
            log.info(
                "replication: %s claimed by %s, which holds no replica of its connections "
                "here: %d paused, %s asked",
                client,
                claimer,
                len(socks),
                claimer,
            )
            self._pause(client, socks, claimer, CLIENT_QUERY_WAIT)
            return
        self.udp.release(client)  # its datagrams still coming here are dropped
        socks = self.client_sockets(client)
        if socks:
            self._count("recover_yielded")
            log.warning("replication: %s is served by another member now; given up", client)
            self._release(socks, handed_off=True)
            self._drop_replica(client)
            self._mobile(self.mobile.forget_correspondent(self._now, client))

    def _pause_replicated(self) -> None:
        """The group removed this member alive (a false suspicion): its buddy resumes every
        client replicated to it, from the replica, and binds it. Serving on meanwhile, this
        member would take the client past what the replica knows (a chaos run's download
        reset: the client stood past the last response the replica knew), so each such
        client's connections freeze here until the claim of whoever resumed it arrives
        (_claimed lets them go; the buddy is asked, CLIENT_QUERY) or, nobody claiming it
        within a rebinding period (the replica never arrived), they thaw and it is served
        on. A handoff of a client still preparing ends (serving the client on, it bound the
        client again when it failed, above the buddy's recovery); a client frozen for one
        pauses should the handoff fail. When the view that removed this member has no longer
        its buddy either (both taken for dead at once), nobody resumes them: none is
        paused."""
        # the buddy of the view that removed this member, or, told before that view came
        # (PLEASE_REJOIN), of the one it holds: left unpaused, a chaos run's member served on
        # while its buddy resumed its clients, and the two bound them in turn
        buddy = self._buddy_at_removal if self._buddy_at_removal is not None else self.buddy()
        self._buddy_at_removal = None
        if not self.config.replication or buddy is None or buddy not in self.view.members:
            if buddy is not None:
                self._count("client_pause_no_buddy")
            return
        ms_now = stack_ms(self._now)
        contact = self.contact_address.packed
        # every client with a connection that owes it something and whose service replicates
        # (the buddy holds its replica: each went at the connection's SYN-ACK), whether or
        # not the replica's channel is open now (a silence closes it)
        clients = {
            IPv6Address(sock.key[2])
            for sock in self.host.stack.connections
            if sock.key[0] == contact and _owes(sock, ms_now)
        }
        for client in clients:
            if client in self._paused or client in self._recovering:
                continue  # a recovery's own rules bind it
            outgoing = self._outgoing_of(client)
            if client.packed in self._frozen_clients:
                # frozen for a handoff, its INIT perhaps out: the handoff's rules bind the
                # client, and should it fail the client pauses at its thaw (_donor_effects)
                if outgoing is not None:
                    self._pause_at_thaw[client] = buddy
                continue
            socks = [sock for sock in self.client_sockets(client) if not sock.frozen]
            if not socks or not all(self._replicable(sock) for sock in socks):
                continue
            if outgoing is not None:
                # a handoff still preparing (nothing frozen, no INIT out) serves the client
                # on and, failing, binds it again above the buddy's recovery (a chaos run:
                # the client's binding went back and forth between the two, and the
                # download was reset): it ends here, and the client pauses as the others
                self._give_up_preparing(outgoing)
            for sock in socks:
                sock.freeze(ms_now)
            self._pause(client, socks, buddy)
        if self._paused:
            log.warning("membership: removed alive: %d clients paused", len(self._paused))

    def _pause(
        self,
        client: IPv6Address,
        socks: list[Socket],
        asked: IPv6Address,
        wait: float | None = None,
    ) -> None:
        """``client``'s connections (frozen) wait for the claim of the member ``asked``
        (CLIENT_QUERY), or ``wait`` (default a rebinding period, see _pause_replicated): a
        buddy answers at once for the clients it resumes (it claims them); one it does not
        answer for in that time it does not resume (its replica never arrived: a chaos run's
        clients paused 21 s for nothing)."""
        self._paused[client] = socks
        self._count("client_paused")
        self._send(asked, msg.ClientQuery(client=client))
        if wait is None:
            wait = self.config.rebind_timeout
        self._emit(StartTimer(self._now + wait, (PAUSE_TIMER, client)))

    def _unknown_to(self, claimer: IPv6Address, client: IPv6Address) -> bool:
        """Whether ``client`` has a live connection here that the claimer holds no replica
        of: this member's last replica of the client went elsewhere, or did not carry it."""
        sent = self._replicated.get(client)
        known = sent.keys if sent is not None and sent.buddy == claimer else frozenset()
        return any(
            sock.key not in known
            for sock in self.client_sockets(client)
            if sock.state in _OWING and not sock.frozen
        )

    def _give_up_preparing(self, outgoing: _Outgoing) -> None:
        """End a handoff that froze nothing yet: its acceptor is told (it lets the client's
        tokens go) and the client's services hear that the client stayed."""
        donor = outgoing.donor
        if donor.target is not None:
            self._send_abort(donor, donor.target)
        self._emit(CancelTimer(donor.timer))
        self._finish_outgoing(outgoing, "given up: removed alive")
        self._count("handoff_given_up_removed")
        for service in self._services_of(self.client_sockets(donor.client)):
            service.handoff_failed(donor.client, tuple(donor.tried))

    def _replicable(self, sock: Socket) -> bool:
        """Whether ``sock``'s service has it replicated (see replicate)."""
        service = self.services.get(sock.key[1])
        if service is None:
            return False
        return service.full_replicas or service.export_state(sock)[1]

    def _pause_over(self, client: IPv6Address) -> None:
        """Nobody claimed ``client`` in the pause's time: it is served on here."""
        socks = self._paused.pop(client, None)
        if socks is None:
            return
        self._count("client_pause_unclaimed")
        log.warning("membership: %s claimed by nobody; bound and served on here", client)
        self._thaw([sock for sock in socks if sock.state is not TcpState.CLOSED])
        self._release_held(client)
        self.request_replicate(client)
        self._take_dropped_syn(self._syn_while_paused, client, "syn_while_paused_taken")
        # another member may have bound the client meanwhile (a claimer that serves it no
        # more): bound here again, above whatever the client holds (RFC 3775 11.7.3 on BA 135)
        if client not in self.tunnelled:
            entry = self.mobile.bul.get(client)
            if entry is not None:
                self._mobile(self.mobile.rebind(self._now, client, entry.sequence))
            elif not self._bul_full():
                self._mobile(self.mobile.start_route_optimization(self._now, client))

    def _recovery_ask(self, client: IPv6Address, held: int) -> None:
        """The recovery of ``client`` met the binding numbered ``held``, a window above its
        replica's: CLIENT_QUERY to every member; a CLIENT_CLAIMED has it step aside
        (_claimed), none in CLIENT_QUERY_WAIT has it go above ``held`` (_query_unanswered)."""
        recovery = self._recovering[client]
        self._recovering[client] = replace(recovery, asked=held)
        if recovery.asked is not None:
            return  # asked already (a Binding Update sent again met the same binding)
        self._count("recover_asked")
        for member in self.view.members - {self.own_address}:
            self._send(member, msg.ClientQuery(client=client))
        self._emit(StartTimer(self._now + CLIENT_QUERY_WAIT, (CLIENT_QUERY_TIMER, client)))

    def _client_queried(self, peer: IPv6Address, client: IPv6Address) -> None:
        """CLIENT_QUERY: a recovery of ``client`` (or a member paused for it) asks whether
        this member serves it. It does when it holds the client's connections (a handoff of
        it under way included, and an acceptor's imported from its INIT), or recovers it
        itself without asking too (two recoveries asking each other would both step aside).
        Connections resumed from a replica count once the client has spoken on one (the
        answer waits for that, half the asker's wait at most). An acceptor still preparing
        does not: it holds nothing of the client, and its donor may be the dead member
        whose client the recovery resumes (answering, it had the recovery step aside and
        then gave the client up, its INIT never come)."""
        recovery = self._recovering.get(client)
        serves = (
            (recovery is not None and recovery.asked is None)
            or (recovery is None and self._serves_heard(client))
            or self.udp.holds(client)
        )
        if serves:
            # one line per claim: which member held a client, and how, is in its log
            log.info(
                "replication: %s claimed for %s's question (recovering: %s, connections: %s)",
                client,
                peer,
                recovery is not None,
                ", ".join(f"{s.key[3]} {s.state.name}" for s in self.client_sockets(client)),
            )
            self._send_claim((peer,), client)
        elif recovery is None and self.client_sockets(client):
            # resumed here from a replica, bound, and not yet heard from: whether the client
            # still has these connections is unknown until it answers (a chaos run's client
            # had finished its one and reset it; answered at once, the asker let its own new
            # connection go). Answered in half the asker's wait if one lives then
            self._emit(StartTimer(self._now + CLIENT_QUERY_WAIT / 2, (ANSWER_TIMER, client, peer)))

    def _serves_heard(self, client: IPv6Address) -> bool:
        """Whether a connection of ``client`` here is one the client is known to hold and
        still exchanges on: not a resumed one still waiting to resynchronize from the
        client's next segment, nor one resumed in SYN_RECEIVED still waiting for the client's
        ACK of its SYN-ACK (no listener: it was imported, not accepted from a SYN here;
        tcp_migrate's resync has nothing to probe there, and the client may have finished
        that connection long ago: a chaos run's recovery from a replica taken at the SYN-ACK
        answered at once, and the member asking yielded the client's live connection to
        it), nor one closing here (TIME_WAIT lasts a minute: a chaos run's restarted member,
        asking about a new connection's SYN, heard a claim for it again and again, and the
        client's SYNs were dropped until its download stalled)."""
        return any(
            sock.state in _SERVING
            and not sock.conn.resyncing
            and not (sock.listener is None and sock.state is TcpState.SYN_RECEIVED)
            for sock in self.client_sockets(client)
        )

    def _other_recovery(self, peer: IPv6Address, message: msg.ClientRecovering) -> None:
        """CLIENT_RECOVERING: ``peer`` resumes ``client`` from its replica ``serial``. A
        recovery of it here from a replica steps aside when its (serial, address) is the
        lower: the higher serial is the dead member's later replica, the one its buddy of
        the last view held (two recoveries from one dead member's replicas bound the client
        in turn, and the one left serving from the older replica reset a chaos run's echo
        dialogues); from two members' replicas, the one bound the earlier does (see
        _steps_aside). It has not bound the client yet (a bound one is served, below). A member
        that holds the client's connections (serving them, handing them on, or an acceptor
        that imported them from an INIT, to adopt them should their donor be the dead one)
        says so (CLIENT_CLAIMED), and the peer steps aside. An acceptor still preparing (no
        INIT, nothing imported) does not: its donor died before it, and the recovery is the
        client's only server (answering, such acceptors left a chaos run's clients to
        nobody). A donor with the client frozen answers too, even when the acceptor it gave
        the client to has died since and the recovery may be that acceptor's buddy's: it
        may as well be a stale replica's (a member that served the client before, whose
        drop never reached its buddy), and a chaos run's stale recovery, left unanswered,
        reset five downloads with a connection state from their SYN-ACK. The donor's
        handoff goes on (its next INIT resyncs the client: see Donor.silent). Unless the
        replica is its acceptor's, taken after that acceptor took the client (see
        _taken_by_recovered_acceptor)."""
        client, ports = message.client, message.ports
        outgoing = self._outgoing_of(client)
        if outgoing is not None and self._taken_by_recovered_acceptor(outgoing, peer, message):
            return
        recovery = self._recovering.get(client)
        if recovery is not None and recovery.serial is not None:
            if _steps_aside(recovery, self.own_address, message, peer):
                self._count("recover_tie_yielded")
                self._recovery_superseded(client)
            else:
                # ours goes on, and the peer hears of it: ours may have begun after the
                # peer's CLIENT_RECOVERING came and found none here (a chaos run: the older
                # replica's recovery began after the later one's message had reached it,
                # took the other's as none, and bound the client; the later one yielded
                # to its claim, and the client's dialogues were reset)
                self._send(
                    peer,
                    msg.ClientRecovering(
                        client=client,
                        serial=recovery.serial,
                        origin=recovery.origin,
                        binding_sequence=recovery.sequence,
                        ports=_client_ports(recovery.socks),
                    ),
                )
            return
        if recovery is not None or self._holds_client(client, ports) or self.udp.holds(client):
            log.info("replication: %s claimed for %s's recovery", client, peer)
            self._send_claim((peer,), client)

    def _taken_by_recovered_acceptor(
        self, outgoing: _Outgoing, peer: IPv6Address, message: msg.ClientRecovering
    ) -> bool:
        """Whether ``peer``'s recovery of this handoff's client is from the replica of the
        acceptor whose INIT is out: the replica is bound at that INIT's number or above
        (numbers only grow, and an acceptor's replica says bound only once the client took
        its binding), so the acceptor took the client and held it past the frozen snapshots,
        and died. For this donor that is the acceptor's DONE (the handoff completes to it),
        and no claim holds the recovery back. Claimed, the recovery stepped aside, the
        donor's next INIT resynchronized from the frozen snapshots, and met a client past the
        last response they knew (a chaos run's reset download). Once the donor has moved on
        to another acceptor, that one claims the client as it imported it, as before."""
        donor = outgoing.donor
        sent = outgoing.inits.get(message.origin)
        if (
            sent is None
            or message.binding_sequence is None
            or donor.target != message.origin
            or donor.state not in (h.DonorState.INITIATED, h.DonorState.ABORTING)
        ):
            return False
        if (message.binding_sequence - sent) & 0xFFFF >= 0x8000:  # RFC 3775 9.5.1's order
            return False
        self._count("handoff_done_by_recovery")
        log.warning(
            "handoff %016x: %s's recovery of %s from %s's replica bound at %d (its INIT's %d):"
            " taken as that acceptor's DONE",
            donor.handoff_id,
            peer,
            donor.client,
            message.origin,
            message.binding_sequence,
            sent,
        )
        self._from_acceptor(message.origin, donor.handoff_id, h.DonorInput.DONE)
        return True

    def _holds_client(self, client: IPv6Address, ports: Collection[int] = ()) -> bool:
        """Whether ``client`` is served here: a connection of its still carries exchanges,
        or one of ``ports`` (a recovery's connections) is here in any state. A connection on
        another port that is closing here (TIME_WAIT, or our FIN unacknowledged as the client
        went on to its next connection elsewhere) is over: taken for service, it claimed a
        chaos run's client away from the recovery of its live connection, and nobody served
        that."""
        return any(
            sock.state in _SERVING or sock.key[3] in ports for sock in self.client_sockets(client)
        )

    def _query_unanswered(self, client: IPv6Address) -> None:
        """Nobody claimed ``client`` in CLIENT_QUERY_WAIT: the binding its recovery met is a
        released acceptor's, and the recovery goes above it (RFC 3775 9.5.1: a BA 135
        carries the last number the client accepted), with its time from now."""
        recovery = self._recovering.get(client)
        if recovery is None or recovery.asked is None:
            return
        self._recovering[client] = replace(recovery, asked=None)
        self._count("recover_outbid")
        log.warning(
            "replication: nobody serves %s (its binding %d): bound here above it",
            client,
            recovery.asked,
        )
        if recovery.tunnelled:
            # no Mobile IPv6: the contact node's table is its binding
            self._bind_tunnel(client, (recovery.asked + 1) & 0xFFFF)
        else:
            self._mobile(self.mobile.rebind(self._now, client, recovery.asked))
        self._arm_recovery(client)

    def _arm_recovery(self, client: IPv6Address) -> None:
        """The recovery of ``client`` has ``rebind_timeout`` from now to bind it, or its
        connections are reset (RECOVER_TIMER). Its frozen connections go to this member's
        buddy at once: should this member die before the recovery binds the client, the
        buddy resumes it (a chaos run lost a client whose second server died three seconds
        into its recovery)."""
        self._emit(StartTimer(self._now + self.config.rebind_timeout, (RECOVER_TIMER, client)))
        self.request_replicate(client)

    def _recovered(self, client: IPv6Address) -> None:
        recovery = self._recovering.pop(client)
        socks = recovery.socks
        self._emit(CancelTimer((RECOVER_TIMER, client)))
        if recovery.idle:
            # only the binding moved: nobody else has anything of the client's to let go
            # (one that had claimed it, and this recovery stepped aside). Our buddy keeps the
            # binding in turn, should this member die before the client comes back
            self._count("recover_idle_completed")
            log.info("replication: idle %s bound here for %s", client, recovery.origin)
            idle, buddy = self._idle_replica(client), self.buddy()
            if idle is not None and buddy is not None and self.config.replication:
                self._count("replica_sent_idle")
                self._send(buddy, idle)
            return
        # bound here now: whoever else serves the client (the member the view removed, alive)
        # lets it go
        self._claim(client, recovery.origin)
        self._count("recover_completed")
        self.udp.thaw(client)
        self._thaw(socks)
        self.request_replicate(client, hold=socks)

    def _recovery_due(self, client: IPv6Address) -> None:
        """The recovery's rebinding period is over: while its binding is still under way
        (return routability, or a Binding Update unanswered) it gets another, up to
        RECOVERY_LIMIT in all; then its connections are reset."""
        recovery = self._recovering.get(client)
        if recovery is None:
            return
        entry = self.mobile.bul.get(client)
        if entry is None:
            # the binding begun here is gone (another member took the client over it): its
            # connections go without a RST, which would reset them where they are served
            self._recovery_superseded(client)
            return
        limit = recovery.started + RECOVERY_LIMIT * self.config.rebind_timeout
        if entry.state is not BulState.BOUND and self._now < limit:
            self._count("recover_extended")
            self._emit(
                StartTimer(
                    min(self._now + self.config.rebind_timeout, limit), (RECOVER_TIMER, client)
                )
            )
            return
        self._recovery_failed(client)

    def _recovery_failed(self, client: IPv6Address) -> None:
        recovery = self._recovering.pop(client, None)
        if recovery is None:
            return
        self._count("recover_failed")
        entry = self.mobile.bul.get(client)
        log.warning(
            "replication: %s could not be bound here (binding %s); its connections reset",
            client,
            entry.state.value if entry is not None else "none",
        )
        for sock in recovery.socks:
            sock.abort()
        self._drop_replica(client)
        self.udp.forget(client)
        self._mobile(self.mobile.forget_correspondent(self._now, client))
        self.tunnelled.forget(client)

    def _recovery_superseded(self, client: IPv6Address) -> None:
        """Another member holds ``client`` (see _out_of_window): the imported connections go
        without a RST (the client's are alive there) and so does the binding started here."""
        recovery = self._recovering.pop(client)
        socks = recovery.socks
        self._emit(CancelTimer((RECOVER_TIMER, client)))
        if recovery.asked is not None:
            self._emit(CancelTimer((CLIENT_QUERY_TIMER, client)))
        self._count("recover_superseded")
        log.warning("replication: %s is served by another member; not resumed here", client)
        self._release(socks, handed_off=True)
        self._drop_replica(client)
        self.udp.release(client)
        self._mobile(self.mobile.forget_correspondent(self._now, client))

    # -- helpers -------------------------------------------------------------------------------

    def let_go(self, sock: Socket) -> None:
        """Forget ``sock`` once what the stack has to send for it now is out (the
        acknowledgement of the segment the service just read), sending nothing more
        (tcp_migrate's ``Stack.release``: its stragglers dropped silently): a service's
        connection with nothing left to say, not even a FIN."""
        self._letting_go.append(sock)

    def _release(self, socks: list[Socket], *, handed_off: bool) -> None:
        ms = stack_ms(self._now)
        for sock in socks:
            if handed_off:
                service = self.services.get(sock.key[1])
                if service is not None:
                    service.handed_off(sock)
            self.host.stack.release(ms, sock)

    def _services_of(self, socks: list[Socket]) -> list[Service]:
        found: dict[int, Service] = {}
        for sock in socks:
            service = self.services.get(sock.key[1])
            if service is not None:
                found[id(service)] = service
        return list(found.values())

    def _thaw(self, socks: list[Socket]) -> None:
        """Resume ``socks`` here; each one's service continues (it may have output to
        regenerate)."""
        ms = stack_ms(self._now)
        for sock in socks:
            sock.on_frozen_input = None
            sock.thaw(ms)
            if sock.on_change is not None:
                sock.on_change(sock)

    def _remember(
        self,
        side: str,
        handoff_id: int,
        client: IPv6Address,
        started: float,
        phases: list[tuple[float, str]],
        outcome: str,
    ) -> None:
        self.history.append(
            {
                "side": side,
                "handoff_id": f"{handoff_id:016x}",
                "client": str(client),
                "started": started,
                "phases": [(round(t - started, 6), name) for t, name in phases],
                "outcome": outcome,
            }
        )
        del self.history[:-256]

    def _client_rows(self, now: float) -> list[dict[str, Any]]:
        clients: dict[bytes, list[Socket]] = {}
        for sock in self.host.stack.connections:
            if sock.key[0] == self.contact_address.packed:
                clients.setdefault(sock.key[2], []).append(sock)
        rows = []
        for raw, socks in sorted(clients.items()):
            client = IPv6Address(raw)
            entry = self.mobile.bul.get(client)
            tunnel = self.tunnelled.sequence(client)
            rows.append(
                {
                    "client": str(client),
                    "connections": len(socks),
                    "frozen": sum(sock.frozen for sock in socks),
                    # DSERVER 3: a client without Mobile IPv6 is reached through the contact
                    # node's tunnel; the others through their binding once bound
                    "mipv6": tunnel is None,
                    "via": "tunnel" if tunnel is not None else "binding",
                    "binding": entry.state.value if entry else "none",
                    "sequence": tunnel if tunnel is not None else entry.sequence if entry else None,
                    "handoff": client in self._by_client,
                }
            )
        return rows

    def _handoff_rows(self) -> list[dict[str, Any]]:
        rows = [
            {
                "side": "donor",
                "handoff_id": f"{o.donor.handoff_id:016x}",
                "client": str(o.donor.client),
                "state": o.donor.state.value,
                "target": str(o.donor.target) if o.donor.target else None,
                "phases": [(round(t - o.started, 6), name) for t, name in o.phases],
            }
            for o in self._outgoing.values()
        ]
        rows += [
            {
                "side": "acceptor",
                "handoff_id": f"{i.acceptor.handoff_id:016x}",
                "client": str(i.acceptor.client),
                "state": i.acceptor.state.value,
                "donor": str(i.acceptor.donor),
                "phases": [(round(t - i.started, 6), name) for t, name in i.phases],
            }
            for i in self._incoming.values()
        ]
        return rows + [dict(row, state="finished") for row in self.history[-32:]]

    def _member_rows(self, now: float) -> list[dict[str, Any]]:
        """Static membership: the configured members. Dynamic: this member's view (role,
        join id, when each was last heard), then the members the policy knows besides."""
        membership = self.membership
        buddy = self.buddy()
        entries: dict[IPv6Address, tuple[int, str]] = {}
        if membership is not None and membership.view is not None:
            view = membership.view
            for i, entry in enumerate(view.core):
                entries[entry.address] = (entry.join_id, "contact_node" if i == 0 else "backup")
            for entry in view.snodes:
                entries[entry.address] = (entry.join_id, "snode")
        rows = []
        for member in sorted(set(entries) | self.view.members):
            row: dict[str, Any] = {
                "member": str(member),
                "self": member == self.own_address,
                "channel": (
                    "established"
                    if (c := self._channels.get(member)) is not None and c.established
                    else "open"
                    if c is not None
                    else "none"
                ),
                "channel_queued": c.queued if c is not None else 0,
            }
            if membership is None:
                row["contact_node"] = member == self.config.contact_node
            else:
                join_id, role = entries.get(member, (None, "not in view"))
                heard = membership.last_heard(member)
                row.update(
                    role=role,
                    join_id=join_id,
                    last_heard_s_ago=None if heard is None else round(now - heard, 3),
                    suspected=member in membership.suspected,
                    # this member's buddy (it holds our replicas), and how many replicas of
                    # each member's clients this one holds
                    buddy=member == buddy,
                    replicas_held=len(self._replicas.get(member, {})),
                )
            rows.append(row)
        return rows

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


class _Chosen:
    """A handoff with a named acceptor: that member first, then the group's policy."""

    def __init__(self, target: IPv6Address, fallback: Policy) -> None:
        self.target = target
        self.fallback = fallback

    def select_target(self, selection: Selection) -> IPv6Address | None:
        if self.target not in selection.tried:
            return self.target
        return self.fallback.select_target(selection)

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        self.fallback.notify_failure(member, reason, now)


def _steps_aside(
    recovery: _Recovery, own: IPv6Address, other: msg.ClientRecovering, peer: IPv6Address
) -> bool:
    """Whether a recovery here from a replica steps aside for ``peer``'s, of which ``other``
    tells. Both members decide alike, so exactly one of them goes on. Of one dead member's
    replicas the higher serial is the later; serials of two members' replicas do not compare
    (each member counts its own), their bindings do: the client was bound to one after the
    other's replica was taken (numbers only grow, RFC 3775 9.5.1), so the replica bound the
    later is the one that knows where the client's connections stand. A chaos run's
    recovery from a dead member's replica bound at 5529 made the other, from the replica
    of the member the client had moved to (bound at 5545, removed while alive), step aside
    for its higher serial, bound the client and reset its download (the client stood past
    the older replica). Without two bindings, (serial, address) decides as before."""
    assert recovery.serial is not None
    mine, theirs = recovery.sequence, other.binding_sequence
    if recovery.origin != other.origin and mine is not None and theirs is not None:
        if sequence_newer(theirs, mine):
            return True
        if sequence_newer(mine, theirs):
            return False
    return (recovery.serial, own) < (other.serial, peer)


def _later_replica(replica: msg.Replica, view: int, serial: int) -> bool:
    """Whether ``replica`` was taken after the one of ``view`` and ``serial`` by the same
    member: in a later view, or in the same one with a later serial (RFC 1982 arithmetic).
    The view first: a member's new life numbers its replicas from 1 again, in a view after
    every one of its earlier life (a chaos run's recovery took a restarted member's replica
    of its client's new connection for an older one and resumed the client's finished
    connection instead, which the client reset)."""
    if replica.view_number != view:
        return replica.view_number > view
    return 0 < (replica.serial - serial) & 0xFFFFFFFF < 1 << 31


def _bare_syn(packet: bytes) -> bool:
    """Whether ``packet`` (IPv6, any extension headers) is a TCP SYN without ACK."""
    try:
        chain = walk(packet)
    except WireError:
        return False
    flags_at = chain.upper_offset + 13
    return (
        chain.upper_protocol == protocols.TCP
        and len(packet) > flags_at
        and packet[flags_at] & (_TCP_SYN | _TCP_ACK) == _TCP_SYN
    )


def _owes(sock: Socket, ms_now: int) -> bool:
    """Whether ``sock`` is replicated and its replica must stay at the buddy: it owes its
    client something (_OWING), or it acknowledged the client's FIN less than
    TIME_WAIT_GRACE_RTOS retransmission timeouts (TIME_WAIT_GRACE_MIN_MS at least) ago. That
    acknowledgement may be lost, and the client then sends its FIN again at its timer:
    dropped at once, a member that died in TIME_WAIT left the FIN to a member with no such
    connection, whose RST closed it (a chaos run's client in LAST_ACK)."""
    if sock.state in _OWING:
        return True
    if sock.state is not TcpState.TIME_WAIT:
        return False
    raw = sock.conn.raw
    entered = raw.t_timewait - raw.cfg.time_wait_ms  # (a FIN again restarts the wait)
    return ms_now - entered < max(TIME_WAIT_GRACE_RTOS * raw.rto_ms, TIME_WAIT_GRACE_MIN_MS)


# a connection in these states still owes its client data, our FIN or the acknowledgement of
# the client's FIN: it is replicated, and its replica kept at the buddy (tcp_migrate resyncs
# each of them)
_OWING = frozenset(
    (
        TcpState.SYN_RECEIVED,  # its SYN-ACK made: once out, the client is established
        TcpState.ESTABLISHED,
        TcpState.CLOSE_WAIT,
        TcpState.FIN_WAIT_1,
        # our FIN acknowledged, the client's still to come: dropped here, the client's FIN
        # met a member with no such connection after this one died, and its RST (a chaos
        # run's client in LAST_ACK)
        TcpState.FIN_WAIT_2,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
    )
)


# a client's connection that still carries its exchanges (see _serves_outside_handoffs)
_SERVING = frozenset((TcpState.SYN_RECEIVED, TcpState.ESTABLISHED, TcpState.CLOSE_WAIT))


def _inner(data: bytes) -> bytes:
    """The packet inside an IPv6-in-IPv6 tunnel (the home agent's, to the contact node), or
    ``data`` itself."""
    return data[40:] if len(data) >= 80 and data[6] == protocols.IPV6 else data


def _client_of(data: bytes) -> bytes:
    """The source address of the client's packet ``data``, tunnelled or not."""
    return _inner(data)[8:24]


def _client_ports(socks: Iterable[Socket]) -> tuple[int, ...]:
    """The client's ports of ``socks`` (CLIENT_RECOVERING's)."""
    return tuple(sock.key[3] for sock in socks)[: msg.MAX_CONNECTIONS]


# what a donor's thaw resynchronizes (_resync_owing): in FIN_WAIT_2 everything this side sent,
# its FIN too, was acknowledged, and what is still to come is the client's (to whichever member
# it is bound), so there is nothing to ask it. (tcp_migrate's resync refused FIN_WAIT_2 then: a
# chaos run's donor raised in its thaw and left the client unserved; it takes it now, for a
# recovery's replica taken in that state, see _resume)
_RESYNCABLE = _OWING - {TcpState.FIN_WAIT_2}


def _buddy_in(
    order: list[IPv6Address], member: IPv6Address, alive: set[IPv6Address]
) -> IPv6Address | None:
    """``member``'s buddy in a view ordered by join id: the next member after it that is
    ``alive``, wrapping around; None if there is none. Every member computes the same one
    from the same view: a member's replicas go to that one alone."""
    if member not in order:
        return None
    at = order.index(member)
    for step in range(1, len(order)):
        candidate = order[(at + step) % len(order)]
        if candidate in alive and candidate != member:
            return candidate
    return None


def _newer_state(held: msg.ContactState | None, came: msg.ContactState) -> msg.ContactState:
    """What a backup keeps of the contact node's reports: the later Binding Update number
    (RFC 3775 9.5.1's modulo 2**16 comparison) and each SA's highest counter. Reports come
    from whoever was contact node when they were sent, and one may arrive before the view that
    names its sender (or after a newer one): keeping the highest of everything is what a
    successor needs, whatever the order."""
    if held is None:
        return came
    ahead = (came.binding_sequence - held.binding_sequence) & 0xFFFF
    sequence = came.binding_sequence if 0 < ahead < 0x8000 else held.binding_sequence
    counters = {(c.spi, c.outbound): c.number for c in held.counters}
    for c in came.counters:
        counters[(c.spi, c.outbound)] = max(counters.get((c.spi, c.outbound), 0), c.number)
    merged = tuple(
        msg.SaCounter(spi=spi, outbound=outbound, number=number)
        for (spi, outbound), number in sorted(counters.items())
    )[: msg.MAX_SA_COUNTERS]
    return msg.ContactState(binding_sequence=sequence, counters=merged)


class _Reporting:
    """The donor's policy, also telling membership of a member a handoff could not reach."""

    def __init__(self, policy: Policy, unreachable: Callable[[IPv6Address], None]) -> None:
        self.policy = policy
        self.unreachable = unreachable

    def select_target(self, selection: Selection) -> IPv6Address | None:
        return self.policy.select_target(selection)

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        self.policy.notify_failure(member, reason, now)
        if reason in (TargetFailure.TIMED_OUT, TargetFailure.UNREACHABLE):
            self.unreachable(member)


class _Elsewhere:
    """The group's policy, never choosing this member (the handoff echo's 'H')."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def select_target(self, selection: Selection) -> IPv6Address | None:
        return self.policy.select_target(
            replace(selection, tried=selection.tried | {selection.local})
        )

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        self.policy.notify_failure(member, reason, now)
