"""The daemon's C fast path (``csrc/daemon_fast.c``, built by ``_fast_build.py``).

Established traffic takes the same way through the engine packet after packet: a correspondent
inserts the type 2 routing header of a binding, removes the Home Address option of one, or
passes the packet on unchanged. :class:`FastPath` reads the daemon's links in C and carries such
packets without Python; the engine stays the reference and owns every decision:

- A packet C has no decision for (the first of each source and destination, signalling,
  anything of another shape) is *punted*: it takes the Python path (the link's ``received``,
  the engine, the actions). Then the engine is asked what it does to data packets with those
  addresses (``fast_decision``, :class:`mip6.core.datapath.FastDecision`), and its answer is
  installed in C.
- The engine's ``fast_version`` is read before each batch C reads and after each punted packet;
  when it changed (a binding added, changed, deleted or expired) every decision is forgotten at
  once, before C carries another packet. A decision also carries its binding's expiry time,
  which C checks per packet.
- Before the engine's timers run, the bindings the fast path used are touched
  (``FastDecision.touch``), so the engine sees them in active use (RFC 3775 9.5.5).

**A member's own TCP.** A member's engine holds its host (a tcp_migrate stack on the contact
address), so its deliveries go to :data:`HOST`, a link without a descriptor: :class:`FastHost`
registers the stack's established connections in C, and a segment a decision delivers (a
client's, its type 2 routing header removed) goes straight to its connection's core; what the
connection answers, and what it owes after its application wrote, leaves in C by the decision
for its way back (the Home Address option inserted). A SYN to one of the stack's listeners
opens a connection in C as the stack would (the same keyed hashes for its ISS and timestamp
offset, :file:`csrc/blake2s.c`; the MSS the path leaves) and answers it, while the member has
no rule of its own for SYNs in force (:meth:`mip6.dserver.member.Member.fast_opens`); the
stack adopts it. Python hears once per batch which connections C touched, for the stack's
bookkeeping (timers, readers woken, the accept queue). Frozen and holding connections, active
opens, and everything the member looks at itself
(:meth:`mip6.dserver.member.Member.fast_decision`) stay with the engine; a member that
replicates its clients runs without the fast path (``Member.fast_path_wanted``).

**The proxy's relays.** :class:`FastRelays` carries the HTTP/1.1 exchanges of a carried
connection between the client and the proxy's socket to its server in C (``csrc/relay.c``):
each request's head framed whole by llhttp (the copy httptools loaded, called by address: one
parser in the process) and checked as :mod:`mip6.apps.http_boundary` checks it before it goes
on, the response framed and written into the connection, whose segments leave at once. The
proxy (:mod:`mip6.apps.proxy`) starts a relay between two exchanges and goes on in Python
from where it stops (an end of stream, a head it does not forward, a message llhttp refuses);
a handoff asks it whether the client is between two exchanges.

Counters (``mip6 show stats``, :meth:`counters`): per link, packets C carried in and out and
packets punted to the engine; per binding, packets carried under its decisions; the host's
segments, answers and punts; the relays started, their requests and responses, and why they
stopped.

Taps (a link's ``pcap``) are written by the Python path only, so a daemon with a tap does not
use the fast path; nor does one whose ``fast_path`` key is false.

**Waiting in C.** On an ordinary asyncio loop each readable link wakes the loop, which calls
:meth:`FastPath.drain`: an iteration of the loop in Python per wake-up, on the latency of every
packet that wakes the daemon (most of them, at a ping's pace). A loop made on a
:class:`FastSelector` (:func:`new_event_loop`) waits in C instead (``dfast_wait``): the loop's
own epoll descriptor, the links drained there as they become readable, and the loop sees only
what it must: its other descriptors (the control socket, signals' wake-up, a host's sockets),
and a link with a packet punted, which its reader (:meth:`FastPath.drain`) takes first. The
engine only runs while the loop does, between two waits, so a decision cannot go stale while C
waits: its version is checked before each wait, as before each drain.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import math
import os
import selectors
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mip6.core.datapath import FastAction, FastDecision, Ingress
from mip6.core.engine import FastEngine
from mip6.runtime._fast import ffi, lib
from tcp_migrate._core import ffi as core_ffi
from tcp_migrate._core import lib as core_lib
from tcp_migrate.core import Connection
from tcp_migrate.stack import Listener, Socket, Stack, carriable

log = logging.getLogger(__name__)

READY_ENTRIES: Final = 64  # descriptors one wait in C hands the loop at most
_EPOLLIN: Final = 0x001  # sys/epoll.h
_EPOLLOUT: Final = 0x004
BUDGET: Final = 256  # packets one readable event drains before the loop runs other callbacks
BUFFER_BYTES: Final = lib.DFAST_BUFFER
MAX_DECISIONS: Final = lib.DFAST_MAX_DECISIONS
_LINK_COUNTERS: Final = (
    "in_packets",
    "in_bytes",
    "out_packets",
    "out_bytes",
    "punted",
    "send_errors",
    "receive_errors",
    "offload_frames",
    "offload_errors",
    "coalesced",
    "segmented",
)


_HOST_COUNTERS: Final = (
    "segments",
    "bad_checksum",
    "answers",
    "answers_lost",
    "punted",
    "opened",
)
HOST: Final = "host"  # the upper layer's name when it is the daemon's own TCP host (FastHost)


@dataclass(frozen=True, slots=True)
class FastLink:
    """A link as the fast path uses it: the descriptor C reads and writes, what its packets
    are to the engine, ``received``, its Python path for a punted packet, and whether it is a
    datagram socket (a TUN device is read and written one packet per system call)."""

    name: str
    fd: int
    ingress: Ingress
    received: Callable[[bytes], None]
    datagram_socket: bool = False  # read and written in batches (recvmmsg, sendmmsg)
    offload: bool = False  # a TUN device with TCP segmentation offload (mip6.runtime.offload)


class FastPath:
    """C decisions for ``engine`` over ``links``; ``upper`` names the link a delivered packet
    leaves by (the shim's kernel TUN device, :data:`HOST` for the daemon's own TCP host when
    :meth:`FastHost` is made over it; None: delivering stays with Python); ``clock`` is the
    engine's (the loop's monotonic clock, which C reads as CLOCK_MONOTONIC)."""

    def __init__(
        self,
        engine: FastEngine,
        links: list[FastLink],
        upper: str | None,
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.links = links
        self.upper = upper
        self.clock = clock
        self.host: FastHost | None = None
        self._index = {link.name: index for index, link in enumerate(links)}
        if upper == HOST:  # a link without a descriptor, the last (dfast_set_host)
            self._index[HOST] = len(links)
        self._buffer = bytearray(BUFFER_BYTES)
        self._c_buffer = ffi.from_buffer("uint8_t[]", self._buffer, require_writable=True)
        fast = lib.dfast_new(len(self._index), self._c_buffer, len(self._buffer))
        if fast == ffi.NULL:
            raise MemoryError("dfast_new")
        self._fast = ffi.gc(fast, lib.dfast_free)
        for index, link in enumerate(links):
            status = lib.dfast_set_link(
                self._fast, index, link.fd, link.ingress, link.datagram_socket
            )
            _check(status, "dfast_set_link")
            if link.offload:
                _check(lib.dfast_set_offload(self._fast, index), "dfast_set_offload")
        self._punt = ffi.new("struct dfast_punt *")
        self._ready = ffi.new("struct dfast_ready[]", READY_ENTRIES)
        self._version = engine.fast_version()
        # (ingress, source and destination) -> (C id, decision), as installed in C
        self._decisions: dict[bytes, tuple[int, FastDecision]] = {}
        # keys the engine gave no decision C can carry (None, or a delivery with no upper
        # link here): asked once per version, not per packet
        self._refused: set[bytes] = set()
        self._touched: dict[int, float] = {}  # C id -> last use already told the engine
        self._bindings: dict[str, int] = {}  # packets carried per binding, forgotten decisions'
        self.forgets = 0

    def reader(self, name: str) -> Callable[[], None]:
        """The callback for link ``name``'s readable events."""
        index = self._index[name]
        return lambda: self.drain(index)

    def drain(self, index: int) -> None:
        """Read link ``index`` until it has nothing more (or :data:`BUDGET` packets): C
        carries what it has decisions for, Python the rest; first the packet a wait in C
        punted from it, if there is one."""
        self._check_version()
        punt = self._punt
        budget = BUDGET
        status = lib.dfast_take_punt(self._fast, index, punt)
        if status != lib.DFAST_PUNT:
            status = lib.dfast_drain(self._fast, index, budget, punt)
        # With the budget spent, C still hands over what a datagram socket read ahead (budget
        # 0 reads nothing new): its descriptor need not become readable again for those.
        while True:
            if self.host is not None and self.host.take():
                self._check_version()  # the host's applications ran, the engine with them
            if status != lib.DFAST_PUNT:
                break
            budget = max(budget - punt.used, 0)
            data = bytes(self._buffer[: punt.size])
            link = self.links[index]
            link.received(data)
            self._check_version()
            self._learn(link.ingress, data)
            if self.host is not None:
                # the engine may have made a rule for SYNs (a handoff froze a client): C opens
                # nothing the engine would not, from the next packet on
                self.host.refresh(int(self.clock() * 1000 + 0.5))
            status = lib.dfast_drain(self._fast, index, budget, punt)

    def wait(
        self, selector: selectors.EpollSelector, timeout: float | None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """``selector.select(timeout)`` with the links drained in C meanwhile (``dfast_wait``):
        what the loop must see of the selector's descriptors, as ``select`` gives it."""
        self._check_version()  # the loop's callbacks ran since the last wait: the engine too
        if self.host is not None:
            self.host.refresh(int(self.clock() * 1000 + 0.5))
        if timeout is None:
            milliseconds = -1
        elif timeout <= 0:
            milliseconds = 0
        else:  # as selectors.EpollSelector: rounded up, so a timer is never woken early
            milliseconds = math.ceil(timeout * 1e3)
        count = lib.dfast_wait(
            self._fast, selector.fileno(), milliseconds, BUDGET, self._ready, len(self._ready)
        )
        _check(count, "dfast_wait")
        ready = []
        keys = selector.get_map()
        for entry in self._ready[0:count]:
            key = keys.get(entry.fd)
            if key is None:
                continue  # unregistered meanwhile, as selectors.EpollSelector skips it
            flags = entry.events
            events = 0
            if flags & ~_EPOLLIN:  # selectors.EpollSelector's own mapping
                events |= selectors.EVENT_WRITE
            if flags & ~_EPOLLOUT:
                events |= selectors.EVENT_READ
            ready.append((key, events & key.events))
        return ready

    # -- decisions ---------------------------------------------------------------------------

    def _check_version(self) -> None:
        version = self.engine.fast_version()
        if version != self._version:
            self._version = version
            self.forget()

    def forget(self) -> None:
        """Forget every decision (keeping their per-binding counts)."""
        for ident, decision in self._decisions.values():
            if decision.binding is not None:
                usage = lib.dfast_usage(self._fast, ident)
                name = str(decision.binding)
                self._bindings[name] = self._bindings.get(name, 0) + int(usage.packets)
        lib.dfast_forget(self._fast)
        self._decisions.clear()
        self._refused.clear()
        self._touched.clear()
        self.forgets += 1

    def _learn(self, ingress: Ingress, data: bytes) -> None:
        """Ask the engine what it does with packets like ``data`` and install the answer;
        for a decapsulation, with the inner packet's too."""
        if len(data) < 40 or data[0] >> 4 != 6:
            return
        key = bytes((ingress,)) + data[8:40]
        self._decide(ingress, key)
        installed = self._decisions.get(key)
        if installed is not None and installed[1].action is FastAction.DECAPSULATE:
            inner = data[40:]
            if len(inner) >= 40:
                key = bytes((Ingress.TUNNEL,)) + inner[8:40]
                self._decide(Ingress.TUNNEL, key)
                installed = self._decisions.get(key)
        if self.host is not None and installed is not None and installed[1].deliver:
            # what the host answers takes the decision for its way back (FastHost): the
            # delivered packet's destination (the home address, once a type 2 routing header
            # named it) to its source
            decision = installed[1]
            source = key[1:17]
            if decision.action is FastAction.REMOVE_TYPE2_ROUTING:
                local = decision.address
            else:
                local = key[17:33]
            self._decide(Ingress.UPPER, bytes((Ingress.UPPER,)) + local + source)

    def _decide(self, ingress: Ingress, key: bytes) -> None:
        """Install the engine's decision for ``key`` (ingress, source and destination)."""
        if key in self._decisions or key in self._refused:
            return  # decided; this packet was of another shape (signalling, a bad checksum)
        if len(self._decisions) + len(self._refused) >= MAX_DECISIONS:
            self.forget()  # a bound, as the hub's: the busy flows are decided again at once
        decision = self.engine.fast_decision(self.clock(), ingress, key[1:17], key[17:33])
        out = -1
        if decision is not None and not (decision.deliver and self.upper is None):
            target = self.upper if decision.deliver else decision.link or "network"
            out = self._index.get(target, -1)
        if decision is None or out < 0:
            self._refused.add(key)  # the engine's answer leads somewhere only Python goes
            return
        ident = lib.dfast_decide(
            self._fast,
            ingress,
            ffi.from_buffer("uint8_t[]", key[1:]),
            decision.action,
            ffi.from_buffer("uint8_t[]", decision.address),
            ffi.from_buffer("uint8_t[]", decision.source),
            decision.hop_limit,
            out,
            decision.verify,
            decision.expires,
        )
        _check(ident, "dfast_decide")
        self._decisions[key] = (ident, decision)

    def touch(self) -> None:
        """Tell the engine when the fast path last used each binding (before its timers)."""
        for ident, decision in self._decisions.values():
            if decision.touch is None:
                continue
            last_used = float(lib.dfast_usage(self._fast, ident).last_used)
            if last_used > self._touched.get(ident, 0.0):
                self._touched[ident] = last_used
                decision.touch(last_used)

    # -- counters ----------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """For ``mip6 show stats``: per link what C carried and what it punted, per binding
        the packets carried under its decisions, the decisions in force, and the host's."""
        out: dict[str, int] = {"decisions": len(self._decisions), "forgets": self.forgets}
        for index, link in enumerate(self.links):
            counters = lib.dfast_counters(self._fast, index)
            for name in _LINK_COUNTERS:
                out[f"{link.name}.{name}"] = int(getattr(counters, name))
        if self.host is not None:
            out |= self.host.counters()
        bindings = dict(self._bindings)
        for ident, decision in self._decisions.values():
            if decision.binding is not None:
                name = str(decision.binding)
                usage = lib.dfast_usage(self._fast, ident)
                bindings[name] = bindings.get(name, 0) + int(usage.packets)
        out |= {f"binding.{name}.packets": count for name, count in bindings.items()}
        return out

    def transform(self, ingress: Ingress, packet: bytes, now: float) -> tuple[str, bytes] | None:
        """What C does to ``packet`` from ``ingress`` at ``now`` without I/O: the link it leaves
        by and its bytes, or None (punted). For the differential tests."""
        out = bytearray(BUFFER_BYTES)
        link = ffi.new("int *")
        size = lib.dfast_transform(
            self._fast,
            ingress,
            ffi.from_buffer("uint8_t[]", packet),
            len(packet),
            ffi.from_buffer("uint8_t[]", out, require_writable=True),
            len(out),
            now,
            link,
        )
        if size < 0:
            return None
        return self.links[link[0]].name, bytes(out[:size])

    @staticmethod
    def frame_packets(frame: bytes) -> list[bytes] | None:
        """What C makes of one read of an offloading TUN device (``dfast_frame_packet``), or
        None where it drops it. For the differential tests against
        :func:`mip6.runtime.offload.packets`."""
        out = bytearray(BUFFER_BYTES)
        view = ffi.from_buffer("uint8_t[]", out, require_writable=True)
        made = []
        for index in range(1 << 16):
            size = lib.dfast_frame_packet(
                ffi.from_buffer("uint8_t[]", frame), len(frame), index, view, len(out)
            )
            if size < 0:
                return None
            if size == 0:
                return made
            made.append(bytes(out[:size]))
        raise AssertionError("more packets than a frame holds")

    def learn(self, ingress: Ingress, packet: bytes) -> None:
        """Install the engine's decision for packets like ``packet`` (as after a punt)."""
        self._check_version()
        self._learn(ingress, packet)


class FastHost:
    """The daemon's own TCP host (a member's tcp_migrate stack) as the fast path's upper layer
    (``dfast_set_host``): the segments decisions deliver to it go in C to the cores of the
    connections carried there, whose answers leave at once by the decision for their way back,
    as does what they owe after their applications wrote or a timer fired (``send``); a SYN to
    one of the stack's listeners opens a connection there as the stack would (its ISS,
    timestamp offset and MSS) while ``opens()`` allows it. Python then does the stack's
    bookkeeping once per batch (``delivered``: the connections touched, each with whether
    RCV.NXT moved, those opened in C adopted first; :meth:`Stack.after_input`).

    It is ``stack``'s carrier (``Stack.carrier``): every connection in the stack's table is
    registered (a SYN for a 4-tuple C does not know could open a second connection on it),
    carried while it is :func:`~tcp_migrate.stack.carriable` (so never frozen, holding, or
    opening actively, which stay with Python), with the path MTU to its peer (``mtu``) at
    registration, which cuts what C sends (RFC 8201; a Packet Too Big lowers the connections'
    MSS as before). Opens are allowed only while the table is mirrored whole, no released
    4-tuple is quiet (:meth:`Stack.quiet_tuples`: its SYNs are the stack's to drop), no path
    MTU estimate is below the link's (a new connection's MSS then comes from the listener's
    MTU), and the engine says so. Every other segment is punted to the engine as it came."""

    def __init__(
        self,
        fast: FastPath,
        stack: Stack,
        mtu: Callable[[bytes], int],
        link_mtu: Callable[[], int | None],
        delivered: Callable[[list[tuple[Socket, bool]]], None],
        opens: Callable[[], bool],
    ) -> None:
        self._fast = fast._fast
        self._stack = stack
        self._mtu = mtu
        self._link_mtu = link_mtu
        self._delivered = delivered
        self._opens = opens
        self._socks: dict[int, Socket] = {}  # id -> socket, as registered in C
        self._ids: dict[Socket, int] = {}
        self._carried: dict[Socket, int] = {}  # enum dfast_carry
        self._next_id = 0
        self._complete = True  # every table entry registered (else C opens nothing)
        self._opening: bool | None = None  # what C was last told
        self._listeners: dict[int, Listener] = {}  # id -> listener, as registered in C
        self._listener_ids: dict[Listener, tuple[int, int, int]] = {}  # id, allowance, mtu
        self._touched = ffi.new("struct dfast_touched[]", lib.DFAST_HOST_TOUCHED)
        # connections whose bookkeeping waits (_put_off), with whether RCV.NXT moved
        self._later: dict[Socket, bool] = {}
        self._config = stack.config.to_c()  # copied by C at each dfast_host_listen
        functions = [
            int(core_ffi.cast("uintptr_t", core_ffi.addressof(core_lib, name)))
            for name in (
                "tcp_input",
                "tcp_output",
                "conn_memory_new",
                "conn_memory_free",
                "tcp_open_passive",
            )
        ]
        key = stack.hash_key
        _check(
            lib.dfast_set_host(fast._fast, fast._index[HOST], *functions, key, len(key)),
            "dfast_set_host",
        )
        fast.host = self
        stack.carrier = self
        self.relays = FastRelays.open(fast, self)

    @staticmethod
    def _c_key(sock: Socket) -> bytes:
        local, lport, remote, rport = sock.key
        return local + lport.to_bytes(2, "big") + remote + rport.to_bytes(2, "big")

    def sync(self, sock: Socket) -> None:
        """Register ``sock``'s 4-tuple, carried while it is carriable; one whose received data
        its ``on_received`` must see before anything acknowledges it (a member that holds its
        answer and acknowledgement until a replica covers the data) for acknowledgements
        alone."""
        if not carriable(sock):
            carried = lib.DFAST_CARRY_NONE
        elif sock.on_received is not None:
            carried = lib.DFAST_CARRY_ACKS
        else:
            carried = lib.DFAST_CARRY_ALL
        if self._carried.get(sock) == carried:
            return
        ident = self._ids.get(sock)
        if ident is None:
            ident = self._next_id
            self._next_id = (ident + 1) & 0x7FFFFFFF
        conn = int(core_ffi.cast("uintptr_t", sock.conn.raw))
        status = lib.dfast_host_add(
            self._fast, self._c_key(sock), conn, ident, self._mtu(sock.key[2]), carried
        )
        if status == -errno.ENOSPC:
            self._complete = False  # this one stays with Python, and C opens nothing more
            return
        _check(status, "dfast_host_add")
        self._socks[ident] = sock
        self._ids[sock] = ident
        self._carried[sock] = carried

    def send(self, now_ms: int, sock: Socket) -> bool:
        """Send what carried ``sock`` owes from C; False when it is not carried or its way
        back has no decision now (the stack sends it)."""
        if not self._carried.get(sock):
            return False
        return lib.dfast_host_send(self._fast, self._c_key(sock), now_ms) == 0

    def remove(self, sock: Socket) -> None:
        if self.relays is not None:
            self.relays.left(sock)
        ident = self._ids.pop(sock, None)
        if ident is not None:
            del self._socks[ident]
            del self._carried[sock]
            lib.dfast_host_remove(self._fast, self._c_key(sock))

    def refresh(self, now_ms: int) -> None:
        """Before a wait in C: whether SYNs may open connections there, and for each of the
        stack's listeners how many (what its backlog and the table leave)."""
        stack = self._stack
        link_mtu = self._link_mtu()
        opening = (
            self._complete
            and link_mtu is not None
            and self._opens()
            and not stack.quiet_tuples(now_ms)
        )
        if opening != self._opening:
            self._opening = opening
            lib.dfast_host_opens(self._fast, opening)
        if not opening:
            return
        assert link_mtu is not None
        listeners = stack.listeners
        room = stack.max_connections - stack.connection_count
        for listener in listeners:
            allowance = max(
                min(
                    listener.backlog - listener.half_open,
                    listener.backlog - len(listener.queue),
                    room,
                ),
                0,
            )
            known = self._listener_ids.get(listener)
            if known is not None and known[1:] == (allowance, link_mtu):
                continue
            ident = known[0] if known is not None else len(self._listeners)
            _check(
                lib.dfast_host_listen(
                    self._fast,
                    listener.address,
                    listener.port,
                    int(core_ffi.cast("uintptr_t", self._config)),
                    stack.send_capacity,
                    stack.receive_capacity,
                    ident,
                    allowance,
                    link_mtu,
                ),
                "dfast_host_listen",
            )
            self._listeners[ident] = listener
            self._listener_ids[listener] = (ident, allowance, link_mtu)
        for listener in [known for known in self._listener_ids if known.closed]:
            ident = self._listener_ids.pop(listener)[0]
            lib.dfast_host_unlisten(self._fast, listener.address, listener.port)
            self._listeners[ident] = listener  # its id is not given again

    def take(self) -> bool:
        """Hand the connections C touched (those it opened adopted first) to ``delivered``;
        whether there were any."""
        if self.relays is not None:
            self.relays.dispatch()
        count = lib.dfast_host_touched(self._fast, self._touched, lib.DFAST_HOST_TOUCHED)
        if count == 0:
            return False
        socks = self._socks
        received = lib.DFAST_TOUCH_RECEIVED
        delivered = []
        later = self._later
        for entry in self._touched[0:count]:
            if entry.flags & lib.DFAST_TOUCH_OPENED:
                # the handshake's end and a request may have followed in the same batch
                sock = self._adopt(entry)
                if self._put_off(sock):
                    later[sock] = bool(entry.flags & received)
                    continue
                delivered.append((sock, bool(entry.flags & received)))
            elif entry.id in socks:
                sock = socks[entry.id]
                if sock in later:
                    later[sock] = later[sock] or bool(entry.flags & received)
                else:
                    delivered.append((sock, bool(entry.flags & received)))
        if delivered:
            self._delivered(delivered)
        return True

    def _put_off(self, sock: Socket) -> bool:
        """Whether the stack's bookkeeping of ``sock``, just opened with a relay already
        carrying its first exchange, waits :data:`PUT_OFF` (schedules it when it does)."""
        relays = self.relays
        if relays is None or relays.loop is None or not relays.unclaimed(sock):
            return False
        if not self._later:
            relays.loop.call_later(PUT_OFF, self._deliver_later)
        return True

    def _deliver_later(self) -> None:
        later, self._later = self._later, {}
        if later:
            self._delivered(list(later.items()))

    def _adopt(self, entry: Any) -> Socket:
        """The stack's socket for a connection C opened (registered there, carried)."""
        stack = self._stack
        conn = Connection.adopt(int(entry.conn), config=stack.config)
        listener = self._listeners[entry.listener]
        sock = stack.adopt(conn, listener)
        self._socks[entry.id] = sock
        self._ids[sock] = entry.id
        self._carried[sock] = lib.DFAST_CARRY_ALL
        if listener.closed:
            sock.abort()  # it closed while C opened this: as its queue's would be
        elif self.relays is not None:
            self.relays.opened(sock)
        return sock

    def counters(self) -> dict[str, int]:
        counters = lib.dfast_host_counters(self._fast)
        out = {f"host.{name}": int(getattr(counters, name)) for name in _HOST_COUNTERS}
        out["host.connections"] = lib.dfast_host_connections(self._fast)
        if self.relays is not None:
            out.update(self.relays.counters())
        return out


# llhttp's functions the relays call, in dfast_relay_parser's order
_LLHTTP_FUNCTIONS: Final = (
    "llhttp_init",
    "llhttp_settings_init",
    "llhttp_execute",
    "llhttp_finish",
    "llhttp_resume",
    "llhttp_should_keep_alive",
    "llhttp_message_needs_eof",
)


def llhttp_addresses() -> list[int] | None:
    """The addresses of llhttp's functions in httptools' extension (the copy of the parser
    the proxy's Python already runs), None when they cannot be had."""
    try:
        from httptools.parser import parser
    except ImportError:
        return None
    try:
        library = ctypes.CDLL(parser.__file__)  # loaded already: the same copy
        return [
            ctypes.cast(getattr(library, name), ctypes.c_void_p).value or 0
            for name in _LLHTTP_FUNCTIONS
        ]
    except (OSError, AttributeError):
        return None


# enum dfast_relay_stop's names, for counters
_RELAY_STOPS: Final = (
    "running",
    "client_closed",
    "server_closed",
    "close",
    "request",
    "raw",
    "gone",
    "stopped",
)


# llhttp's numbers (llhttp_method_t) of the methods a request may be sent again with
_METHODS: Final = {0: b"DELETE", 1: b"GET", 2: b"HEAD", 4: b"PUT", 6: b"OPTIONS", 7: b"TRACE"}
# Seconds the stack's bookkeeping of a connection C opened with a relay waits (the member's
# accept, the handler's start): the relay carries the first exchange meanwhile, and the
# member daemon's Python (about a millisecond of CPU per new connection here) then runs after
# it rather than beside it, on a machine whose cores the client, the server and the links
# share (labnet bench proxy: the client's handshake waited for a core). Far below any TCP
# timer: a retransmission is armed this much later at most.
PUT_OFF: Final = 0.003


class RelayProvider(Protocol):
    """Gives the socket a relay starts with as C opens a connection (FastRelays.provide)."""

    def relay_backend(self) -> tuple[int, Any] | None:
        """A connected socket ready for a relay (nothing unread, nothing unsent, no one else
        reading it), as its descriptor and what stands for it; None when there is none."""

    def relay_returned(self, backend: Any) -> None:
        """What :meth:`relay_backend` gave comes back (the relay did not start, or nobody
        claimed it before its connection left): its owner's again, to close."""


@dataclass(frozen=True, slots=True)
class RelayState:
    """``struct dfast_relay_state``: where a relay is (daemon_fast.h)."""

    reason: int
    idle: bool
    answered: bool
    retry: bool
    method: int
    held: int
    retained: int
    unrelayed: int
    down: int
    requests: int
    responses: int
    up_bytes: int
    down_bytes: int

    @property
    def stop(self) -> str:
        """``reason``'s name (enum dfast_relay_stop less its prefix): "running", "request"..."""
        return _RELAY_STOPS[self.reason]

    @property
    def method_name(self) -> bytes | None:
        """The request's method when it is one a request may be sent again with."""
        return _METHODS.get(self.method)


class FastRelays:
    """The host's relays (daemon_fast.h, "the proxy's relay"): HTTP/1.1 exchanges carried in C
    between one of the host's connections and a socket to a server, for the proxy
    (:mod:`mip6.apps.proxy`). Their epoll set is one descriptor of the loop's (:meth:`fileno`,
    read by :meth:`ready`; a wait in C handles it itself); each relay's ``on_event(index)``
    runs when it stops, or is idle after :meth:`notify_idle` (from :meth:`start` too)."""

    # what bytes() copies (enum dfast_relay_bytes)
    HELD: Final = lib.DFAST_RELAY_HELD
    RETAINED: Final = lib.DFAST_RELAY_RETAINED
    DOWN: Final = lib.DFAST_RELAY_DOWN

    def __init__(self, fast: Any, host: FastHost, epfd: int) -> None:
        self._fast = fast
        self._host = host
        self._epfd = epfd
        self._state = ffi.new("struct dfast_relay_state *")
        self._events = ffi.new("int32_t[]", lib.DFAST_RELAYS)
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._socks: dict[int, Socket] = {}  # each relay's connection
        self._providers: dict[int, RelayProvider] = {}  # by port (provide)
        # relays started as C opened their connection, not claimed yet: index, provider,
        # what the provider gave
        self._adopted: dict[Socket, tuple[int, RelayProvider, Any]] = {}
        self.loop: Any = None  # the loop watching fileno() (attach)

    @classmethod
    def open(cls, fast: FastPath, host: FastHost) -> FastRelays | None:
        """The relays, or None (logged) when llhttp cannot be run from C here."""
        addresses = llhttp_addresses()
        if addresses is None:
            log.info("fast path: no relays (httptools' llhttp not found)")
            return None
        functions = ffi.new("uintptr_t[]", addresses)
        tcp = [
            int(core_ffi.cast("uintptr_t", core_ffi.addressof(core_lib, name)))
            for name in ("tcp_send", "tcp_recv", "tcp_recv_eof")
        ]
        epfd = lib.dfast_relay_parser(fast._fast, functions, *tcp)
        if epfd < 0:
            log.warning(
                "fast path: no relays (llhttp: %s)",
                "its layout is not the one declared"
                if epfd == -errno.ENOTSUP
                else os.strerror(-epfd),
            )
            return None
        return cls(fast._fast, host, epfd)

    def fileno(self) -> int:
        return self._epfd

    def counters(self) -> dict[str, int]:
        counters = lib.dfast_relay_counters(self._fast)
        out = {
            "host.relays": int(counters.started),
            "host.relay_requests": int(counters.requests),
            "host.relay_responses": int(counters.responses),
        }
        for reason, name in enumerate(_RELAY_STOPS[1:], start=1):
            out[f"host.relay_stopped_{name}"] = int(counters.stopped[reason])
        return out

    def attach(self, loop: Any) -> None:
        """``loop`` watches the relays' sockets (outside a wait in C too)."""
        self.loop = loop
        loop.add_reader(self._epfd, self.ready)

    def detach(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self._epfd)
            self.loop = None

    def start(
        self,
        sock: Socket,
        fd: int,
        held: bytes,
        on_event: Callable[[int], None] | None,
    ) -> int | None:
        """A relay between ``sock`` and socket ``fd``, ``held`` first; its index, or None when
        C takes none (``sock`` not carried now, no room). From now on the socket's input is
        the relay's (``Socket.input_elsewhere``: the streams over it poke the relay)."""
        index = lib.dfast_relay_start(
            self._fast, FastHost._c_key(sock), fd, ffi.from_buffer("uint8_t[]", held), len(held)
        )
        if index in (-errno.ENOENT, -errno.EBUSY, -errno.ENOSPC):
            return None
        _check(index, "dfast_relay_start")
        self._socks[index] = sock
        sock.input_elsewhere = functools.partial(self.poke, index)
        if on_event is not None:
            self.listen(index, on_event)
        return index

    def listen(self, index: int, on_event: Callable[[int], None]) -> None:
        """``on_event(index)`` runs when relay ``index`` stops, or is idle as asked."""
        self._callbacks[index] = on_event
        self.dispatch()  # it may have stopped already

    # -- relays that start with their connection (before its handler runs) ----------------

    def provide(self, port: int, provider: RelayProvider | None) -> None:
        """Connections C opens on ``port`` start relaying as they are adopted, to a socket
        ``provider`` gives (when it has one ready), so that a request that follows the
        handshake goes on without waiting for the accept's Python; their handler then
        :meth:`claim` it. None: no more."""
        if provider is None:
            self._providers.pop(port, None)
        else:
            self._providers[port] = provider

    def opened(self, sock: Socket) -> None:
        """C opened ``sock`` (FastHost adopts it): its relay, if its port has a provider."""
        provider = self._providers.get(sock.key[1])
        given = None if provider is None else provider.relay_backend()
        if given is None:
            return
        assert provider is not None
        fd, backend = given
        index = self.start(sock, fd, b"", None)
        if index is None:
            provider.relay_returned(backend)
        else:
            self._adopted[sock] = (index, provider, backend)

    def unclaimed(self, sock: Socket) -> bool:
        """Whether ``sock`` has a relay :meth:`opened` started and nobody claimed yet."""
        return sock in self._adopted

    def claim(self, sock: Socket) -> tuple[int, Any] | None:
        """The relay :meth:`opened` started for ``sock`` and what its provider gave, now the
        caller's (None: none)."""
        adopted = self._adopted.pop(sock, None)
        return None if adopted is None else (adopted[0], adopted[2])

    def movable_check(self, sock: Socket) -> Callable[[], bool] | None:
        """Until its relay is claimed: whether ``sock`` is between two exchanges with nothing
        read of the next (a new client's state); None when it has no such relay."""
        adopted = self._adopted.get(sock)
        return None if adopted is None else functools.partial(self._unclaimed_movable, sock)

    def _unclaimed_movable(self, sock: Socket) -> bool:
        adopted = self._adopted.get(sock)
        if adopted is None:
            return True  # claimed since: the claimer answers for it
        state = self.state(adopted[0])
        running = state.reason == lib.DFAST_RELAY_RUNNING
        if running and state.idle and not state.held:
            return True
        if running:
            self.notify_idle(adopted[0])
        return False

    def left(self, sock: Socket) -> None:
        """``sock`` left the host's table: a relay nobody claimed ends, its socket given back
        to the provider to close."""
        adopted = self._adopted.pop(sock, None)
        if adopted is not None:
            index, provider, backend = adopted
            self.stop(index)
            provider.relay_returned(backend)

    def state(self, index: int) -> RelayState:
        state = self._state
        _check(lib.dfast_relay_state(self._fast, index, state), "dfast_relay_state")
        return RelayState(
            int(state.reason),
            bool(state.idle),
            bool(state.answered),
            bool(state.retry),
            int(state.method),
            int(state.held),
            int(state.retained),
            int(state.unrelayed),
            int(state.down),
            int(state.requests),
            int(state.responses),
            int(state.up_bytes),
            int(state.down_bytes),
        )

    def bytes(self, index: int, which: int, size: int) -> bytes:
        out = bytearray(size)
        got = lib.dfast_relay_bytes(
            self._fast, index, which, ffi.from_buffer("uint8_t[]", out, require_writable=True), size
        )
        _check(got, "dfast_relay_bytes")
        return bytes(out[:got])

    def poke(self, index: int) -> None:
        """Relay ``index``'s connection changed in Python (the stack took a segment C punted):
        it goes on."""
        _check(lib.dfast_relay_poke(self._fast, index), "dfast_relay_poke")
        self.dispatch()

    def notify_idle(self, index: int) -> None:
        _check(lib.dfast_relay_notify_idle(self._fast, index), "dfast_relay_notify_idle")

    def stop(self, index: int) -> None:
        """The relay forgotten: its socket is the caller's again, and its connection's input
        the streams'."""
        self._callbacks.pop(index, None)
        sock = self._socks.pop(index, None)
        if sock is not None:
            sock.input_elsewhere = None
        _check(lib.dfast_relay_stop(self._fast, index), "dfast_relay_stop")

    def ready(self) -> None:
        """The loop's callback for the epoll set: the sockets' events, then the news."""
        lib.dfast_relay_service(self._fast)
        self._host.take()

    def dispatch(self) -> None:
        """Each relay that stopped, or became idle as asked, runs its ``on_event``."""
        while count := lib.dfast_relay_events(self._fast, self._events, lib.DFAST_RELAYS):
            for index in self._events[0:count]:
                callback = self._callbacks.get(index)
                if callback is not None:
                    callback(index)


class FastSelector(selectors.EpollSelector):
    """An epoll selector that waits in C, draining the links of its :attr:`fast` path, when it
    has one (see the module's description); without one it is the standard library's."""

    def __init__(self) -> None:
        super().__init__()
        self.fast: FastPath | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self.fast is None:
            return super().select(timeout)
        return self.fast.wait(self, timeout)


def _check(status: int, what: str) -> None:
    """-errno from C becomes an OSError (EINVAL: an argument C refused, a bug here)."""
    if status < 0:
        raise OSError(-status, os.strerror(-status), what)
