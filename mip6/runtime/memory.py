"""An in-memory network on a virtual clock that wires sans-I/O engines together.

Written once for the tests and for labnet's ``sim`` backend. Packets are routed by destination
address (longest prefix match over routes that name a node), each path between two nodes has a
one-way latency and a loss probability, and everything random comes from one seeded generator,
so a run is a pure function of its seed. Nothing here sleeps: ``run_until`` jumps the clock from
event to event, so a 60-second scenario takes milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any, Protocol

from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit


class Application(Protocol):
    """An upper layer on a node: sees each delivered packet, may answer with packets that the
    node's engine then sends (``engine.send``), as a kernel's ICMPv6 echo or a UDP echo
    server would."""

    def __call__(self, now: float, data: bytes) -> list[bytes]: ...


class Engine(Protocol):
    def handle_packet(self, now: float, data: bytes) -> list[Action]: ...

    def handle_timer(self, now: float, token: Hashable) -> list[Action]: ...


@dataclass(frozen=True, slots=True)
class Path:
    """One direction between two nodes."""

    latency: float = 0.005  # seconds, one way
    loss: float = 0.0  # probability a packet is dropped


@dataclass(frozen=True, slots=True)
class Sent:
    """One packet on the wire, as a trace records it."""

    time: float
    sender: str
    receiver: str | None  # None: no route
    data: bytes
    lost: bool


@dataclass(slots=True)
class Node:
    name: str
    engine: Engine
    delivered: list[tuple[float, bytes]] = field(default_factory=list)
    events: list[tuple[float, Event]] = field(default_factory=list)


class MemoryNetwork:
    def __init__(self, seed: int = 0, default_path: Path | None = None) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.default_path = default_path or Path()
        self.nodes: dict[str, Node] = {}
        self.trace: list[Sent] = []
        self._routes: list[tuple[IPv6Network, str]] = []
        self._paths: dict[tuple[str, str], Path] = {}
        self._queue: list[tuple[float, int, str, str, Any]] = []
        self._order = itertools.count()
        self._timers: dict[tuple[str, Hashable], int] = {}
        self._applications: dict[str, Application] = {}

    # -- building --------------------------------------------------------------------------

    def add(self, name: str, engine: Engine) -> Node:
        node = Node(name, engine)
        self.nodes[name] = node
        return node

    def application(self, name: str, application: Application) -> None:
        """Run ``application`` as node ``name``'s upper layer."""
        self._applications[name] = application

    def route(self, prefix: str | IPv6Network | IPv6Address, name: str) -> None:
        """Packets to ``prefix`` go to node ``name`` (replacing an identical prefix's route)."""
        network = IPv6Network(prefix) if not isinstance(prefix, IPv6Network) else prefix
        self._routes = [(n, r) for n, r in self._routes if n != network]
        self._routes.append((network, name))
        self._routes.sort(key=lambda item: item[0].prefixlen, reverse=True)

    def clear_routes(self) -> None:
        self._routes.clear()

    def unroute(self, prefix: str | IPv6Network | IPv6Address) -> None:
        network = IPv6Network(prefix) if not isinstance(prefix, IPv6Network) else prefix
        self._routes = [(n, r) for n, r in self._routes if n != network]

    def path(self, a: str, b: str, path: Path, *, both_ways: bool = True) -> None:
        self._paths[(a, b)] = path
        if both_ways:
            self._paths[(b, a)] = path

    def lookup(self, destination: IPv6Address) -> str | None:
        for network, name in self._routes:
            if destination in network:
                return name
        return None

    # -- driving -----------------------------------------------------------------------------

    def apply(self, name: str, actions: list[Action]) -> None:
        """Perform what engine ``name`` asked for, at the current time."""
        node = self.nodes[name]
        for action in actions:
            if isinstance(action, Transmit):
                self._transmit(name, action.data)
            elif isinstance(action, Deliver):
                node.delivered.append((self.now, action.data))
                application = self._applications.get(name)
                if application is not None:
                    for answer in application(self.now, action.data):
                        self.apply(name, node.engine.send(self.now, answer))  # type: ignore[attr-defined]
            elif isinstance(action, StartTimer):
                generation = next(self._order)
                self._timers[(name, action.token)] = generation
                self._push(max(action.at, self.now), name, "timer", (action.token, generation))
            elif isinstance(action, CancelTimer):
                self._timers.pop((name, action.token), None)
            elif isinstance(action, Event):
                node.events.append((self.now, action))

    def call(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a command on node ``name``'s engine at the current time (``now`` is passed
        first) and perform the actions it returns; returns them too."""
        actions = getattr(self.nodes[name].engine, method)(self.now, *args, **kwargs)
        self.apply(name, actions)
        return actions

    def inject(self, name: str, data: bytes, at: float | None = None) -> None:
        """Have ``data`` arrive at node ``name`` from the network (at ``at``, default now)."""
        self._push(self.now if at is None else at, name, "packet", data)

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            at, _, name, kind, payload = heapq.heappop(self._queue)
            self.now = at
            engine = self.nodes[name].engine
            if kind == "packet":
                self.apply(name, engine.handle_packet(at, payload))
            else:
                token, generation = payload
                if self._timers.get((name, token)) != generation:
                    continue  # cancelled or moved
                del self._timers[(name, token)]
                self.apply(name, engine.handle_timer(at, token))
        self.now = max(self.now, until)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def pending_timers(self, name: str) -> list[Hashable]:
        return [token for (owner, token) in self._timers if owner == name]

    # -- internals ---------------------------------------------------------------------------

    def _push(self, at: float, name: str, kind: str, payload: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._order), name, kind, payload))

    def _transmit(self, sender: str, data: bytes) -> None:
        receiver = self.lookup(IPv6Address(data[24:40])) if len(data) >= 40 else None
        if receiver is None:
            self.trace.append(Sent(self.now, sender, None, data, True))
            return
        path = self._paths.get((sender, receiver), self.default_path)
        lost = path.loss > 0 and self.rng.random() < path.loss
        self.trace.append(Sent(self.now, sender, receiver, data, lost))
        if not lost:
            self._push(self.now + path.latency, receiver, "packet", data)
