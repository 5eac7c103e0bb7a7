"""The asyncio application API of a distributed-server member (DSERVER.md section 7): the Gecko
framework's shape (thesis chapter 4, SPEC-dserver 6.2 and 7) over the sans-I/O member engine
(:class:`mip6.dserver.member.Member`) that a daemon runs (:class:`mip6.runtime.daemon.Daemon`).

::

    server = await DistributedServer.join("m1.yaml")      # or a NodeConfig, or a Daemon

    async def echo(conn: Connection) -> None:
        lines = int(conn.state or b"0")                  # what the previous member set
        while line := await conn.reader.readline():
            if line == b"H\\n":
                conn.state = b"%d" % lines               # setState, before every await
                try:
                    await conn.handoff()                 # served elsewhere: this task ends
                except HandoffFailed as failed:          # still here: go on
                    conn.writer.write(b"stayed, tried %d\\n" % len(failed.tried))
                continue
            ...

    await server.serve(7, echo)
    server.policy = MyPolicy(server.view)                # any Policy; BasePolicy subclasses too

How a connection runs. Every connection of a client to a served port gets a :class:`Connection`
(reader, writer, client, state) and its own task running the handler: a new client's at once,
one handed in from another member as soon as it is imported, still frozen. Until it thaws (the
client's Binding Acknowledgement), its reads return what came with it and then wait, and its
writes queue; they go out at the thaw. Starting early keeps the client-observed gap short: an
acceptor whose TCP send buffer is still empty when the connection thaws has nothing to resend
when the client reports what it missed from the donor, and waits for a retransmission timeout
(measured on loopback: a second of silence after each regenerable handoff when the handler
started at the thaw). Should the handoff then fail at this member, the handler is
cancelled as for a handoff (``conn.handed_off``): nothing it wrote ever left. A handoff it asks
for before the thaw starts once the connection is live here.

What travels. When the member freezes a client's connections for a handoff (this connection's
own request, another connection's of the same client, the contact node's initial distribution,
``mip6 ctl handoff``), each connection's state is taken at that instant: ``conn.state`` as last
set, the bytes the TCP stack already passed to ``conn.reader`` and nobody read yet, and (unless
regenerable) the bytes written to ``conn.writer`` that TCP has not taken yet. The acceptor's
``conn.reader`` returns those bytes first, its writer sends those bytes first, and its handler
starts with ``handed_in`` and that state. The freeze happens between two steps of the loop, so
the handler is always at an ``await``: **keep ``conn.state`` describing where the handler is at
every ``await``** (what it read and answered so far), as the seeds' ``setState`` buffer did; a
handoff can come at any of them. Anything the donor's handler does after the freeze is lost if
the handoff completes (its output never left: the connection is frozen) and kept if it fails.
A handed-in connection with an empty ``conn.state`` comes from a handler that had set none (the
contact node's distribution often follows the accept at once): start as for a new client.

Regenerable output (DSERVER 4 rule 5): ``serve(..., regenerable=True)`` or
``conn.regenerable = True`` says the handler can write its output stream again from any offset.
The handoff then carries no unacknowledged bytes, the acceptor's ``conn.offset`` is the offset
the client acknowledged, and the acceptor's handler writes the stream on from there (measure a
member's progress with ``conn.acknowledged``, not with what the writer took). Otherwise
(full snapshots) at most :data:`MAX_UNSENT` bytes may wait in the writer beyond what TCP took
(``await conn.writer.drain()``): they travel in the handoff's state, whose size is bounded.

When a connection leaves (``handed_off``): its handler task is **cancelled** (CancelledError at
whatever it awaits; ``conn.handed_off`` is True in its ``except``/``finally`` blocks, and the
task ends quietly); any other task's read raises :class:`HandedOff`, a write or drain raises it
too, ``conn.close`` does nothing. The cancellation, not an exception at the next I/O, because a
handler may be waiting on anything (a timer, a queue, a database) and must stop at once: the
client is served by another member from that instant.

A handoff moves ALL connections of the client, whatever the port (DSERVER 4 rule 1: the
client's binding is per (contact address, client)); each one's handler here is cancelled and
each one starts at the acceptor. A handler returning (or raising) closes its connection: a FIN
once the output is out; what the client still sends is read and dropped.

A handler that is somewhere no other member could go on from (the proxy in the middle of an
exchange with a server that stays on this box, :mod:`mip6.apps.proxy`) sets
``conn.movable = False`` until it is past it: a handoff of the client, whoever asked (the
contact node's distribution, ``mip6 ctl handoff``, a leave, this API), then waits at its
freeze until it is True again, half an attempt at most, and otherwise ends with the client
kept (counted as ``handoff_not_movable``; asked through this API, :class:`HandoffFailed`).

Names of the seeds (SPEC-dserver 3.5, 6.2, 7) and their counterparts here:

=====================================================  ==========================================
seeds                                                  here
=====================================================  ==========================================
``GeckoFramework(local_addr, cfg, ifname)``            ``Daemon(config)`` of a member (its
                                                       ``member`` block: own address, contact
                                                       address, members, group key)
``GeckoFramework::JoinDistributedServer()``            ``await DistributedServer.join(config |
                                                       path | daemon)``
``GeckoFramework::LeaveDistributedServer()``           ``await server.leave()`` (stops the daemon
                                                       if ``join`` started it)
``GeckoFramework::SetPolicy(policy)``                  ``server.policy = policy``
``GeckoFramework::GetServerSocket()``                  ``await server.serve(port, handler)``
``GeckoServerSocket::Accept()``                        the handler's task starts for each new or
                                                       handed-in connection (no accept queue)
``GeckoServerSocket::Close()``                         ``server.stop_serving(port)`` (or
                                                       ``(await server.serve(...)).close()``)
``GeckoSocket``                                        :class:`Connection`
``GeckoSocket::Read`` / ``Write``                      ``conn.reader`` / ``conn.writer`` (asyncio
                                                       streams over the member's TCP stack)
``GeckoSocket::setState(buf)`` / ``getState(&buf)``    ``conn.state = b"..."`` / ``conn.state``
``getState() == 0`` (a new client)                     ``not conn.handed_in``
``GeckoSocket::Handoff(false)`` (blocking)             ``await conn.handoff()``
``GeckoSocket::Handoff(target, false)``                ``await conn.handoff(target)``
``GeckoSocket::Handoff(true)`` / ``(target, true)``    ``conn.handoff_nowait(target, callback)``
                                                       (a future)
``GECKO_ERROR_NOTARGET``                               :class:`NoTarget` (a :class:`HandoffFailed`)
``GECKO_ERROR_TARGETERR``                              :class:`TargetError` (a
                                                       :class:`HandoffFailed`)
``failed_handoff`` / ``failed_handoff_target``         ``conn.failed_handoff`` /
                                                       ``conn.failed_handoff_target`` (and
                                                       ``HandoffFailed.tried``, ``.target``)
``GECKO_ERROR_NOTALLOWED`` (a handed-off socket)       :class:`HandedOff`
``GeckoSocket::Close()`` / ``Close(resetbinding)``     ``conn.close()`` /
                                                       ``conn.close(clear_binding=True)``
``ClearBindingOnClose``                                ``serve(..., clear_binding=True)``
``GeckoSelect::Select(...)``                           none needed: see below
``GeckoPolicy::SelectTarget(client, &target)``         ``Policy.select_target(selection)``
                                                       (:mod:`mip6.dserver.policy`)
``GeckoPolicy::NotifyReplicaException(addr, exc)``     ``Policy.notify_failure(member, reason,
                                                       now)``
``GeckoRandomPolicy``; deriving ``GeckoPolicy``        ``RandomPolicy`` and the other built-ins;
                                                       deriving ``BasePolicy`` (``_choose``)
``GeckoReplicaManagement::GetReplicaList()``           ``server.view.members``
``client_handoff(fd, acceptor_IP, app_state)`` [P]     ``conn.state = app_state; await
                                                       conn.handoff(acceptor)``
``client_receive(special_fd, &fd, &app_state)`` [P]    the handler called with a
                                                       ``handed_in`` connection and its
                                                       ``conn.state``
``client_close(fd)`` [P]                               ``conn.close(clear_binding=True)``
=====================================================  ==========================================

``GeckoSelect`` has no counterpart because asyncio is what it stood in for: it multiplexed a
thread over many GeckoSockets (readable, writable, a handover request waiting), and here every
connection has its own task and waits on its own streams; a handler that needs several at once
(a proxy's two sides) awaits them with ``asyncio.wait``/``TaskGroup`` like any asyncio code.
Its rule "give priority to accepting a handed-over client, the donor may be waiting" is the
engine's: an INIT is answered inside the member's entry point, never behind an application.

Where this differs from the seeds, and why:

- a blocking handoff that completes never returns to the handler (its task is cancelled, see
  above): the seeds' "the application must delete the object" is done for it;
- a handed-in connection's handler starts at the import, not after the activation (``Accept``
  returned the socket after ``HandoffAcceptorActivate``): see above why;
- a non-blocking handoff's failure does not bring the client back through ``Accept``: its
  handler never stopped; the future fails and ``conn.failed_handoff`` is set;
- the policy is the member's, for every port (the engine asks one policy);
- a handoff asked while one of the same client is under way (another connection's, the contact
  node's distribution) waits for that one and shares its outcome.

Layering: this module drives :mod:`mip6.dserver` from the runtime; nothing there imports it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Protocol

from mip6.core.actions import Action
from mip6.dserver.member import Member
from mip6.dserver.messages import MAX_APPLICATION_STATE
from mip6.dserver.policy import GroupView, Policy
from mip6.runtime.config import NodeConfig, load
from mip6.runtime.daemon import Daemon
from mip6.runtime.host import stack_ms
from tcp_migrate.core import WRITE_SHUT_STATES, TcpState
from tcp_migrate.stack import Socket, Stack
from tcp_migrate.tun import Coalesced, StreamWriter, wrap_socket

log = logging.getLogger(__name__)

__all__ = [
    "MAX_STATE",
    "MAX_UNSENT",
    "Connection",
    "DistributedServer",
    "HandedOff",
    "Handler",
    "HandoffFailed",
    "MemberDriver",
    "NoTarget",
    "ServedPort",
    "StateError",
    "TargetError",
]

MAX_STATE = 1 << 16  # bytes of ``conn.state``
MAX_UNSENT = 1 << 19  # bytes written and not yet taken by TCP, when they travel (full snapshots)
READ_LIMIT = 1 << 16  # the reader's limit: it holds at most about 2 * limit + 64 KiB unread
_UNREAD_BOUND = 2 * READ_LIMIT + (1 << 16)

# what a connection's handoff state carries: a name and version, flags, then the lengths of the
# application's state, the unread input and the unsent output, each followed by its bytes
_ENVELOPE = struct.Struct("!2sBIII")
_MAGIC = b"G1"
_REGENERABLE = 0x01  # the handler writes its stream again from the acknowledged offset
_CLOSING = 0x02  # the application closed its side: send the output, then a FIN; no handler
_CLEAR_BINDING = 0x04  # once closed, ask the client to delete its binding
_FLAGS = _REGENERABLE | _CLOSING | _CLEAR_BINDING
# the whole envelope always fits an INIT's application state (mip6.dserver.messages)
assert _ENVELOPE.size + MAX_STATE + _UNREAD_BOUND + MAX_UNSENT <= MAX_APPLICATION_STATE

_DONE = frozenset({TcpState.TIME_WAIT, TcpState.CLOSED})

Handler = Callable[["Connection"], Awaitable[None]]


# -- errors ------------------------------------------------------------------------------------


class HandedOff(ConnectionError):
    """The connection is served by another member now (the seeds' ``GECKO_ERROR_NOTALLOWED``
    on a handed-off GeckoSocket)."""


class HandoffFailed(Exception):
    """The client was not handed off (the seeds' ``failed_handoff``). ``tried``: the members
    tried, in order; ``target``: the member the caller named, if any (the seeds'
    ``failed_handoff_target``); ``kept``: the client is still served here (False: its
    connections were reset, DSERVER 4 rule 6's last resort)."""

    def __init__(
        self,
        message: str,
        *,
        tried: tuple[IPv6Address, ...] = (),
        target: IPv6Address | None = None,
        kept: bool = True,
    ) -> None:
        super().__init__(message)
        self.tried = tried
        self.target = target
        self.kept = kept


class NoTarget(HandoffFailed):
    """The policy found no member to try (``GECKO_ERROR_NOTARGET``)."""


class TargetError(HandoffFailed):
    """Every member tried failed (``GECKO_ERROR_TARGETERR``)."""


class StateError(ValueError):
    """A handoff state this module cannot have written."""


# -- the handoff state of one connection -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Envelope:
    state: bytes = b""
    unread: bytes = b""
    unsent: bytes = b""
    regenerable: bool = False
    closing: bool = False
    clear_binding: bool = False

    def encode(self) -> bytes:
        flags = (
            (_REGENERABLE if self.regenerable else 0)
            | (_CLOSING if self.closing else 0)
            | (_CLEAR_BINDING if self.clear_binding else 0)
        )
        head = _ENVELOPE.pack(_MAGIC, flags, len(self.state), len(self.unread), len(self.unsent))
        return head + self.state + self.unread + self.unsent

    @classmethod
    def decode(cls, data: bytes) -> _Envelope:
        if len(data) < _ENVELOPE.size:
            raise StateError("truncated")
        magic, flags, n_state, n_unread, n_unsent = _ENVELOPE.unpack_from(data)
        if magic != _MAGIC:
            raise StateError(f"unknown format {magic!r}")
        if flags & ~_FLAGS:
            raise StateError(f"unknown flags {flags:#x}")
        if n_state > MAX_STATE or n_unread > _UNREAD_BOUND or n_unsent > MAX_UNSENT:
            raise StateError("a part is longer than any connection can have")
        if _ENVELOPE.size + n_state + n_unread + n_unsent != len(data):
            raise StateError("lengths do not add up")
        at = _ENVELOPE.size
        state, at = data[at : at + n_state], at + n_state
        unread, at = data[at : at + n_unread], at + n_unread
        return cls(
            state=state,
            unread=unread,
            unsent=data[at:],
            regenerable=bool(flags & _REGENERABLE),
            closing=bool(flags & _CLOSING),
            clear_binding=bool(flags & _CLEAR_BINDING),
        )


# -- the streams' driver -------------------------------------------------------------------------


class ActionSink(Protocol):
    """Whatever performs a member engine's actions: the daemon's
    :class:`~mip6.runtime.node.NodeRuntime`."""

    def apply(self, actions: list[Action]) -> None: ...


class MemberDriver:
    """tcp_migrate's stream driver (:class:`tcp_migrate.tun.StreamDriver`) over a member's own
    host: the member's stack, the loop's clock, and :meth:`kick`, which has the member's
    :meth:`~mip6.dserver.member.Member.poll` run soon (once for any number of kicks before it
    runs) and its actions performed. That is how application writes, reads (window updates)
    and requests made outside the engine's entry points reach the wire."""

    def __init__(
        self,
        member: Member,
        runtime: ActionSink,
        loop: asyncio.AbstractEventLoop,
        after: Callable[[], None] | None = None,
    ) -> None:
        self.member = member
        self.runtime = runtime
        self.loop = loop
        self.stack: Stack | None = member.host.stack  # StreamDriver's type
        self.after = after  # called after each poll's actions are performed
        self.closed = False
        self._polls = Coalesced(loop, self._poll)

    def now_ms(self) -> int:
        return stack_ms(self.loop.time())

    def kick(self) -> None:
        if not self.closed:
            self._polls.kick()

    def flush(self) -> None:
        """The poll a kick scheduled, now (a writer's drain, from a task: never inside the
        member's entry points)."""
        self._polls.flush()

    def _poll(self) -> None:
        if self.closed:
            return
        self.runtime.apply(self.member.poll(self.loop.time()))
        if self.after is not None:
            self.after()


# -- one connection ------------------------------------------------------------------------------


class _Writer(StreamWriter):
    """The connection's writer: tcp_migrate's, refusing to write once the connection left
    (and, when unsent output travels in the handoff, more than :data:`MAX_UNSENT` of it)."""

    def __init__(self, writer: StreamWriter, conn: Connection) -> None:
        # tcp_migrate keeps the socket's pipe private; this writer is the same pipe's
        super().__init__(writer._pipe)
        self._conn = conn

    @property
    def unsent(self) -> int:
        return len(self._pipe.pending)

    def write(self, data: bytes) -> None:
        conn = self._conn
        if conn.handed_off:
            raise HandedOff(f"{conn}: another member serves it")
        if not conn.regenerable and self.unsent + len(data) > MAX_UNSENT:
            # this output travels with a handoff and must fit in its state: drain first
            raise BufferError(
                f"more than {MAX_UNSENT} bytes written and not sent: await writer.drain()"
            )
        super().write(data)

    def _load(self, data: bytes) -> None:
        """Output carried from the donor, queued ahead of anything the handler writes."""
        self._pipe.pending += data

    async def drain(self) -> None:
        if self._conn.handed_off:
            raise HandedOff(f"{self._conn}: another member serves it")
        await super().drain()

    def close(self) -> None:
        if not self._conn.handed_off:
            super().close()

    def _left(self) -> None:
        """The connection left: whoever waits for room or for the close learns it."""
        pipe = self._pipe
        for waiter in pipe.drain_waiters + pipe.close_waiters:
            if not waiter.done():
                waiter.set_exception(HandedOff(f"{self._conn}: another member serves it"))
        pipe.drain_waiters.clear()
        pipe.close_waiters.clear()


def _relay_check(sock: Socket) -> Callable[[], bool] | None:
    """Whether ``sock``, whose relay in C started as the fast path opened it, is between two
    exchanges (mip6.runtime.fast.FastRelays.movable_check); None: it has no such relay."""
    relays = getattr(sock.stack.carrier, "relays", None)
    return None if relays is None else relays.movable_check(sock)


@functools.lru_cache(maxsize=1024)
def _address_text(packed: bytes) -> str:
    """An address as text, for a handler task's name: the standard library formats an
    IPv6Address in about 14 us (hot), on every accept's path; a client's next connection
    finds it here."""
    return str(IPv6Address(packed))


class Connection:
    """One client connection on this member (the seeds' ``GeckoSocket``). ``reader`` and
    ``writer`` are asyncio streams; ``client`` the client's address (``peer`` with its port);
    ``handed_in``: it came from another member with ``state``; ``state`` (settable, at most
    :data:`MAX_STATE` bytes) travels with it; ``regenerable`` (settable) see the module
    docstring; ``offset``: the stream offset of the next byte the handler writes (after a
    regenerable handoff, where the handler writes its stream on from); ``acknowledged``: the
    offset the client acknowledged."""

    def __init__(
        self,
        server: DistributedServer,
        served: ServedPort,
        sock: Socket,
        *,
        handed_in: bool,
        envelope: _Envelope,
    ) -> None:
        self.server = server
        self.served = served
        self.sock = sock
        self.client = sock.remote_address
        self.port = sock.key[1]
        self.handed_in = handed_in
        # a handed-in connection keeps the donor's choices, a new one takes the port's
        self._regenerable = envelope.regenerable
        self._state = envelope.state
        self.handed_off = False
        self._movable = True
        # while set, movable also asks it (a relay in C that knows where its exchange is; one
        # that started as C opened the connection, before the handler claims it)
        self.movable_check = _relay_check(sock)
        self.failed_handoff = False
        self.failed_handoff_target: IPv6Address | None = None
        self.failed_handoff_tried: tuple[IPv6Address, ...] = ()
        self.task: asyncio.Task[None] | None = None
        self._clear_binding = envelope.clear_binding
        self._finished = False  # the handler ended (or never will run): input is dropped
        self._closed = server.loop.create_future()  # TIME-WAIT, CLOSED, or handed off
        self._live = server.loop.create_future()  # thawed (at once for a new one), or left
        reader, writer = wrap_socket(server.driver, sock, limit=READ_LIMIT)
        self.reader: asyncio.StreamReader = reader
        self.writer = _Writer(writer, self)
        self._pump = sock.on_change  # the pipe's: we run it after our own bookkeeping
        sock.on_change = self._changed
        if envelope.unread:
            self.reader.feed_data(envelope.unread)  # before anything the socket has
        if envelope.unsent:
            self.writer._load(envelope.unsent)
        if envelope.closing:
            self._finished = True
            self.writer.close()

    @property
    def peer(self) -> tuple[str, int]:
        """The client's address and port as text (formatted when asked: an accept on a fresh
        connection's path had two addresses formatted for nothing)."""
        return str(self.client), self.sock.key[3]

    def __repr__(self) -> str:
        return f"<Connection [{self.client}]:{self.sock.key[3]} port {self.port}>"

    # -- the seeds' setState / getState ------------------------------------------------------

    @property
    def state(self) -> bytes:
        return self._state

    @state.setter
    def state(self, value: bytes | bytearray | memoryview) -> None:
        value = bytes(value)
        if len(value) > MAX_STATE:
            raise ValueError(f"{len(value)} bytes of state (at most {MAX_STATE})")
        self._state = value

    @property
    def movable(self) -> bool:
        """False: the member freezes the client for no handoff (one under way waits at its
        freeze) until it is True again: the handler is where no other member could go on
        from (a proxy in the middle of an exchange with its server). See the module
        docstring."""
        check = self.movable_check
        return self._movable and (check is None or check())

    @movable.setter
    def movable(self, value: bool) -> None:
        if value and not self._movable:
            self.server.driver.kick()  # a handoff held for it goes on at the member's poll
        self._movable = value

    @property
    def regenerable(self) -> bool:
        return self._regenerable

    @regenerable.setter
    def regenerable(self, value: bool) -> None:
        if not value and self.writer.unsent > MAX_UNSENT:
            # from now on the unsent output travels in the handoff's state: it must fit
            raise BufferError(f"more than {MAX_UNSENT} bytes unsent: await writer.drain()")
        self._regenerable = value

    @property
    def offset(self) -> int:
        return self.sock.write_offset + self.writer.unsent

    @property
    def acknowledged(self) -> int:
        """The stream offset the client has acknowledged: a handler's progress as far as a
        handoff is concerned (a regenerable one's acceptor starts from here)."""
        return self.sock.write_offset - self.sock.send_buffered

    # -- handoff --------------------------------------------------------------------------------

    async def handoff(
        self, target: IPv6Address | str | None = None, *, first_bytes: bytes = b""
    ) -> None:
        """Hand the client (every connection of it) to ``target``, or to the member the policy
        picks (never this one; ``first_bytes``: the client's request, for a content-aware
        policy, also when ``target`` fails), and wait for the outcome. Completed: the client
        is served elsewhere and, called from the handler, this task is cancelled here (other
        callers get None). Failed: :class:`NoTarget` or :class:`TargetError`, and the
        connection goes on here (unless ``kept`` is False: it was reset)."""
        await self.handoff_nowait(target, first_bytes=first_bytes)

    def handoff_nowait(
        self,
        target: IPv6Address | str | None = None,
        callback: Callable[[asyncio.Future[None]], object] | None = None,
        *,
        first_bytes: bytes = b"",
    ) -> asyncio.Future[None]:
        """Start the handoff :meth:`handoff` waits for and return its future at once (the
        seeds' non-blocking ``Handoff(true)``); ``callback(future)`` runs when it ends. A
        failure is also left in ``failed_handoff``, ``failed_handoff_target`` and
        ``failed_handoff_tried``; an unretrieved failure is not logged."""
        if self.handed_off:
            raise HandedOff(f"{self}: another member serves it")
        if self.sock.state is TcpState.CLOSED:
            raise ConnectionResetError(f"{self}: closed")
        future = self.server._request_handoff(self.client, target, first_bytes)
        # a non-blocking caller may look at conn.failed_handoff instead: no "never retrieved"
        future.add_done_callback(_retrieve)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    # -- closing --------------------------------------------------------------------------------

    def close(self, clear_binding: bool = False) -> None:
        """A FIN once the output is out (the seeds' ``Close``); with ``clear_binding`` (the
        seeds' ``Close(true)``, the paper's ``client_close``) the client is then asked to
        delete its binding, so that its next connection reaches the contact node, unless it
        still has another connection open here. Nothing once the connection left."""
        if self.handed_off:
            return
        self._clear_binding = self._clear_binding or clear_binding
        self.writer.close()
        self._changed(self.sock, pump=False)  # already closed: the clearing is due now

    async def wait_closed(self) -> None:
        """Until our FIN is acknowledged, and with ``clear_binding`` until the client has
        closed too and the clearing was asked for. Returns at once once handed off."""
        if self.handed_off:
            return
        try:
            await self.writer.wait_closed()
        except HandedOff:
            return
        if self._clear_binding:
            await asyncio.shield(self._closed)

    # -- the engine's side ----------------------------------------------------------------------

    def _changed(self, sock: Socket, *, pump: bool = True) -> None:
        """The socket's callback (inside the member's entry points): drop input nobody will
        read, start the handler once the connection is live, notice the end."""
        if self.handed_off:
            return
        if self._finished and not sock.frozen:
            while sock.state is not TcpState.CLOSED and sock.recv(1 << 16):
                pass  # after our close: acknowledged and dropped (a full window stalls a close)
        if pump and self._pump is not None:
            self._pump(sock)
        if not sock.frozen and not self._live.done():
            self._live.set_result(None)
        if self.task is None and not self._finished:
            if sock.state is TcpState.CLOSED:
                self._finished = True  # reset before it ever ran
            else:
                self.task = self.server._start(self)
        if sock.state in _DONE and not self._closed.done():
            self._closed.set_result(None)
            if self._clear_binding:
                self.server._clear_binding(self)
        if sock.state is TcpState.CLOSED:
            self.server._forget(self)

    def _export(self) -> tuple[bytes, bool]:
        """The handoff state now (the connection is frozen), and whether the snapshot leaves
        the unacknowledged bytes out."""
        # our FIN queued or sent: nothing of the output is left to regenerate
        fin_queued = self.writer._pipe.fin_queued or self.sock.state in WRITE_SHUT_STATES
        closing = self.writer.is_closing()
        state, clear = self._state, self._clear_binding
        if fin_queued:
            # the whole output, FIN included, is in TCP's hands: a full snapshot, no handler
            envelope = _Envelope(state=state, closing=True, clear_binding=clear)
        elif self.regenerable:
            # the acceptor's handler writes the stream on from the acknowledged offset (even
            # one that had finished here: what it wrote is made again, then it closes again)
            envelope = _Envelope(
                state=state, unread=self._unread(), regenerable=True, clear_binding=clear
            )
        else:
            envelope = _Envelope(
                state=state,
                unread=b"" if closing else self._unread(),
                unsent=bytes(self.writer._pipe.pending),
                closing=closing,
                clear_binding=clear,
            )
        return envelope.encode(), envelope.regenerable

    def _unread(self) -> bytes:
        # asyncio.StreamReader keeps what it was fed and nobody read in ``_buffer`` (a
        # bytearray since Python 3.4); no public call shows it without consuming it
        return bytes(self.reader._buffer)  # type: ignore[attr-defined]

    def _left(self) -> None:
        """Another member serves the connection now: stop everything of it here."""
        self.handed_off = True
        self._finished = True
        self.sock.on_change = None
        self._pump = None
        self.reader.set_exception(HandedOff(f"{self}: another member serves it"))
        self.writer._left()
        for waiting in (self._closed, self._live):
            if not waiting.done():
                waiting.set_result(None)
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _handler_ended(self) -> None:
        if self.handed_off:
            return
        self._finished = True
        self.close()
        self._changed(self.sock, pump=False)  # drop input already waiting
        self.server.driver.kick()

    def _failed(self, failure: HandoffFailed) -> None:
        self.failed_handoff = True
        self.failed_handoff_target = failure.target
        self.failed_handoff_tried = failure.tried


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


# -- one served port -----------------------------------------------------------------------------


class ServedPort:
    """A handler on a port of the contact address (the seeds' ``GeckoServerSocket``), and the
    member engine's :class:`~mip6.dserver.member.Service` for that port."""

    # a handler's output that cannot be made again is not replicated (Service): what it
    # does between its reads and writes (a proxy's exchange with a server) is not in a state
    full_replicas = False

    def __init__(
        self,
        server: DistributedServer,
        port: int,
        handler: Handler,
        *,
        regenerable: bool,
        clear_binding: bool,
    ) -> None:
        self.server = server
        self.port = port
        self.handler = handler
        self.regenerable = regenerable
        self.clear_binding = clear_binding
        self.closed = False
        # counters, for tests and inspection
        self.accepted_count = 0
        self.handed_in_count = 0
        self.handed_off_count = 0
        self.failed_handoffs = 0
        self.bad_states = 0

    def close(self) -> None:
        """No new clients on this port (connections go on; handed-in ones are still taken,
        as a member must while its peers may hand it clients)."""
        if not self.closed:
            self.closed = True
            self.server.member.stop_serving(self.port)

    # -- mip6.dserver.member.Service (called inside the engine's entry points) -----------------

    def accepted(self, member: Member, sock: Socket) -> None:
        self.accepted_count += 1
        envelope = _Envelope(regenerable=self.regenerable, clear_binding=self.clear_binding)
        self.server._add(Connection(self.server, self, sock, handed_in=False, envelope=envelope))

    def export_state(self, sock: Socket) -> tuple[bytes, bool]:
        conn = self.server._conns.get(sock)
        if conn is None:  # not ours (cannot happen for a port we serve): nothing to carry
            return b"", False
        return conn._export()

    def handed_in(self, member: Member, sock: Socket, state: bytes) -> None:
        self.handed_in_count += 1
        try:
            envelope = _Envelope.decode(state) if state else self._fresh()
        except StateError as error:
            # members share a key, so this is a bug of ours, not an attack: close cleanly
            # rather than run a handler on a state it cannot have written
            self.bad_states += 1
            log.warning("port %d: bad handoff state for %s: %s", self.port, sock.remote, error)
            envelope = _Envelope(closing=True)
        self.server._add(Connection(self.server, self, sock, handed_in=True, envelope=envelope))

    def _fresh(self) -> _Envelope:
        # no state at all: the donor had no Connection for it (cannot happen between members
        # running this module); it is a new connection to the handler
        return _Envelope(regenerable=self.regenerable, clear_binding=self.clear_binding)

    def handed_off(self, sock: Socket) -> None:
        conn = self.server._conns.get(sock)
        if conn is None:
            sock.on_change = None
            return
        self.handed_off_count += 1
        self.server._handed_off(conn)

    def handoff_failed(self, client: IPv6Address, tried: tuple[IPv6Address, ...]) -> None:
        self.failed_handoffs += 1
        self.server._handoff_failed(client, tried)

    def movable(self, sock: Socket) -> bool:
        conn = self.server._conns.get(sock)
        if conn is not None:
            return conn.movable
        # not accepted yet: the relay that carries its first exchange meanwhile answers
        check = _relay_check(sock)
        return check is None or check()


# -- the server ------------------------------------------------------------------------------------


class DistributedServer:
    """The application's side of a member (the seeds' ``GeckoFramework``). Build it with
    :meth:`join`, or directly over a member engine, whatever performs its actions and the
    loop it runs on (``daemon`` when it runs in one, ``task`` when :meth:`leave` must stop it)."""

    def __init__(
        self,
        member: Member,
        runtime: ActionSink,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        daemon: Daemon | None = None,
        task: asyncio.Task[None] | None = None,
    ) -> None:
        self.member = member
        self.loop = loop or asyncio.get_running_loop()
        self.daemon = daemon
        self._task = task  # the daemon's, when join started it
        self.driver = MemberDriver(member, runtime, self.loop, after=self._after_poll)
        self.ports: dict[int, ServedPort] = {}
        self._conns: dict[Socket, Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # the client's handoffs asked for here: (future, the target named) each
        self._waiters: dict[IPv6Address, list[tuple[asyncio.Future[None], IPv6Address | None]]] = {}
        self._asked: set[IPv6Address] = set()  # asked since the last poll
        self._leaving = False

    # -- joining and leaving --------------------------------------------------------------------

    @classmethod
    async def join(cls, source: Daemon | NodeConfig | str | os.PathLike[str]) -> DistributedServer:
        """The member of a daemon: a running one, a :class:`Daemon` not started yet, or a
        configuration (a path or a :class:`NodeConfig`) whose daemon is started here. A
        daemon started here stops at :meth:`leave`."""
        if isinstance(source, str | os.PathLike):
            source = load(Path(source))
        daemon = Daemon(source) if isinstance(source, NodeConfig) else source
        if not isinstance(daemon.engine, Member):
            raise TypeError(f"node {daemon.config.node} is a {daemon.config.role}, not a member")
        task = None
        if daemon.runtime is None:
            task = await daemon.start()
        assert daemon.runtime is not None
        return cls(daemon.engine, daemon.runtime, daemon=daemon, task=task)

    async def leave(self) -> None:
        """Leave (the seeds' ``LeaveDistributedServer``): no port is served any more, every
        handler is cancelled and its connection closed, handoffs asked for fail, and a daemon
        :meth:`join` started stops. Handing the clients to other members first is the
        application's (``await conn.handoff()`` for each)."""
        if self._leaving:
            return
        self._leaving = True
        for served in list(self.ports.values()):
            served.close()
        for client in list(self._waiters):
            self._settle(client, HandoffFailed("the member is leaving"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self._conns.values()):
            conn._finished = True  # a connection still frozen here never starts a handler
            conn.close()
        self.driver.kick()
        if self._task is not None and self.daemon is not None:
            await asyncio.sleep(0)  # the FINs leave before the daemon resets what is left
            self.driver.closed = True
            self.daemon.stop()
            await self._task

    async def __aenter__(self) -> DistributedServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

    # -- what the application uses ------------------------------------------------------------

    @property
    def address(self) -> IPv6Address:
        """This member's own address."""
        return self.member.own_address

    @property
    def contact_address(self) -> IPv6Address:
        return self.member.contact_address

    @property
    def is_contact_node(self) -> bool:
        return self.member.config.is_contact_node

    @property
    def view(self) -> GroupView:
        """The members a policy chooses from (give it to a ``BasePolicy`` subclass)."""
        return self.member.view

    @property
    def policy(self) -> Policy:
        """The member's distribution policy, for every port (the seeds' ``SetPolicy``)."""
        return self.member.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.member.policy = policy

    @property
    def connections(self) -> list[Connection]:
        """The connections served here now (none handed off, none closed)."""
        return list(self._conns.values())

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        """The handlers' tasks still running."""
        return set(self._tasks)

    async def serve(
        self,
        port: int,
        handler: Handler,
        *,
        regenerable: bool = False,
        clear_binding: bool = False,
    ) -> ServedPort:
        """Run ``handler(conn)`` as a task for every connection to the contact address's
        ``port``, new or handed in. ``regenerable``: the connections' default (see the module
        docstring); ``clear_binding``: the seeds' ``ClearBindingOnClose``."""
        return self.listen(port, handler, regenerable=regenerable, clear_binding=clear_binding)

    def listen(
        self,
        port: int,
        handler: Handler,
        *,
        regenerable: bool = False,
        clear_binding: bool = False,
    ) -> ServedPort:
        """:meth:`serve` outside a coroutine (a daemon starting its configured applications
        before its loop runs them)."""
        if self._leaving:
            raise RuntimeError("this member has left")
        served = ServedPort(
            self, port, handler, regenerable=regenerable, clear_binding=clear_binding
        )
        self.member.serve(port, served)
        self.ports[port] = served
        return served

    def stop_serving(self, port: int) -> None:
        served = self.ports.pop(port, None)
        if served is not None:
            served.close()

    async def handoff(
        self, client: IPv6Address | str, target: IPv6Address | str | None = None
    ) -> None:
        """Hand ``client`` (every connection of it) off, as :meth:`Connection.handoff` does
        (from outside its handlers: an operator's or a load balancer's task)."""
        await self._request_handoff(IPv6Address(client), target)

    # -- handoffs ------------------------------------------------------------------------------

    def _request_handoff(
        self, client: IPv6Address, target: IPv6Address | str | None, first_bytes: bytes = b""
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        chosen = IPv6Address(target) if target is not None else None
        if chosen is not None and chosen not in self.member.view.members:
            raise ValueError(f"{chosen} is not a member of this server")
        if self._leaving:
            future.set_exception(HandoffFailed("the member is leaving", target=chosen))
            return future
        if chosen == self.address:
            future.set_result(None)  # the seeds' local handover: the client stays as it is
            return future
        arriving = [c._live for c in self._conns.values() if c.client == client]
        arriving = [live for live in arriving if not live.done()]
        if not arriving:
            self._ask(client, chosen, future, first_bytes)
            return future
        # the client is still being handed in (its handlers start before the thaw): this
        # member is its acceptor until then, and may give it away only once it holds it
        left = len(arriving)

        def thawed(_: asyncio.Future[None]) -> None:
            nonlocal left
            left -= 1
            if left or future.done():
                return
            if any(c.client == client for c in self._conns.values()):
                self._ask(client, chosen, future, first_bytes)
            else:  # the import failed: the client never came
                future.set_exception(HandedOff(f"{client} is not served here"))

        for live in arriving:
            live.add_done_callback(thawed)
        return future

    def _ask(
        self,
        client: IPv6Address,
        chosen: IPv6Address | None,
        future: asyncio.Future[None],
        first_bytes: bytes = b"",
    ) -> None:
        self._waiters.setdefault(client, []).append((future, chosen))
        # the member starts it at its next entry point: the poll kicked here, or a packet
        self.member.request_handoff(client, chosen, elsewhere=True, first_bytes=first_bytes)
        self._asked.add(client)
        self.driver.kick()

    def _after_poll(self) -> None:
        """After a poll: a handoff asked for that is neither finished nor under way was
        refused by the member (too many in progress); one under way (maybe another
        connection's, or the contact node's distribution) decides the waiters' outcome."""
        if not self._asked:
            return
        asked, self._asked = self._asked, set()
        busy = {
            row["client"]
            for row in self.member.describe("handoffs", self.loop.time())["rows"]
            if row["side"] == "donor" and row["state"] != "finished"
        }
        for client in asked:
            if self.member.handoff_waits(client):
                continue  # it starts once the contact node knows the client (DSERVER 3)
            if self._waiters.get(client) and str(client) not in busy:
                # too many handoffs under way, or none of the client's connections is here
                self._settle(client, HandoffFailed(f"the member refused to hand {client} off"))

    def _handed_off(self, conn: Connection) -> None:
        self._conns.pop(conn.sock, None)
        conn._left()
        self._settle(conn.client, None)

    def _handoff_failed(self, client: IPv6Address, tried: tuple[IPv6Address, ...]) -> None:
        conns = [conn for conn in self._conns.values() if conn.client == client]
        kept = any(conn.sock.state is not TcpState.CLOSED for conn in conns)
        kind = TargetError if tried else NoTarget
        message = (
            f"no member took {client} (tried {', '.join(map(str, tried))})"
            if tried
            else f"no member to hand {client} to"
        )
        waiters = self._waiters.pop(client, [])
        # the connections remember the last failure, whoever asked (the contact node's
        # distribution too): with the target named, if one was
        named = next((target for _, target in waiters if target is not None), None)
        for conn in conns:
            conn._failed(kind(message, tried=tried, target=named, kept=kept))
        for future, target in waiters:
            if not future.done():
                future.set_exception(kind(message, tried=tried, target=target, kept=kept))

    def _settle(self, client: IPv6Address, failure: HandoffFailed | None) -> None:
        for future, target in self._waiters.pop(client, []):
            if future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:  # one exception each: each carries its own caller's target
                future.set_exception(
                    type(failure)(
                        str(failure), tried=failure.tried, target=target, kept=failure.kept
                    )
                )

    # -- connections and tasks --------------------------------------------------------------------

    def _add(self, conn: Connection) -> None:
        self._conns[conn.sock] = conn
        conn._changed(conn.sock, pump=False)  # its handler starts now

    def _forget(self, conn: Connection) -> None:
        if self._conns.get(conn.sock) is conn:
            del self._conns[conn.sock]
        if conn.client in self._waiters and not any(
            other.client == conn.client for other in self._conns.values()
        ):
            # nothing of the client is left to move: the member tells no service how its
            # handoff ends then, so the waiters learn it here
            self._settle(conn.client, HandoffFailed("the connection closed", kept=False))

    def _start(self, conn: Connection) -> asyncio.Task[None]:
        client = _address_text(conn.sock.key[2])
        task = self.loop.create_task(
            self._run(conn), name=f"dserver port {conn.port} [{client}]:{conn.sock.key[3]}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, conn: Connection) -> None:
        try:
            await conn.served.handler(conn)
        except asyncio.CancelledError:
            if not conn.handed_off:
                raise  # cancelled by leave() or by the application: its cancellation
        except HandedOff:
            pass
        except (ConnectionError, TimeoutError) as error:
            log.debug("%s: ended: %r", conn, error)
        except Exception:
            log.exception("%s: the handler failed", conn)
        finally:
            conn._handler_ended()

    def _clear_binding(self, conn: Connection) -> None:
        """The connection is over (TIME-WAIT or CLOSED): the client's binding goes unless
        another connection of it is still open here."""
        others = [
            sock
            for sock in self.member.client_sockets(conn.client)
            if sock is not conn.sock and sock.state not in _DONE
        ]
        if not others:
            self.member.request_clear_binding(conn.client)
            self.driver.kick()
