"""How the tester reaches the implementation under test (IUT): raw IPv6 packets both ways.

:class:`Transport` is all a case ever uses. Time is the IUT's: ``receive(timeout)`` collects
what reaches the tester during the next ``timeout`` seconds of the IUT's clock, so the same
case runs on virtual time (the ``sim`` backend, a 300-second nonce expiry costs nothing) or on
a wall clock (a labnet hub's UDP link, a TUN or veth in a network namespace: those transports
implement the same four methods with a socket and ``time.monotonic``).

:class:`SimTransport` starts one of our roles in labnet's ``sim`` backend on a topology built
here: the IUT's network, and a ``tester`` external node that owns every address the tester
plays (a home address and a care-of address on different prefixes, a correspondent address,
a home agent address), so anything the IUT sends to one of them is recorded as received.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from labnet.sim import Inbox, SimLab
from labnet.topology import Network, NodeSpec, Topology, Uplink


class Transport(ABC):
    """Raw IPv6 packets to and from the IUT."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Put one IPv6 packet on the IUT's link (it arrives as if routed from its source)."""

    @abstractmethod
    def receive(self, timeout: float) -> list[tuple[float, bytes]]:
        """Every packet addressed to one of the tester's addresses that arrives within the
        next ``timeout`` seconds of the IUT's clock, with its arrival time."""

    @abstractmethod
    def now(self) -> float:
        """The IUT's clock, in seconds."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release sockets, namespaces or processes."""


class Addresses:
    """The addresses of one conformance setup (the roaming topology's plan). Subclass to
    change them."""

    home_prefix: IPv6Network = IPv6Network("2001:db8:1::/64")
    correspondent_prefix: IPv6Network = IPv6Network("2001:db8:2::/64")
    visited_prefix: IPv6Network = IPv6Network("2001:db8:3::/64")
    visited2_prefix: IPv6Network = IPv6Network("2001:db8:4::/64")
    home_agent: IPv6Address = IPv6Address("2001:db8:1::1")
    home_address: IPv6Address = IPv6Address("2001:db8:1::5")
    correspondent: IPv6Address = IPv6Address("2001:db8:2::1")
    care_of: IPv6Address = IPv6Address("2001:db8:3::5")
    care_of2: IPv6Address = IPv6Address("2001:db8:4::5")
    tester_correspondent: IPv6Address = IPv6Address("2001:db8:2::99")
    home_link_node: IPv6Address = IPv6Address("2001:db8:1::77")


ADDRESSES = Addresses()


def topology_for(role: str, plan: Addresses = ADDRESSES) -> Topology:
    """The roaming topology's networks with our ``role`` as the IUT and one external tester
    node owning every address the tester plays. Built in code: an external node with
    addresses on several prefixes is what the tester needs and what the YAML loader refuses
    (it checks each address against the node's one network)."""
    networks = {
        "home": Network("home", plan.home_prefix, Uplink(latency=0.010)),
        "correspondent": Network("correspondent", plan.correspondent_prefix, Uplink(0.005)),
        "visited1": Network("visited1", plan.visited_prefix, Uplink(latency=0.015)),
        "visited2": Network("visited2", plan.visited2_prefix, Uplink(latency=0.025)),
    }
    if role == "cn":
        iut = NodeSpec("iut", "engine", "correspondent", "correspondent", (plan.correspondent,))
        tester = (plan.home_address, plan.care_of, plan.care_of2, plan.home_agent)
    elif role == "ha":
        iut = NodeSpec("iut", "engine", "home_agent", "home", (plan.home_agent,), "router")
        # The home address too: what the home agent forwards onto the home link for it (no
        # registration) reaches the tester, as if the mobile node were at home.
        tester = (
            plan.care_of,
            plan.care_of2,
            plan.tester_correspondent,
            plan.home_link_node,
            plan.home_address,
        )
    elif role == "mn":
        iut = NodeSpec(
            "iut",
            "engine",
            "mobile_node",
            "visited1",
            (plan.care_of,),
            home_address=plan.home_address,
            home_agent=plan.home_agent,
        )
        tester = (plan.home_agent, plan.tester_correspondent)
    else:
        raise ValueError(f"unknown role {role!r} (cn, ha, mn)")
    nodes = {
        "iut": iut,
        "tester": NodeSpec("tester", "external", None, "visited1", tester),
    }
    return Topology(f"conformance-{role}", "<conformance>", networks, nodes)


class SimTransport(Transport):
    """Our own ``role`` engine in labnet's sim backend (virtual time, deterministic)."""

    def __init__(
        self,
        role: str,
        *,
        seed: int = 0,
        plan: Addresses = ADDRESSES,
        iut_config: dict[str, Any] | None = None,
    ) -> None:
        self.role = role
        self.plan = plan
        self.lab = SimLab(topology_for(role, plan), seed=seed, options={"iut": iut_config or {}})
        inbox = self.lab.net.nodes["tester"].engine
        assert isinstance(inbox, Inbox)
        self._inbox = inbox
        self._seen = 0

    @property
    def engine(self) -> Any:
        """The IUT engine (for the IUT control hook and for mutation runs)."""
        return self.lab.net.nodes["iut"].engine

    def send(self, data: bytes) -> None:
        self.lab.net.inject("iut", data)

    def receive(self, timeout: float) -> list[tuple[float, bytes]]:
        self.lab.net.run_for(timeout)
        fresh = self._inbox.received[self._seen :]
        self._seen = len(self._inbox.received)
        return list(fresh)

    def now(self) -> float:
        return self.lab.net.now
