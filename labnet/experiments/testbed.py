"""The seeds' testbed (004 section 6, Fig. 9; SPEC-dserver 9.1) as a labnet topology: a client,
a core router that emulates latency, and two sites behind home agents HA1 and HA2, each with a
member (Node 1 and Node 2). The contact address lies on HA1's home prefix; the first member
listed is the contact node.

labnet's topologies are a star of uplinks around the core (:mod:`labnet.topology`), so the
three one-way latencies the seeds set on their tunnels (Lss between the members, Lcs1 and Lcs2
from each member to the client) become three uplinks solved from them::

    client uplink = (Lcs1 + Lcs2 - Lss) / 2
    site1 uplink  = (Lss + Lcs1 - Lcs2) / 2
    site2 uplink  = (Lss + Lcs2 - Lcs1) / 2

which needs |Lcs1 - Lcs2| <= Lss <= Lcs1 + Lcs2 (every Fig. 12 point is inside). HA1 sits on
its own home network (a care-of address on the home link is refused, RFC 3775 3.1), with
site 1's uplink, so the client reaches it in Lcs1 and Node 2 in Lss as through the seeds'
HA1; and each home agent is its site's router, so the simulator gives each member and its
home agent an on-link path (:func:`sim_lab`), as the seeds' Ethernet between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from labnet.dserver_lab import innermost
from labnet.sim import ON_LINK_LATENCY, SimLab
from labnet.topology import Network, NodeSpec, Topology, Uplink
from mip6.runtime.config import AppConfig
from mip6.runtime.memory import Path
from mip6.wire import protocols

CLIENT = IPv6Address("2001:db8:30::1")
HA1 = IPv6Address("2001:db8:1::1")
HA2 = IPv6Address("2001:db8:20::1")
CONTACT = IPv6Address("2001:db8:1::100")
NODES = {"node1": IPv6Address("2001:db8:10::10"), "node2": IPv6Address("2001:db8:20::10")}
SITES = {"node1": "site1", "node2": "site2"}
ROUTERS = {"node1": "ha1", "node2": "ha2"}  # each member's home agent, its site's router
NETWORKS = {"client": "client", "ha1": "home1", "ha2": "site2"} | SITES  # each node's network
_PREFIXES = {
    "client": IPv6Network("2001:db8:30::/64"),
    "home1": IPv6Network("2001:db8:1::/64"),
    "site1": IPv6Network("2001:db8:10::/64"),
    "site2": IPv6Network("2001:db8:20::/64"),
}


@dataclass(frozen=True, slots=True)
class Testbed:
    """One setting of the testbed: one-way latencies in seconds, the members' bandwidth in
    bits per second (None: unshaped). The seeds shaped what the home agents send to the core;
    the simulator shapes the path between the members, each way (:func:`sim_lab`), which the
    state transfer takes, and, with ``shape_sites``, as the seeds did: everything a site (a
    member and its home agent) sends out of it, through one queue per site."""

    lss: float
    lcs1: float
    lcs2: float
    bandwidth: float | None = None
    shape_sites: bool = False
    members: tuple[str, ...] = ("node1", "node2")  # the first is the contact node
    apps: tuple[AppConfig, ...] = ()  # every member's
    member_options: Mapping[str, Any] = field(default_factory=dict)  # keys of its role block

    def uplinks(self) -> dict[str, float]:
        """Each network's uplink latency (seconds), solved from the three path latencies."""
        lss, lcs1, lcs2 = self.lss, self.lcs1, self.lcs2
        slack = 1e-12  # seconds: Lcs2 = Lcs1 + Lss computed in floating point is on the edge
        if not abs(lcs1 - lcs2) - slack <= lss <= lcs1 + lcs2 + slack:
            raise ValueError(
                f"Lss {lss * 1e3:g} ms, Lcs1 {lcs1 * 1e3:g} ms, Lcs2 {lcs2 * 1e3:g} ms: a star "
                "of uplinks needs |Lcs1 - Lcs2| <= Lss <= Lcs1 + Lcs2"
            )
        site1 = max((lss + lcs1 - lcs2) / 2, 0.0)  # never a rounding's -1e-18
        return {
            "client": max((lcs1 + lcs2 - lss) / 2, 0.0),
            "home1": site1,
            "site1": site1,
            "site2": max((lss + lcs2 - lcs1) / 2, 0.0),
        }


def topology(testbed: Testbed) -> Topology:
    """The testbed as a labnet topology (the client in host mode: a host to run probes on)."""
    networks = {
        name: Network(name, _PREFIXES[name], Uplink(latency=latency, bandwidth=testbed.bandwidth))
        for name, latency in testbed.uplinks().items()
    }
    nodes = [
        NodeSpec("client", "engine", "correspondent", "client", (CLIENT,), mode="host"),
        NodeSpec("ha1", "engine", "home_agent", "home1", (HA1,)),
        NodeSpec("ha2", "engine", "home_agent", "site2", (HA2,)),
    ]
    nodes += [
        NodeSpec(
            member,
            "engine",
            "member",
            SITES[member],
            (NODES[member],),
            mode="host",
            home_address=CONTACT,
            home_agent=HA1,
            apps=testbed.apps,
            options=dict(testbed.member_options),
        )
        for member in testbed.members
    ]
    return Topology(
        "seeds-testbed", "<seeds' testbed, 004 Fig. 9>", networks, {n.name: n for n in nodes}
    )


def sim_lab(testbed: Testbed, seed: int = 1) -> SimLab:
    """The testbed on the simulator, started: the contact node registers at once."""
    lab = SimLab(topology(testbed), seed=seed)
    for member in testbed.members:
        # the member's home agent routes its site: one on-link hop, not two uplinks
        lab.net.path(member, ROUTERS[member], Path(latency=ON_LINK_LATENCY))
    if testbed.bandwidth is not None and testbed.shape_sites:
        _shape_sites(lab, testbed, testbed.bandwidth)
    elif testbed.bandwidth is not None:
        uplinks = testbed.uplinks()
        for a, b in itertools.permutations(testbed.members, 2):
            latency = uplinks[SITES[a]] + uplinks[SITES[b]]  # as SimLab's path between them
            shaped = Path(latency=latency, bandwidth_bits_per_s=testbed.bandwidth)
            lab.net.path(a, b, shaped, both_ways=False)
    lab.start()
    return lab


def _shape_sites(lab: SimLab, testbed: Testbed, bandwidth: float) -> None:
    """The seeds' cbq on each home agent's interface to the core: every path from a site's
    nodes (the member and its home agent) to a node outside the site leaves through one
    queue, the site's, at ``bandwidth``; what the client sends stays unshaped."""
    uplinks = testbed.uplinks()
    for member in NODES:
        inside = (member, ROUTERS[member])
        queue = f"{SITES[member]} uplink"
        for sender in inside:
            if sender not in lab.net.nodes:
                continue  # a member this setting leaves out
            for receiver in lab.net.nodes:
                if receiver in inside:
                    continue
                latency = uplinks[NETWORKS[sender]] + uplinks[NETWORKS[receiver]]
                shaped = Path(latency=latency, bandwidth_bits_per_s=bandwidth, shared_queue=queue)
                lab.net.path(sender, receiver, shaped, both_ways=False)


class ClientTap:
    """What reaches the client, timed on arrival (as tcpdump on the client would see it):
    every packet passes through :meth:`saw` before the client's stack gets it."""

    def __init__(self, lab: SimLab, keep: Callable[[bytes], bool]) -> None:
        self.seen: list[tuple[float, IPv6Address, bytes]] = []  # (arrival, outer source, packet)
        runtime = lab.net.nodes["client"].runtime
        deliver = runtime.from_network
        net = lab.net

        def saw(data: bytes) -> None:
            if keep(data):
                self.seen.append((net.now, IPv6Address(data[8:24]), data))
            deliver(data)

        runtime.from_network = saw  # type: ignore[method-assign]

    def senders(self, known: Mapping[IPv6Address, str]) -> Iterable[tuple[float, str]]:
        """Each kept packet's arrival time and its sender's name (by outer source address)."""
        for at, source, _ in self.seen:
            yield at, known.get(source, str(source))


def tcp_data(data: bytes) -> bool:
    """A TCP segment carrying data, tunnelled or not."""
    packet, protocol, offset = innermost(data)
    if protocol != protocols.TCP or len(packet) < offset + 13:
        return False
    header = (packet[offset + 12] >> 4) * 4
    return len(packet) > offset + header


def names() -> dict[IPv6Address, str]:
    """The testbed's nodes by address."""
    return {HA1: "ha1", HA2: "ha2", CLIENT: "client"} | {a: n for n, a in NODES.items()}


def handoff_gaps(arrivals: Iterable[tuple[float, str]], donor: str, acceptor: str) -> list[float]:
    """From each last data packet of ``donor`` to the next one, of ``acceptor``."""
    gaps: list[float] = []
    previous: tuple[float, str] | None = None
    for at, sender in arrivals:
        if previous is not None and previous[1] == donor and sender == acceptor:
            gaps.append(at - previous[0])
        previous = (at, sender)
    return gaps
