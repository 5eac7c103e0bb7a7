"""The TCP stack above one IPv6 layer: demultiplexing, listeners, RSTs, ISS and ports.

Sans-I/O: a :class:`Stack` is given a ``transmit(packet: bytes)`` callable that sends one whole
IPv6 packet, and the local addresses it answers for. The caller hands it every received IPv6
packet with :meth:`Stack.receive`, calls :meth:`Stack.poll` at or after
:meth:`Stack.next_deadline` and after application calls (which only mark a connection as having
output due). Time is always passed in: ``now_ms``, integer milliseconds of a monotonic clock.
The stack reads no clock and draws no random numbers: the ISS secret is a constructor argument.

Policy lives here, state and arithmetic in the C core (``csrc/tcp_conn.h``), the IPv6 header
chain in :mod:`tcp_migrate.ipv6`:

- Demultiplexing by the 4-tuple (local address, local port, remote address, remote port); a
  segment for no connection goes to a listener on (address, port) or the wildcard address.
- RFC 9293 3.10.7.1: a segment for no connection and no listener gets a RST, unless it carries
  one: "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
  <CTL=RST,ACK>; if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>". RFC 9293 3.10.7.2: an ACK to a
  listener gets the second form; a RST to a listener is ignored. RSTs are rate-limited
  (``rst_limit_per_s``), and never sent for a segment whose checksum fails.
- RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey) with M a 4
  microsecond timer (here ``now_ms * 250``) and F a keyed BLAKE2s; the timestamp offset
  (RFC 7323 7.1) is another keyed hash of the 4-tuple.
- RFC 6056 3.3.3 (algorithm 3) ephemeral ports: the search starts at a keyed hash of
  (local address, remote address, remote port) plus a counter.
- Bounds: ``max_connections`` entries in the table (SYNs beyond it are dropped), per listener at
  most ``backlog`` half-open connections and ``backlog`` established ones waiting in the accept
  queue (a SYN beyond either is dropped, as Linux does, so the client retries).
- Migration: :meth:`Socket.freeze`, :meth:`Socket.export`, :meth:`Stack.import_connection`
  (the connection arrives frozen and owns its 4-tuple: segments to it are dropped silently, no
  RST), :meth:`Socket.thaw`, and :meth:`Stack.release` for the donor giving a connection up:
  segments still reaching it for that 4-tuple are dropped silently for ``time_wait_ms``, not
  answered with a RST that would reset the connection the acceptor now serves. Where
  connections may be resumed by another host (a replica's, after this one's holder died),
  ``Stack.withhold_rst(local, port, remote)`` returning True drops a segment for no connection
  without the RST (counted ``rst_withheld``), ``Listener.on_half_open`` names each
  connection as it enters SYN-RECEIVED, before its SYN-ACK goes, and :meth:`Socket.hold` keeps
  what a connection sends until a replica covers it.

- A carrier outside the stack (``Stack.carrier``: a daemon's C fast path) may take some
  connections' segments itself, giving them to the C core and sending what it answers: the
  stack tells it of each connection in its table after each time it handled one
  (``Carrier.sync``: the carrier takes the :func:`carriable` ones, and knows the others' 4-tuples
  are taken) and when one leaves the table (``Carrier.remove``), lets it send what such a
  connection owes (``Carrier.send``: False, and the stack sends), and is told what such segments
  did (:meth:`Stack.after_input`). A carrier may also open a connection from a SYN to a
  listener as :meth:`receive` would (the same ISS, timestamp offset and MSS), and hands it to
  the stack with :meth:`Stack.adopt`.

Not here: IPv6 fragments (dropped), ICMPv6 (path MTU, unreachable), IPv4.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from ipaddress import IPv6Address
from typing import Protocol

from tcp_migrate._core import lib
from tcp_migrate.core import (
    CloseReason,
    Config,
    Connection,
    InputResult,
    TcpState,
)
from tcp_migrate.ipv6 import MalformedPacket, walk

__all__ = ["Listener", "Socket", "Stack", "StackError"]

TCP = 6
HOP_LIMIT = 64
_IPV6 = struct.Struct("!IHBB")  # version/class/flow, payload length, next header, hop limit
_TCP = struct.Struct("!HHIIBBHHH")  # RFC 9293 3.1 fixed header
_PORTS = struct.Struct("!HH")
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_WILDCARD = bytes(16)

FourTuple = tuple[bytes, int, bytes, int]
# states in which every segment's work is the C core's alone (the stack's own part, the accept
# queue and the table, is after_input's); an active open's SYN-SENT stays with the stack
_CARRIABLE = frozenset(
    (
        TcpState.SYN_RECEIVED,
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
    )
)


class StackError(Exception):
    """A stack call refused: ``reason`` is a short name (``"table-full"``, ``"address-in-use"``,
    ``"no-ports"``, ``"not-local"``, ``"duplicate"``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _addr(address: bytes | str | IPv6Address) -> bytes:
    if isinstance(address, bytes):
        if len(address) != 16:
            raise ValueError("IPv6 addresses are 16 bytes")
        return address
    return IPv6Address(address).packed


class Carrier(Protocol):
    """What carries some connections' segments outside the stack (see the module docstring)."""

    def sync(self, sock: Socket) -> None: ...

    def remove(self, sock: Socket) -> None: ...

    def send(self, now_ms: int, sock: Socket) -> bool: ...


def carriable(sock: Socket) -> bool:
    """Whether a carrier may give ``sock``'s segments to its C core itself: synchronized, not
    frozen (a frozen connection's input is its ``on_frozen_input``'s), sending nothing it must
    hold (:meth:`Socket.hold`)."""
    return sock.held is None and not sock.conn.frozen and sock.conn.state in _CARRIABLE


class Socket:
    """One connection owned by a stack: the :class:`~tcp_migrate.core.Connection` (``conn``)
    plus its 4-tuple. Application calls mark the connection as having output due; the stack's
    next :meth:`Stack.poll` sends it. ``on_change`` (if set) is called with the socket after
    the stack handled a segment or a timer for it: the driver's hook to wake readers and
    writers. ``on_received`` (if set) is called with the socket when a segment moved RCV.NXT
    (new in-order data, or the peer's FIN), before any output it causes is sent: a program
    that replicates its connections holds the acknowledgement there (:meth:`hold`) until a
    replica covers what came. ``on_frozen_input`` (if set) is called with the socket and the
    whole IPv6 packet of each segment that reaches it while it is frozen (and is dropped):
    a donor keeps what its client sent during a handoff for whoever serves the client next."""

    __slots__ = (
        "closed_by_app",
        "conn",
        "held",
        "input_elsewhere",
        "key",
        "listener",
        "on_change",
        "on_frozen_input",
        "on_received",
        "stack",
    )

    def __init__(self, stack: Stack, conn: Connection, listener: Listener | None = None) -> None:
        self.stack = stack
        self.conn = conn
        self.key: FourTuple = (
            conn.local_address,
            conn.raw.local_port,
            conn.remote_address,
            conn.raw.remote_port,
        )
        self.listener = listener
        self.closed_by_app = False
        self.on_change: Callable[[Socket], None] | None = None
        self.on_received: Callable[[Socket], None] | None = None
        self.on_frozen_input: Callable[[Socket, bytes], None] | None = None
        # hold(): the packets the connection sends are kept here until release_hold()
        self.held: list[bytes] | None = None
        # something other than the application reads the input (a daemon's relay in C):
        # streams over the socket call it when the socket changed, and read none of it
        self.input_elsewhere: Callable[[], None] | None = None

    # ---- the application's side (output goes out at the stack's next poll) ----------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Bytes of ``data`` (any bytes-like object) accepted into the send ring (0 when it
        is full)."""
        n = self.conn.send(data)
        self.stack._mark(self)
        return n

    def recv(self, n: int = 65536) -> bytes:
        """Up to ``n`` readable bytes; b"" when none (see :attr:`at_eof`)."""
        data = self.conn.recv(n)
        if data:
            self.stack._mark(self)  # a window update may be due
        return data

    def close(self) -> None:
        """RFC 9293 3.10.4 CLOSE: a FIN after the queued data. Reading may continue."""
        self.closed_by_app = True
        if self.conn.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RECEIVED):
            self.conn.shutdown_write()
        elif self.conn.state in (TcpState.SYN_SENT, TcpState.CLOSED):
            if self.conn.state == TcpState.SYN_SENT:
                self.conn.abort()
        self.stack._mark(self)

    def hold(self) -> None:
        """Keep what the connection sends (its segments are built as usual, its state moves
        on as if they had gone) until :meth:`release_hold`: a program that replicates its
        connections lets nothing out that a replica does not cover yet (a SYN-ACK, the answer
        to a request, the acknowledgement of it). At most a window of segments is kept."""
        if self.held is None:
            self.held = []
            if self.stack.carrier is not None:
                self.stack.carrier.sync(self)

    def release_hold(self, now_ms: int) -> None:
        """Send what :meth:`hold` kept, in order, and stop keeping. The retransmission
        timeouts that fired while it held (their segments kept too) lost nothing: the timer
        starts again from ``now_ms`` without their back-off (a hold of seconds had backed it
        off so far that a segment then lost on the way waited half a minute)."""
        held, self.held = self.held, None
        for packet in held or ():
            self.stack.transmit(packet)
        if held and not self.conn.frozen and self.conn.state is not TcpState.CLOSED:
            self.conn.released(now_ms)
        self.stack._mark(self)

    def abort(self) -> None:
        """RFC 9293 3.10.5 ABORT: a RST when synchronized, then CLOSED."""
        self.closed_by_app = True
        if self.conn.state != TcpState.CLOSED:
            self.conn.abort()
        self.stack._mark(self)

    # ---- migration ---------------------------------------------------------------------

    def freeze(self, now_ms: int) -> None:
        self.conn.freeze(now_ms)
        if self.stack.carrier is not None:
            self.stack.carrier.sync(self)

    def export(self, include_unacked: bool = True) -> bytes:
        return self.conn.export(include_unacked)

    def thaw(self, now_ms: int) -> None:
        self.conn.thaw(now_ms)
        self.stack._mark(self)  # the next poll sends what is due and re-arms its timers

    # ---- state -------------------------------------------------------------------------

    @property
    def state(self) -> TcpState:
        return self.conn.state

    @property
    def close_reason(self) -> CloseReason:
        return self.conn.close_reason

    @property
    def at_eof(self) -> bool:
        return self.conn.at_eof

    @property
    def readable(self) -> int:
        return self.conn.readable

    @property
    def send_space(self) -> int:
        return self.conn.send_space

    @property
    def send_buffered(self) -> int:
        return self.conn.send_buffered

    @property
    def unsent(self) -> int:
        """Bytes in the send ring not sent yet (behind SND.NXT): what an application that
        writes ahead (Linux's TCP_NOTSENT_LOWAT) compares with its low-water mark."""
        raw = self.conn.raw
        in_flight = (raw.snd_nxt - raw.snd_una) & 0xFFFFFFFF
        return max(self.conn.send_buffered - in_flight, 0)

    @property
    def frozen(self) -> bool:
        return self.conn.frozen

    @property
    def write_offset(self) -> int:
        """Stream offset (bytes since the first data byte) of the application's next write.
        After importing a short-form snapshot it is the acknowledged offset minus the bytes
        the core will skip: the application writes its stream again from here."""
        raw = self.conn.raw
        return raw.snd_off + self.conn.send_buffered - raw.snd_skip

    @property
    def local(self) -> tuple[str, int]:
        return str(IPv6Address(self.key[0])), self.key[1]

    @property
    def remote(self) -> tuple[str, int]:
        return str(IPv6Address(self.key[2])), self.key[3]

    @property
    def remote_address(self) -> IPv6Address:
        """The peer's address, without :attr:`remote`'s round trip through its text form."""
        return IPv6Address(self.key[2])

    def __repr__(self) -> str:
        return f"<Socket {self.local} -> {self.remote} {self.state.name}>"


class Listener:
    """A listening endpoint: ``accept()`` takes the oldest established connection, or None.
    ``on_change`` (if set) is called when the accept queue grows, ``on_half_open`` (if set)
    with each new connection in SYN-RECEIVED before its SYN-ACK goes out (a program that
    replicates its connections holds it until a replica covers the connection: the peer takes
    it as established as soon as the SYN-ACK comes)."""

    __slots__ = (
        "address",
        "backlog",
        "closed",
        "half_open",
        "on_change",
        "on_half_open",
        "port",
        "queue",
        "stack",
    )

    def __init__(self, stack: Stack, address: bytes, port: int, backlog: int) -> None:
        self.stack = stack
        self.address = address
        self.port = port
        self.backlog = backlog
        self.queue: deque[Socket] = deque()
        self.half_open = 0
        self.closed = False
        self.on_change: Callable[[Listener], None] | None = None
        self.on_half_open: Callable[[Socket], None] | None = None

    def accept(self) -> Socket | None:
        return self.queue.popleft() if self.queue else None

    def close(self) -> None:
        """Stop listening; connections still queued are aborted."""
        self.closed = True
        self.stack._listeners.pop((self.address, self.port), None)
        while self.queue:
            self.queue.popleft().abort()


class Stack:
    """TCP over one IPv6 layer (see the module docstring).

    ``transmit`` sends one IPv6 packet (bytes, network byte order); ``local_addresses`` are
    the addresses this stack owns (16 bytes or text); ``secret`` keys the ISS, timestamp
    offset and port hashes (at least 16 bytes); ``send_capacity`` and ``receive_capacity``
    are each connection's ring sizes in bytes. ``mss_limit(now_ms, local, remote)``, if
    given, bounds the MSS of each new connection, the one it offers and the one it sends with
    (RFC 9293 3.7.1: what the path to ``remote`` carries, RFC 8201 5.2); :meth:`limit_mss`
    lowers it for the open ones.
    """

    def __init__(
        self,
        *,
        transmit: Callable[[bytes], object],
        local_addresses: Iterable[bytes | str | IPv6Address],
        secret: bytes,
        config: Config | None = None,
        max_connections: int = 1024,
        send_capacity: int = 262144,
        receive_capacity: int = 262144,
        ephemeral_ports: tuple[int, int] = (49152, 65535),
        rst_limit_per_s: int = 200,
        mss_limit: Callable[[int, bytes, bytes], int] | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the secret needs at least 16 bytes")
        self.transmit = transmit
        self.local_addresses = frozenset(_addr(a) for a in local_addresses)
        self._secret = secret
        self.config = config if config is not None else Config()
        self.max_connections = max_connections
        self.send_capacity = send_capacity
        self.receive_capacity = receive_capacity
        self.ephemeral_ports = ephemeral_ports
        self.rst_limit_per_s = rst_limit_per_s
        self.mss_limit = mss_limit
        self._mss_configs: dict[int, Config] = {}  # config.mss -> the config with it
        self._table: dict[FourTuple, Socket] = {}
        self._listeners: dict[tuple[bytes, int], Listener] = {}
        # connections with output due, in the order they became so: a dict, not a set, whose
        # order would follow memory addresses and make the simulator's runs differ
        self._dirty: dict[Socket, None] = {}
        self._deadlines: dict[Socket, int] = {}
        # the same deadlines as a heap of (deadline, push order, socket) whose stale entries
        # (a socket re-armed or gone) are dropped when they surface: poll and next_deadline
        # cost O(log n), not a walk of every connection for every packet
        self._heap: list[tuple[int, int, Socket]] = []
        self._pushes = 0
        self._released: dict[FourTuple, int] = {}  # 4-tuple -> until when (ms) it stays quiet
        self._port_counter = 0
        self._rst_window = (-1, 0)  # (second, count)
        # (local address, remote address) -> True: a segment for no connection between them
        # is dropped without a RST (a host whose peers' connections may be resumed elsewhere)
        self.withhold_rst: Callable[[bytes, int, bytes], bool] | None = None
        self.carrier: Carrier | None = None
        self.counters = {
            "received": 0,
            "not_ours": 0,
            "malformed": 0,
            "bad_checksum": 0,
            "rst_sent": 0,
            "rst_limited": 0,
            "syn_dropped": 0,
            "released_dropped": 0,
            "rst_withheld": 0,
        }
        self._hdr = bytearray(40)

    # ---- hashes: RFC 6528 ISS, RFC 7323 timestamp offset, RFC 6056 ports ---------------

    def _keyed(self, label: bytes, *parts: bytes) -> int:
        h = hashlib.blake2s(label + b"".join(parts), key=self._secret[:32], digest_size=4)
        return int.from_bytes(h.digest(), "big")

    def iss(self, now_ms: int, key: FourTuple) -> int:
        """RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey)."""
        local, lport, remote, rport = key
        f = self._keyed(b"iss", local, _PORTS.pack(lport, rport), remote)
        return (now_ms * 250 + f) & 0xFFFFFFFF

    def ts_offset(self, key: FourTuple) -> int:
        local, lport, remote, rport = key
        return self._keyed(b"tso", local, _PORTS.pack(lport, rport), remote)

    def _ephemeral_port(self, local: bytes, remote: bytes, rport: int) -> int:
        low, high = self.ephemeral_ports
        count = high - low + 1
        offset = self._keyed(b"port", local, remote, rport.to_bytes(2, "big"))
        for _ in range(count):
            self._port_counter += 1
            port = low + (offset + self._port_counter) % count
            if (local, port, remote, rport) not in self._table and (
                (local, port) not in self._listeners
            ):
                return port
        raise StackError("no-ports")

    # ---- application calls -------------------------------------------------------------

    def listen(self, address: bytes | str | IPv6Address, port: int, backlog: int = 128) -> Listener:
        """A listener on (address, port); ``"::"`` listens on every local address."""
        address = _addr(address)
        if address != _WILDCARD and address not in self.local_addresses:
            raise StackError("not-local")
        if (address, port) in self._listeners:
            raise StackError("address-in-use")
        listener = Listener(self, address, port, max(1, backlog))
        self._listeners[(address, port)] = listener
        return listener

    def connect(
        self,
        now_ms: int,
        remote_address: bytes | str | IPv6Address,
        remote_port: int,
        *,
        local_address: bytes | str | IPv6Address | None = None,
        local_port: int = 0,
    ) -> Socket:
        """Active open; the SYN leaves at the next :meth:`poll`."""
        remote = _addr(remote_address)
        if local_address is None:
            local = min(self.local_addresses)
        else:
            local = _addr(local_address)
            if local not in self.local_addresses:
                raise StackError("not-local")
        self._check_room()
        port = local_port or self._ephemeral_port(local, remote, remote_port)
        key = (local, port, remote, remote_port)
        if key in self._table:
            raise StackError("address-in-use")
        conn = self._new_connection(now_ms, key)
        conn.connect(now_ms, iss=self.iss(now_ms, key), ts_offset=self.ts_offset(key))
        sock = Socket(self, conn)
        self._table[key] = sock
        self._mark(sock)
        return sock

    def import_connection(self, blob: bytes) -> Socket:
        """A frozen connection from a snapshot (``Socket.export`` on any host); it takes its
        4-tuple in the table at once, so segments to it are dropped silently until
        :meth:`Socket.thaw`."""
        self._check_room()
        conn = Connection.import_(
            blob,
            config=self.config,
            send_capacity=self.send_capacity,
            receive_capacity=self.receive_capacity,
        )
        sock = Socket(self, conn)
        if sock.key[0] not in self.local_addresses:
            raise StackError("not-local")
        if sock.key in self._table:
            raise StackError("duplicate")
        self._table[sock.key] = sock
        if self.carrier is not None:
            self.carrier.sync(sock)  # its 4-tuple is taken (frozen, not carried)
        return sock

    def adopt(self, conn: Connection, listener: Listener) -> Socket:
        """A connection the carrier opened from a SYN to ``listener`` (SYN-RECEIVED, its
        SYN-ACK sent): the stack's from now on, as if :meth:`receive` had opened it; the
        carrier then reports it touched (:meth:`after_input`). ``listener.on_half_open`` is
        told, after the SYN-ACK (a carrier opens nothing where that hook holds it)."""
        sock = Socket(self, conn, listener)
        listener.half_open += 1
        self._table[sock.key] = sock
        if listener.on_half_open is not None:
            listener.on_half_open(sock)
        return sock

    @property
    def listeners(self) -> list[Listener]:
        return list(self._listeners.values())

    @property
    def connection_count(self) -> int:
        return len(self._table)

    @property
    def hash_key(self) -> bytes:
        """The key of :meth:`iss`, :meth:`ts_offset` and the port hash (BLAKE2s's, 32 bytes
        at most): for a carrier that opens connections as the stack does."""
        return self._secret[:32]

    def quiet_tuples(self, now_ms: int) -> bool:
        """Whether any released 4-tuple is still quiet at ``now_ms`` (see :meth:`release`)."""
        self._expire_released(now_ms)
        return bool(self._released)

    def _expire_released(self, now_ms: int) -> None:
        released = self._released
        # every entry lives time_wait_ms from its release, so insertion order is expiry order:
        # the expired ones are at the front (rebuilding the dict cost O(entries) per release)
        while released:
            key = next(iter(released))
            if released[key] > now_ms:
                break
            del released[key]

    def detach(self, sock: Socket) -> None:
        """Forget a connection without sending anything (the donor after a handoff)."""
        sock.held = None  # what it held is not sent either
        if self._table.pop(sock.key, None) is sock and self.carrier is not None:
            self.carrier.remove(sock)
        self._dirty.pop(sock, None)
        self._deadlines.pop(sock, None)

    def release(self, now_ms: int, sock: Socket) -> None:
        """The donor's side of a handoff (or an acceptor abandoning an import): forget ``sock``
        without sending anything, and until ``now_ms + config.time_wait_ms`` drop segments to
        its 4-tuple silently. Segments sent before the path moved still arrive here; the RST
        that RFC 9293 3.10.7.1 prescribes for them would reset the connection elsewhere."""
        self.detach(sock)
        self._expire_released(now_ms)
        released = self._released
        released.pop(sock.key, None)
        released[sock.key] = now_ms + self.config.time_wait_ms

    def limit_mss(self, remote: bytes, mss: int) -> int:
        """The path to ``remote`` (16 bytes) carries segments of at most ``mss`` bytes now
        (RFC 8201 5.2, a Packet Too Big): every connection to it sends no bigger ones from
        here on (:meth:`Connection.limit_mss`). How many changed."""
        return sum(
            sock.conn.limit_mss(mss) for key, sock in self._table.items() if key[2] == remote
        )

    @property
    def connections(self) -> list[Socket]:
        return list(self._table.values())

    # ---- packets and time --------------------------------------------------------------

    def receive(self, now_ms: int, packet: bytes) -> Socket | None:
        """One IPv6 packet from the layer below; returns the socket it went to, if any.
        Output it causes is transmitted before returning."""
        self.counters["received"] += 1
        try:
            source, destination, protocol, offset, end, fragmented = walk(packet)
        except MalformedPacket:
            self.counters["malformed"] += 1
            return None
        if protocol != TCP or fragmented or destination not in self.local_addresses:
            self.counters["not_ours"] += 1
            return None
        segment = packet[offset:end]
        if len(segment) < 20:
            self.counters["malformed"] += 1
            return None
        sport, dport = _PORTS.unpack_from(segment)
        key = (destination, dport, source, sport)
        sock = self._table.get(key)
        if sock is None:
            if self._released.get(key, now_ms) > now_ms:
                self.counters["released_dropped"] += 1
                return None
            return self._no_connection(now_ms, key, segment)
        if sock.on_frozen_input is not None and sock.conn.frozen:
            sock.on_frozen_input(sock, packet)
        raw = sock.conn.raw
        expected = raw.rcv_nxt
        result = sock.conn.input(now_ms, segment)
        if result == InputResult.BAD_CHECKSUM:
            self.counters["bad_checksum"] += 1
        if sock.on_received is not None and raw.rcv_nxt != expected:
            sock.on_received(sock)
        self._after(now_ms, sock)
        return sock

    def after_input(self, now_ms: int, sock: Socket, *, received: bool) -> None:
        """What :meth:`receive` does after giving a segment to a connection, for segments the
        carrier gave ``sock``'s core itself (and sent its answers): ``received`` when RCV.NXT
        moved."""
        if sock.stack is not self or self._table.get(sock.key) is not sock:
            return  # gone from the table since (its carrier's record came late)
        if received and sock.on_received is not None:
            sock.on_received(sock)
        self._after(now_ms, sock)

    def _mark(self, sock: Socket) -> None:
        self._dirty[sock] = None

    def poll(self, now_ms: int) -> None:
        """Runs the timers due at ``now_ms`` and sends the output every connection owes."""
        heap, deadlines = self._heap, self._deadlines
        due = []
        while heap and heap[0][0] <= now_ms:
            deadline, _, sock = heapq.heappop(heap)
            if deadlines.get(sock) == deadline:
                del deadlines[sock]  # _after re-arms it from the connection's next deadline
                due.append(sock)
        for sock in due:
            sock.conn.timer(now_ms)
            self._mark(sock)
        dirty, self._dirty = self._dirty, {}
        for sock in dirty:
            self._after(now_ms, sock)

    def next_deadline(self) -> int | None:
        """When :meth:`poll` must next be called (ms), None when no timer is armed; 0 when
        application calls left output due."""
        if self._dirty:
            return 0
        heap, deadlines = self._heap, self._deadlines
        while heap:
            deadline, _, sock = heap[0]
            if deadlines.get(sock) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    # ---- internals ---------------------------------------------------------------------

    def _check_room(self) -> None:
        if len(self._table) >= self.max_connections:
            raise StackError("table-full")

    def _new_connection(self, now_ms: int, key: FourTuple) -> Connection:
        local, lport, remote, rport = key
        config = self.config
        if self.mss_limit is not None:
            mss = max(self.mss_limit(now_ms, local, remote), lib.TCP_MIN_MSS)
            if mss < config.mss:
                narrower = self._mss_configs.get(mss)
                if narrower is None:  # one per size: the core caches each one's C struct
                    narrower = self._mss_configs[mss] = replace(config, mss=mss)
                config = narrower
        return Connection(
            local_address=local,
            local_port=lport,
            remote_address=remote,
            remote_port=rport,
            config=config,
            send_capacity=self.send_capacity,
            receive_capacity=self.receive_capacity,
        )

    def _after(self, now_ms: int, sock: Socket) -> None:
        """Send what ``sock`` owes, re-arm its timer, move it through the listener's queues
        and drop it from the table once it is CLOSED."""
        conn = sock.conn
        carrier = self.carrier
        if carrier is None or not carrier.send(now_ms, sock):
            local, _, remote, _ = sock.key
            emit = self._emit
            while (segment := conn.output(now_ms)) is not None:
                if sock.held is not None and not segment[13] & _RST:
                    sock.held.append(self._packet(local, remote, segment))
                else:
                    emit(local, remote, segment)
        listener = sock.listener
        state = conn.state
        if listener is not None and state != TcpState.SYN_RECEIVED:
            sock.listener = None
            listener.half_open -= 1
            if state != TcpState.CLOSED and not listener.closed:
                listener.queue.append(sock)
                if listener.on_change is not None:
                    listener.on_change(listener)
        if state == TcpState.CLOSED:
            self.detach(sock)
        else:
            self._rearm(sock)
            if self.carrier is not None:
                self.carrier.sync(sock)
        if sock.on_change is not None:
            sock.on_change(sock)

    def _rearm(self, sock: Socket) -> None:
        deadline = sock.conn.next_deadline()
        if deadline is None:
            self._deadlines.pop(sock, None)
        elif self._deadlines.get(sock) != deadline:
            self._deadlines[sock] = deadline
            self._pushes += 1
            heapq.heappush(self._heap, (deadline, self._pushes, sock))
            if len(self._heap) > 2 * len(self._deadlines) + 64:
                self._heap = [(d, order, s) for order, (s, d) in enumerate(self._deadlines.items())]
                heapq.heapify(self._heap)

    def _emit(self, source: bytes, destination: bytes, segment: bytes) -> None:
        self.transmit(self._packet(source, destination, segment))

    @staticmethod
    def _packet(source: bytes, destination: bytes, segment: bytes) -> bytes:
        # RFC 8200 3: version 6, traffic class 0, flow label 0, Next Header TCP.
        return _IPV6.pack(0x60000000, len(segment), TCP, HOP_LIMIT) + source + destination + segment

    def _no_connection(self, now_ms: int, key: FourTuple, segment: bytes) -> None:
        local, lport, remote, _ = key
        if lib.tcp_checksum(remote, local, segment, len(segment)) != 0:
            self.counters["bad_checksum"] += 1
            return None
        _, _, seq, ack, offset_byte, flags, _, _, _ = _TCP.unpack_from(segment)
        if flags & _RST:
            return None  # RFC 9293 3.10.7.1/3.10.7.2: an incoming RST is discarded
        listener = self._listeners.get((local, lport)) or self._listeners.get((_WILDCARD, lport))
        if listener is None or flags & _ACK:
            if self.withhold_rst is not None and self.withhold_rst(local, lport, remote):
                self.counters["rst_withheld"] += 1
                return None
            return self._reset(now_ms, key, segment, seq, ack, offset_byte, flags)
        if not flags & _SYN:
            return None  # RFC 9293 3.10.7.2 fourth: "drop the segment and return"
        if (
            listener.half_open >= listener.backlog
            or len(listener.queue) >= listener.backlog
            or len(self._table) >= self.max_connections
        ):
            self.counters["syn_dropped"] += 1
            return None
        conn = self._new_connection(now_ms, key)
        result = conn.accept(
            now_ms, segment, iss=self.iss(now_ms, key), ts_offset=self.ts_offset(key)
        )
        if result != InputResult.OK:
            self.counters["syn_dropped"] += 1
            return None
        sock = Socket(self, conn, listener)
        listener.half_open += 1
        self._table[key] = sock
        if listener.on_half_open is not None:
            listener.on_half_open(sock)  # before the SYN-ACK goes: it may hold it
        self._after(now_ms, sock)
        return None

    def _reset(
        self,
        now_ms: int,
        key: FourTuple,
        segment: bytes,
        seq: int,
        ack: int,
        offset_byte: int,
        flags: int,
    ) -> None:
        second = now_ms // 1000
        window_second, count = self._rst_window
        if window_second != second:
            count = 0
        if count >= self.rst_limit_per_s:
            self.counters["rst_limited"] += 1
            return
        self._rst_window = (second, count + 1)
        local, lport, remote, rport = key
        if flags & _ACK:
            # RFC 9293 3.10.7.1: <SEQ=SEG.ACK><CTL=RST>
            rst_seq, rst_ack, rst_flags = ack, 0, _RST
        else:
            # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SEG.LEN counting SYN and FIN
            seg_len = len(segment) - (offset_byte >> 4) * 4
            seg_len += (1 if flags & _SYN else 0) + (1 if flags & _FIN else 0)
            rst_seq, rst_ack, rst_flags = 0, (seq + seg_len) & 0xFFFFFFFF, _RST | _ACK
        header = bytearray(_TCP.pack(lport, rport, rst_seq, rst_ack, 5 << 4, rst_flags, 0, 0, 0))
        checksum = lib.tcp_checksum(local, remote, bytes(header), 20)
        header[16:18] = checksum.to_bytes(2, "big")
        self.counters["rst_sent"] += 1
        self._emit(local, remote, bytes(header))
