"""Member-channel messages of the handoff protocol (DSERVER.md section 4) and of membership
(section 5), as wire codecs.

The seeds wrote C structs raw onto a TCP connection (SPEC-dserver 4.6: encodings, byte order
and enum values "not specified"); here every message is a frozen dataclass with ``parse`` and
``emit``, network byte order, versioned, strict, round-trip exact. The channel
(``mip6.dserver.channel``) authenticates and encrypts each one; these bytes are its plaintext.

Every message starts with the same first word (Version, Type, Reserved); a handoff message
continues it into this header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------+---------------+-------------------------------+
    |    Version    |     Type      |T|S|        Reserved           |
    +---------------+---------------+-------------------------------+
    |                                                               |
    +                          Handoff Id                           +
    |                                                               |
    +---------------------------------------------------------------+
    |                                                               |
    +                                                               +
    |                        Client Address                         |
    +                          (128 bits)                           +
    |                                                               |
    +---------------------------------------------------------------+
    |                    Type-specific body ...

- T (Tunnelled, PREPARE and INIT only; 0 in every other message): the client does not speak
  Mobile IPv6 and reaches the group through the contact node's tunnel (DSERVER 3,
  :mod:`mip6.dserver.tunnel`): the acceptor binds it with TUNNEL, not return routability and
  a Binding Update.
- S (Resync, INIT only): an acceptor tried before this one took the INIT and went silent; it
  may have bound and served the client, which then stands past these snapshots: the acceptor
  imports them to resynchronize from the client's next segment (tcp_migrate's resync).
- PREPARE (donor -> acceptor, no body): run return routability for (contact address, client)
  now and keep the tokens (RR in advance, seeds 004 6.4); with T, nothing to run.
- PREPARED (acceptor -> donor, no body): the tokens are in hand.
- INIT (donor -> acceptor): the next Binding Update sequence number, the binding lifetime
  (seconds), and every connection of the client (DSERVER 4 rule 1: the binding is per client,
  so all its connections move in one INIT), each a tcp_migrate snapshot, whether it is the
  regenerable form, and the application's state::

    | Next Sequence (16) | Connection Count (16) | Lifetime (32, seconds) |
    then per connection:
    | Flags (8, R = 0x01 regenerable, D = 0x02 datagram) | Reserved (24) |
    | Snapshot Length (32) | Application State Length (32) | Snapshot | Application State |

  A datagram entry (D) is one of the client's UDP flows (:mod:`mip6.dserver.udp`): its
  "snapshot" is the flow's ports (``FlowRepr``), R is clear.

- DONE (acceptor -> donor, no body): the acceptor holds the client; the donor drops its frozen
  copies silently.
- FAILED (acceptor -> donor): ``| Reason (8) | Reserved (24) |``; reasons not known here are
  kept as numbers.
- FROZEN_INPUT (donor -> acceptor, right after the INIT, and again with each later packet
  while that INIT is out): what the client sent the donor's frozen connections during the
  handoff (a request that crossed the freeze), whole IPv6 packets as the donor's stack got
  them, for the acceptor's stack to read as its connections thaw; the
  seeds' donor dropped them, and the client sent them again only when its retransmission
  timer ran out::

    | Count (16) | Reserved (16) | then per packet: | Length (16) | Packet |

Bounds (a peer's frame never makes us allocate beyond them): at most
:data:`MAX_CONNECTIONS` connections, :data:`MAX_SNAPSHOT` bytes per snapshot and
:data:`MAX_APPLICATION_STATE` bytes of application state each.

Membership messages (``mip6.dserver.membership``; the seeds' catalogue, SPEC-dserver 8.1,
whose wire formats the seeds leave open, SPEC-dserver 11.3) share the first word (Version,
Type, Reserved) and have no handoff id or client address: their body follows at once. Numbers
are unsigned, network byte order; a Join Id of 0 means "none yet"::

    JOIN (B1, candidate backup -> contact address):  | Request (32) | Reserved (32) |
    JOIN_ANSWER (B4, contact node -> candidate):
        | Status (8) | Reserved (24) | Request (32) | Join Id (64) | Contact (128) |
    REGISTER (S1, snode -> contact node, periodic): | Join Id (64) | View Number (64) |
    REGISTERED (contact node -> snode):             | Join Id (64) | View Number (64) |
    HEARTBEAT (B5, backup -> its predecessor):
        | Sequence (32) | Echo (32) | View Number (64) |
    HEARTBEAT_ANSWER (predecessor -> backup): | Sequence (32) | Reserved (32) | View Number (64) |
    PLEASE_REJOIN (B7):                       | View Number (64) |
    VIEW_PREPARE (B2/B6, 2PC phase one):      | Transaction (64) | View |
    VIEW_VOTE (B2, participant -> coordinator):
        | Transaction (64) | Highest Number (64) | Vote (8, 1 yes) | Reserved (24) |
    VIEW_COMMIT (B3) and VIEW_ABORT:          | Transaction (64) |
    VIEW (S2, the view update broadcast):     | View |
    CONTACT_QUERY (Q1, any member -> contact address): | Nonce (32) | Reserved (32) |
    CONTACT_ANSWER (Q2, contact node -> asker): | Nonce (32) | Reserved (32) | View Number (64) |
    LEAVE (a member leaving, or a member reported unreachable -> contact node):
        | Reason (8) | Reserved (24) | Join Id (64) | Member (128) |

The contact node's registration state (not a membership message: the member engine keeps it,
DSERVER 5), with the same first word::

    CONTACT_STATE (the acting contact node -> each backup, when it changed):
        | Binding Sequence (16) | Count (8) | Reserved (8) |
        then Count (at most 8) SA counters: | SPI (32) | Outbound (8, 0 or 1) | Reserved (24) |
        | Counter (64: an outbound SA's Sequence Number counter, an inbound one's replay top) |

A member's replicas at its buddy (the member engine keeps them, DSERVER 5), same first word::

    REPLICA (a member -> its buddy, at its clients' request boundaries):
        | Client (128) | Binding Sequence (16) | Connection Count (16) | Lifetime (32) |
        | View Number (64) | Flags (8: 1 bound, 2 tunnelled, 4 home token) | Serial (32) |
        with the home token flag: | Home Nonce Index (16) | Reserved (16) |
        | Home Token Age (32, ms) | Home Keygen Token (64) |
        then the connections as in INIT
    REPLICA_ACK (the buddy -> the member, for each REPLICA: it holds it, and the member
        sends what it held back for it): | Client (128) | Serial (32) |
    REPLICA_DROP (a member -> its buddy, when it no longer serves the client): | Client (128) |
    CLIENT_CLAIMED (an acceptor whose donor died while the client was frozen for it -> every
        member: it holds the client's connections as they were at the freeze, and binds it;
        or a member that serves the client -> the member whose CLIENT_QUERY asked):
        | Client (128) |
    CLIENT_QUERY (a recovery whose Binding Update met a later binding, BA 135 -> every
        member: who serves the client? whoever does answers CLIENT_CLAIMED): | Client (128) |
    CLIENT_RECOVERING (a member resuming a client from a dead member's replica -> every
        member: another recovery of it goes on only if its replica's (Serial, address) is
        higher; a member that serves the client answers CLIENT_CLAIMED; Ports: the client's
        ports of the connections resumed, which a member holding one of them, in any state,
        serves too; Origin: the dead member whose replica it is, and the binding number that
        replica carried, which tells a donor whose INIT went to the origin that the origin
        took the client): | Client (128) | Serial (32) | Port count (16) |
        | Flags (8: 1 bound) | Reserved (8) | Binding Sequence (16) | Origin (128) |
        | Port (16) ... |

The contact node's tunnel for clients without Mobile IPv6 (DSERVER 3, :mod:`.tunnel`), same
first word::

    TUNNEL (a member -> the contact node: tunnel the client's packets to me; numbered like the
        Binding Updates the client would get, so a later handoff's outbids an earlier one's):
        | Client (128) | Sequence (16) | Reserved (16) |
    TUNNEL_ACK (the contact node -> that member):
        | Client (128) | Sequence (16: the TUNNEL's) | Held (16: the number the table holds) |
        | Status (8) | Reserved (24) |

A View (the membership as the contact node commits it)::

    | Number (64) | Next Join Id (64) | Core Count (8) | Reserved (8) | Snode Count (16) |
    then Core Count + Snode Count entries: | Join Id (64) | Address (128) |

The core (the contact node and its backups) comes first, then the snodes; each list strictly
increasing by join id (the contact node is the core's first: SPEC-dserver 8.1 "the contact node
is always selected as the backup node with the lowest ID"), every join id above 0 and below Next
Join Id, no join id or address twice. Views hold at most :data:`MAX_CORE` core members and
:data:`MAX_SNODES` snodes, so a View is at most 24 KiB.
"""

from __future__ import annotations

import enum
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any, ClassVar

from mip6.wire.errors import EmitError, Malformed, Truncated

VERSION = 1
MAX_CONNECTIONS = 64
MAX_SNAPSHOT = 1 << 20  # a full snapshot carries its send and receive rings (256 KiB each here)
MAX_APPLICATION_STATE = 1 << 20
# FROZEN_INPUT: the client's packets a donor keeps for the acceptor, and their largest size
# (a request's segments; a full-sized data segment of a 1500-byte path at most)
MAX_FROZEN_PACKETS = 16
MAX_FROZEN_PACKET = 1500

_HEADER = struct.Struct("!BBHQ16s")
HEADER_LENGTH = _HEADER.size  # 28
# Offsets under the diagram above
VERSION_OFFSET = 0
TYPE_OFFSET = 1
RESERVED_OFFSET = 2
HANDOFF_ID_OFFSET = 4
CLIENT_OFFSET = 12
_INIT = struct.Struct("!HHI")
_CONNECTION = struct.Struct("!B3xII")
_FAILED = struct.Struct("!B3x")
_FROZEN_INPUT = struct.Struct("!HH")  # packet count, reserved
_LENGTH16 = struct.Struct("!H")
REGENERABLE = 0x01
DATAGRAM = 0x02  # a UDP flow (mip6.dserver.udp.FlowRepr), not a tcp_migrate snapshot

MAX_CORE = 16  # the contact node and its backups (the seeds: "typically less than 5" backups)
MAX_SNODES = 1008  # with MAX_CORE, 1024 members in a view
_WORD = struct.Struct("!BBH")  # Version, Type, Reserved: the first word of every message
WORD_LENGTH = _WORD.size
_JOIN = struct.Struct("!I4x")
_JOIN_ANSWER = struct.Struct("!B3xIQ16s")
_REGISTER = struct.Struct("!QQ")  # REGISTER and REGISTERED
_HEARTBEAT = struct.Struct("!IIQ")
_HEARTBEAT_ANSWER = struct.Struct("!I4xQ")
_NUMBER = struct.Struct("!Q")  # PLEASE_REJOIN's view number; the 2PC's transaction
_VOTE = struct.Struct("!QQB3x")
_QUERY = struct.Struct("!I4x")
_CONTACT_ANSWER = struct.Struct("!I4xQ")
_LEAVE = struct.Struct("!B3xQ16s")
_CONTACT_STATE = struct.Struct("!HBx")  # binding sequence, counter count
_SA_COUNTER = struct.Struct("!IB3xQ")  # SPI, direction, counter
# client, binding sequence, connection count, lifetime, the sender's view number, flags
_REPLICA = struct.Struct("!16sHHIQBI")
_REPLICA_ACK = struct.Struct("!16sI")
# client, serial, port count, flags, binding sequence, origin (the ports follow)
_CLIENT_RECOVERING = struct.Struct("!16sIHBxH16s")
RECOVERING_BOUND = 0x01  # the replica was bound (binding_sequence is its number)
REPLICA_BOUND = 0x01  # the sender had bound the client (binding_sequence is its number)
# the client speaks no Mobile IPv6: binding_sequence numbers its tunnel binding (DSERVER 3)
REPLICA_TUNNELLED = 0x02
REPLICA_HOME_TOKEN = 0x04  # a HomeToken follows the fixed part
_HOME_TOKEN = struct.Struct("!H2xI8s")  # home nonce index, age (ms), home keygen token
_CLIENT = struct.Struct("!16s")
TUNNELLED = 0x8000  # the handoff header's T flag (PREPARE and INIT)
RESYNC = 0x4000  # the handoff header's S flag (INIT)
_TUNNEL = struct.Struct("!16sH2x")
_TUNNEL_ACK = struct.Struct("!16sHHB3x")
MAX_SA_COUNTERS = 8  # RFC 3776's pair is four SAs
_VIEW = struct.Struct("!QQBBH")
_ENTRY = struct.Struct("!Q16s")
MAX_VIEW_LENGTH = _VIEW.size + (MAX_CORE + MAX_SNODES) * _ENTRY.size
# The longest message: an INIT at every bound (what the channel's frame length is capped by);
# the longest membership message, a VIEW_PREPARE with a full view, is far shorter.
MAX_MESSAGE_LENGTH = (
    HEADER_LENGTH
    + _INIT.size
    + MAX_CONNECTIONS * (_CONNECTION.size + MAX_SNAPSHOT + MAX_APPLICATION_STATE)
)


class MessageType(enum.IntEnum):
    # handoff (DSERVER.md 4): the header with handoff id and client
    PREPARE = 1
    PREPARED = 2
    INIT = 3
    DONE = 4
    FAILED = 5
    FROZEN_INPUT = 6  # the client's packets to the donor's frozen connections (after INIT)
    # membership (SPEC-dserver 8.1): the first word, then the body
    JOIN = 16
    JOIN_ANSWER = 17
    REGISTER = 18
    REGISTERED = 19
    HEARTBEAT = 20
    HEARTBEAT_ANSWER = 21
    PLEASE_REJOIN = 22
    VIEW_PREPARE = 23
    VIEW_VOTE = 24
    VIEW_COMMIT = 25
    VIEW_ABORT = 26
    VIEW = 27
    CONTACT_QUERY = 28
    CONTACT_ANSWER = 29
    LEAVE = 30
    CONTACT_STATE = 31  # the contact node's registration state, to its backups (DSERVER 5)
    REPLICA = 32  # a client's connections and binding, to the member's buddy (DSERVER 5)
    REPLICA_DROP = 33  # the member no longer serves that client
    CLIENT_CLAIMED = 34  # an acceptor orphaned by its donor's death serves the client
    REPLICA_ACK = 35  # the buddy holds that replica
    TUNNEL = 36  # a member serves a client without MIPv6: its packets to me (DSERVER 3)
    TUNNEL_ACK = 37  # the contact node's answer to TUNNEL
    CLIENT_QUERY = 38  # a recovery asks who serves the client (answered by CLIENT_CLAIMED)
    CLIENT_RECOVERING = 39  # a recovery of the client starts here, from this replica serial


class JoinStatus(enum.IntEnum):
    ACCEPTED = 1  # the candidate is a backup now, with this join id
    FULL = 2  # the core holds MAX_CORE (or the configured number of) members: register as snode
    NOT_CONTACT = 3  # the answerer is not the contact node; Contact is the one it knows, if any


class LeaveReason(enum.IntEnum):
    LEAVING = 1  # the member itself, leaving gracefully
    UNREACHABLE = 2  # reported by a member that found it silent (heartbeat, handoff)


class TunnelStatus(enum.IntEnum):
    """TUNNEL_ACK's status (a number not known here is kept as a number)."""

    ACCEPTED = 0
    SEQUENCE_OUT_OF_WINDOW = 1  # the table holds a later number (TUNNEL_ACK carries it)
    NOT_CONTACT_NODE = 2  # the receiver does not hold the contact address
    NO_ROOM = 3  # the table is full of live entries


class FailureReason(enum.IntEnum):
    """Why an acceptor refused or could not finish a handoff (DSERVER.md section 4)."""

    REFUSED = 1  # the acceptor's policy or load said no
    NO_SUCH_APPLICATION = 2  # nothing serves the connection's port here
    IMPORT_FAILED = 3  # a snapshot did not import (version, checksum, 4-tuple in use)
    CLIENT_UNREACHABLE = 4  # return routability or the Binding Update went unanswered
    TIMEOUT = 5  # the attempt's time ran out
    # the acceptor serves the client already, outside any handoff (an INIT's answer): the
    # group moved the client on without the donor, whose frozen copies are behind it
    SERVED = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionState:
    """One client connection in an INIT: its tcp_migrate snapshot (``regenerable``: the form
    without unacknowledged send bytes, which the application regenerates) and the
    application's state for it; or, ``datagram``, one of the client's UDP flows (the snapshot
    is its :class:`~mip6.dserver.udp.FlowRepr`)."""

    snapshot: bytes
    regenerable: bool = False
    application_state: bytes = b""
    datagram: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    handoff_id: int
    client: IPv6Address
    message_type: ClassVar[MessageType]

    def _header(self, flags: int = 0) -> bytes:
        if not 0 <= self.handoff_id < 1 << 64:
            raise EmitError(f"handoff id {self.handoff_id} does not fit 64 bits")
        return _HEADER.pack(VERSION, self.message_type, flags, self.handoff_id, self.client.packed)

    def emit(self) -> bytes:
        return self._header()


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare(_Message):
    """``tunnelled``: the T flag (the client speaks no Mobile IPv6)."""

    tunnelled: bool = False
    message_type: ClassVar[MessageType] = MessageType.PREPARE

    def emit(self) -> bytes:
        return self._header(TUNNELLED if self.tunnelled else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared(_Message):
    message_type: ClassVar[MessageType] = MessageType.PREPARED


@dataclass(frozen=True, slots=True, kw_only=True)
class Done(_Message):
    message_type: ClassVar[MessageType] = MessageType.DONE


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed(_Message):
    reason: FailureReason | int
    message_type: ClassVar[MessageType] = MessageType.FAILED

    def emit(self) -> bytes:
        if not 0 <= self.reason <= 0xFF:
            raise EmitError(f"failure reason {self.reason} does not fit 8 bits")
        return self._header() + _FAILED.pack(self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Init(_Message):
    """``next_sequence``: the Binding Update sequence number the acceptor sends next (DSERVER
    4 rule 3: numbers only grow, and a retry to a second acceptor reuses it); ``lifetime``:
    the binding lifetime to request, seconds; ``tunnelled``: the T flag (the client speaks
    no Mobile IPv6: ``next_sequence`` numbers its TUNNEL); ``resync``: the S flag (an
    acceptor tried before went silent after its INIT: the client may stand past these
    snapshots)."""

    next_sequence: int
    lifetime: int
    connections: tuple[ConnectionState, ...]
    tunnelled: bool = False
    resync: bool = False
    message_type: ClassVar[MessageType] = MessageType.INIT

    def emit(self) -> bytes:
        if not 0 <= self.next_sequence <= 0xFFFF:
            raise EmitError(f"sequence {self.next_sequence} does not fit 16 bits")
        if not 0 <= self.lifetime < 1 << 32:
            raise EmitError(f"lifetime {self.lifetime} does not fit 32 bits")
        if len(self.connections) > MAX_CONNECTIONS:
            raise EmitError(f"{len(self.connections)} connections (at most {MAX_CONNECTIONS})")
        parts = [
            self._header((TUNNELLED if self.tunnelled else 0) | (RESYNC if self.resync else 0)),
            _INIT.pack(self.next_sequence, len(self.connections), self.lifetime),
        ]
        _emit_connections(parts, self.connections)
        return b"".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class FrozenInput(_Message):
    """``packets``: what the client sent the donor's frozen connections during the handoff,
    whole IPv6 packets (at most :data:`MAX_FROZEN_PACKETS`, each at most
    :data:`MAX_FROZEN_PACKET` bytes)."""

    packets: tuple[bytes, ...]
    message_type: ClassVar[MessageType] = MessageType.FROZEN_INPUT

    def emit(self) -> bytes:
        if len(self.packets) > MAX_FROZEN_PACKETS:
            raise EmitError(f"{len(self.packets)} packets (at most {MAX_FROZEN_PACKETS})")
        parts = [self._header(), _FROZEN_INPUT.pack(len(self.packets), 0)]
        for packet in self.packets:
            if not 0 < len(packet) <= MAX_FROZEN_PACKET:
                raise EmitError(f"a packet of {len(packet)} bytes")
            parts += [_LENGTH16.pack(len(packet)), packet]
        return b"".join(parts)


HandoffMessage = Prepare | Prepared | Init | Done | Failed | FrozenInput


# -- membership ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberEntry:
    """A member in a view: its join id (unique in the group's life: the contact node's
    counter, SPEC-dserver 8.1) and its own address M."""

    join_id: int
    address: IPv6Address


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """The membership the contact node committed: ``number`` grows with every change,
    ``next_join_id`` is the counter the next join id comes from (in the view so that a new
    contact node continues it), ``core`` the contact node (first) and backups, ``snodes`` the
    rest; both strictly increasing by join id."""

    number: int
    next_join_id: int
    core: tuple[MemberEntry, ...]
    snodes: tuple[MemberEntry, ...] = ()

    @property
    def contact(self) -> MemberEntry | None:
        return self.core[0] if self.core else None

    def members(self) -> tuple[MemberEntry, ...]:
        return self.core + self.snodes

    def emit(self) -> bytes:
        problem = _view_problem(self)
        if problem is not None:
            raise EmitError(f"view: {problem[0]}")
        parts = [_VIEW.pack(self.number, self.next_join_id, len(self.core), 0, len(self.snodes))]
        parts += [_ENTRY.pack(e.join_id, e.address.packed) for e in self.members()]
        return b"".join(parts)


def _view_problem(view: View) -> tuple[str, str] | None:
    """Why ``view`` may not be on the wire (reason, field), or None."""
    if not 0 <= view.number < 1 << 64:
        return f"number {view.number} does not fit 64 bits", "number"
    if not 0 < view.next_join_id < 1 << 64:
        return f"next join id {view.next_join_id} out of range", "next_join_id"
    if len(view.core) > MAX_CORE:
        return f"{len(view.core)} core members (at most {MAX_CORE})", "core_count"
    if len(view.snodes) > MAX_SNODES:
        return f"{len(view.snodes)} snodes (at most {MAX_SNODES})", "snode_count"
    for group in (view.core, view.snodes):
        ids = [e.join_id for e in group]
        if any(a >= b for a, b in itertools.pairwise(ids)):
            return "members not in increasing join id order", "join_id"
    entries = view.members()
    if any(not 0 < e.join_id < view.next_join_id for e in entries):
        return "a join id of 0 or not below the next join id", "join_id"
    if len({e.join_id for e in entries}) != len(entries):
        return "a join id twice", "join_id"
    if len({e.address for e in entries}) != len(entries):
        return "an address twice", "address"
    return None


def _fits(value: int, bits: int, name: str) -> None:
    if not 0 <= value < 1 << bits:
        raise EmitError(f"{name} {value} does not fit {bits} bits")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Membership:
    message_type: ClassVar[MessageType]

    def _word(self) -> bytes:
        return _WORD.pack(VERSION, self.message_type, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Join(_Membership):
    """B1: a candidate backup asks to join (authenticated by the channel: the group key
    replaces the seeds' password, D 2.3.3). ``request`` matches the answer to the attempt."""

    request: int
    message_type: ClassVar[MessageType] = MessageType.JOIN

    def emit(self) -> bytes:
        _fits(self.request, 32, "request")
        return self._word() + _JOIN.pack(self.request)


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinAnswer(_Membership):
    """B4 (and the refusals the seeds leave open): ``join_id`` when ACCEPTED, else 0;
    ``contact`` the contact node's own address as the answerer knows it (``::`` if none)."""

    status: JoinStatus | int
    request: int
    join_id: int
    contact: IPv6Address
    message_type: ClassVar[MessageType] = MessageType.JOIN_ANSWER

    def emit(self) -> bytes:
        _fits(self.status, 8, "status")
        _fits(self.request, 32, "request")
        _fits(self.join_id, 64, "join id")
        return self._word() + _JOIN_ANSWER.pack(
            self.status, self.request, self.join_id, self.contact.packed
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Register(_Membership):
    """S1: an snode registers (``join_id`` 0) or re-registers (its join id), telling the
    view number it holds so that a stale one is sent the view."""

    join_id: int
    view_number: int
    message_type: ClassVar[MessageType] = MessageType.REGISTER

    def emit(self) -> bytes:
        _fits(self.join_id, 64, "join id")
        _fits(self.view_number, 64, "view number")
        return self._word() + _REGISTER.pack(self.join_id, self.view_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered(_Membership):
    join_id: int
    view_number: int
    message_type: ClassVar[MessageType] = MessageType.REGISTERED

    def emit(self) -> bytes:
        _fits(self.join_id, 64, "join id")
        _fits(self.view_number, 64, "view number")
        return self._word() + _REGISTER.pack(self.join_id, self.view_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(_Membership):
    """B5: ``sequence`` numbers the heartbeat; ``echo`` is the sequence of the newest answer
    the sender has received (0: none), which renews the predecessor's lease."""

    sequence: int
    echo: int
    view_number: int
    message_type: ClassVar[MessageType] = MessageType.HEARTBEAT

    def emit(self) -> bytes:
        _fits(self.sequence, 32, "sequence")
        _fits(self.echo, 32, "echo")
        _fits(self.view_number, 64, "view number")
        return self._word() + _HEARTBEAT.pack(self.sequence, self.echo, self.view_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatAnswer(_Membership):
    sequence: int
    view_number: int
    message_type: ClassVar[MessageType] = MessageType.HEARTBEAT_ANSWER

    def emit(self) -> bytes:
        _fits(self.sequence, 32, "sequence")
        _fits(self.view_number, 64, "view number")
        return self._word() + _HEARTBEAT_ANSWER.pack(self.sequence, self.view_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class PleaseRejoin(_Membership):
    """B7: "we consider you to have failed, please join again", from a member holding view
    ``view_number``, which no longer lists the receiver."""

    view_number: int
    message_type: ClassVar[MessageType] = MessageType.PLEASE_REJOIN

    def emit(self) -> bytes:
        _fits(self.view_number, 64, "view number")
        return self._word() + _NUMBER.pack(self.view_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewPrepare(_Membership):
    """Two-phase commit, phase one: the coordinator proposes ``view``."""

    transaction: int
    view: View
    message_type: ClassVar[MessageType] = MessageType.VIEW_PREPARE

    def emit(self) -> bytes:
        _fits(self.transaction, 64, "transaction")
        return self._word() + _NUMBER.pack(self.transaction) + self.view.emit()


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewVote(_Membership):
    """A participant's vote; ``highest`` is the highest view number it has committed or
    promised, so that a refused coordinator proposes above it."""

    transaction: int
    highest: int
    yes: bool
    message_type: ClassVar[MessageType] = MessageType.VIEW_VOTE

    def emit(self) -> bytes:
        _fits(self.transaction, 64, "transaction")
        _fits(self.highest, 64, "highest")
        return self._word() + _VOTE.pack(self.transaction, self.highest, int(self.yes))


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewCommit(_Membership):
    transaction: int
    message_type: ClassVar[MessageType] = MessageType.VIEW_COMMIT

    def emit(self) -> bytes:
        _fits(self.transaction, 64, "transaction")
        return self._word() + _NUMBER.pack(self.transaction)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewAbort(_Membership):
    transaction: int
    message_type: ClassVar[MessageType] = MessageType.VIEW_ABORT

    def emit(self) -> bytes:
        _fits(self.transaction, 64, "transaction")
        return self._word() + _NUMBER.pack(self.transaction)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewUpdate(_Membership):
    """S2 widened: the contact node's current view, to every member after each change and to
    any member found holding an older one."""

    view: View
    message_type: ClassVar[MessageType] = MessageType.VIEW

    def emit(self) -> bytes:
        return self._word() + self.view.emit()


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactQuery(_Membership):
    nonce: int
    message_type: ClassVar[MessageType] = MessageType.CONTACT_QUERY

    def emit(self) -> bytes:
        _fits(self.nonce, 32, "nonce")
        return self._word() + _QUERY.pack(self.nonce)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactAnswer(_Membership):
    """Q2: the answer's sender is the contact node; ``view_number`` the view it holds."""

    nonce: int
    view_number: int
    message_type: ClassVar[MessageType] = MessageType.CONTACT_ANSWER

    def emit(self) -> bytes:
        _fits(self.nonce, 32, "nonce")
        _fits(self.view_number, 64, "view number")
        return self._word() + _CONTACT_ANSWER.pack(self.nonce, self.view_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave(_Membership):
    """``member`` (with ``join_id``) leaves: it says so itself (LEAVING), or another member
    found it silent (UNREACHABLE)."""

    reason: LeaveReason | int
    join_id: int
    member: IPv6Address
    message_type: ClassVar[MessageType] = MessageType.LEAVE

    def emit(self) -> bytes:
        _fits(self.reason, 8, "reason")
        _fits(self.join_id, 64, "join id")
        return self._word() + _LEAVE.pack(self.reason, self.join_id, self.member.packed)


@dataclass(frozen=True, slots=True)
class SaCounter:
    """One of the contact address's ESP SAs: ``outbound``, its Sequence Number counter (RFC
    4303 3.3.3); inbound, the top of its replay window (3.4.3)."""

    spi: int
    outbound: bool
    number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactState(_Membership):
    """The acting contact node's registration of C, for its backups: the Sequence Number of
    its last home registration Binding Update and its SAs' counters. A successor continues
    both above them (DSERVER 5: "continuing the SA's sequence counter with a skip and the
    Binding Update sequence number above the last one it knows")."""

    binding_sequence: int
    counters: tuple[SaCounter, ...] = ()
    message_type: ClassVar[MessageType] = MessageType.CONTACT_STATE

    def emit(self) -> bytes:
        _fits(self.binding_sequence, 16, "binding sequence")
        if len(self.counters) > MAX_SA_COUNTERS:
            raise EmitError(f"{len(self.counters)} SA counters (at most {MAX_SA_COUNTERS})")
        parts = [self._word(), _CONTACT_STATE.pack(self.binding_sequence, len(self.counters))]
        for counter in self.counters:
            _fits(counter.spi, 32, "SPI")
            _fits(counter.number, 64, "counter")
            parts.append(_SA_COUNTER.pack(counter.spi, int(counter.outbound), counter.number))
        return b"".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeToken:
    """A home keygen token the member holds for the client (RFC 3775 5.2.5), with its Home
    Nonce Index and its age when the replica was taken. It depends on the home address (the
    contact address) and the client's nonce, not on the care-of address, so the buddy that
    resumes the client reuses it while it is fresh (5.2.7) and needs only the care-of test."""

    nonce_index: int
    keygen_token: bytes
    age_ms: int

    def emit(self) -> bytes:
        _fits(self.nonce_index, 16, "home nonce index")
        _fits(self.age_ms, 32, "home token age")
        if len(self.keygen_token) != 8:
            raise EmitError(f"a home keygen token of {len(self.keygen_token)} bytes (8)")
        return _HOME_TOKEN.pack(self.nonce_index, self.age_ms, self.keygen_token)


@dataclass(frozen=True, slots=True, kw_only=True)
class Replica(_Membership):
    """What a member's buddy needs to serve ``client`` if the member dies (issue 15 item 3):
    every connection of the client as a tcp_migrate replica (regenerable: no unacknowledged
    bytes; else a full one, its send ring with it) with its application state, and the
    client's binding (the Sequence Number of the
    last Binding Update the member sent it, its lifetime). ``view_number``: the sender's
    view, in which the receiver is its buddy; a later view without the sender means the
    receiver serves the client (even if the receiver's own view never had the sender: it
    joined as the sender was dying). ``bound``: the sender held a binding with the client
    (a new client at the contact node has none yet, and ``binding_sequence`` is 0)."""

    client: IPv6Address
    binding_sequence: int
    lifetime: int
    view_number: int
    connections: tuple[ConnectionState, ...]
    bound: bool = True
    serial: int = 0  # the sender's count of its replicas, which the REPLICA_ACK echoes
    tunnelled: bool = False  # no Mobile IPv6: the number is the client's tunnel binding's
    home_token: HomeToken | None = None
    message_type: ClassVar[MessageType] = MessageType.REPLICA

    def emit(self) -> bytes:
        _fits(self.binding_sequence, 16, "binding sequence")
        _fits(self.lifetime, 32, "lifetime")
        _fits(self.view_number, 64, "view number")
        _fits(self.serial, 32, "serial")
        if len(self.connections) > MAX_CONNECTIONS:
            raise EmitError(f"{len(self.connections)} connections (at most {MAX_CONNECTIONS})")
        flags = (
            (REPLICA_BOUND if self.bound else 0)
            | (REPLICA_TUNNELLED if self.tunnelled else 0)
            | (REPLICA_HOME_TOKEN if self.home_token is not None else 0)
        )
        parts = [
            self._word(),
            _REPLICA.pack(
                self.client.packed,
                self.binding_sequence,
                len(self.connections),
                self.lifetime,
                self.view_number,
                flags,
                self.serial,
            ),
        ]
        if self.home_token is not None:
            parts.append(self.home_token.emit())
        _emit_connections(parts, self.connections)
        return b"".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaAck(_Membership):
    """The buddy holds the replica ``serial`` of ``client``: what the member held back until
    its buddy could resume it (its SYN-ACK, the answer to a request) may go."""

    client: IPv6Address
    serial: int
    message_type: ClassVar[MessageType] = MessageType.REPLICA_ACK

    def emit(self) -> bytes:
        _fits(self.serial, 32, "serial")
        return self._word() + _REPLICA_ACK.pack(self.client.packed, self.serial)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaDrop(_Membership):
    """The member no longer serves ``client``: its buddy forgets the replica."""

    client: IPv6Address
    message_type: ClassVar[MessageType] = MessageType.REPLICA_DROP

    def emit(self) -> bytes:
        return self._word() + _CLIENT.pack(self.client.packed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientClaimed(_Membership):
    """A handoff's acceptor whose donor died after the INIT (the client frozen for it) serves
    ``client`` from that INIT: every member drops its replicas of the client and gives up a
    recovery of it."""

    client: IPv6Address
    message_type: ClassVar[MessageType] = MessageType.CLIENT_CLAIMED

    def emit(self) -> bytes:
        return self._word() + _CLIENT.pack(self.client.packed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientQuery(_Membership):
    """A recovery of ``client`` met a binding a window above its replica's (BA 135): whoever
    serves the client says so (CLIENT_CLAIMED, to the sender alone); nobody answering, the
    binding is a released acceptor's and the recovery goes above it."""

    client: IPv6Address
    message_type: ClassVar[MessageType] = MessageType.CLIENT_QUERY

    def emit(self) -> bytes:
        return self._word() + _CLIENT.pack(self.client.packed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRecovering(_Membership):
    """The sender resumes ``client`` from its replica numbered ``serial`` (the dead member's
    replica serials grow with each it sent). Two members may hold a dead member's replicas
    of one client (the old buddy's drop was still queued when it died), or two dead
    members' (it moved from one to the other): of two recoveries, the one from the replica
    bound the earlier steps aside before it binds the client when the origins differ, else
    the one whose (serial, address) is lower (mip6.dserver.member's ``_steps_aside``), and a
    member that serves the client answers CLIENT_CLAIMED."""

    client: IPv6Address
    serial: int
    origin: IPv6Address  # the dead member whose replica it is
    binding_sequence: int | None  # the replica's binding number (None: it was not bound)
    ports: tuple[int, ...] = ()  # the client's ports of the connections resumed
    message_type: ClassVar[MessageType] = MessageType.CLIENT_RECOVERING

    def emit(self) -> bytes:
        _fits(self.serial, 32, "serial")
        if self.binding_sequence is not None:
            _fits(self.binding_sequence, 16, "binding sequence")
        if len(self.ports) > MAX_CONNECTIONS:
            raise EmitError(f"{len(self.ports)} ports (at most {MAX_CONNECTIONS})")
        for port in self.ports:
            _fits(port, 16, "port")
        head = _CLIENT_RECOVERING.pack(
            self.client.packed,
            self.serial,
            len(self.ports),
            RECOVERING_BOUND if self.binding_sequence is not None else 0,
            self.binding_sequence or 0,
            self.origin.packed,
        )
        return self._word() + head + struct.pack(f"!{len(self.ports)}H", *self.ports)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tunnel(_Membership):
    """The sender serves ``client``, which speaks no Mobile IPv6: the contact node tunnels
    the client's packets to it, unless its table holds a later ``sequence`` for the client."""

    client: IPv6Address
    sequence: int
    message_type: ClassVar[MessageType] = MessageType.TUNNEL

    def emit(self) -> bytes:
        _fits(self.sequence, 16, "sequence")
        return self._word() + _TUNNEL.pack(self.client.packed, self.sequence)


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelAck(_Membership):
    """The contact node's answer to the TUNNEL numbered ``sequence``: ``held`` is the number
    its table holds for the client afterwards (the TUNNEL's when accepted, the later one that
    refused it when SEQUENCE_OUT_OF_WINDOW)."""

    client: IPv6Address
    sequence: int
    held: int
    status: TunnelStatus | int
    message_type: ClassVar[MessageType] = MessageType.TUNNEL_ACK

    def emit(self) -> bytes:
        _fits(self.sequence, 16, "sequence")
        _fits(self.held, 16, "held")
        _fits(self.status, 8, "status")
        return self._word() + _TUNNEL_ACK.pack(
            self.client.packed, self.sequence, self.held, self.status
        )


MembershipMessage = (
    Join
    | JoinAnswer
    | Register
    | Registered
    | Heartbeat
    | HeartbeatAnswer
    | PleaseRejoin
    | ViewPrepare
    | ViewVote
    | ViewCommit
    | ViewAbort
    | ViewUpdate
    | ContactQuery
    | ContactAnswer
    | Leave
)
Message = (
    HandoffMessage
    | MembershipMessage
    | ContactState
    | Replica
    | ReplicaAck
    | ReplicaDrop
    | ClientClaimed
    | ClientQuery
    | ClientRecovering
    | Tunnel
    | TunnelAck
)


def parse(data: bytes) -> Message:
    """One message; :class:`~mip6.wire.errors.Truncated` or
    :class:`~mip6.wire.errors.Malformed` (with the offset and field at fault) otherwise.
    Trailing bytes are malformed: the channel frames exactly one message."""
    if len(data) < WORD_LENGTH:
        raise Truncated("shorter than the message header", len(data), "header")
    version, kind, reserved = _WORD.unpack_from(data)
    if version != VERSION:
        raise Malformed(f"version {version} (we speak {VERSION})", VERSION_OFFSET, "version")
    tunnelled = kind in (MessageType.PREPARE, MessageType.INIT) and bool(reserved & TUNNELLED)
    resync = kind == MessageType.INIT and bool(reserved & RESYNC)
    if reserved & ~((TUNNELLED if tunnelled else 0) | (RESYNC if resync else 0)):
        raise Malformed("reserved bits set", RESERVED_OFFSET, "reserved")
    if kind in _MEMBERSHIP_BODIES:
        membership, offset = _MEMBERSHIP_BODIES[kind](data, WORD_LENGTH)
        if offset != len(data):
            raise Malformed("bytes after the message", offset, "length")
        return membership
    if len(data) < HEADER_LENGTH:
        raise Truncated("shorter than the message header", len(data), "header")
    _, _, _, handoff_id, client = _HEADER.unpack_from(data)
    common = {"handoff_id": handoff_id, "client": IPv6Address(client)}
    offset = HEADER_LENGTH
    message: Message
    if kind == MessageType.PREPARE:
        message = Prepare(**common, tunnelled=tunnelled)
    elif kind == MessageType.PREPARED:
        message = Prepared(**common)
    elif kind == MessageType.DONE:
        message = Done(**common)
    elif kind == MessageType.FAILED:
        _need(data, offset, _FAILED.size, "reason")
        (reason,) = _FAILED.unpack_from(data, offset)
        if data[offset + 1 : offset + 4] != bytes(3):
            raise Malformed("reserved bits set", offset + 1, "reserved")
        offset += _FAILED.size
        known = reason in FailureReason._value2member_map_
        message = Failed(**common, reason=FailureReason(reason) if known else reason)
    elif kind == MessageType.INIT:
        message, offset = _init(data, offset, {**common, "tunnelled": tunnelled, "resync": resync})
    elif kind == MessageType.FROZEN_INPUT:
        message, offset = _frozen_input(data, offset, common)
    else:
        raise Malformed(f"unknown message type {kind}", TYPE_OFFSET, "type")
    if offset != len(data):
        raise Malformed("bytes after the message", offset, "length")
    return message


def _frozen_input(data: bytes, offset: int, common: dict[str, Any]) -> tuple[FrozenInput, int]:
    start = offset
    (count, reserved), offset = _fields(data, offset, _FROZEN_INPUT, "frozen input")
    if count > MAX_FROZEN_PACKETS:
        raise Malformed(f"{count} packets (at most {MAX_FROZEN_PACKETS})", start, "count")
    if reserved:
        raise Malformed("reserved bits set", start + 2, "reserved")
    packets = []
    for _ in range(count):
        at = offset
        (length,), offset = _fields(data, offset, _LENGTH16, "packet length")
        if not 0 < length <= MAX_FROZEN_PACKET:
            raise Malformed(f"a packet of {length} bytes", at, "packet length")
        _need(data, offset, length, "packet")
        packets.append(data[offset : offset + length])
        offset += length
    return FrozenInput(**common, packets=tuple(packets)), offset


def _emit_connections(parts: list[bytes], connections: tuple[ConnectionState, ...]) -> None:
    for connection in connections:
        if len(connection.snapshot) > MAX_SNAPSHOT:
            raise EmitError(f"a snapshot of {len(connection.snapshot)} bytes")
        if len(connection.application_state) > MAX_APPLICATION_STATE:
            raise EmitError(f"{len(connection.application_state)} bytes of application state")
        if connection.datagram and connection.regenerable:
            raise EmitError("a datagram flow is not regenerable")
        flags = (REGENERABLE if connection.regenerable else 0) | (
            DATAGRAM if connection.datagram else 0
        )
        parts.append(
            _CONNECTION.pack(flags, len(connection.snapshot), len(connection.application_state))
        )
        parts += [connection.snapshot, connection.application_state]


def _init(data: bytes, offset: int, common: dict[str, object]) -> tuple[Init, int]:
    _need(data, offset, _INIT.size, "init")
    next_sequence, count, lifetime = _INIT.unpack_from(data, offset)
    if count > MAX_CONNECTIONS:
        raise Malformed(f"{count} connections (at most {MAX_CONNECTIONS})", offset + 2, "count")
    offset += _INIT.size
    connections, offset = _connections(data, offset, count)
    init = Init(
        **common,  # type: ignore[arg-type]
        next_sequence=next_sequence,
        lifetime=lifetime,
        connections=connections,
    )
    return init, offset


def _replica(data: bytes, offset: int) -> tuple[Replica, int]:
    start = offset
    (client, sequence, count, lifetime, view_number, flags, serial), offset = _fields(
        data, offset, _REPLICA, "replica"
    )
    if flags & ~(REPLICA_BOUND | REPLICA_TUNNELLED | REPLICA_HOME_TOKEN):
        raise Malformed(f"unknown flags {flags:#x}", start + 32, "flags")
    if count > MAX_CONNECTIONS:
        raise Malformed(f"{count} connections (at most {MAX_CONNECTIONS})", start + 18, "count")
    home_token = None
    if flags & REPLICA_HOME_TOKEN:
        (nonce_index, age_ms, token), offset = _fields(
            data, offset, _HOME_TOKEN, "home token", reserved=slice(2, 4)
        )
        home_token = HomeToken(nonce_index=nonce_index, keygen_token=token, age_ms=age_ms)
    connections, offset = _connections(data, offset, count)
    replica = Replica(
        client=IPv6Address(client),
        binding_sequence=int(sequence),
        lifetime=int(lifetime),
        view_number=int(view_number),
        connections=connections,
        bound=bool(flags & REPLICA_BOUND),
        tunnelled=bool(flags & REPLICA_TUNNELLED),
        serial=int(serial),
        home_token=home_token,
    )
    return replica, offset


def _replica_ack(data: bytes, offset: int) -> tuple[ReplicaAck, int]:
    (client, serial), offset = _fields(data, offset, _REPLICA_ACK, "replica ack")
    return ReplicaAck(client=IPv6Address(client), serial=int(serial)), offset


def _replica_drop(data: bytes, offset: int) -> tuple[ReplicaDrop, int]:
    (client,), offset = _fields(data, offset, _CLIENT, "client")
    return ReplicaDrop(client=IPv6Address(client)), offset


def _client_claimed(data: bytes, offset: int) -> tuple[ClientClaimed, int]:
    (client,), offset = _fields(data, offset, _CLIENT, "client")
    return ClientClaimed(client=IPv6Address(client)), offset


def _client_query(data: bytes, offset: int) -> tuple[ClientQuery, int]:
    (client,), offset = _fields(data, offset, _CLIENT, "client")
    return ClientQuery(client=IPv6Address(client)), offset


def _client_recovering(data: bytes, offset: int) -> tuple[ClientRecovering, int]:
    start = offset
    (client, serial, count, flags, sequence, origin), offset = _fields(
        data, offset, _CLIENT_RECOVERING, "client recovering", reserved=slice(23, 24)
    )
    if count > MAX_CONNECTIONS:
        raise Malformed(f"{count} ports (at most {MAX_CONNECTIONS})", start + 20, "count")
    if flags & ~RECOVERING_BOUND:
        raise Malformed(f"unknown flags {flags:#x}", start + 22, "flags")
    if not flags & RECOVERING_BOUND and sequence:
        raise Malformed("a binding sequence without the bound flag", start + 24, "sequence")
    _need(data, offset, 2 * count, "ports")
    ports = struct.unpack_from(f"!{count}H", data, offset)
    recovering = ClientRecovering(
        client=IPv6Address(client),
        serial=int(serial),
        origin=IPv6Address(origin),
        binding_sequence=int(sequence) if flags & RECOVERING_BOUND else None,
        ports=ports,
    )
    return recovering, offset + 2 * count


def _connections(data: bytes, offset: int, count: int) -> tuple[tuple[ConnectionState, ...], int]:
    connections = []
    for _ in range(count):
        _need(data, offset, _CONNECTION.size, "connection")
        flags, snapshot_length, state_length = _CONNECTION.unpack_from(data, offset)
        if flags & ~(REGENERABLE | DATAGRAM) or flags == REGENERABLE | DATAGRAM:
            raise Malformed(f"unknown flags {flags:#04x}", offset, "flags")
        if data[offset + 1 : offset + 4] != bytes(3):
            raise Malformed("reserved bits set", offset + 1, "reserved")
        if snapshot_length > MAX_SNAPSHOT:
            raise Malformed(f"a snapshot of {snapshot_length} bytes", offset + 4, "snapshot")
        if state_length > MAX_APPLICATION_STATE:
            raise Malformed(
                f"{state_length} bytes of application state", offset + 8, "application_state"
            )
        offset += _CONNECTION.size
        _need(data, offset, snapshot_length + state_length, "connection data")
        snapshot = data[offset : offset + snapshot_length]
        offset += snapshot_length
        state = data[offset : offset + state_length]
        offset += state_length
        connections.append(
            ConnectionState(
                snapshot=snapshot,
                regenerable=bool(flags & REGENERABLE),
                application_state=state,
                datagram=bool(flags & DATAGRAM),
            )
        )
    return tuple(connections), offset


def _fields(
    data: bytes, offset: int, layout: struct.Struct, field: str, reserved: slice | None = None
) -> tuple[tuple[Any, ...], int]:
    """``layout``'s fields at ``offset`` and the offset after them; ``reserved``: where its
    pad bytes lie (relative to ``offset``), which must be zero."""
    _need(data, offset, layout.size, field)
    if reserved is not None and any(data[offset + reserved.start : offset + reserved.stop]):
        raise Malformed("reserved bits set", offset + reserved.start, "reserved")
    return layout.unpack_from(data, offset), offset + layout.size


def _view(data: bytes, offset: int) -> tuple[View, int]:
    start = offset
    (number, next_join_id, core_count, reserved, snode_count), offset = _fields(
        data, offset, _VIEW, "view"
    )
    if reserved:
        raise Malformed("reserved bits set", start + 17, "reserved")
    # the counts are checked before anything they announce is read (the bounds)
    if core_count > MAX_CORE:
        raise Malformed(f"{core_count} core members", start + 16, "core_count")
    if snode_count > MAX_SNODES:
        raise Malformed(f"{snode_count} snodes", start + 18, "snode_count")
    count = int(core_count) + int(snode_count)
    _need(data, offset, count * _ENTRY.size, "entries")
    entries = []
    for _ in range(count):
        join_id, address = _ENTRY.unpack_from(data, offset)
        entries.append(MemberEntry(join_id=join_id, address=IPv6Address(address)))
        offset += _ENTRY.size
    view = View(
        number=int(number),
        next_join_id=int(next_join_id),
        core=tuple(entries[:core_count]),
        snodes=tuple(entries[core_count:]),
    )
    problem = _view_problem(view)
    if problem is not None:
        raise Malformed(problem[0], start, problem[1])
    return view, offset


def _join(data: bytes, offset: int) -> tuple[Join, int]:
    (request,), offset = _fields(data, offset, _JOIN, "join", slice(4, 8))
    return Join(request=int(request)), offset


def _join_answer(data: bytes, offset: int) -> tuple[JoinAnswer, int]:
    (status, request, join_id, contact), offset = _fields(
        data, offset, _JOIN_ANSWER, "join answer", slice(1, 4)
    )
    known = status in JoinStatus._value2member_map_
    answer = JoinAnswer(
        status=JoinStatus(status) if known else int(status),
        request=int(request),
        join_id=int(join_id),
        contact=IPv6Address(contact),
    )
    return answer, offset


def _register(data: bytes, offset: int) -> tuple[Register, int]:
    (join_id, number), offset = _fields(data, offset, _REGISTER, "register")
    return Register(join_id=int(join_id), view_number=int(number)), offset


def _registered(data: bytes, offset: int) -> tuple[Registered, int]:
    (join_id, number), offset = _fields(data, offset, _REGISTER, "registered")
    return Registered(join_id=int(join_id), view_number=int(number)), offset


def _heartbeat(data: bytes, offset: int) -> tuple[Heartbeat, int]:
    (sequence, echo, number), offset = _fields(data, offset, _HEARTBEAT, "heartbeat")
    return Heartbeat(sequence=int(sequence), echo=int(echo), view_number=int(number)), offset


def _heartbeat_answer(data: bytes, offset: int) -> tuple[HeartbeatAnswer, int]:
    (sequence, number), offset = _fields(
        data, offset, _HEARTBEAT_ANSWER, "heartbeat answer", slice(4, 8)
    )
    return HeartbeatAnswer(sequence=int(sequence), view_number=int(number)), offset


def _please_rejoin(data: bytes, offset: int) -> tuple[PleaseRejoin, int]:
    (number,), offset = _fields(data, offset, _NUMBER, "view number")
    return PleaseRejoin(view_number=int(number)), offset


def _view_prepare(data: bytes, offset: int) -> tuple[ViewPrepare, int]:
    (transaction,), offset = _fields(data, offset, _NUMBER, "transaction")
    view, offset = _view(data, offset)
    return ViewPrepare(transaction=int(transaction), view=view), offset


def _view_vote(data: bytes, offset: int) -> tuple[ViewVote, int]:
    start = offset
    (transaction, highest, vote), offset = _fields(data, offset, _VOTE, "vote", slice(17, 20))
    if vote > 1:
        raise Malformed(f"vote {vote} (0 no, 1 yes)", start + 16, "vote")
    return ViewVote(transaction=int(transaction), highest=int(highest), yes=bool(vote)), offset


def _view_commit(data: bytes, offset: int) -> tuple[ViewCommit, int]:
    (transaction,), offset = _fields(data, offset, _NUMBER, "transaction")
    return ViewCommit(transaction=int(transaction)), offset


def _view_abort(data: bytes, offset: int) -> tuple[ViewAbort, int]:
    (transaction,), offset = _fields(data, offset, _NUMBER, "transaction")
    return ViewAbort(transaction=int(transaction)), offset


def _view_update(data: bytes, offset: int) -> tuple[ViewUpdate, int]:
    view, offset = _view(data, offset)
    return ViewUpdate(view=view), offset


def _contact_query(data: bytes, offset: int) -> tuple[ContactQuery, int]:
    (nonce,), offset = _fields(data, offset, _QUERY, "query", slice(4, 8))
    return ContactQuery(nonce=int(nonce)), offset


def _contact_answer(data: bytes, offset: int) -> tuple[ContactAnswer, int]:
    (nonce, number), offset = _fields(data, offset, _CONTACT_ANSWER, "answer", slice(4, 8))
    return ContactAnswer(nonce=int(nonce), view_number=int(number)), offset


def _leave(data: bytes, offset: int) -> tuple[Leave, int]:
    (reason, join_id, member), offset = _fields(data, offset, _LEAVE, "leave", slice(1, 4))
    known = reason in LeaveReason._value2member_map_
    leave = Leave(
        reason=LeaveReason(reason) if known else int(reason),
        join_id=int(join_id),
        member=IPv6Address(member),
    )
    return leave, offset


def _contact_state(data: bytes, offset: int) -> tuple[ContactState, int]:
    start = offset
    (sequence, count), offset = _fields(data, offset, _CONTACT_STATE, "contact state", slice(3, 4))
    if count > MAX_SA_COUNTERS:
        raise Malformed(f"{count} SA counters", start + 2, "count")
    counters = []
    for _ in range(count):
        at = offset
        (spi, direction, number), offset = _fields(
            data, offset, _SA_COUNTER, "SA counter", slice(5, 8)
        )
        if direction > 1:
            raise Malformed(f"direction {direction} (0 inbound, 1 outbound)", at + 4, "direction")
        counters.append(SaCounter(spi=int(spi), outbound=bool(direction), number=int(number)))
    return ContactState(binding_sequence=int(sequence), counters=tuple(counters)), offset


def _tunnel(data: bytes, offset: int) -> tuple[Tunnel, int]:
    (client, sequence), offset = _fields(data, offset, _TUNNEL, "tunnel", slice(18, 20))
    return Tunnel(client=IPv6Address(client), sequence=int(sequence)), offset


def _tunnel_ack(data: bytes, offset: int) -> tuple[TunnelAck, int]:
    (client, sequence, held, status), offset = _fields(
        data, offset, _TUNNEL_ACK, "tunnel ack", slice(21, 24)
    )
    known = status in TunnelStatus._value2member_map_
    ack = TunnelAck(
        client=IPv6Address(client),
        sequence=int(sequence),
        held=int(held),
        status=TunnelStatus(status) if known else int(status),
    )
    return ack, offset


# the messages whose header is the first word alone
_WordMessage = (
    MembershipMessage
    | ContactState
    | Replica
    | ReplicaAck
    | ReplicaDrop
    | ClientClaimed
    | ClientQuery
    | ClientRecovering
    | Tunnel
    | TunnelAck
)
_MEMBERSHIP_BODIES: dict[int, Callable[[bytes, int], tuple[_WordMessage, int]]] = {
    MessageType.JOIN: _join,
    MessageType.JOIN_ANSWER: _join_answer,
    MessageType.REGISTER: _register,
    MessageType.REGISTERED: _registered,
    MessageType.HEARTBEAT: _heartbeat,
    MessageType.HEARTBEAT_ANSWER: _heartbeat_answer,
    MessageType.PLEASE_REJOIN: _please_rejoin,
    MessageType.VIEW_PREPARE: _view_prepare,
    MessageType.VIEW_VOTE: _view_vote,
    MessageType.VIEW_COMMIT: _view_commit,
    MessageType.VIEW_ABORT: _view_abort,
    MessageType.VIEW: _view_update,
    MessageType.CONTACT_QUERY: _contact_query,
    MessageType.CONTACT_ANSWER: _contact_answer,
    MessageType.LEAVE: _leave,
    MessageType.CONTACT_STATE: _contact_state,
    MessageType.REPLICA: _replica,
    MessageType.REPLICA_DROP: _replica_drop,
    MessageType.CLIENT_CLAIMED: _client_claimed,
    MessageType.REPLICA_ACK: _replica_ack,
    MessageType.TUNNEL: _tunnel,
    MessageType.TUNNEL_ACK: _tunnel_ack,
    MessageType.CLIENT_QUERY: _client_query,
    MessageType.CLIENT_RECOVERING: _client_recovering,
}


def _need(data: bytes, offset: int, length: int, field: str) -> None:
    if len(data) < offset + length:
        raise Truncated(f"{field}: {length} bytes needed, {len(data) - offset} left", offset, field)
