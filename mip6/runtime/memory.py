"""An in-memory network on a virtual clock that wires sans-I/O engines together.

Written once for the tests and for labnet's ``sim`` backend. Packets are routed by destination
address (longest prefix match over routes that name a node), each path between two nodes has a
one-way latency, a loss probability and optionally a bandwidth with a bounded queue (its own,
or one it shares with other paths: a router's uplink), and everything random comes from one
seeded generator, so a run is a pure function of its seed.
Nothing here sleeps: ``run_until`` jumps the clock from event to event, so a 60-second scenario
takes milliseconds.

Each node is a :class:`~mip6.runtime.node.NodeRuntime`, as in the daemon: the network is its
scheduler (virtual time) and its links; what the engines ask for is performed by the daemon's
own code. A node may have a host (:class:`~mip6.runtime.host.Host`), so host-mode TCP runs here
on virtual time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any, Protocol

from mip6.core.actions import Action, Event
from mip6.core.engine import Engine
from mip6.runtime.host import Host
from mip6.runtime.node import NodeRuntime


class Application(Protocol):
    """An upper layer on a node: sees each delivered packet, may answer with packets that the
    node's engine then sends (``engine.send``), as a kernel's ICMPv6 echo or a UDP echo
    server would."""

    def __call__(self, now: float, data: bytes) -> list[bytes]: ...


class _Call:
    """A callback scheduled on the virtual clock (what ``call_at`` returns)."""

    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Link:
    """A node's attachment: what it sends is routed by destination address."""

    __slots__ = ("name", "net")

    def __init__(self, net: MemoryNetwork, name: str) -> None:
        self.net = net
        self.name = name

    def send(self, data: bytes) -> None:
        self.net._transmit(self.name, data)


@dataclass(frozen=True, slots=True)
class Path:
    """One direction between two nodes, in the order a packet meets it (the order of
    ``labnet.hub.emulation``, the netns backend's emulator): loss, then, with a bandwidth, a
    FIFO queue of at most ``queue_packets`` packets (counting the one being serialized; a
    packet that finds it full is dropped and counted in :attr:`MemoryNetwork.queue_drops`),
    serialization of its ``len(data) * 8 / bandwidth_bits_per_s`` seconds once the link is
    free, then ``latency``. Without a bandwidth there is no queue and no serialization time.

    ``shared_queue``: a name the paths that leave through one shaped interface share (a
    router's uplink, whatever the destination behind it): their packets wait in one FIFO and
    take turns on one link, each at its own path's rate. None: the direction has its own."""

    latency: float = 0.005  # seconds, one way
    loss: float = 0.0  # probability a packet is dropped
    bandwidth_bits_per_s: float | None = None  # None: infinitely fast
    queue_packets: int = 1000  # Linux's default txqueuelen, as the hub's emulator
    shared_queue: str | None = None

    def __post_init__(self) -> None:
        bandwidth = self.bandwidth_bits_per_s
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth_bits_per_s={bandwidth!r} must be > 0 (None: unlimited)")
        if self.queue_packets < 1:
            raise ValueError(f"queue_packets={self.queue_packets!r} must be at least 1")


class _Serializer:
    """One direction's transmitter with a bandwidth: when each packet still in its queue will
    have been serialized (ascending, the last is when the link is free)."""

    __slots__ = ("finishes",)

    def __init__(self) -> None:
        self.finishes: deque[float] = deque()

    def offer(self, now: float, seconds: float, queue_packets: int) -> float | None:
        """When a packet offered at ``now`` that takes ``seconds`` to serialize has left the
        sender's end, or None: ``queue_packets`` are queued already and it is dropped."""
        while self.finishes and self.finishes[0] <= now:
            self.finishes.popleft()
        if len(self.finishes) >= queue_packets:
            return None
        start = self.finishes[-1] if self.finishes else now
        self.finishes.append(start + seconds)
        return self.finishes[-1]


@dataclass(frozen=True, slots=True)
class Sent:
    """One packet on the wire, as a trace records it."""

    time: float
    sender: str
    receiver: str | None  # None: no route
    data: bytes
    lost: bool
    arrives: float | None = None  # when it reaches the receiver (None: lost or no route)


@dataclass(slots=True)
class Node:
    name: str
    engine: Engine
    runtime: NodeRuntime = field(init=False)
    delivered: list[tuple[float, bytes]] = field(default_factory=list)  # without a host
    events: list[tuple[float, Event]] = field(default_factory=list)

    @property
    def host(self) -> Host | None:
        return self.runtime.host


class MemoryNetwork:
    def __init__(self, seed: int = 0, default_path: Path | None = None) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.default_path = default_path or Path()
        self.nodes: dict[str, Node] = {}
        self.trace: list[Sent] = []
        self._routes: list[tuple[IPv6Network, str]] = []
        self._paths: dict[tuple[str, str], Path] = {}
        self._queue: list[tuple[float, int, str | None, Any]] = []
        self._order = itertools.count()
        self._applications: dict[str, Application] = {}
        # per direction (sender, receiver) or shared queue's name, whatever Path it has now: a
        # rerouted direction keeps its queue, as an interface keeps its qdisc when routes change
        self._serializers: dict[tuple[str, str] | str, _Serializer] = {}
        self.queue_drops: Counter[tuple[str, str]] = Counter()  # (sender, receiver): packets

    # -- building --------------------------------------------------------------------------

    def add(
        self,
        name: str,
        engine: Engine,
        *,
        links: Iterable[str] = ("network", "home"),
        host: Host | None = None,
    ) -> Node:
        """Attach ``engine`` as node ``name``. A node has one attachment here, which every
        name in ``links`` reaches (an engine sending on any other link is a fault); with a
        ``host``, what the engine delivers goes to it (host mode)."""
        node = Node(name, engine)
        link = _Link(self, name)
        node.runtime = NodeRuntime(
            name,
            engine,
            self,
            dict.fromkeys(links, link),
            host=host,
            upper=lambda data: self._deliver(node, data),
            observe=lambda event: node.events.append((self.now, event)),
        )
        self.nodes[name] = node
        return node

    def start(self, name: str) -> None:
        """Perform node ``name``'s ``start`` (the engine contract) now."""
        self.nodes[name].runtime.start()

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

    # -- the scheduler a NodeRuntime needs (mip6.runtime.node.Scheduler) -----------------------

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> _Call:
        call = _Call(callback, args)
        self._push(max(when, self.now), None, call)
        return call

    # -- driving -----------------------------------------------------------------------------

    def apply(self, name: str, actions: list[Action]) -> None:
        """Perform what engine ``name`` asked for, at the current time."""
        self.nodes[name].runtime.apply(actions)

    def _deliver(self, node: Node, data: bytes) -> None:
        node.delivered.append((self.now, data))
        application = self._applications.get(node.name)
        if application is not None:
            for answer in application(self.now, data):
                node.runtime.from_upper_layer(answer)

    def call(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a command on node ``name``'s engine at the current time (``now`` is passed
        first) and perform the actions it returns; returns them too."""
        actions = getattr(self.nodes[name].engine, method)(self.now, *args, **kwargs)
        self.apply(name, actions)
        return actions

    def inject(self, name: str, data: bytes, at: float | None = None) -> None:
        """Have ``data`` arrive at node ``name`` from the network (at ``at``, default now)."""
        self._push(self.now if at is None else at, name, data)

    def drop_in_flight(self, lost: Callable[[str, bytes], bool]) -> int:
        """Lose the packets still on their way for which ``lost(receiver, data)`` is true (a
        link going down under them); how many."""
        kept = [event for event in self._queue if event[2] is None or not lost(event[2], event[3])]
        dropped = len(self._queue) - len(kept)
        heapq.heapify(kept)
        self._queue = kept
        return dropped

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            at, _, name, payload = heapq.heappop(self._queue)
            self.now = at
            if name is not None:  # a packet arrives
                self.nodes[name].runtime.from_network(payload)
            elif not payload.cancelled:
                payload.callback(*payload.args)
        self.now = max(self.now, until)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def pending_timers(self, name: str) -> list[Hashable]:
        """The engine's running timers at node ``name``."""
        return self.nodes[name].runtime.pending_timers()

    # -- internals ---------------------------------------------------------------------------

    def _push(self, at: float, name: str | None, payload: Any) -> None:
        """An event at ``at``: a packet arriving at node ``name``, or (``name`` None) a call."""
        heapq.heappush(self._queue, (at, next(self._order), name, payload))

    def _transmit(self, sender: str, data: bytes) -> None:
        receiver = self.lookup(IPv6Address(data[24:40])) if len(data) >= 40 else None
        if receiver is None:
            self.trace.append(Sent(self.now, sender, None, data, True))
            return
        path = self._paths.get((sender, receiver), self.default_path)
        lost = path.loss > 0 and self.rng.random() < path.loss
        arrives = self.now + path.latency
        if not lost and path.bandwidth_bits_per_s is not None:
            direction = (sender, receiver)
            queue = path.shared_queue if path.shared_queue is not None else direction
            serializer = self._serializers.setdefault(queue, _Serializer())
            seconds = len(data) * 8 / path.bandwidth_bits_per_s
            leaves = serializer.offer(self.now, seconds, path.queue_packets)
            if leaves is None:
                self.queue_drops[direction] += 1
                lost = True
            else:
                arrives = leaves + path.latency
        self.trace.append(Sent(self.now, sender, receiver, data, lost, None if lost else arrives))
        if not lost:
            self._push(arrives, receiver, data)
