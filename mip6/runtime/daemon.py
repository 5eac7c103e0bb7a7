"""The ``mip6 run`` daemon: one asyncio loop driving one node (:class:`~mip6.runtime.node.
NodeRuntime`: the role engine the registry builds, :mod:`mip6.runtime.roles`, and in host mode
its host) over its links.

Shim mode (ARCHITECTURE 4): packets the kernel routes into the ``kernel`` TUN device go to the
engine's ``send`` (binding cache translation, Home Address option, tunnelling); what the engine
delivers goes back into that device, so unmodified programs in the namespace (ping6, curl) get
Mobile IPv6 behaviour. Router mode (a home agent): every link faces the network; with a
``home`` link configured, the home agent sends what is for its home link there.

Host mode (ARCHITECTURE 4): the daemon is the IPv6 host. It has no kernel link; its ``network``
link is a TUN device (the kernel routes between it and the real network) or, lab mode, a UDP
socket to a labnet hub (no root needed). What the engine delivers goes to an in-daemon host
(:class:`mip6.runtime.host.Host`, sans-I/O, with :class:`~mip6.runtime.host.AsyncHost` as
its asyncio face): TCP to a tcp_migrate stack on the node's addresses (a mobile
node's home address), UDP to its bound ports, ICMPv6 Echo answered; a closed TCP port answers
with a RST, a closed UDP port with a rate-limited ICMPv6 Port Unreachable. What the host sends
takes the engine's send path, as the kernel's packets do in shim mode. The ``apps`` key starts
built-in applications on it (:mod:`mip6.apps.builtin`: UDP ``echo``, an ``http`` file server).
A program can embed a host-mode daemon and run its own asyncio code on its streams::

    daemon = Daemon(config)             # config from mip6.runtime.config.load or parse
    task = await daemon.start()         # returns once the links and the host are up
    reader, writer = await daemon.host.open_connection("2001:db8:2::1", 80)
    server = await daemon.host.start_server(handle, "::", 8080)
    endpoint = daemon.host.udp_bind(5000, on_datagram)   # on_datagram(data, remote, local)
    reader, writer = daemon.host.streams(sock)           # over an accepted or imported socket
    daemon.stop()
    await task                          # a mobile node deregisters first

On a real network (a link of ``type: interface``, :mod:`mip6.runtime.kernel`) the network
link is the box's own interface, and the role's network driver (its registry entry's
``network_driver``) keeps the kernel state beside the engine: it sees every event the engine
emits (a home agent's registrations become proxy neighbour entries), gives the engine commands
(a mobile node's movements, from netlink events) and removes what it added before the links
close.

With ``netns: NAME`` the daemon opens its UDP links where it was started (the root namespace,
where a labnet hub listens), then moves into the network namespace NAME (setns(2)) and creates
its TUN devices there: a namespace's kernel reaches the lab through the daemon, without veths.

Established traffic takes the C fast path (:mod:`mip6.runtime.fast`) where it is built and the
engine gives decisions (a correspondent's, a home agent's, a mobile node's, a member's): the
daemon's links are read in C, and packets the engine has already decided for (its binding cache
and Binding Update List unchanged since) are rewritten and written there, or, at a member, given
to its own TCP connections' C cores, whose answers go out at once
(:class:`~mip6.runtime.fast.FastHost`); every other packet takes the engine, which stays the
reference. ``fast_path: false`` turns it off; a link with a pcap tap does too (taps are written
in Python).

The engine's clock is the loop's monotonic clock; its randomness is the operating system's.
A control socket answers ``mip6 show`` (and commands such as ``move``) with one JSON object
per request line. SIGTERM and SIGINT deregister (a mobile node sends Lifetime 0 Binding Updates
and waits briefly for the acknowledgements), then close the devices.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mip6.apps import builtin
from mip6.core.actions import Event
from mip6.core.datapath import Ingress
from mip6.core.engine import FastEngine, HostedFastEngine
from mip6.runtime.config import KERNEL_LINK, NodeConfig
from mip6.runtime.host import AsyncHost, Host
from mip6.runtime.kernel import DriverContext, InterfaceLink, NetworkDriver, Uplinks
from mip6.runtime.links import Link, TunLink, UdpLink, enter_netns
from mip6.runtime.node import NodeRuntime
from mip6.runtime.roles import build_engine, role
from mip6.runtime.roles.base import AppContext
from mip6.runtime.state import describe
from mip6.wire.pcap import PcapWriter

if TYPE_CHECKING:
    from mip6.runtime.fast import FastPath, FastSelector

log = logging.getLogger(__name__)
DEREGISTRATION_WAIT = 2.0  # seconds a stopping node waits for its engine to finish (stopped())

__all__ = ["Daemon", "build_engine", "run_daemon"]


def run_daemon(config: NodeConfig) -> None:
    """Run a daemon for ``config`` until it stops (SIGTERM, SIGINT), on an event loop that waits
    in C with the fast path's links drained there (:class:`mip6.runtime.fast.FastSelector`),
    or on a plain one where the fast path is not built."""
    try:
        from mip6.runtime.fast import FastSelector
    except ImportError:  # not built: the Python path alone is complete
        asyncio.run(Daemon(config).run())
        return
    selector = FastSelector()
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        runner.run(Daemon(config, selector=selector).run())


class Daemon:
    """One node. ``selector``: the one the running loop was made with, if it is a
    :class:`~mip6.runtime.fast.FastSelector`: then the fast path's links are drained while it
    waits, in C (:func:`run_daemon` makes such a loop)."""

    def __init__(
        self,
        config: NodeConfig,
        rng: random.Random | None = None,
        *,
        selector: FastSelector | None = None,
    ) -> None:
        self.config = config
        self.selector = selector
        self.engine = build_engine(config, rng or random.SystemRandom())
        self.links: dict[str, Link] = {}
        # The shim's kernel device offloads TCP segmentation to the daemon when the fast path
        # reads it (mip6.runtime.offload): one read per 64 kB the kernel's TCP sends
        offload = self._fast_path_wanted() and config.offload
        for name, link in config.links.items():
            if link.type == "tun":
                assert link.device is not None
                self.links[name] = TunLink(
                    name, link.device, offload=offload and name == KERNEL_LINK
                )
            elif link.type == "interface" and len(link.devices) > 1:  # a mobile node's uplinks
                self.links[name] = Uplinks(name, link.devices)
            elif link.type == "interface":
                assert link.device is not None
                self.links[name] = InterfaceLink(name, link.device)
            elif link.type == "udp":
                assert link.remote is not None
                self.links[name] = UdpLink(name, link.remote, link.local)
            else:
                raise ValueError(
                    f"{config.path}: links.{name}: a {link.type} link exists only in labnet's "
                    "simulator"
                )
        self.runtime: NodeRuntime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.events: list[Event] = []  # the last few, for `mip6 show events`
        self._control: asyncio.base_events.Server | None = None
        self._entered = False  # in config.netns yet
        self.host: AsyncHost | None = None  # host mode: the IPv6 host, made when run() starts
        self._stop_apps: list[Callable[[], None]] = []
        self._started = asyncio.Event()
        self.fast: FastPath | None = None  # made when run() starts, if it is on
        # on a real network: the role's kernel state (mip6.runtime.kernel), made by run()
        self.driver: NetworkDriver | None = None

    # -- running -------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def start(self) -> asyncio.Task[None]:
        """Run the daemon as a task on the running loop, without signal handlers (the embedding
        program owns those); return the task once the daemon is up. If it fails to come up,
        its error is raised here."""
        task = asyncio.get_running_loop().create_task(self.run(signals=False))
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            task.result()  # raises the error that ended it
            raise RuntimeError(f"node {self.config.node} stopped before it started")
        return task

    async def run(self, *, signals: bool = True) -> None:
        """Until SIGTERM or SIGINT (with ``signals``) or :meth:`stop`."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        try:
            await self._open(loop, signals)
            self._started.set()
            await self._stopping.wait()
            await self._shutdown()
        finally:  # also when opening failed half-way: nothing of ours stays open
            if self.driver is not None:  # before the links: it removes what it added to them
                await self.driver.close()
                self.driver = None
            if signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            self.close()

    async def _open(self, loop: asyncio.AbstractEventLoop, signals: bool) -> None:
        assert self._stopping is not None
        host = None
        entry = role(self.config.role)
        if self.config.mode == "host" and not entry.owns_host:
            host = Host(
                addresses=self.config.host_addresses,
                secret=os.urandom(32),
                tcp_config=self.config.tcp,
            )
        kernel = self.links.get(KERNEL_LINK)
        runtime = NodeRuntime(
            self.config.node,
            self.engine,
            loop,
            {name: self.links[name] for name in self.config.network_links},
            host=host,
            upper=kernel.send if kernel is not None else None,
            observe=self._event,
        )
        self.runtime = runtime
        if host is not None:
            self.host = AsyncHost(host, loop, runtime.flush_host)
            for app in self.config.apps:
                self._stop_apps.append(await builtin.start(self.host, app))
        elif entry.start_apps is not None:  # the engine holds its host (a member)
            context = AppContext(loop, runtime.apply)
            self._stop_apps += entry.start_apps(self.engine, self.config.apps, context)
        for name, path in self.config.pcap.items():
            self.links[name].tap = PcapWriter.create(path)
        # With ``netns``: UDP links first, from the namespace the daemon was started in (where
        # the hub is), then into the node's namespace, where the TUN devices are created.
        ordered = list(self.links.items())
        if self.config.netns:
            ordered.sort(key=lambda item: isinstance(item[1], TunLink | InterfaceLink | Uplinks))
        for name, link in ordered:
            in_netns = isinstance(link, TunLink | InterfaceLink | Uplinks)
            if in_netns and self.config.netns and not self._entered:
                enter_netns(self.config.netns)
                self._entered = True
            receive = runtime.from_upper_layer if name == KERNEL_LINK else runtime.from_network
            await link.open(loop, receive)
        if self.config.netns and not self._entered:
            enter_netns(self.config.netns)
            self._entered = True
        self.fast = self._open_fast_path(runtime)
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stopping.set)
        log.info("node %s: %s in %s mode", self.config.node, self.config.role, self.config.mode)
        interface = next(
            (k for k in self.links.values() if isinstance(k, InterfaceLink | Uplinks)), None
        )
        if interface is not None and entry.network_driver is not None:
            self.driver = entry.network_driver(
                DriverContext(
                    engine=self.engine,
                    options=self.config.role_options,
                    link=interface,
                    kernel_device=kernel.device if isinstance(kernel, TunLink) else None,
                    command=runtime.command,
                )
            )
        if self.driver is not None and self.driver.before_engine:
            await self.driver.open()
        runtime.start()
        if self.driver is not None and not self.driver.before_engine:
            await self.driver.open()
        # Last: a control socket that answers says the node is ready, its kernel state too (a
        # home agent's nftables rule for DHAAD requests, a mobile node's care-of address)
        if self.config.control:
            await self._open_control(self.config.control)

    def _fast_path_wanted(self) -> bool:
        """Whether the C fast path will read the links: on in the configuration, no tap (taps
        are written by Python only), an engine that gives decisions, no interface link (it
        reads Ethernet frames from its TAP and sends through a raw socket, where C handles
        one packet per read and write of one fd) and the extension built."""
        config = self.config
        if not config.fast_path or config.pcap or not isinstance(self.engine, FastEngine):
            return False
        if isinstance(self.engine, HostedFastEngine) and not self.engine.fast_path_wanted():
            log.info("node %s: no fast path (a member that replicates its clients)", config.node)
            return False
        if any(link.type == "interface" for link in config.links.values()):
            log.info("node %s: no fast path on an interface link", config.node)
            return False
        try:
            import mip6.runtime.fast  # noqa: F401
        except ImportError as error:  # not built: the Python path alone is complete
            log.info("node %s: no fast path (%s)", config.node, error)
            return False
        return True

    def _open_fast_path(self, runtime: NodeRuntime) -> FastPath | None:
        """The C fast path over the open links (:mod:`mip6.runtime.fast`), if it is wanted
        (:meth:`_fast_path_wanted`)."""
        if not self._fast_path_wanted():
            return None
        from mip6.runtime.fast import HOST, FastHost, FastLink, FastPath

        links = [
            FastLink(
                name,
                link.fileno(),
                Ingress.UPPER if name == KERNEL_LINK else Ingress.NETWORK,
                link.received,
                link.datagram_socket,
                isinstance(link, TunLink) and link.offload,
            )
            for name, link in self.links.items()
        ]
        engine = self.engine
        hosted = isinstance(engine, HostedFastEngine) and role(self.config.role).owns_host
        upper = KERNEL_LINK if KERNEL_LINK in self.links else HOST if hosted else None
        fast = FastPath(engine, links, upper, lambda: self.now)
        if hosted:
            # a member: its own stack's established connections take their segments in C
            assert isinstance(engine, HostedFastEngine)
            host = engine.host
            fast_host = FastHost(
                fast,
                host.stack,
                lambda remote: host.path_mtu.get(self.now, remote),
                lambda: None if host.path_mtu.rows(self.now) else host.path_mtu.link_mtu,
                lambda delivered: runtime.apply(engine.fast_delivered(self.now, delivered)),
                engine.fast_opens,
            )
            if fast_host.relays is not None:
                fast_host.relays.attach(asyncio.get_running_loop())
        for name, link in self.links.items():
            link.take_reading(fast.reader(name))
        runtime.before_timer = fast.touch
        if self.selector is not None:
            self.selector.fast = fast
        log.info(
            "node %s: fast path on%s",
            self.config.node,
            "" if self.selector is None else ", waiting in C",
        )
        return fast

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _shutdown(self) -> None:
        self._close_host()  # first: its RSTs still take the mobile node's current path
        assert self.runtime is not None
        self.runtime.apply(self.engine.stop(self.now))
        if self.engine.stopped():
            return
        deadline = self.now + DEREGISTRATION_WAIT
        while not self.engine.stopped() and self.now < deadline:
            await asyncio.sleep(0.05)
        log.info(
            "node %s: stopped (%s)",
            self.config.node,
            "all acknowledged" if self.engine.stopped() else "gave up waiting",
        )

    def _close_host(self) -> None:
        for stop in self._stop_apps:
            stop()
        self._stop_apps.clear()
        if self.host is not None and self.runtime is not None:
            self.host.close_servers()
            self.runtime.apply_host(self.host.host.close(self.now))

    def close(self) -> None:
        self._close_host()
        if self.runtime is not None:
            self.runtime.cancel_timers()
        if self._control is not None:
            self._control.close()
            if self.config.control and os.path.exists(self.config.control):
                os.unlink(self.config.control)
        if self.fast is not None and self.fast.host is not None and self.fast.host.relays:
            self.fast.host.relays.detach()
        if self.selector is not None:
            self.selector.fast = None  # before the links' descriptors close
        for link in self.links.values():
            link.close()

    def _event(self, event: Event) -> None:
        if event.name != "drop":
            log.info("node %s: %s %s", self.config.node, event.name, dict(event.fields))
        else:
            log.debug("node %s: drop %s", self.config.node, dict(event.fields))
        self.events.append(event)
        del self.events[:-100]
        if self.driver is not None:
            self.driver.observe(event)

    # -- control socket ---------------------------------------------------------------------------

    async def _open_control(self, path: str) -> None:
        """The control socket, listening before its path exists: bound and listening under a
        name of its own, then renamed into place, so that whoever waits for the path (labnet,
        the conformance lab) never meets a bound socket that does not listen yet (a refused
        connection failed a conformance case)."""
        if os.path.exists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # (a short name: a socket's path has at most 107 bytes)
        binding = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.getpid()}")
        if os.path.exists(binding):
            os.unlink(binding)
        self._control = await asyncio.start_unix_server(self._serve, path=binding)
        os.chmod(binding, 0o600)
        os.replace(binding, path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = self.command(json.loads(line))
                except (ValueError, KeyError, TypeError) as error:
                    reply = {"error": str(error)}
                writer.write(json.dumps(reply, default=str).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request: ``{"show": WHAT}``, or one of the engine's commands as
        ``{NAME: ARGUMENT}`` (a mobile node's ``{"move": ADDR|null}``, ``{"route_optimize":
        ADDR}``, ``{"register": true}``)."""
        if "show" in request:
            host = self.host.host if self.host is not None else None
            return {
                "node": self.config.node,
                "role": self.config.role,
                **describe(
                    self.engine,
                    request["show"],
                    self.now,
                    host,
                    None if self.fast is None else self.fast.counters(),
                ),
            }
        if len(request) != 1:
            raise ValueError(f"one command per request, not {sorted(request)}")
        assert self.runtime is not None
        ((name, argument),) = request.items()
        self.runtime.command(name, argument)
        return {"ok": True}
