"""A distributed server on the in-memory network, for the member tests: a home agent, a contact
node and two more members on networks of their own, and a client (a correspondent node with a
host) on another; every path with its own latency, the same seed giving the same packets."""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

from mip6.apps.download import DownloadService
from mip6.apps.http import Body
from mip6.core.config import HomeAgentConfig
from mip6.dserver.member import Member, MemberConfig
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.runtime.host import Host
from mip6.runtime.memory import MemoryNetwork, Path

HOME_PREFIX = IPv6Network("2001:db8:1::/64")
HA = IPv6Address("2001:db8:1::1")
CONTACT = IPv6Address("2001:db8:1::c")
CLIENT = IPv6Address("2001:db8:2::1")
MEMBERS = {
    "m1": IPv6Address("2001:db8:10::1"),
    "m2": IPv6Address("2001:db8:20::1"),
    "m3": IPv6Address("2001:db8:30::1"),
}
KEY = bytes(range(32, 64))
PORT = 80


class DServerLab:
    def __init__(
        self,
        seed: int = 1,
        *,
        size: int = 2_000_000,
        handoff_every: int = 0,
        loss: float = 0.0,
        prepare: bool = True,
        lss: float = 0.010,
        lcs: float = 0.020,
        key: dict[str, bytes] | None = None,
    ) -> None:
        self.net = MemoryNetwork(seed, default_path=Path(latency=lss, loss=loss))
        rng = random.Random(seed)
        self.ha = HomeAgent(
            HomeAgentConfig(
                address=HA, home_prefixes=(HOME_PREFIX,), allow_unprotected_registration=True
            ),
            random.Random(rng.random()),
        )
        self.net.add("ha", self.ha)
        self.net.route(HOME_PREFIX, "ha")
        self.client_host = Host(addresses=[CLIENT], secret=rng.randbytes(32))
        self.client = CorrespondentNode(rng=random.Random(rng.random()))
        self.net.add("client", self.client, host=self.client_host)
        self.net.route("2001:db8:2::/64", "client")
        self.body = Body(size=size, seed=seed)
        self.members: dict[str, Member] = {}
        self.services: dict[str, DownloadService] = {}
        for name, address in MEMBERS.items():
            member_rng = random.Random(rng.random())
            member = Member(
                config=MemberConfig(
                    contact_address=CONTACT,
                    home_agent=HA,
                    own_address=address,
                    contact_node=MEMBERS["m1"],
                    members=tuple(MEMBERS.values()),
                    group_key=(key or {}).get(name, KEY),
                    prepare=prepare,
                ),
                rng=member_rng,
                random_bytes=member_rng.randbytes,
            )
            service = DownloadService(self.body, handoff_every=handoff_every)
            member.serve(PORT, service)
            self.members[name] = member
            self.services[name] = service
            self.net.add(name, member)
            self.net.route(IPv6Network((address, 64), strict=False), name)
            self.net.path(name, "client", Path(latency=lcs, loss=loss))
        for name in MEMBERS:
            self.net.start(name)
