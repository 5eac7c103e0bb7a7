"""The ``sim`` backend: a topology's engines in one process, on virtual time, deterministic
for a given seed (mip6.runtime.memory underneath).

Paths between nodes cross their networks' uplinks to the core: one-way latency is the sum of
the two uplinks' latencies (a small on-link latency inside one network) and a packet survives
both uplinks' loss. The uplinks' jitter and bandwidth are modelled by the hub's emulator in the
``netns`` backend; here they are not applied yet (the memory network can shape a path between
two nodes, :class:`~mip6.runtime.memory.Path`, which an experiment sets itself).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any

from labnet.nodes import care_of_for, current_address, daemon_config, entry, mobile, read
from labnet.topology import NodeSpec, Topology
from mip6.apps.builtin import start_on_host
from mip6.apps.echo import echo
from mip6.runtime.host import Host
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.runtime.roles import build_engine
from mip6.wire import icmpv6 as icmp
from mip6.wire.ipv6 import Ipv6Packet

ON_LINK_LATENCY = 0.0001
NETWORK = {"network": {"type": "memory"}}
SHIM = NETWORK | {"kernel": {"type": "memory"}}  # the kernel: an application answering pings


class Inbox:
    """An ``external`` node in the simulator: keeps what reaches it."""

    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self._now = 0.0

    def handle_packet(self, now: float, data: bytes) -> list[object]:
        self.received.append((now, data))
        return []

    def handle_timer(self, now: float, token: object) -> list[object]:
        return []


class SimLab:
    """``options``: per node, keys of its role's configuration on top of the lab's (as in a
    ``mip6 run`` role block: ``{"ha": {"binding_cache_size": 1}}``; ``constants`` a mapping
    of :class:`~mip6.core.config.ProtocolConstants` fields). Each daemon node is built from the
    configuration the netns backend would write for it (:func:`labnet.nodes.daemon_config`),
    read and checked by the daemon's own reader; ``mode: host`` nodes get a host
    (:class:`~mip6.runtime.host.Host`) with their ``apps``, so host-mode TCP runs on virtual
    time."""

    def __init__(
        self, topology: Topology, seed: int = 0, options: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.topology = topology
        self.options = options or {}
        self.net = MemoryNetwork(seed)
        self.secret = random.Random(f"lab secret {seed}").randbytes(32)
        self.attached: dict[str, str] = {}  # node -> network it is on now
        self.addresses: dict[str, IPv6Address] = {}  # node -> current address
        self.apps: dict[str, list[Callable[[], None]]] = {}  # node -> what stops its apps
        for index, spec in enumerate(topology.nodes.values()):
            rng = random.Random(seed * 1000 + index)
            self.attached[spec.name] = spec.network
            self.addresses[spec.name] = spec.addresses[0]
            self._add(spec, rng)
        self._reroute()

    def _add(self, spec: NodeSpec, rng: random.Random) -> None:
        if spec.kind == "external":
            self.net.add(spec.name, Inbox())  # type: ignore[arg-type]
            return
        if spec.kind != "engine":
            raise ValueError(f"node {spec.name}: {spec.kind} nodes need the netns backend")
        config = read(
            daemon_config(
                self.topology,
                spec,
                links=SHIM if spec.mode == "shim" else NETWORK,
                options=self.options.get(spec.name),
                lab_secret=self.secret,
            ),
            f"<sim node {spec.name}>",
        )
        engine = build_engine(config, rng, rng.randbytes)
        found = entry(spec)
        assert found is not None
        if found.start_apps is not None:  # the engine holds its host (a member)
            self.net.add(spec.name, engine, links=config.network_links)
            self.apps[spec.name] = found.start_apps(engine, config.apps, None)
            return
        if config.mode != "host":
            self.net.add(spec.name, engine, links=config.network_links)
            self.net.application(spec.name, echo)  # as the kernel behind a shim answers pings
            return
        host = Host(
            addresses=config.host_addresses, secret=rng.randbytes(32), tcp_config=config.tcp
        )
        self.net.add(spec.name, engine, links=config.network_links, host=host)
        self.apps[spec.name] = [start_on_host(host, app) for app in config.apps]

    def _reroute(self) -> None:
        """Routes and paths for where every node is now."""
        net = self.net
        net.clear_routes()
        for spec in self.topology.nodes.values():
            found = entry(spec)
            if found is not None and found.owns_prefixes:
                for network in self.topology.networks.values():
                    if spec.addresses[0] in network.prefix:
                        net.route(network.prefix, spec.name)
        for name, address in self.addresses.items():
            net.route(address, name)
            for extra in self.topology.nodes[name].addresses[1:]:
                net.route(extra, name)
        for a in self.topology.nodes:
            for b in self.topology.nodes:
                if a != b:
                    net.path(a, b, self._path(self.attached[a], self.attached[b]), both_ways=False)

    def _path(self, network_a: str, network_b: str) -> Path:
        if network_a == network_b:
            return Path(latency=ON_LINK_LATENCY)
        up = self.topology.networks[network_a].uplink
        down = self.topology.networks[network_b].uplink
        return Path(latency=up.latency + down.latency, loss=1 - (1 - up.loss) * (1 - down.loss))

    # -- what happens in a scenario --------------------------------------------------------------

    def start(self) -> None:
        """Every daemon node starts (the engine contract's ``start``): mobile nodes away from
        home register from where they are."""
        for spec in self.topology.nodes.values():
            if mobile(spec):
                self._place(spec.name, self.attached[spec.name])
            if spec.kind == "engine":
                self.net.start(spec.name)

    def move(self, node: str, network: str) -> IPv6Address | None:
        """Detach ``node`` and attach it to ``network``: the new care-of address keeps the
        node's interface identifier under the new prefix (as stateless autoconfiguration would
        give it), or is the home address on the home network. Returns the care-of address."""
        care_of = self._place(node, network)
        self.net.call(node, "move", care_of)
        return care_of

    def _place(self, node: str, network: str) -> IPv6Address | None:
        """Attach ``node`` to ``network`` in the routes; its care-of address there."""
        spec = self.topology.nodes[node]
        target = self.topology.networks[network]
        self.net.unroute(self.addresses[node])
        self.addresses[node] = current_address(spec, target)
        self.attached[node] = network
        self._reroute()
        return care_of_for(spec, target)

    def ping(self, source: str, destination: IPv6Address, sequence: int) -> None:
        """An ICMPv6 Echo Request from ``source``'s upper layer (its home address if mobile)."""
        spec = self.topology.nodes[source]
        address = spec.home_address or spec.addresses[0]
        request = Ipv6Packet(
            source=address,
            destination=destination,
            payload=icmp.EchoRequest(identifier=0x6D36, sequence=sequence, data=b"labnet ping"),
        )
        self.net.call(source, "send", request.emit())

    def run_until(self, until: float) -> None:
        self.net.run_until(until)
