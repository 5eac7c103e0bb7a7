"""The ``sim`` backend: a topology's engines in one process, on virtual time, deterministic
for a given seed (mip6.runtime.memory underneath).

Paths between nodes cross their networks' uplinks to the core: one-way latency is the sum of
the two uplinks' latencies (a small on-link latency inside one network) and a packet survives
both uplinks' loss. Jitter, bandwidth and queues are modelled by the hub's emulator in the
``netns`` backend; here they are not yet (a packet's size does not change its delay).
"""

from __future__ import annotations

import dataclasses
import random
from ipaddress import IPv6Address
from typing import Any, TypeVar

from labnet.topology import NodeSpec, Topology
from mip6.apps.echo import echo
from mip6.core.config import (
    CorrespondentConfig,
    HomeAgentConfig,
    MobileNodeConfig,
    ProtocolConstants,
)
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire import icmpv6 as icmp
from mip6.wire.ipv6 import Ipv6Packet

ON_LINK_LATENCY = 0.0001


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


_Config = TypeVar("_Config", CorrespondentConfig, HomeAgentConfig, MobileNodeConfig)


class SimLab:
    """``options``: per node, keys of its role's configuration on top of the lab's (as in a
    ``mip6 run`` role block: ``{"ha": {"binding_cache_size": 1}}``; ``constants`` a mapping
    of :class:`~mip6.core.config.ProtocolConstants` fields)."""

    def __init__(
        self, topology: Topology, seed: int = 0, options: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.topology = topology
        self.options = options or {}
        self.net = MemoryNetwork(seed)
        self.attached: dict[str, str] = {}  # node -> network it is on now
        self.addresses: dict[str, IPv6Address] = {}  # node -> current address
        for index, spec in enumerate(topology.nodes.values()):
            rng = random.Random(seed * 1000 + index)
            self.net.add(spec.name, self._engine(spec, rng))
            self.attached[spec.name] = spec.network
            self.addresses[spec.name] = spec.addresses[0]
            if spec.kind == "engine":
                self.net.application(spec.name, echo)
        self._reroute()

    def _engine(self, spec: NodeSpec, rng: random.Random) -> object:
        if spec.kind == "external":
            return Inbox()
        if spec.role == "home_agent":
            prefixes = tuple(
                n.prefix for n in self.topology.networks.values() if spec.addresses[0] in n.prefix
            )
            config = HomeAgentConfig(
                address=spec.addresses[0],
                home_prefixes=prefixes,
                # the sim lab has no ESP keys: say so explicitly
                allow_unprotected_registration=True,
            )
            return HomeAgent(self._configured(spec.name, config), rng)
        if spec.role == "correspondent":
            return CorrespondentNode(
                config=self._configured(spec.name, CorrespondentConfig()), rng=rng
            )
        assert spec.home_address is not None and spec.home_agent is not None
        config = MobileNodeConfig(home_address=spec.home_address, home_agent=spec.home_agent)
        return MobileNode(config=self._configured(spec.name, config), rng=rng)

    def _configured(self, node: str, config: _Config) -> _Config:
        options = dict(self.options.get(node, {}))
        if "constants" in options:
            options["constants"] = ProtocolConstants(**options["constants"])
        return dataclasses.replace(config, **options) if options else config

    def _reroute(self) -> None:
        """Routes and paths for where every node is now."""
        net = self.net
        net.clear_routes()
        for spec in self.topology.nodes.values():
            if spec.role == "home_agent":
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
        """Mobile nodes away from home register from where they are."""
        for spec in self.topology.nodes.values():
            if spec.role == "mobile_node":
                self.move(spec.name, self.attached[spec.name])

    def move(self, node: str, network: str) -> IPv6Address | None:
        """Detach ``node`` and attach it to ``network``: the new care-of address keeps the
        node's interface identifier under the new prefix (as stateless autoconfiguration would
        give it), or is the home address on the home network. Returns the care-of address."""
        spec = self.topology.nodes[node]
        target = self.topology.networks[network]
        assert spec.home_address is not None
        self.net.unroute(self.addresses[node])
        if spec.home_address in target.prefix:
            care_of = None
            self.addresses[node] = spec.home_address
        else:
            interface = int(spec.addresses[0]) & ((1 << 64) - 1)
            care_of = IPv6Address(int(target.prefix.network_address) | interface)
            self.addresses[node] = care_of
        self.attached[node] = network
        self._reroute()
        self.net.call(node, "move", care_of)
        return care_of

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
