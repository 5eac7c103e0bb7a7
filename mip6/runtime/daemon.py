"""The ``mip6 run`` daemon: one asyncio loop driving one role engine over its links.

Shim mode (ARCHITECTURE 4): packets the kernel routes into the ``kernel`` TUN device go to the
engine's ``send`` (binding cache translation, Home Address option, tunnelling); what the engine
delivers goes back into that device, so unmodified programs in the namespace (ping6, curl) get
Mobile IPv6 behaviour. Router mode (a home agent): every link faces the network; ``Transmit``
with ``link="home"`` leaves on the ``home`` link when there is one.

Host mode (ARCHITECTURE 4): the daemon is the IPv6 host. It has no kernel link; its ``network``
link is a TUN device (the kernel routes between it and the real network) or, lab mode, a UDP
socket to a labnet hub (no root needed). What the engine delivers goes to an in-daemon host
(:class:`mip6.runtime.host.Host`): TCP to a tcp_migrate stack on the node's addresses (a mobile
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
    daemon.stop()
    await task                          # a mobile node deregisters first

With ``netns: NAME`` the daemon opens its UDP links where it was started (the root namespace,
where a labnet hub listens), then moves into the network namespace NAME (setns(2)) and creates
its TUN devices there: a namespace's kernel reaches the lab through the daemon, without veths.

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
from collections.abc import Callable, Hashable
from ipaddress import IPv6Address
from typing import Any

from mip6.apps import builtin
from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.config import CorrespondentConfig, HomeAgentConfig, MobileNodeConfig
from mip6.core.ipsec.config import database_from_config
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.config import NodeConfig
from mip6.runtime.host import Host
from mip6.runtime.links import Link, TunLink, UdpLink, enter_netns
from mip6.runtime.state import describe
from mip6.wire import icmpv6 as icmp
from mip6.wire.pcap import PcapWriter

log = logging.getLogger(__name__)
DEREGISTRATION_WAIT = 2.0  # seconds a stopping mobile node waits for its acknowledgements


def build_engine(config: NodeConfig, rng: random.Random) -> Any:
    options = dict(config.role_options)
    # RFC 3776 SAs; IVs from the operating system (RFC 3602 3: CBC IVs must be unpredictable).
    security = (
        database_from_config(config.ipsec, role=config.role, random_bytes=os.urandom)
        if config.ipsec is not None
        else None
    )
    if config.role == "correspondent":
        options.pop("address", None)
        return CorrespondentNode(config=CorrespondentConfig(**options), rng=rng)
    if config.role == "home_agent":
        correspondent = options.pop("correspondent", {})
        correspondent.pop("address", None)
        return HomeAgent(
            HomeAgentConfig(correspondent=CorrespondentConfig(**correspondent), **options),
            rng,
            security,
        )
    care_of = options.pop("care_of_address", None)
    home_registration = options.pop("home_registration", True)
    return MobileNode(
        config=MobileNodeConfig(**options),
        rng=rng,
        care_of_address=None,
        home_registration=home_registration,
        security=security,
    ), care_of


class Daemon:
    def __init__(self, config: NodeConfig, rng: random.Random | None = None) -> None:
        self.config = config
        built = build_engine(config, rng or random.SystemRandom())
        self.initial_care_of: IPv6Address | None = None
        if isinstance(built, tuple):
            self.engine, self.initial_care_of = built
        else:
            self.engine = built
        self.links: dict[str, Link] = {}
        for name, link in config.links.items():
            if link.type == "tun":
                assert link.device is not None
                self.links[name] = TunLink(name, link.device)
            else:
                assert link.remote is not None
                self.links[name] = UdpLink(name, link.remote, link.local)
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.events: list[Event] = []  # the last few, for `mip6 show events`
        self._control: asyncio.base_events.Server | None = None
        self._entered = False  # in config.netns yet
        self.host: Host | None = None  # host mode: the IPv6 host, made when run() starts
        self._stop_apps: list[Callable[[], None]] = []
        self._started = asyncio.Event()

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
            if signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            self.close()

    async def _open(self, loop: asyncio.AbstractEventLoop, signals: bool) -> None:
        assert self._stopping is not None
        if self.config.mode == "host":
            self.host = Host(
                addresses=self.config.host_addresses,
                send=self._from_upper_layer,
                port_unreachable=self._port_unreachable,
                loop=loop,
                secret=os.urandom(32),
            )
            for app in self.config.apps:
                self._stop_apps.append(await builtin.start(self.host, app))
        for name, path in self.config.pcap.items():
            self.links[name].tap = PcapWriter.create(path)
        # With ``netns``: UDP links first, from the namespace the daemon was started in (where
        # the hub is), then into the node's namespace, where the TUN devices are created.
        ordered = list(self.links.items())
        if self.config.netns:
            ordered.sort(key=lambda item: isinstance(item[1], TunLink))
        for name, link in ordered:
            if isinstance(link, TunLink) and self.config.netns and not self._entered:
                enter_netns(self.config.netns)
                self._entered = True
            receive = self._from_upper_layer if name == "kernel" else self._from_network
            await link.open(loop, receive)
        if self.config.netns and not self._entered:
            enter_netns(self.config.netns)
            self._entered = True
        if self.config.control:
            await self._open_control(self.config.control)
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stopping.set)
        log.info("node %s: %s in %s mode", self.config.node, self.config.role, self.config.mode)
        if isinstance(self.engine, HomeAgent):
            self._apply(self.engine.start(self.now))
        if isinstance(self.engine, MobileNode) and self.initial_care_of is not None:
            self._apply(self.engine.move(self.now, self.initial_care_of))

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _shutdown(self) -> None:
        self._close_host()  # first: its RSTs still take the mobile node's current path
        if isinstance(self.engine, MobileNode) and not self.engine.at_home:
            self._apply(self.engine.deregister(self.now))
            deadline = self.now + DEREGISTRATION_WAIT
            while len(self.engine.bul) and self.now < deadline:
                await asyncio.sleep(0.05)
            log.info(
                "node %s: deregistered (%d bindings left)", self.config.node, len(self.engine.bul)
            )

    def _close_host(self) -> None:
        for stop in self._stop_apps:
            stop()
        self._stop_apps.clear()
        if self.host is not None:
            self.host.close()

    def close(self) -> None:
        self._close_host()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._control is not None:
            self._control.close()
            if self.config.control and os.path.exists(self.config.control):
                os.unlink(self.config.control)
        for link in self.links.values():
            link.close()

    # -- packets and timers ----------------------------------------------------------------------

    def _from_network(self, data: bytes) -> None:
        self._apply(self.engine.handle_packet(self.now, data))

    def _from_upper_layer(self, data: bytes) -> None:
        """A packet from the kernel's TUN device (shim mode) or the host (host mode)."""
        self._apply(self.engine.send(self.now, data))

    def _port_unreachable(self, invoking: bytes) -> None:
        # RFC 4443 3.1 code 4, through the node's own error path: its 2.4 rules and rate limit.
        actions = self.engine.pipeline.icmp_error(
            self.now,
            invoking,
            lambda body: icmp.DestinationUnreachable(
                code=icmp.PORT_UNREACHABLE, invoking_packet=body
            ),
        )
        for action in actions:
            if isinstance(action, Transmit):
                self._from_upper_layer(action.data)  # from the home address: the send path
            else:
                self._apply([action])

    def _timer(self, token: Hashable) -> None:
        self._timers.pop(token, None)
        self._apply(self.engine.handle_timer(self.now, token))

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                link = self.links.get(action.link or "network") or self.links["network"]
                link.send(action.data)
            elif isinstance(action, Deliver):
                if self.host is not None:
                    self.host.deliver(action.data)
                elif (kernel := self.links.get("kernel")) is not None:
                    kernel.send(action.data)
            elif isinstance(action, StartTimer):
                old = self._timers.pop(action.token, None)
                if old is not None:
                    old.cancel()
                assert self._loop is not None
                self._timers[action.token] = self._loop.call_at(
                    action.at, self._timer, action.token
                )
            elif isinstance(action, CancelTimer):
                handle = self._timers.pop(action.token, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, Event):
                if action.name != "drop":
                    log.info("node %s: %s %s", self.config.node, action.name, dict(action.fields))
                else:
                    log.debug("node %s: drop %s", self.config.node, dict(action.fields))
                self.events.append(action)
                del self.events[:-100]

    # -- control socket ---------------------------------------------------------------------------

    async def _open_control(self, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._control = await asyncio.start_unix_server(self._serve, path=path)
        os.chmod(path, 0o600)

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
        """One control request: ``{"show": WHAT}``, or for a mobile node ``{"move": ADDR|null}``,
        ``{"route_optimize": ADDR}``, ``{"register": true}``."""
        if "show" in request:
            return {
                "node": self.config.node,
                "role": self.config.role,
                **describe(self.engine, request["show"], self.now, self.host),
            }
        if isinstance(self.engine, MobileNode):
            if "move" in request:
                care_of = request["move"]
                self._apply(self.engine.move(self.now, IPv6Address(care_of) if care_of else None))
                return {"ok": True}
            if "route_optimize" in request:
                self._apply(
                    self.engine.start_route_optimization(
                        self.now, IPv6Address(request["route_optimize"])
                    )
                )
                return {"ok": True}
            if "register" in request:
                self._apply(self.engine.register(self.now))
                return {"ok": True}
        raise ValueError(f"unknown request {sorted(request)} for role {self.config.role}")
