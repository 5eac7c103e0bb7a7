"""The proxy for unmodified servers (DSERVER.md section 8; the seeds' proxy, thesis 4.3 and
6.2.1, SPEC-dserver 7.9): a member accepts clients on the contact address and relays each
connection to an unmodified server on its own box (kernel TCP, from the member daemon's network
namespace), so that any server (python's http.server, nginx, Apache) joins a distributed server
without a line changed.

Configuration (an ``apps`` entry of a member, :mod:`mip6.runtime.roles.member`)::

    - {type: proxy, port: 80, server: "::1", server_port: 8000,
       http: true, handoff_every: 0, route_requests: false, spares: 1}

The seeds' command-line options and their counterparts: ``-a`` (the real server's port) is
``server_port`` (required); ``-s`` (its address, default loopback) is ``server`` (default
``::1``, any IPv4 or IPv6 address); ``-g`` (the framework's configuration) is the member's own
configuration file this entry is in; ``-l`` and ``-i`` (the address and interface handoffs use)
are the member's ``address`` and links; ``-c`` (only the contact node distributes new clients)
is the member's ``distribute`` (the contact node's distribution, DSERVER 3) together with
``handoff_every: 0`` and ``route_requests: false`` here (no member moves a client on its own);
``-n`` and ``-v`` have none (each connection is a task; logging is the daemon's ``-v``).

**Plain TCP** (``http: false``): the seeds' proxy. A connection may be handed off until its
first byte is relayed either way (the contact node's distribution right after the accept);
from then on it stays where it is, since the server's side of it cannot move.

**HTTP/1.1** (``http: true``, the default): the proxy follows requests and responses just
enough to know where each ends (:mod:`mip6.apps.http_boundary`, with httptools and h11) and,
between two exchanges of a keep-alive client, the client may be handed to another member's
proxy: when the next request's head has arrived and nothing of it has been forwarded, the
application state is that head (the bytes read and not forwarded: empty when the client has
sent nothing yet), and the acceptor's proxy forwards the request to its own server over its
own connection. The donor's connection to its server closes with the handoff. When it hands off:

- ``handoff_every: N`` (requests): after every N requests served at this member, the member's
  policy picks another member (never this one);
- ``route_requests: true``: the member's policy sees each request's first bytes before it is
  forwarded (:class:`~mip6.dserver.policy.Selection` ``first_bytes``; content-aware
  distribution: a :class:`~mip6.dserver.policy.ContentAwarePolicy` routes by path) and the
  request goes to the member it chooses (the member it arrives at serves it without asking
  again);
- and any handoff the member starts itself (the contact node's distribution, ``mip6 ctl
  handoff``, a leave): the proxy says the connection is movable only between exchanges
  (:attr:`~mip6.runtime.dserver_api.Connection.movable`), and the member's freeze for a
  handoff waits for the end of an exchange (half an attempt at most; then the client stays).

**In C.** In a member daemon whose fast path carries the client's connection (a member that
does not replicate its clients, :mod:`mip6.runtime.fast`), and a proxy whose policy does not
look at requests (no ``route_requests``, ``handoff_every: 0``), the exchanges go through the
host's relay (:class:`~mip6.runtime.fast.FastRelays`, ``csrc/relay.c``): the same framing
with llhttp from C, the same checks before a request goes on, one exchange at a time, no
Python on the way of a request or a response. The connection is movable while the relay is
between two exchanges (a handoff's freeze asks it), and whatever stops the relay (an end of
stream, a head it does not forward, a message llhttp refuses) leaves the proxy below to go on
from there. A new client's relay starts as the fast path adopts the connection C opened, with a
spare that is open then (the proxy is the relays' provider for its port; not at a contact node
that distributes new clients, whose distribution decides first), so its first request goes on
without waiting for the member's accept, which runs a few milliseconds later, after the first
exchange (:data:`mip6.runtime.fast.PUT_OFF`).

Anything the tracker does not follow (not HTTP/1.1, CONNECT, an upgrade, a head longer than
32 KiB, a malformed chunked body) turns the connection into a plain relay where it is, never
handed off again; a response that runs until the server closes ends the connection with it;
``Connection: close`` on either side ends it after that exchange. A server that cannot be
reached is answered ``502 Bad Gateway``; one that closes its idle keep-alive connection is
reconnected at the next request, and a request it dropped unanswered as it closed goes again
on a new connection if its method is idempotent (else 502).

**Spares** (``spares: N``, default 1; 0: none): a new client's connection to the server is
taken from up to N opened ahead, so its first request goes to the server the moment its head
is read. Opening one in the daemon's loop takes about as long as the member's whole answer to a
small request otherwise (``labnet bench proxy``: the connect alone cost a fresh 10 kB fetch
0.4 to 0.7 ms of the proxy's 1.4 to 1.9 ms). Each spare serves one client connection and is
never given to another afterwards (no two clients' exchanges share a connection to the server:
nothing a server ties to a connection, NTLM's authentication for one, passes between clients).
A client's connection that finds none opens its own (its first request then waits for the
connect, as a server's first client's does). The spares are topped up when a client's
connection leaves this member (it ended or was handed on: a connect in the loop while an
answer is on its way would delay that answer), one that never carried a request (the contact
node's distribution took the client on before it sent any) is kept as a spare, and one unused
for :data:`SPARE_LIFETIME` is closed and not replaced, so an idle member holds no connection
to its server and a server's timeout for connections that send nothing never fires on one; a
spare the server closed anyway is never given out, and a request it dropped unanswered goes
again as on a kept-alive connection.

Relaying copies as little as this module can: bytes read from one side are written to the other
as the same objects (a Content-Length body is counted, never parsed; a slice only where a read
holds the end of a message). Bodies that are chunked go through h11's parser.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address
from typing import TYPE_CHECKING

from mip6.apps.http_boundary import Kind, MessageTracker, Unsupported
from mip6.dserver.policy import Selection
from mip6.runtime.dserver_api import (
    MAX_STATE,
    Connection,
    DistributedServer,
    HandoffFailed,
    ServedPort,
)

if TYPE_CHECKING:
    from mip6.runtime.fast import FastRelays, RelayState

log = logging.getLogger(__name__)

Read = Callable[[], Awaitable[bytes]]  # one side's next bytes (empty: its end)

READ_SIZE = 1 << 16  # bytes asked of a stream per read
FIRST_BYTES = 4096  # bytes of a request's head the policy sees
THAW_POLL = 0.005  # seconds between looks at a frozen connection (see _thawed)
# A response's first read that holds its head and no more than CORK_MAX bytes in all, the rest
# still to come, waits at most CORK_WAIT seconds for what follows and goes out with it: python's
# http.server writes a head and its body apart (tens of microseconds apart on loopback), and the
# head alone would cost the client a segment and the member a segment and an ACK, each about
# 0.1 ms of the member's CPU in Python (labnet bench proxy). Only the head waits, never what
# follows it, so the response ends no later for it. A longer first read goes at once.
CORK_WAIT = 0.001
CORK_MAX = 1024
# seconds an unused spare is kept: far inside the time servers give a connection to send its
# first request (nginx's client_header_timeout 60 s, Apache's mod_reqtimeout 20 s at least)
SPARE_LIFETIME = 2.0
# RFC 9110 9.2.2: a request of these methods may be sent again when no answer came
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

# The application state (``conn.state``): empty between exchanges with nothing read of the
# next request; else a name and version, flags, then the bytes read and not forwarded.
STATE_MAGIC = b"P1"
ROUTED = 0x01  # the request at the head of the bytes was routed here: serve it, ask no one
MIDDLE = 0x02  # in the middle of an exchange (only a replica's resumption can carry this)
_STATE_HEAD = len(STATE_MAGIC) + 1
MAX_HELD = MAX_STATE - _STATE_HEAD  # bytes of a request the state can carry


class StateError(ValueError):
    """A state this proxy cannot have written."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """One proxy (see the module docstring): the server's address and port, and how clients
    move."""

    server_port: int
    server: str = "::1"
    http: bool = True
    handoff_every: int = 0  # requests served here before the client is handed on (0: never)
    route_requests: bool = False
    spares: int = 1  # connections to the server opened ahead for new clients

    def __post_init__(self) -> None:
        ip_address(self.server)  # a literal address: the daemon resolves no names
        if not 0 < self.server_port <= 0xFFFF:
            raise ValueError(f"server_port {self.server_port} is not a port (1-65535)")
        if self.handoff_every < 0:
            raise ValueError("handoff_every must not be negative")
        if self.spares < 0:
            raise ValueError("spares must not be negative")


def encode_state(held: bytes, *, routed: bool = False, middle: bool = False) -> bytes:
    if not held and not routed and not middle:
        return b""
    flags = (ROUTED if routed else 0) | (MIDDLE if middle else 0)
    return STATE_MAGIC + bytes((flags,)) + held


def decode_state(state: bytes) -> tuple[bytes, bool, bool]:
    """The held bytes, ``routed`` and ``middle`` of a state :func:`encode_state` wrote."""
    if not state:
        return b"", False, False
    if len(state) < _STATE_HEAD or state[:2] != STATE_MAGIC:
        raise StateError("not a proxy state")
    flags = state[2]
    if flags & ~(ROUTED | MIDDLE):
        raise StateError(f"unknown flags {flags:#x}")
    return state[_STATE_HEAD:], bool(flags & ROUTED), bool(flags & MIDDLE)


class _Backend:
    """This member's connection to its server for one client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._socket = writer.get_extra_info("socket")

    @property
    def socket(self) -> socket.socket:
        return self._socket

    @property
    def untouched(self) -> bool:
        """Nothing read from the server and waiting here, nothing waiting to go to it: what a
        relay in C may take over."""
        return not self.reader._buffer and not self.writer.transport.get_write_buffer_size()  # type: ignore[attr-defined]

    async def read(self) -> bytes:
        """The next bytes from the server, acknowledged at once. A server that writes a
        response's head and body apart (python's http.server does) holds a body smaller than
        the segment size behind its unacknowledged head (Nagle's algorithm), and on loopback
        (64 kB segments) nearly every body is: our delayed ACK would cost each response 40 ms
        (measured: 23 keep-alive requests a second instead of thousands). Linux sends the
        pending ACK when TCP_QUICKACK is set, and leaves quick-ACK mode on its own later, so
        it is set again after each read."""
        data = await self.reader.read(READ_SIZE)
        if data:
            self._quickack()
        return data

    def write(self, data: bytes) -> None:
        """``data`` to the server, whose answer is then acknowledged as it arrives: a request
        sent within the delayed-ACK timeout of the last bytes read makes Linux's TCP take the
        exchange for an interactive one (pingpong mode) and hold the ACK of the response's
        head for a piggyback, which a server writing head and body apart waits for (Nagle)
        before it sends the body: the whole wait of our next read (labnet bench proxy: the
        body came 0.27 ms after the head, the member's wake-up, read and ACK in between)."""
        self.writer.write(data)
        self._quickack()

    def _quickack(self) -> None:
        if _QUICKACK is not None and self._socket is not None:
            self._socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def close(self) -> None:
        self.writer.close()


class _ServerSide:
    """The server's side of one client connection at this member: a connection to the
    server, a spare (:class:`_Spares`) or opened ahead (while the client's next request is on
    its way: the connect then costs the request less), and opened again when the server has
    closed an idle one."""

    def __init__(self, proxy: Proxy, conn: Connection) -> None:
        self.proxy = proxy
        self.conn = conn
        self.backend: _Backend | None = None
        # the connection waited at the server before this exchange (it carried one already,
        # or was a spare): the server may have closed it as the request reached it
        self.idle = False
        self._opening: _Spare | None = None  # the connection until get() gives it out

    def prepare(self) -> None:
        if self.backend is not None and self.backend.reader.at_eof():
            self.drop()  # the server closed it while the client was idle
        if self.backend is None and self._opening is None:
            spare = self.proxy.spares.take()
            self.idle = spare is not None
            self._opening = spare or self.proxy.spares.open(self.conn)

    def drop(self) -> None:
        """The connection is of no more use: the next :meth:`get` opens another."""
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        self.idle = False

    async def get(self) -> _Backend | None:
        """The connection, this client's from now on (None: the server cannot be reached)."""
        self.prepare()
        if self._opening is not None:
            opening, self._opening = self._opening, None
            self.backend = await opening.future
        return self.backend

    def close(self) -> None:
        if self._opening is not None:
            # never given out (the client left or was handed on before its first request):
            # nothing went over it, so another client may have it
            self.proxy.spares.give_back(self._opening)
        if self.backend is not None:
            self.backend.close()
        self.proxy.spares.refill()


@dataclass(slots=True, eq=False)
class _Spare:
    """A connection to the server, open or opening, and when it was asked for."""

    future: asyncio.Future[_Backend | None]
    opened: float
    expiry: asyncio.TimerHandle | None = None

    def usable(self) -> bool:
        """Not failed and not closed by the server (yet)."""
        future = self.future
        if not future.done():
            return True
        if future.cancelled() or future.exception() is not None:
            return False
        backend = future.result()
        return backend is not None and not backend.reader.at_eof()

    def discard(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        self.future.add_done_callback(_close_opened)
        self.future.cancel()


class _Spares:
    """Connections to the server opened ahead, each for one new client connection (see the
    module docstring)."""

    def __init__(self, proxy: Proxy, count: int) -> None:
        self.proxy = proxy
        self.count = count
        self._ready: collections.deque[_Spare] = collections.deque()
        self.closed = False
        self.taken = 0  # for tests and inspection

    def open(self, conn: Connection | None) -> _Spare:
        """A new connection for ``conn`` (None: a spare)."""
        loop = asyncio.get_running_loop()
        return _Spare(asyncio.ensure_future(self.proxy._connect(conn)), loop.time())

    def take(self) -> _Spare | None:
        """A spare, open or opening (None: none left)."""
        while self._ready:
            spare = self._ready.popleft()
            if spare.usable():
                assert spare.expiry is not None
                spare.expiry.cancel()
                self.taken += 1
                return spare
            spare.discard()  # the server closed it, or it never opened
        return None

    def take_open(self) -> _Backend | None:
        """A spare that is open now, with nothing read or unsent (None: none is)."""
        for spare in self._ready:
            if spare.future.done() and spare.usable():
                backend = spare.future.result()
                assert backend is not None
                if not backend.untouched:
                    continue
                self._ready.remove(spare)
                assert spare.expiry is not None
                spare.expiry.cancel()
                self.taken += 1
                return backend
        return None

    def refill(self) -> None:
        while not self.closed and len(self._ready) < self.count:
            self._keep(self.open(None))

    def give_back(self, spare: _Spare) -> None:
        """A connection nothing went over: kept as a spare (until its own lifetime ends)."""
        if not self.closed and len(self._ready) < self.count and spare.usable():
            self._keep(spare)
        else:
            spare.discard()

    def _keep(self, spare: _Spare) -> None:
        loop = asyncio.get_running_loop()
        spare.expiry = loop.call_at(spare.opened + SPARE_LIFETIME, self._expire, spare)
        self._ready.append(spare)

    def _expire(self, spare: _Spare) -> None:
        self._ready.remove(spare)
        spare.discard()

    def close(self) -> None:
        self.closed = True
        while self._ready:
            self._ready.popleft().discard()


async def _thawed(conn: Connection) -> None:
    """Until a handoff that froze ``conn`` has failed (one that completes cancels the task).
    Rare (a freeze and a request's head in the same instant): polled, not signalled."""
    while conn.sock.frozen:
        await asyncio.sleep(THAW_POLL)


async def _read_within(backend: _Backend, seconds: float) -> bytes | None:
    """The server's next bytes, or None when none came within ``seconds`` (none are lost: a
    read cancelled while it waits has taken nothing)."""
    try:
        async with asyncio.timeout(seconds):  # no task of its own, unlike wait_for
            return await backend.read()
    except TimeoutError:
        return None


def _close_opened(opening: asyncio.Future[_Backend | None]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        backend = opening.result()
        if backend is not None:
            backend.close()


class Proxy:
    """The proxy of one port on one member (``server``: the member's asyncio face)."""

    def __init__(self, server: DistributedServer, settings: ProxySettings) -> None:
        self.server = server
        self.settings = settings
        # counters, for tests and inspection
        self.connections = 0
        self.handed_in = 0
        self.requests = 0
        self.handoffs_asked = 0
        self.handoffs_failed = 0
        self.opaque = 0
        self.bad_gateway = 0
        self.bad_states = 0
        self.retried = 0  # requests sent again after the server closed an idle connection
        self.relayed = 0  # responses relayed in C (the fast path's relays)
        self._providing = False  # spares given for relays that start with a connection
        self.spares = _Spares(self, settings.spares)

    def listen(self, port: int) -> ServedPort:
        return self.server.listen(port, self.handle)

    def close(self) -> None:
        """The spares closed (the daemon is stopping)."""
        self.spares.close()

    async def handle(self, conn: Connection) -> None:
        """The handler of one client connection, new or handed in."""
        self.connections += 1
        self.handed_in += conn.handed_in
        try:
            held, routed, middle = decode_state(conn.state)
        except StateError as error:
            self.bad_states += 1
            log.warning("proxy %s: bad state from a donor: %s", conn, error)
            return
        if middle:
            # resumed from a replica taken during an exchange: the server's side of it is
            # gone with the member that died, and the client's response cannot be finished
            log.info("proxy %s: resumed in the middle of an exchange: closed", conn)
            return
        side = _ServerSide(self, conn)
        try:
            if self.settings.http:
                await self._http(conn, side, held, routed)
            else:
                await self._plain(conn, side)
        finally:
            side.close()

    # -- HTTP/1.1 ------------------------------------------------------------------------------

    async def _http(self, conn: Connection, side: _ServerSide, held: bytes, routed: bool) -> None:
        """Exchange after exchange until either side ends the connection."""
        served = 0  # requests served at this member
        relays = self._relays(conn)
        claimed = None if relays is None else relays.claim(conn.sock)
        if claimed is not None:  # its relay started as C opened it, with a spare of ours
            side.backend, side.idle = claimed[1], True
        while True:
            # between two exchanges: a handoff may take the client from here, unless more was
            # read of what follows (pipelined requests) than its state can carry
            conn.movable = len(held) <= MAX_HELD
            side.prepare()  # while the request is on its way
            if relays is not None and not held and not routed:
                relayed = await self._relayed(conn, side, relays, claimed)
                claimed = None
                if relayed is not None:
                    relays = None  # whatever stopped it, the rest is Python's
                    ended, held = relayed
                    if ended:
                        return
                    continue
            request = MessageTracker(Kind.REQUEST)
            try:
                taken = request.feed(held) if held else 0
                while request.head is None:
                    room = MAX_HELD - len(held)
                    if room <= 0:
                        raise Unsupported("a head longer than a handoff state carries")
                    conn.state = encode_state(held, routed=routed)
                    conn.movable = True
                    data = await conn.reader.read(min(READ_SIZE, room))
                    if not data:
                        return  # the client closed between two requests
                    held += data
                    taken += request.feed(data)
            except Unsupported as error:
                return await self._opaque(conn, await side.get(), held, None, error)
            if not routed and await self._hand_off_failed(conn, held, served):
                served = 0  # asked again only after another handoff_every requests
            routed = False
            conn.movable = False
            if conn.sock.frozen:
                # a handoff froze the client between our last read and now, with what we read
                # still in its state: its outcome decides (completed: cancelled here)
                await _thawed(conn)
            conn.state = encode_state(b"", middle=True)
            served += 1
            self.requests += 1
            head = request.head
            backend = await side.get()
            if backend is None:
                return self._bad_gateway(conn)
            message, held = held[:taken], held[taken:]
            whole, idle = request.ended, side.idle
            backend.write(message)
            response = asyncio.ensure_future(self._response(conn, backend, head.method))
            try:
                if not whole:
                    held = await self._request_body(conn, request, backend)
            except Unsupported as error:
                return await self._opaque(conn, backend, held, response, error)
            except BaseException:
                response.cancel()
                raise
            keep_alive = await response
            if keep_alive is None and idle and whole and head.method in IDEMPOTENT:
                # the server closed an idle connection as the request reached it (its idle
                # timeout): nothing of it was answered, so it goes again on a new one (RFC
                # 9112 9.3.1)
                self.retried += 1
                side.drop()
                backend = await side.get()
                if backend is not None:
                    backend.write(message)
                    keep_alive = await self._response(conn, backend, head.method)
            if keep_alive is None:
                return self._bad_gateway(conn)
            side.idle = True
            if not (keep_alive and head.keep_alive):
                return  # the exchange ends the connection: our FIN follows

    # -- relayed in C --------------------------------------------------------------------------

    def _relays(self, conn: Connection) -> FastRelays | None:
        """The host's relays when this proxy's exchanges may go through them: no policy looks
        at requests (``route_requests``, ``handoff_every``: they decide between two requests,
        in Python) and the daemon's fast path carries the connection."""
        settings = self.settings
        if settings.route_requests or settings.handoff_every:
            return None
        relays: FastRelays | None = getattr(conn.sock.stack.carrier, "relays", None)
        if relays is not None and not self._providing:
            self._providing = True
            relays.provide(conn.port, self)
        return relays

    # RelayProvider (mip6.runtime.fast): a spare for the relay of a connection C just opened
    def relay_backend(self) -> tuple[int, _Backend] | None:
        if self.server.member.config.distribute and self.server.is_contact_node:
            return None  # the contact node's distribution decides first (a new client)
        backend = self.spares.take_open()
        if backend is None:
            return None
        backend.writer.transport.pause_reading()  # the relay reads it
        return backend.socket.fileno(), backend

    def relay_returned(self, backend: _Backend) -> None:
        backend.close()  # (one the relay did not start with: rare, C had no room)
        self.spares.refill()

    async def _relayed(
        self,
        conn: Connection,
        side: _ServerSide,
        relays: FastRelays,
        claimed: tuple[int, _Backend] | None,
    ) -> tuple[bool, bytes] | None:
        """Exchanges relayed in C (:class:`~mip6.runtime.fast.FastRelays`) until the relay
        stops (``claimed``: the one that started as C opened the connection); then whether
        the connection ended, and else the client's bytes read and not forwarded (the
        request the relay left to Python). None: no relay took it (it goes on in Python)."""
        if claimed is not None:
            backend = claimed[1]
        else:
            backend = await side.get()
            if backend is None or not backend.untouched or conn.writer.unsent:
                return None
        transport = backend.writer.transport
        pipe = conn.writer._pipe
        stopped = asyncio.get_running_loop().create_future()

        def on_event(index: int) -> None:
            if relays.state(index).stop != "running":
                if not stopped.done():
                    stopped.set_result(None)
            else:  # idle after a no: a handoff held for it may go on (Connection.movable)
                self.server.driver.kick()

        if claimed is not None:
            index = claimed[0]
            relays.listen(index, on_event)
        else:
            transport.pause_reading()
            started = relays.start(conn.sock, backend.socket.fileno(), conn._unread(), on_event)
            if started is None:
                transport.resume_reading()
                return None
            index = started
            conn.reader._buffer.clear()  # type: ignore[attr-defined]  # the relay has them
        conn.state = b""
        conn.movable_check = functools.partial(self._relay_movable, conn, relays, index)
        try:
            if relays.state(index).stop == "running":
                await stopped
            state = relays.state(index)
            held = relays.bytes(index, relays.HELD, state.held)
            down = relays.bytes(index, relays.DOWN, state.down)
            retained = relays.bytes(index, relays.RETAINED, state.retained)
        finally:
            relays.stop(index)
            conn.movable_check = None
            if not conn.handed_off:
                pipe.pump()  # what the client sent since is the reader's again
                transport.resume_reading()
        self.requests += state.requests
        self.relayed += state.responses
        if state.requests:
            side.idle = True
        log.debug("proxy %s: relay stopped: %s", conn, state)
        return await self._after_relay(conn, side, backend, state, held, down, retained)

    def _relay_movable(self, conn: Connection, relays: FastRelays, index: int) -> bool:
        """Whether the relay is between two exchanges with no more read than a state carries:
        then ``conn.state`` says what was read (a freeze follows at once); else it tells us
        when it is (a handoff held for that asks again then)."""
        state = relays.state(index)
        if state.stop != "running":
            return False  # the handler takes over at its next step
        if state.idle and state.held <= MAX_HELD:
            conn.state = encode_state(relays.bytes(index, relays.HELD, state.held))
            return True
        relays.notify_idle(index)
        return False

    async def _after_relay(
        self,
        conn: Connection,
        side: _ServerSide,
        backend: _Backend,
        state: RelayState,
        held: bytes,
        down: bytes,
        retained: bytes,
    ) -> tuple[bool, bytes]:
        """The proxy goes on from where the relay stopped (daemon_fast.h, enum
        dfast_relay_stop)."""
        if state.unrelayed:
            conn.writer.write(down[: state.unrelayed])  # the response's, framed already
        stop = state.stop
        if stop == "request":
            return False, held  # a head the relay does not forward: the tracker reads it
        if stop == "raw" or (stop == "client_closed" and not state.idle):
            # a message llhttp refused after its head went on, or the client closed in the
            # middle of an exchange: the rest as it is, as the tracker's Unsupported does
            if down[state.unrelayed :]:
                conn.writer.write(down[state.unrelayed :])
            conn.movable = False
            conn.state = encode_state(b"", middle=True)
            await self._opaque(conn, backend, held, None, Unsupported("relayed as it is"))
            return True, b""
        if stop == "server_closed" and not state.idle:
            method = state.method_name
            if state.retry and method in IDEMPOTENT:
                # as in _http: the server closed an idle connection as the request reached it
                self.retried += 1
                side.drop()
                conn.movable = False
                conn.state = encode_state(b"", middle=True)
                retried = await side.get()
                if retried is not None:
                    retried.write(retained)
                    assert method is not None
                    keep_alive = await self._response(conn, retried, method)
                    if keep_alive:
                        side.idle = True
                        return False, held
                    if keep_alive is False:
                        return True, b""
            if not state.answered:
                self._bad_gateway(conn)
        return True, b""

    def _handoff_due(self, served: int) -> bool:
        every = self.settings.handoff_every
        return bool(every) and served >= every

    async def _hand_off_failed(self, conn: Connection, held: bytes, served: int) -> bool:
        """At a boundary with the next request's head in ``held``: hand the client to the
        member the policy routes the request to, or on after ``handoff_every`` requests.
        True when a handoff was tried and failed (the client is still here)."""
        if len(held) > MAX_HELD:
            return False  # its state could not carry what was read: served here
        target: IPv6Address | None = None
        if self.settings.route_requests:
            selection = Selection(
                client=conn.client,
                local=self.server.address,
                now=self.server.loop.time(),
                first_bytes=held[:FIRST_BYTES],
            )
            chosen = self.server.policy.select_target(selection)
            if chosen is not None and chosen != self.server.address:
                target = chosen
        if target is None and not self._handoff_due(served):
            return False
        conn.state = encode_state(held, routed=True)
        self.handoffs_asked += 1
        try:
            # completed: this task is cancelled here
            await conn.handoff(target, first_bytes=held[:FIRST_BYTES])
        except HandoffFailed as failed:
            self.handoffs_failed += 1
            log.info("proxy %s: stays here: %s", conn, failed)
            return True
        return False  # the policy's choice was this member after all

    async def _request_body(
        self, conn: Connection, request: MessageTracker, backend: _Backend
    ) -> bytes:
        """Forwards the rest of the request's body; returns what followed it in the last read
        (the start of the next request)."""
        while True:
            data = await conn.reader.read(READ_SIZE)
            if not data:
                request.close()  # raises: the client closed in the middle of its request
            taken = request.feed(data)
            backend.write(data if taken == len(data) else data[:taken])
            await backend.writer.drain()
            if request.ended:
                return data[taken:]

    async def _response(self, conn: Connection, backend: _Backend, method: bytes) -> bool | None:
        """Relays one response (interim ones included); whether the connection may carry
        another exchange after it; None when the server closed before answering at all."""
        response = MessageTracker(Kind.RESPONSE, method)
        relayed = 0
        corked = b""  # a first read held for what follows it (CORK_WAIT)
        while True:
            if corked:
                data = await _read_within(backend, CORK_WAIT)
                conn.writer.write(corked)
                corked = b""
                if data is None:  # nothing came: the head goes alone
                    await conn.writer.drain()
                    continue
            else:
                data = await backend.read()
            try:
                if not data:
                    if not relayed:
                        return None
                    response.close()  # a body that ran until the close ended; else raises
                    return False
                taken = response.feed(data)
            except Unsupported as error:
                conn.writer.write(data)
                await self._raw(backend.read, conn.writer)
                self.opaque += 1
                log.info("proxy %s: relayed as it is: the response: %s", conn, error)
                return False
            chunk = data if taken == len(data) else data[:taken]
            relayed += taken
            first = relayed == taken
            if first and response.head is not None and not response.ended and taken <= CORK_MAX:
                corked = chunk
                continue
            conn.writer.write(chunk)
            await conn.writer.drain()
            if response.ended:
                assert response.head is not None
                # anything past the response was sent for no request: nothing follows it here
                return response.head.keep_alive and taken == len(data)

    async def _opaque(
        self,
        conn: Connection,
        backend: _Backend | None,
        held: bytes,
        response: asyncio.Future[bool] | None,
        error: Unsupported,
    ) -> None:
        """The rest of the connection relayed as it is, here, both ways until the server
        closes or the client has closed and the server answered."""
        self.opaque += 1
        log.info("proxy %s: relayed as it is from here: %s", conn, error)
        conn.movable = False
        conn.state = encode_state(b"", middle=True)
        if backend is None:
            return self._bad_gateway(conn)
        backend.write(held)
        down = response or asyncio.ensure_future(self._raw(backend.read, conn.writer))
        client_read = functools.partial(conn.reader.read, READ_SIZE)
        up = asyncio.ensure_future(self._raw(client_read, backend.writer))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if up.done():
                await down  # the client finished sending: the server's answer still comes
        finally:
            up.cancel()
            down.cancel()

    # -- plain TCP -----------------------------------------------------------------------------

    async def _plain(self, conn: Connection, side: _ServerSide) -> None:
        backend = await side.get()
        if backend is None:
            return
        # movable until a byte has gone either way: the contact node's distribution right
        # after the accept finds nothing begun (the seeds' proxy)
        client_read = functools.partial(conn.reader.read, READ_SIZE)
        up_first = asyncio.ensure_future(client_read())
        down_first = asyncio.ensure_future(backend.read())
        up = asyncio.ensure_future(self._relay_after(up_first, client_read, backend.writer))
        down = asyncio.ensure_future(self._relay_after(down_first, backend.read, conn.writer))
        try:
            await asyncio.wait({up_first, down_first}, return_when=asyncio.FIRST_COMPLETED)
            conn.movable = False
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if up.done():
                await down  # the client finished sending: the server's answer still comes
        finally:
            for task in (up_first, down_first, up, down):
                task.cancel()

    async def _relay_after(
        self,
        first: asyncio.Future[bytes],
        read: Read,
        writer: asyncio.StreamWriter,
    ) -> None:
        """A direction whose first read is ``first``: its bytes, then the rest as it comes."""
        data = await first
        if data:
            writer.write(data)
            await writer.drain()
            await self._raw(read, writer)
        elif writer.can_write_eof():
            writer.write_eof()

    # -- both ----------------------------------------------------------------------------------

    async def _connect(self, conn: Connection | None) -> _Backend | None:
        """A connection to the server for ``conn`` (None: a spare)."""
        settings = self.settings
        try:
            reader, writer = await asyncio.open_connection(
                settings.server, settings.server_port, limit=READ_SIZE
            )
        except OSError as error:
            # a spare's failure is no client's: the client that would take it opens its own
            log.log(
                logging.WARNING if conn is not None else logging.DEBUG,
                "proxy %s: server [%s]:%d: %s",
                conn or "spare",
                settings.server,
                settings.server_port,
                error,
            )
            return None
        return _Backend(reader, writer)

    def _bad_gateway(self, conn: Connection) -> None:
        """The answer when the server cannot be reached or closed without one (the client's
        connection closes after it)."""
        self.bad_gateway += 1
        conn.writer.write(BAD_GATEWAY)

    @staticmethod
    async def _raw(read: Read, writer: asyncio.StreamWriter) -> None:
        """Everything ``read`` gives, to ``writer``, as it comes; its end, as a half-close."""
        while data := await read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


def start_proxy(server: DistributedServer, port: int, settings: ProxySettings) -> Proxy:
    """A proxy on the contact address's ``port`` of ``server``'s member."""
    proxy = Proxy(server, settings)
    proxy.listen(port)
    return proxy
