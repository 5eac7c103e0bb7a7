"""The hub process: links, one event loop, the emulators and the router (ARCHITECTURE 6).

A link is of kind ``udp`` (the default: the link protocol below) or ``tun``: a TUN device the
hub creates (:mod:`labnet.hub.tun`), optionally moves into a network namespace with addresses and
routes, and keeps the descriptor of; each packet the kernel there sends through the device is a
packet from the node, each packet the hub writes to it one to the node. A plain kernel (a
namespace with no mip6 daemon, as a Mininet host) attaches that way. Devices are not persistent:
the kernel deletes them when the hub closes them or dies.

**Link protocol.** Each ``udp`` link is one UDP socket (IPv4 or IPv6) on the hub. Every datagram
carries exactly one raw IPv6 packet, nothing else; the port a datagram arrives on names the link.
The node's UDP address on a link (its *endpoint*) is configured, or learned from the datagrams it
sends: a learned endpoint follows the latest sender (a node that restarts on a new port is
re-attached; ``endpoint_changes`` counts it), a configured one is fixed and datagrams from any other
address are dropped (``foreign_datagrams``). The hub sends a link's packets from that link's socket
to its endpoint.

**Path of a packet** from link A to link B, whatever their kinds: A's *up* emulator (node to hub),
the router (longest prefix match, Hop Limit, see :mod:`labnet.hub.router`), B's *down* emulator
(hub to node), then ``sendto`` B's endpoint or ``write`` to B's device. A direction with no
emulation configured is skipped entirely; an emulated direction holds a copy of the packet. A
link with ``to: B`` in the description is *pinned*: its packets leave on B whatever their
destination (the scope and Hop Limit rules still apply), as from a tester cabled to the node
under test.

**The C fast path** (:mod:`labnet.hub.fast`, ``csrc/hub_fast.c``) carries the common case: a
packet crossing two transparent directions between links not pinned, whose (source,
destination) pair the router has already decided. For a readable link the loop calls
``fast_drain``, which reads the socket (32 datagrams per ``recvmmsg``) or device and, per packet,
checks IP version 6, a Hop Limit above 1, the sender (UDP: the link's endpoint) and the decision
table, then captures it, decrements the Hop Limit, sends it (to a UDP link queued, and written
per ``sendmmsg`` before C returns, a run of equal-sized packets as one message the kernel cuts
into the same datagrams: ``UDP_SEGMENT``) and captures it again, counting in C. It stops at
the first packet it may not take and leaves it in the hub's one buffer: a new or foreign sender, no
decision yet, a pinned arrival link, an emulated up or down direction, a Hop Limit of 0 or 1,
anything malformed, a link whose node has no endpoint yet. Python handles that
one packet (:meth:`HubServer._forward`, the reference implementation: the same captures, the
same counters), hands the router's decision to C when C may apply it, and calls ``fast_drain``
again. Route changes empty C's table; profile changes and learned endpoints are copied to C.
Why C: ``labnet bench hub`` (root, two cores; three runs before, five after, each figure against
the relay's in the same run) measured the Python loop at 2.8-3.1 us of CPU per 64-byte packet
against 1.5-1.6 us for a bare Python relay, the capture's bytearray appends half of the
difference; with the fast path the hub takes 1.3-1.6 us (relay 1.5-1.7). Added RTT: hub 194-251 us
before (relay 125-169), 175-214 after (relay 160-194); 64-byte packets/s: hub 316k-351k before
(relay 413k-532k), 482k-531k after (relay 483k-538k); kernel TCP with captures: hub 899-1456
Mbit/s before (relay 1070-4410), 1351-2573 after (relay 4111-4769), and 3606-4444 without
captures: see **Speed** for why captures still cost TCP that much.
``HubServer(fast=False)`` runs every packet in Python, as the tests' reference.

**Captures.** With a ``pcap_dir``, each link has ``<pcap_dir>/<link>.pcap`` (classic pcap, link
type 229 raw IPv6, microsecond wall-clock timestamps) holding exactly what crossed that link, in
both directions, each packet recorded when it came out of the far end of the link: a packet from
the node when it reaches the hub (after the up direction's latency; before routing, so packets
the router then drops are in the capture, with the Hop Limit the node sent), a packet to the node
when the hub sends it (after the down direction's latency, with the decremented Hop Limit).
Packets lost or tail-dropped on a link never crossed it and are not recorded. Records are
buffered in C (:class:`labnet.hub.fast.FastCapture`, one buffer per link whichever path records,
so a file's records stay in order; :mod:`labnet.hub.capture` without the fast path) and written
every 256 KiB (by C), every second, on the control command ``flush``, and at shutdown; a hub that
is killed loses at most the last second. C stamps with CLOCK_REALTIME, as ``time.time_ns``.

**Control.** A UDP socket (``control`` in the config; 127.0.0.1 and a free port by default)
answers one JSON datagram per request datagram. Requests are ASCII: ``stats`` (all counters),
``stats LINK`` (one link), ``links`` (the addresses, as printed at start), ``flush``, and for a
lab that changes while it runs (labnet moving a node): ``routes`` (the table),
``route add PREFIX LINK`` (replaces a route for the same prefix), ``route del PREFIX``, and
``profile LINK JSON`` (the link's emulation from now on: profile keys for both directions plus
optional ``up``/``down`` mappings, as in the description; unset keys mean no emulation). With
netcat: ``echo stats | nc -u -w1 127.0.0.1 PORT``; from Python: :func:`query`.

**Statistics** (``stats``): ``timing`` says how late the loop served emulated departures
(``departures``, ``late_mean_us``, ``late_max_us``, ``late_over_1ms``). Per link: ``kind`` (``udp``
or ``tun``), ``address`` (the hub's socket; null for a ``tun`` link, which has ``device`` and
``netns`` instead), ``endpoint`` (the node's, null until known), ``up`` and ``down`` (the emulators'
counters: ``packets_in``, ``bytes_in``, ``packets_out``, ``bytes_out``, ``drops`` by cause ``loss``,
``burst_loss``, ``queue``, ``overflow``, and ``held`` now), ``router_drops`` of packets that arrived
on the link (``malformed``, ``no_route``, ``hop_limit``, ``same_link``, ``scope``), ``no_endpoint``
(packets for a node whose endpoint is not known yet), ``send_errors`` (a full socket buffer or
device queue, a device that is down), ``receive_errors``, ``foreign_datagrams``,
``endpoint_changes`` and ``pcap_frames``.

**Loop.** One thread, ``epoll``: each readable socket or device is drained until ``EAGAIN`` (at
most :data:`BATCH` packets before timers are looked at again), by ``fast_drain`` in C if its up
direction is transparent, else with non-blocking ``recvfrom_into`` or ``readinto`` in Python.
With the fast path the loop waits in C (``fast_wait``, :meth:`FastPath.wait`): a link with a
transparent up direction is drained there as it becomes readable and waited on again, so a
packet C forwards wakes no Python; the loop runs for its other descriptors, a link's errors, a
link with a packet C punted (whose handler takes it first) and the end of the wait. The wait
ends at the next emulated departure: ``epoll`` counts whole milliseconds, so the hub sleeps in
``epoll`` for all but the last one to two milliseconds and then in ``select`` on the epoll
descriptor, which takes microseconds, with the thread's timer slack lowered from 50 us to 1 us
(prctl PR_SET_TIMERSLACK): departures are served ~50-100 us late on average (the ``timing``
statistics) instead of up to a millisecond. Sockets get 4 MiB buffers (forced when root) so bursts
queue in the kernel rather than being dropped there. ``stop()`` (safe from a signal handler or
another thread) wakes the loop through a socket pair.

**Real time.** Other busy processes on a small machine delay the hub's wake-ups by milliseconds
now and then (under load here, about 1 departure in 200 was served over 1 ms late, the worst
4 ms). With ``realtime: true`` in the description the loop's thread asks for ``SCHED_FIFO``
priority :data:`REALTIME_PRIORITY` (root only; refused quietly otherwise, and the ready line's
``realtime`` says which): it then preempts ordinary processes the moment a timer or packet wakes
it, and under the same load no departure was over 1 ms late. The hub is one thread, so it can
hold at most one core, and the kernel's real-time throttling (``sched_rt_runtime_us``) still
applies.

**Speed and threads.** ``labnet bench hub`` compares the hub with a bare Python relay copying
packets between two TUN devices (one thread, ``epoll``) in the same run. With the C fast path
the hub's CPU time per 64-byte packet (1.3-1.6 us, system calls included) is at or below the
relay's (1.5-1.7 us): round trips and packet rates match the relay's within the runs' noise, and
so does kernel TCP without captures (within 1.05-1.32 times). TCP with captures is bounded by the
kernel's file writes, not by the hub: every 1500-byte packet becomes two records of ~1.5 KB
appended to files, and growing a file in the page cache costs the kernel 0.5-1.4 ns per byte
here, as much again as the rest of the packet's path. With the capture files on /dev/null the
hub carried 4150 Mbit/s against the relay's 4617 in the same run; on tmpfs 1600-2100, on ext4
1300-2600 (relay 4100-4800). A writer thread in C (the loop copying records into buffers, a
second thread writing them) was tried: 2136-2432 Mbit/s against the relay's 4206-4842, about 1.8
times, where the one thread gave 2.3-2.7 times in runs beside it; both cores were then busy, so
it was not kept. A second thread per direction did not help the relay either: the threads share
the GIL, and on two cores the kernels at both ends of a TCP connection need the other core. So
the hub stays one thread, which also keeps the emulators' ordering simple.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import select
import signal
import socket
import time
from collections.abc import Callable
from ipaddress import IPv6Network
from types import FrameType, TracebackType
from typing import Any, Final

from labnet.hub.capture import Capture, record_header
from labnet.hub.config import Address, ConfigError, HubConfig, LinkConfig, parse_link_profiles
from labnet.hub.emulation import LinkEmulator, LinkProfile
from labnet.hub.fast import PUNT, FastCapture, FastPath
from labnet.hub.router import ADDRESSES, Router
from labnet.hub.tun import TunDevice, TunError

BATCH: Final = 64
"""Datagrams read from one socket before the loop looks at departures and other sockets: at
~3.5 us each, a batch holds a due departure back by at most ~0.25 ms per busy socket."""

SOCKET_BUFFER_BYTES: Final = 4 * 1024 * 1024
FLUSH_INTERVAL: Final = 1.0  # seconds between pcap flushes
MAX_DATAGRAM: Final = 65535
MAX_CONTROL_REPLY: Final = 65000

_COARSE_WAIT: Final = 0.002  # below this, wait in select() (microseconds), not epoll (ms)
REALTIME_PRIORITY: Final = 10  # SCHED_FIFO 1-99: above every ordinary process, below the kernel's
_PR_SET_TIMERSLACK: Final = 29
_SO_SNDBUFFORCE: Final = getattr(socket, "SO_SNDBUFFORCE", 32)
_SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)


class Timing:
    """How late the loop served emulated departures: the time between a packet's emulated
    departure and the loop's clock reading when it handled it (seconds in, microseconds out)."""

    __slots__ = ("count", "late_1ms", "max", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.late_1ms = 0

    def record(self, lateness: float) -> None:
        self.count += 1
        self.total += lateness
        if lateness > self.max:
            self.max = lateness
        if lateness > 0.001:
            self.late_1ms += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "departures": self.count,
            "late_mean_us": round(self.total / self.count * 1e6, 1) if self.count else 0.0,
            "late_max_us": round(self.max * 1e6, 1),
            "late_over_1ms": self.late_1ms,
        }


class _Link:
    """Runtime state of one link: a UDP socket (``sock``) or a TUN device (``device``, whose
    file's ``readinto`` and ``write`` are kept at hand: None means ``EAGAIN``)."""

    __slots__ = (
        "address",
        "device",
        "down",
        "down_transparent",
        "endpoint",
        "endpoint_changes",
        "endpoint_fixed",
        "fd",
        "foreign_datagrams",
        "index",
        "name",
        "no_endpoint",
        "pcap",
        "readinto",
        "receive_errors",
        "send_errors",
        "sock",
        "up",
        "up_transparent",
        "write",
    )

    def __init__(
        self,
        index: int,
        name: str,
        up: LinkEmulator[bytearray],
        down: LinkEmulator[bytearray],
        *,
        sock: socket.socket | None = None,
        device: TunDevice | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.sock = sock
        self.device = device
        if sock is not None:
            self.fd = sock.fileno()
        elif device is not None:
            self.fd = device.fd
        else:
            raise ValueError("a link needs a socket or a device")
        self.address: Address | None = None if sock is None else sock.getsockname()[:2]
        self.readinto = None if device is None else device.file.readinto
        self.write = None if device is None else device.file.write
        self.up = up
        self.down = down
        self.up_transparent = up.profile.transparent
        self.down_transparent = down.profile.transparent
        self.endpoint: Any = None  # a socket address as recvfrom returns it
        self.endpoint_fixed = False
        self.pcap: Capture | FastCapture | None = None
        self.endpoint_changes = 0
        self.foreign_datagrams = 0
        self.no_endpoint = 0
        self.send_errors = 0
        self.receive_errors = 0


class HubServer:
    """A running hub: sockets bound and captures opened at construction, packets forwarded by
    :meth:`serve_forever` until :meth:`stop`; :meth:`close` releases everything.

    ``clock`` (seconds, monotonic) times the emulation; ``wall_clock_ns`` stamps captures.
    ``fast`` (the default) forwards in C what it can (:mod:`labnet.hub.fast`); the C code stamps
    its captures with CLOCK_REALTIME, so another ``wall_clock_ns`` needs ``fast=False``, the
    hub in Python only.
    """

    def __init__(
        self,
        config: HubConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        fast: bool = True,
    ) -> None:
        if fast and wall_clock_ns is not time.time_ns:
            raise ValueError("the fast path stamps captures with time.time_ns: use fast=False")
        self.config = config
        self._clock = clock
        self._wall_clock_ns = wall_clock_ns
        self._stopping = False
        self._started = clock()
        self._tuned = False
        self.realtime = False  # whether the loop's thread got SCHED_FIFO
        self.timing = Timing()
        self._links: list[_Link] = []
        self._capturing = config.pcap_dir is not None
        self._handlers: dict[int, Callable[[], None]] = {}
        self._active_up: set[_Link] = set()
        self._active_down: set[_Link] = set()
        self._buffer = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buffer)
        self._fast = FastPath(len(config.links), self._buffer) if fast else None
        self._epoll = select.epoll()
        self._control: socket.socket | None = None
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            self._setup(config)
        except BaseException:
            self.close()
            raise

    def _setup(self, config: HubConfig) -> None:
        names = [link.name for link in config.links]
        self.router = Router(
            names,
            hairpin=[link.name for link in config.links if link.hairpin],
            pinned={link.name: link.to for link in config.links if link.to is not None},
        )
        for prefix, name in config.routes:
            self.router.add_route(prefix, name)
        if config.pcap_dir is not None:
            config.pcap_dir.mkdir(parents=True, exist_ok=True)
        fast = self._fast
        for index, spec in enumerate(config.links):
            link = self._open_link(index, spec, config.seed)
            if fast is not None:
                pinned = self.router.pinned[index] >= 0
                fast.set_link(index, link.fd, udp=link.sock is not None, pinned=pinned)
                fast.set_up_transparent(index, link.up_transparent)
                fast.set_down_transparent(index, link.down_transparent)
                fast.set_endpoint(index, link.endpoint)
            if config.pcap_dir is not None:
                path = config.pcap_dir / f"{spec.name}.pcap"
                link.pcap = Capture(path) if fast is None else fast.capture(index, path)
            self._register(link.fd, functools.partial(self._receive, link))
        if config.control is not None:
            self._control = bind_udp(config.control, buffers=False)
            self._register(self._control.fileno(), self._answer_control)
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._register(self._wake_reader.fileno(), self._drain_wake)

    def _open_link(self, index: int, spec: LinkConfig, seed: int) -> _Link:
        """The link's socket or device, in :attr:`_links` as soon as it exists so that
        :meth:`close` releases it if what follows fails."""
        # One generator per direction, seeded by name: adding a link changes no other's draws.
        up: LinkEmulator[bytearray] = LinkEmulator(spec.up, random.Random(f"{seed}:{spec.name}:up"))
        down: LinkEmulator[bytearray] = LinkEmulator(
            spec.down, random.Random(f"{seed}:{spec.name}:down")
        )
        if spec.tun is not None:
            tun = spec.tun
            try:
                device = TunDevice(tun.device or "hub%d", tun.mtu)
                link = _Link(index, spec.name, up, down, device=device)
                self._links.append(link)
                device.attach(tun.netns, tun.addresses, tun.routes)
            except TunError as error:
                raise TunError(f"links.{spec.name}: {error}") from None
            return link
        if spec.bind is None:
            raise ConfigError(f"links.{spec.name}.bind", "a udp link needs an address to bind")
        sock = bind_udp(spec.bind)
        link = _Link(index, spec.name, up, down, sock=sock)
        self._links.append(link)
        if spec.endpoint is not None:
            link.endpoint = _sockaddr(spec.endpoint, sock.family)
            link.endpoint_fixed = True
        return link

    def _register(self, fd: int, handler: Callable[[], None]) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._handlers[fd] = handler

    # -- public ----------------------------------------------------------------------------------

    @property
    def addresses(self) -> dict[str, Address]:
        """Each UDP link's hub address (host, port), ports chosen by the kernel filled in."""
        return {link.name: link.address for link in self._links if link.address is not None}

    @property
    def devices(self) -> dict[str, str]:
        """Each TUN link's device name."""
        return {link.name: link.device.name for link in self._links if link.device is not None}

    @property
    def control_address(self) -> Address | None:
        return None if self._control is None else self._control.getsockname()[:2]

    def describe(self) -> dict[str, Any]:
        """What a client needs to attach: link addresses, endpoints, captures, the control port."""
        control = self.control_address
        return {
            "pid": os.getpid(),
            "realtime": self.realtime,
            "control": None if control is None else list(control),
            "links": {
                link.name: {
                    **_identity(link),
                    "endpoint": None if link.endpoint is None else list(link.endpoint[:2]),
                    "pcap": None if link.pcap is None else str(link.pcap.path),
                }
                for link in self._links
            },
        }

    def stats(self, link_name: str | None = None) -> dict[str, Any]:
        """All counters as plain JSON-able values, for every link or for ``link_name`` only
        (KeyError if there is no such link); the keys are described in the module docstring."""
        now = self._clock()
        drops = self.router.drop_counts()
        links = {}
        for link in self._links:
            if link_name is not None and link.name != link_name:
                continue
            up, down = link.up.stats.as_dict(), link.down.stats.as_dict()
            send_errors, receive_errors = link.send_errors, link.receive_errors
            if self._fast is not None:  # what the C path forwarded and counted
                counted = self._fast.counters(link.index)
                _add_passed(up, counted.up_packets, counted.up_bytes)
                _add_passed(down, counted.down_packets, counted.down_bytes)
                send_errors += counted.send_errors
                receive_errors += counted.receive_errors
            links[link.name] = {
                **_identity(link),
                "endpoint": None if link.endpoint is None else list(link.endpoint[:2]),
                "up": {**up, "held": link.up.held},
                "down": {**down, "held": link.down.held},
                "router_drops": drops[link.name],
                "no_endpoint": link.no_endpoint,
                "send_errors": send_errors,
                "receive_errors": receive_errors,
                "foreign_datagrams": link.foreign_datagrams,
                "endpoint_changes": link.endpoint_changes,
                "pcap_frames": None if link.pcap is None else link.pcap.frames,
            }
        if link_name is not None and not links:
            raise KeyError(link_name)
        return {
            "uptime_s": round(now - self._started, 6),
            "realtime": self.realtime,
            "timing": self.timing.as_dict(),
            "links": links,
        }

    def add_route(self, prefix: str | IPv6Network, link_name: str) -> None:
        """Packets to ``prefix`` leave on ``link_name`` from now on (replacing a route for the
        same prefix). ValueError for an unknown link or a bad prefix."""
        self.router.add_route(IPv6Network(prefix), link_name)
        if self._fast is not None:
            self._fast.forget()

    def remove_route(self, prefix: str | IPv6Network) -> None:
        """Forget the route for exactly ``prefix``; KeyError if there is none."""
        self.router.remove_route(IPv6Network(prefix))
        if self._fast is not None:
            self._fast.forget()

    def set_profile(self, link_name: str, up: LinkProfile, down: LinkProfile) -> None:
        """Change what ``link_name``'s two directions do from now on (a node moving to another
        network); packets already on the link keep their departure times. KeyError for an
        unknown link."""
        for link in self._links:
            if link.name == link_name:
                link.up.set_profile(up)
                link.down.set_profile(down)
                link.up_transparent = up.transparent
                link.down_transparent = down.transparent
                if self._fast is not None:
                    self._fast.set_up_transparent(link.index, up.transparent)
                    self._fast.set_down_transparent(link.index, down.transparent)
                return
        raise KeyError(link_name)

    def tune_thread(self) -> bool:
        """Prepare the calling thread to run the loop: timer slack down to 1 us, and SCHED_FIFO
        if the description asks for ``realtime`` and the system allows it. Returns whether the
        thread now runs real time. :meth:`serve_forever` calls it if nobody has."""
        self._tuned = True
        _lower_timer_slack()
        if self.config.realtime:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
                self.realtime = True
            except (OSError, AttributeError):  # not root, or not Linux
                self.realtime = False
        return self.realtime

    def stop(self) -> None:
        """Make :meth:`serve_forever` return soon. Safe from signal handlers and other threads."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def flush(self) -> None:
        """Write buffered capture records to their files."""
        for link in self._links:
            if link.pcap is not None:
                link.pcap.flush()

    def close(self) -> None:
        """Close the captures (flushing them) and every socket. Packets still held by emulators
        are discarded."""
        for link in self._links:
            if link.pcap is not None:
                link.pcap.close()
                link.pcap = None
            if link.sock is not None:
                link.sock.close()
            if link.device is not None:
                link.device.close()
        if self._control is not None:
            self._control.close()
        self._wake_reader.close()
        self._wake_writer.close()
        self._epoll.close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the loop --------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Forward packets until :meth:`stop` is called; captures are flushed on return."""
        poll = self._wait
        epoll_fd = [self._epoll.fileno()]
        handlers = self._handlers
        clock = self._clock
        wait_fine = select.select
        next_flush = clock() + FLUSH_INTERVAL
        if not self._tuned:
            self.tune_thread()
        try:
            while not self._stopping:
                deadline = self._next_departure()
                now = clock()
                if now >= next_flush:
                    self.flush()
                    next_flush = now + FLUSH_INTERVAL
                if deadline is None:
                    events = poll(FLUSH_INTERVAL)
                else:
                    wait = deadline - now
                    if wait <= 0:
                        events = poll(0)
                    elif wait >= _COARSE_WAIT:
                        # epoll rounds its timeout up to whole milliseconds: wake early, then
                        # finish the wait in select() below on a later turn.
                        events = poll(math.floor(wait * 1000 - 1) / 1000)
                    elif wait_fine(epoll_fd, (), (), wait)[0]:
                        events = poll(0)
                    else:
                        events = []
                for fd in events:
                    handlers[fd]()
                if self._active_up or self._active_down:
                    self._run_due(clock())
        finally:
            self.flush()

    def _wait(self, timeout: float) -> list[int]:
        """The descriptors whose handlers must run, waiting at most ``timeout`` seconds: in C
        with the fast path (:meth:`FastPath.wait`: a packet C forwards wakes no Python), else
        ``epoll``."""
        if self._fast is not None:
            return self._fast.wait(self._epoll.fileno(), timeout, BATCH)
        return [fd for fd, _ in self._epoll.poll(timeout)]

    def _next_departure(self) -> float | None:
        soonest = math.inf
        for link in self._active_up:
            departure = link.up.next_departure()
            if departure is not None and departure < soonest:
                soonest = departure
        for link in self._active_down:
            departure = link.down.next_departure()
            if departure is not None and departure < soonest:
                soonest = departure
        return None if soonest == math.inf else soonest

    def _receive(self, link: _Link) -> None:
        """Drain ``link``'s socket or device: each packet enters the link's up direction, C
        forwarding what it can (:meth:`_drain_fast`) with the fast path."""
        if self._fast is not None:
            self._drain_fast(link)
        else:
            self._drain(link)

    def _drain_fast(self, link: _Link) -> None:
        """Let C read and forward ``link``'s packets (``fast_drain`` in csrc/hub_fast.c), and
        handle here each packet it leaves in the buffer: one from a new sender, one C may not
        forward (see ``fast_target``: every packet of an emulated up direction), first the
        one a wait in C punted. At most :data:`BATCH` datagrams read; what C read ahead is
        handed over even past it (its socket need not become readable again for those)."""
        fast = self._fast
        assert fast is not None
        punt = fast.punt
        budget = BATCH
        status = fast.take_punt(link.index)
        if status != PUNT:
            status = fast.drain(link.index, budget)
        while status == PUNT:
            budget = max(budget - punt.used, 0)
            self._punted(link)
            status = fast.drain(link.index, budget)

    def _punted(self, link: _Link) -> None:
        """The packet C left in the buffer (:attr:`FastPath.punt`) enters ``link``'s up
        direction, as one :meth:`_drain` reads."""
        fast = self._fast
        assert fast is not None
        punt = fast.punt
        if punt.stranger and not self._attach(link, fast.source()):
            return
        self._enter(link, punt.size)

    def _drain(self, link: _Link) -> None:
        """Read ``link``'s packets in Python: every packet without the C path."""
        readinto = link.readinto
        receive = None if link.sock is None else link.sock.recvfrom_into
        buffer = self._buffer
        for _ in range(BATCH):
            if readinto is not None:
                try:
                    size = readinto(buffer)
                except OSError:
                    link.receive_errors += 1
                    break  # the device is down: wait for the next readable event
                if not size:
                    break
            else:
                try:
                    size, source = receive(buffer)  # type: ignore[misc]
                except BlockingIOError:
                    break
                except OSError:
                    link.receive_errors += 1
                    continue
                if source != link.endpoint and not self._attach(link, source):
                    continue
            self._enter(link, size)

    def _enter(self, link: _Link, size: int) -> None:
        """The packet in the buffer's first ``size`` bytes, read from ``link``, enters its up
        direction."""
        if link.up_transparent:
            self._forward(link, size)
        elif link.up.offer(self._clock(), bytearray(self._view[:size])):
            self._active_up.add(link)

    def _attach(self, link: _Link, source: Any) -> bool:
        """A datagram on ``link`` came from ``source``, not its endpoint: a learned endpoint
        follows it (True), a configured one refuses it (False)."""
        if link.endpoint_fixed:
            link.foreign_datagrams += 1
            return False
        if link.endpoint is not None:
            link.endpoint_changes += 1
        link.endpoint = source
        if self._fast is not None:
            self._fast.set_endpoint(link.index, source)
        return True

    def _forward(self, link: _Link, size: int) -> None:
        """The packet in the buffer's first ``size`` bytes has crossed ``link``'s transparent up
        direction: capture it, route it, pass it to the down direction or send it, both records
        with one timestamp. ``fast_drain`` does exactly this for the packets it takes; this is
        the reference, and the path of every other packet. A decision the C path may apply
        (see Router.decisions) is handed to it."""
        packet = self._view[:size]
        link.up.pass_through(size)
        header = b""
        if self._capturing:
            header = record_header(size, self._wall_clock_ns() // 1000)
            if link.pcap is not None:
                link.pcap.record(packet, header)
        out = self.router.forward(link.index, packet)
        if out < 0:
            return
        if self._fast is not None and out != link.index and self.router.pinned[link.index] < 0:
            self._fast.decide(packet[ADDRESSES].tobytes(), out)
        target = self._links[out]
        if target.down_transparent:
            target.down.pass_through(size)
            self._send(target, packet, header)
        elif target.down.offer(self._clock(), bytearray(packet)):
            self._active_down.add(target)

    def _arrived(self, link: _Link, packet: bytearray, at: float) -> None:
        """``packet`` has crossed ``link``'s emulated up direction, at emulated time ``at``:
        capture, route, enter the down direction. (:meth:`_forward` does the same for links
        with a transparent up direction.)"""
        if link.pcap is not None:
            link.pcap.record(packet, record_header(len(packet), self._wall_clock_ns() // 1000))
        out = self.router.forward(link.index, packet)
        if out < 0:
            return
        target = self._links[out]
        if target.down_transparent:
            target.down.pass_through(len(packet))
            self._send(target, packet)
        elif target.down.offer(at, packet):
            self._active_down.add(target)

    def _send(
        self, link: _Link, packet: bytearray | memoryview, header: bytes | None = None
    ) -> None:
        """``packet`` has crossed ``link`` to the node: write it to the device or send it to the
        endpoint, and capture it with record ``header`` (None: stamped now)."""
        try:
            if link.write is not None:
                if link.write(packet) is None:  # EAGAIN: the kernel's queue is full
                    link.send_errors += 1
                    return
            elif link.endpoint is None:
                link.no_endpoint += 1
                return
            else:
                link.sock.sendto(packet, link.endpoint)  # type: ignore[union-attr]
        except OSError:  # a full socket buffer (BlockingIOError), a device that is down
            link.send_errors += 1
            return
        if link.pcap is not None:
            if header is None:
                header = record_header(len(packet), self._wall_clock_ns() // 1000)
            link.pcap.record(packet, header)

    def _run_due(self, now: float) -> None:
        """Everything whose emulated departure is ``<= now`` leaves: up directions first, so a
        packet crossing both an up and a down direction within this turn is not held a turn."""
        timing = self.timing
        if self._active_up:
            for link in list(self._active_up):
                for departure, packet in link.up.pop_due(now):
                    timing.record(now - departure)
                    self._arrived(link, packet, departure)
                if link.up.next_departure() is None:
                    self._active_up.discard(link)
        if self._active_down:
            for link in list(self._active_down):
                for departure, packet in link.down.pop_due(now):
                    timing.record(now - departure)
                    self._send(link, packet)
                if link.down.next_departure() is None:
                    self._active_down.discard(link)

    # -- control ---------------------------------------------------------------------------------

    def _answer_control(self) -> None:
        assert self._control is not None
        control = self._control
        for _ in range(16):
            try:
                request, source = control.recvfrom(2048)
            except BlockingIOError:
                return
            except OSError:
                continue
            reply = json.dumps(self._control_reply(request)).encode()
            if len(reply) > MAX_CONTROL_REPLY:
                reply = json.dumps(
                    {"error": f"reply of {len(reply)} bytes is too large: ask 'stats LINK'"}
                ).encode()
            with contextlib.suppress(OSError):
                control.sendto(reply, source)

    def _control_reply(self, request: bytes) -> dict[str, Any]:
        words = request.decode("ascii", "replace").split()
        command = words[0].lower() if words else ""
        if command == "stats" and len(words) <= 2:
            try:
                return self.stats(words[1] if len(words) == 2 else None)
            except KeyError:
                return {"error": f"no link named {words[1]!r}"}
        if command == "links" and len(words) == 1:
            return self.describe()
        if command == "flush" and len(words) == 1:
            self.flush()
            return {"ok": True}
        if command == "routes" and len(words) == 1:
            return {"routes": {str(prefix): link for prefix, link in self.router.routes.items()}}
        if command == "route" and len(words) >= 2 and words[1] in ("add", "del"):
            return self._route_request(words[1:])
        if command == "profile" and len(words) >= 2:
            return self._profile_request(words[1], request.decode("ascii", "replace"))
        return {
            "error": f"unknown request {request[:64]!r}: stats [LINK], links, flush, routes, "
            "route add PREFIX LINK, route del PREFIX, profile LINK JSON"
        }

    def _route_request(self, words: list[str]) -> dict[str, Any]:
        try:
            if words[0] == "add" and len(words) == 3:
                self.add_route(words[1], words[2])
                return {"ok": True}
            if words[0] == "del" and len(words) == 2:
                self.remove_route(words[1])
                return {"ok": True}
        except KeyError:
            return {"error": f"no route for {words[1]}"}
        except ValueError as error:
            return {"error": str(error)}
        return {"error": "route add PREFIX LINK | route del PREFIX"}

    def _profile_request(self, link_name: str, text: str) -> dict[str, Any]:
        body = text.split(None, 2)[2] if len(text.split(None, 2)) == 3 else "{}"
        try:
            up, down = parse_link_profiles(json.loads(body), f"profile.{link_name}")
            self.set_profile(link_name, up, down)
        except KeyError:
            return {"error": f"no link named {link_name!r}"}
        except (ValueError, ConfigError) as error:  # json.JSONDecodeError is a ValueError
            return {"error": str(error)}
        return {"ok": True}

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_reader.recv(64):
                pass


# -- running it ----------------------------------------------------------------------------------


def serve(config: HubConfig, announce: Callable[[dict[str, Any]], None]) -> None:
    """Run a hub in this process until SIGTERM or SIGINT: ``announce`` receives
    :meth:`HubServer.describe` once the sockets are bound; captures are flushed and closed on
    the way out."""
    with HubServer(config) as hub:

        def on_signal(number: int, frame: FrameType | None) -> None:
            hub.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            hub.tune_thread()
            announce(hub.describe())
            hub.serve_forever()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def query(control: Address, request: str = "stats", timeout: float = 2.0) -> dict[str, Any]:
    """Ask a hub's control port; returns its JSON answer. Raises TimeoutError if none comes."""
    family = socket.AF_INET6 if ":" in control[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request.encode("ascii"), control)
        try:
            reply = sock.recv(MAX_DATAGRAM)
        except TimeoutError:
            raise TimeoutError(f"no answer from the hub control port {control}") from None
    result: dict[str, Any] = json.loads(reply)
    return result


def bind_udp(address: Address, *, buffers: bool = True) -> socket.socket:
    """A non-blocking UDP socket bound to ``address`` (a name resolves to its first address;
    "::" accepts IPv4 too), with :data:`SOCKET_BUFFER_BYTES` buffers unless ``buffers`` is
    false."""
    host, port = address
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if buffers:
            for forced, plain in (
                (_SO_RCVBUFFORCE, socket.SO_RCVBUF),
                (_SO_SNDBUFFORCE, socket.SO_SNDBUF),
            ):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER_BYTES)
                except OSError:  # not root: as much as net.core.[rw]mem_max allows
                    sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER_BYTES)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _add_passed(counters: dict[str, Any], packets: int, size: int) -> None:
    """Add the packets C passed through a transparent direction to its counters (as_dict())."""
    for kind in ("in", "out"):
        counters[f"packets_{kind}"] += packets
        counters[f"bytes_{kind}"] += size


def _identity(link: _Link) -> dict[str, Any]:
    """What a link is, for ``links`` and ``stats``: its kind and socket address or device."""
    if link.device is not None:
        return {"kind": "tun", "address": None, "device": link.device.name,
                "netns": link.device.netns}  # fmt: skip
    return {"kind": "udp", "address": None if link.address is None else list(link.address)}


def _lower_timer_slack() -> None:
    """Ask Linux to fire this thread's timers within 1 us rather than the default 50 us
    (prctl(2) PR_SET_TIMERSLACK). Best effort: elsewhere it does nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _sockaddr(address: Address, family: int) -> Any:
    """``address`` as ``recvfrom`` on a socket of ``family`` reports it, so the two compare equal
    (an IPv4 address on an IPv6 socket becomes ``::ffff:a.b.c.d``)."""
    host, port = address
    if family == socket.AF_INET6 and ":" not in host:
        try:
            socket.inet_pton(socket.AF_INET, host)
            host = f"::ffff:{host}"
        except OSError:
            pass  # a name: resolved below
    return socket.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)[0][4]
