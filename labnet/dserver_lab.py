"""A distributed server on the in-memory network, built from the engines directly, for tests
and benchmarks: a home agent, a contact node and two more members on networks of their own, and
a client (a correspondent node with a host, or with ``mipv6_client=False`` a :class:`PlainNode`:
a host without Mobile IPv6, as a stock kernel) on another. Paths between members, and from members
to the home agent, have latency ``lss``; from members to the client ``lcs`` (the seeds' Lss and
Lcs); the same seed gives the same packets. Each member runs the download service
(:mod:`mip6.apps.download`); ``service`` replaces it."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Hashable
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from mip6.apps.download import DownloadService
from mip6.apps.http import Body, HostDownload
from mip6.core import show
from mip6.core.actions import Action, Deliver, Transmit
from mip6.core.config import HomeAgentConfig
from mip6.core.engine import UnknownCommand
from mip6.core.ipsec.policy import (
    PairKeys,
    SaKeys,
    SecurityPolicyDatabase,
    home_registration_guard,
)
from mip6.core.ipsec.sa import Algorithm
from mip6.core.node import NodePipeline, UpperLayerError
from mip6.core.ratelimit import TokenBucket
from mip6.dserver.member import Member, MemberConfig, Service
from mip6.dserver.membership import MembershipConfig
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.runtime.host import Host
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire import protocols
from mip6.wire.walk import walk

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


def member_config(name: str, **options: Any) -> MemberConfig:
    """Member ``name``'s configuration in these labs: m1 is the contact node, every member
    knows the others, one group key; ``options`` are further MemberConfig fields."""
    return MemberConfig(
        **{
            "contact_address": CONTACT,
            "home_agent": HA,
            "own_address": MEMBERS[name],
            "contact_node": MEMBERS["m1"],
            "members": tuple(MEMBERS.values()),
            "group_key": KEY,
            **options,
        }
    )


# the contact address's SA pair with the home agent (RFC 3776), when a lab uses ESP
ESP_KEYS = PairKeys(
    binding_update=SaKeys(spi=0x5001, encryption_key=bytes(range(40, 60))),
    binding_acknowledgement=SaKeys(spi=0x5002, encryption_key=bytes(range(60, 80))),
    home_test_init=SaKeys(spi=0x5003, encryption_key=bytes(range(80, 100))),
    home_test=SaKeys(spi=0x5004, encryption_key=bytes(range(100, 120))),
)


def esp_database(home_agent_side: bool, rng: random.Random) -> SecurityPolicyDatabase:
    """The home agent's side of C's SAs, or the mobile node's, as configured: every backup
    holds the mobile node's side, with its counters at zero."""
    spd = SecurityPolicyDatabase(random_bytes=rng.randbytes)
    spd.add_pair(
        role="home_agent" if home_agent_side else "mobile_node",
        home_address=CONTACT,
        home_agent=HA,
        algorithm=Algorithm.AES_GCM_16,
        keys=ESP_KEYS,
    )
    if home_agent_side:
        for entry in home_registration_guard([HA]):
            spd.add_policy(entry)
    return spd


def home_agent(rng: random.Random, *, esp: bool = False) -> HomeAgent:
    """The labs' home agent, for HOME_PREFIX: taking unprotected registrations (no ESP), or
    with ``esp`` only C's, under its SAs."""
    return HomeAgent(
        HomeAgentConfig(
            address=HA, home_prefixes=(HOME_PREFIX,), allow_unprotected_registration=not esp
        ),
        rng,
        esp_database(True, random.Random(rng.random())) if esp else None,
    )


class PlainNode:
    """A node without Mobile IPv6, as a stock kernel without it: the IPv6 node pipeline and
    nothing more. Every packet goes to its host as it came; the host refuses a Mobility Header
    with an ICMPv6 Parameter Problem, code 1 (RFC 8200 4), sent through the pipeline's ICMPv6
    error path; it holds no binding, so its packets to the contact address always go to the
    home agent."""

    def __init__(self) -> None:
        self.pipeline = NodePipeline(
            binding_allows=lambda now, home, care_of: False,
            icmp_limiter=TokenBucket(10.0, 10),
            binding_error_limiter=TokenBucket(1.0, 10),
        )

    def start(self, now: float) -> list[Action]:
        return []

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        inbound, actions = self.pipeline.receive(now, data)
        return actions if inbound is None else [*actions, Deliver(inbound.data)]

    def send(self, now: float, data: bytes) -> list[Action]:
        return [Transmit(data)]

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        return []

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        return self.pipeline.upper_layer_error(now, invoking, message, self.send)

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        return 0

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        raise UnknownCommand(name, "plain node")

    def stop(self, now: float) -> list[Action]:
        return []

    def stopped(self) -> bool:
        return True

    def describe(self, what: str, now: float) -> dict[str, Any]:
        return show.counters(what, ("", self.pipeline.counters))


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
        distribute: bool = True,
        regenerable: bool = True,
        relay_lifetime: float = 5.0,
        attempt_timeout: float = 2.0,
        service: Callable[[str], Service] | None = None,
        membership: MembershipConfig | None = None,
        backup: bool = True,
        esp: bool = False,
        replication: bool = True,
        mipv6_client: bool = True,
        mipv6_timeout: float = 3.0,
    ) -> None:
        """``service(name)``: the service member ``name`` runs on port 80 instead of the
        download service. ``membership``: dynamic membership (m1 founds the group, m2 and m3
        join it through the contact address; as backups, which may take C over, unless ``backup``
        is False) instead of the static list. ``esp``: C's registration under ESP, the SAs
        configured on every member (RFC 3776). ``mipv6_client`` False: the client is a
        :class:`PlainNode` (no Mobile IPv6), which the contact node serves through its tunnel
        (``mipv6_timeout``: the members' ``MemberConfig.mipv6_timeout``)."""
        self.net = MemoryNetwork(seed, default_path=Path(latency=lss, loss=loss))
        rng = random.Random(seed)
        self.ha = home_agent(random.Random(rng.random()), esp=esp)
        self.net.add("ha", self.ha)
        self.net.route(HOME_PREFIX, "ha")
        self.client_host = Host(addresses=[CLIENT], secret=rng.randbytes(32))
        client_rng = random.Random(rng.random())  # drawn either way: the seeds' runs stay
        self.client: CorrespondentNode | PlainNode = (
            CorrespondentNode(rng=client_rng) if mipv6_client else PlainNode()
        )
        self.net.add("client", self.client, host=self.client_host)
        self.net.route("2001:db8:2::/64", "client")
        self.body = Body(size=size, seed=seed)
        self.members: dict[str, Member] = {}
        self.services: dict[str, Any] = {}

        def new_member(name: str, member_rng: random.Random, esp_rng: random.Random | None) -> None:
            member = Member(
                config=member_config(
                    name,
                    group_key=(key or {}).get(name, KEY),
                    prepare=prepare,
                    distribute=distribute,
                    relay_lifetime=relay_lifetime,
                    attempt_timeout=attempt_timeout,
                    rebind_timeout=2 * attempt_timeout,
                    membership=membership,
                    backup=backup,
                    replication=replication,
                    mipv6_timeout=mipv6_timeout,
                ),
                rng=member_rng,
                random_bytes=member_rng.randbytes,
                security=esp_database(False, esp_rng) if esp_rng is not None else None,
            )
            served = (
                service(name)
                if service is not None
                else DownloadService(
                    self.body, handoff_every=handoff_every, regenerable=regenerable
                )
            )
            member.serve(PORT, served)
            self.members[name] = member
            self.services[name] = served
            self.net.add(name, member)

        self._new_member = new_member
        for name, address in MEMBERS.items():
            member_rng = random.Random(rng.random())  # drawn before the ESP one, as always
            new_member(name, member_rng, random.Random(rng.random()) if esp else None)
            self.net.route(IPv6Network((address, 64), strict=False), name)
            self.net.path(name, "client", Path(latency=lcs, loss=loss))
        for name in MEMBERS:
            self.net.start(name)
        self._seed, self._esp = seed, esp
        self._lives = dict.fromkeys(MEMBERS, 1)

    def download(self, at: float = 1.0) -> HostDownload:
        """The client's GET to the contact address, started at ``at`` (the contact node has
        registered by then)."""
        self.net.run_until(at)
        fetch = HostDownload(self.client_host, self.net.now, str(CONTACT), PORT)
        self.net.nodes["client"].runtime.flush_host()
        return fetch

    def run_to_end(self, fetch: HostDownload, limit: float = 120.0) -> None:
        while not fetch.done and self.net.now < limit:
            self.net.run_for(0.25)

    def kill(self, name: str) -> None:
        """Member ``name`` dies: nothing reaches it (what is in flight to it included) and its
        timers stop."""
        self.net.unroute(IPv6Network((MEMBERS[name], 64), strict=False))
        self.net.drop_in_flight(lambda receiver, data: receiver == name)
        self.net.nodes[name].runtime.cancel_timers()

    def restart(self, name: str) -> None:
        """Member ``name``, killed, starts again: a new process (a new engine and stack, which
        know nothing of the old one's connections) on the same address, with the same
        configuration; with dynamic membership it joins the group through the contact
        address."""
        self._lives[name] += 1
        life = f"{self._seed} {name} {self._lives[name]}"
        esp_rng = random.Random(life + " esp") if self._esp else None
        self._new_member(name, random.Random(life + " rng"), esp_rng)
        self.net.route(IPv6Network((MEMBERS[name], 64), strict=False), name)
        self.net.start(name)

    def handoff(self, donor: str, target: str | None = None) -> None:
        argument = (str(CLIENT), str(MEMBERS[target]) if target else None)
        self.net.call(donor, "command", "handoff", argument)

    def data_senders(self) -> list[tuple[float, str]]:
        """Each TCP data packet that reached the client: when it was sent, by which node."""
        return [
            (sent.time, sent.sender)
            for sent in self.net.trace
            if sent.receiver == "client" and not sent.lost and len(sent.data) > 1000
        ]

    def gaps(self) -> list[float]:
        """Client-observed handoff times (DSERVER 4): the last data packet from one member to
        the first from the next, as sent (each path's latency is fixed)."""
        found = []
        previous: tuple[float, str] | None = None
        for at, sender in self.data_senders():
            if sender == "ha":
                continue
            if previous is not None and sender != previous[1]:
                found.append(at - previous[0])
            previous = (at, sender)
        return found


def innermost(data: bytes) -> tuple[bytes, int, int]:
    """The packet inside any IPv6-in-IPv6 layers, its upper-layer protocol and offset."""
    chain = walk(data)
    while chain.upper_protocol == protocols.IPV6:
        data = data[chain.upper_offset :]
        chain = walk(data)
    return data, chain.upper_protocol, chain.upper_offset


def trace_digest(net: MemoryNetwork) -> str:
    """SHA-256 over every packet the network carried (when, who to whom, lost, the bytes):
    two runs of a seed must give the same."""
    digest = hashlib.sha256()
    for sent in net.trace:
        digest.update(f"{sent.time!r} {sent.sender} {sent.receiver} {sent.lost}".encode())
        digest.update(sent.data)
    return digest.hexdigest()


def resets(net: MemoryNetwork) -> int:
    """TCP segments with RST on the wire, tunnelled or not."""
    count = 0
    for sent in net.trace:
        data, protocol, offset = innermost(sent.data)
        if protocol == protocols.TCP and data[offset + 13] & 0x04:
            count += 1
    return count
