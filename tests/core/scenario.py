"""The roaming triangle on the in-memory network: a home agent, a correspondent and a mobile
node that moves between two visited networks, for the scenario tests."""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

from mip6.core.config import HomeAgentConfig, MobileNodeConfig
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

HOME_PREFIX = IPv6Network("2001:db8:1::/64")
HA = IPv6Address("2001:db8:1::1")
HOME = IPv6Address("2001:db8:1::5")
CN = IPv6Address("2001:db8:2::1")
VISITED = {
    "visited1": (IPv6Network("2001:db8:3::/64"), IPv6Address("2001:db8:3::5")),
    "visited2": (IPv6Network("2001:db8:4::/64"), IPv6Address("2001:db8:4::5")),
}


class Roaming:
    def __init__(self, seed: int = 1, *, loss: float = 0.0, latency: float = 0.010) -> None:
        self.net = MemoryNetwork(seed, default_path=Path(latency=latency, loss=loss))
        self.ha = HomeAgent(
            HomeAgentConfig(
                address=HA, home_prefixes=(HOME_PREFIX,), allow_unprotected_registration=True
            ),
            random.Random(seed + 1),
        )
        self.cn = CorrespondentNode(rng=random.Random(seed + 2))
        self.mn = MobileNode(
            config=MobileNodeConfig(home_address=HOME, home_agent=HA),
            rng=random.Random(seed + 3),
        )
        self.net.add("ha", self.ha)
        self.net.add("cn", self.cn)
        self.net.add("mn", self.mn)
        self.net.route(HOME_PREFIX, "ha")
        self.net.route("2001:db8:2::/64", "cn")
        self.where: str | None = None

    def attach(self, network: str | None) -> None:
        """Move the mobile node: ``None`` is home. Routes change as movement would change them."""
        for prefix, _ in VISITED.values():
            self.net.unroute(prefix)
        self.net.unroute(HOME)
        if network is None:
            self.net.route(HOME, "mn")
            care_of = None
        else:
            prefix, care_of = VISITED[network]
            self.net.route(prefix, "mn")
        self.where = network
        self.net.call("mn", "move", care_of)

    def ping_from_correspondent(self, payload: bytes = b"ping") -> None:
        packet = Ipv6Packet(
            source=CN,
            destination=HOME,
            payload=UdpDatagram(source_port=7, destination_port=7, payload=payload),
        )
        self.net.call("cn", "send", packet.emit())

    def signalling(self) -> list[tuple[str, str | None, str, bool]]:
        """(sender, receiver, message, lost) for every Mobility Header message on the wire,
        looking inside tunnels."""
        out = []
        for sent in self.net.trace:
            packet = Ipv6Packet.parse(sent.data)
            while isinstance(packet.payload, Ipv6Packet):
                packet = packet.payload
            if isinstance(packet.payload, mh._Message):
                out.append((sent.sender, sent.receiver, type(packet.payload).__name__, sent.lost))
        return out
