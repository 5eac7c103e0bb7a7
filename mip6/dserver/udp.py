"""UDP services on the contact address (DSERVER.md section 8; the seeds' future work,
SPEC-dserver 4.13), sans-I/O: the member's datagram services, its clients' flows, and which
clients' datagrams it may answer.

A request/response service moves by traffic switching alone (SPEC-dserver 4.13: "the donor asks
the acceptor to run route optimization; the client retransmits and the retry reaches the
acceptor"). A client is its address, as for TCP: its binding for the contact address is per
client, so a handoff moves its TCP connections and its UDP flows together, in one INIT
(DSERVER 4 rule 1). A flow is (client address, client port, service port); the INIT carries
each as a :class:`FlowRepr` with the service's state for it (:meth:`DatagramService.
export_state`: a streaming service's stream id and offset, SPEC-dserver 4.13's "application-
level handoff"; empty for a stateless one).

Who answers a client's datagram, so that no request is answered by two members:

- the member that holds the client: answers;
- a donor, from the freeze to the handoff's end (the client's binding is moving): drops it,
  counted ``dropped_in_handoff``. The client retransmits; the retry reaches whoever holds the
  binding then (the acceptor, or this member again if the handoff failed);
- a donor after the handoff completed: drops it, never re-handles it (SPEC-dserver 4.13: "the
  donor receiving the datagram must not start the handover procedure again, but instead discard
  the datagram"), counted ``dropped_not_owned``. Such a datagram was sent before the client took
  the acceptor's Binding Update (the acceptor sends DONE only once the client's binding names
  it), so the client's retry goes to the acceptor. The donor remembers the client for
  ``straggler_time`` seconds: longer than any datagram stays in flight, short enough that a
  client whose binding ended and which comes back through the home agent's tunnel to the
  contact node is served again;
- an acceptor, between the import and the thaw: drops it (``dropped_in_handoff``); its binding
  is not confirmed yet. An acceptor whose handoff failed after the import lets the client go as
  a donor does (its Binding Update may have reached the client before the donor rebinds it).

The contact node is told of each client's first datagram (``new_client``), as of each new TCP
client: it route-optimizes the client and lets the policy place it (DSERVER 3).

Bounds: at most ``max_flows`` flows (a datagram that would open one more is dropped and counted
``flows_full``), each forgotten after ``flow_idle`` seconds without a datagram; at most
``max_flows`` handed-off clients remembered, the oldest forgotten first. A member's
configuration sets them (``udp_flows``, ``udp_flow_idle``, ``udp_straggler_time``).

Not done: a member's UDP flows are not in the replicas it sends its buddy (DSERVER 5), so a
UDP-only client of a member that dies is answered again only once its binding expires and it
comes back through the home agent to the contact node.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any, Protocol

from mip6.dserver.messages import ConnectionState
from mip6.wire.errors import Malformed, Truncated

if TYPE_CHECKING:
    from mip6.runtime.host import Host, UdpEndpoint

MAX_FLOWS = 65536
FLOW_IDLE = 60.0  # seconds without a datagram before a flow is forgotten (conntrack: 30-120)
STRAGGLER_TIME = 2.0  # seconds a donor drops a handed-off client's datagrams

# A flow in an INIT: | Client Port (16) | Service Port (16) |
_FLOW = struct.Struct("!HH")
FLOW_LENGTH = _FLOW.size


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRepr:
    """A UDP flow's ports as an INIT carries them (the client's address is the INIT's)."""

    client_port: int
    service_port: int

    @classmethod
    def parse(cls, data: bytes) -> FlowRepr:
        if len(data) < FLOW_LENGTH:
            raise Truncated("shorter than a flow", len(data), "flow")
        if len(data) > FLOW_LENGTH:
            raise Malformed("bytes after the flow", FLOW_LENGTH, "length")
        client_port, service_port = _FLOW.unpack(data)
        if client_port == 0:
            raise Malformed("client port 0", 0, "client_port")
        if service_port == 0:
            raise Malformed("service port 0", 2, "service_port")
        return cls(client_port=client_port, service_port=service_port)

    def emit(self) -> bytes:
        return _FLOW.pack(self.client_port, self.service_port)


class Flow:
    """One client's datagrams to one service port. ``requests``: datagrams it brought here
    since it arrived (a handoff starts it again)."""

    __slots__ = ("_services", "client", "client_port", "last_heard", "port", "requests")

    def __init__(
        self, services: DatagramServices, client: IPv6Address, client_port: int, port: int
    ) -> None:
        self._services = services
        self.client = client
        self.client_port = client_port
        self.port = port
        self.last_heard = 0.0
        self.requests = 0

    @property
    def key(self) -> tuple[IPv6Address, int, int]:
        return (self.client, self.client_port, self.port)

    def send(self, payload: bytes) -> None:
        """One datagram to the client, from the contact address's service port."""
        self._services.send(self, payload)


class DatagramService(Protocol):
    """A UDP service on the contact address, driven by its flows' datagrams. ``counters``:
    its own (``mip6 show udp`` and ``stats`` show them beside the member's)."""

    counters: dict[str, int]

    def received(self, flow: Flow, payload: bytes) -> None:
        """A datagram of ``flow``, which this member holds: answer with ``flow.send``."""

    def export_state(self, flow: Flow) -> bytes:
        """The flow's application state for an INIT (empty for a stateless service)."""

    def handed_in(self, flow: Flow, state: bytes) -> None:
        """A flow came with a handoff; its datagrams come once the client is bound here."""

    def forget(self, flow: Flow) -> None:
        """``flow`` is served here no more: another member holds its client, or it was idle
        for ``flow_idle``, or its client's handoff failed (at the acceptor) or was reset."""


@dataclass(slots=True)
class _Served:
    service: DatagramService
    endpoint: UdpEndpoint
    counters: dict[str, int]


COUNTERS = ("requests", "answers", "dropped_not_owned", "dropped_in_handoff")


class DatagramServices:
    """The member's UDP services and flows (see the module docstring). ``clock`` gives the
    time of the member's entry point that is running; ``new_client`` is called (at the
    contact node) with a client whose first datagram came here."""

    def __init__(
        self,
        host: Host,
        contact_address: IPv6Address,
        clock: Callable[[], float],
        new_client: Callable[[IPv6Address], None],
        *,
        max_flows: int = MAX_FLOWS,
        flow_idle: float = FLOW_IDLE,
        straggler_time: float = STRAGGLER_TIME,
    ) -> None:
        self._host = host
        self._contact = contact_address
        self._contact_text = str(contact_address)
        self._clock = clock
        self._new_client = new_client
        self.max_flows = max_flows
        self.flow_idle = flow_idle
        self.straggler_time = straggler_time
        self._served: dict[int, _Served] = {}
        self._flows: dict[tuple[IPv6Address, int, int], Flow] = {}
        self._by_client: dict[IPv6Address, set[tuple[IPv6Address, int, int]]] = {}
        self._frozen: set[IPv6Address] = set()
        self._released: OrderedDict[IPv6Address, float] = OrderedDict()  # client -> until
        self.counters: dict[str, int] = {}

    # -- services --------------------------------------------------------------------------------

    def serve(self, port: int, service: DatagramService) -> None:
        """Run ``service`` on the contact address's UDP ``port``."""
        if port in self._served:
            raise ValueError(f"UDP port {port} is already served")
        endpoint = self._host.udp_bind(
            port, lambda data, remote, local: self._datagram(port, data, remote, local)
        )
        self._served[port] = _Served(service, endpoint, dict.fromkeys(COUNTERS, 0))

    def stop_serving(self, port: int) -> None:
        served = self._served.pop(port, None)
        if served is not None:
            served.endpoint.close()
            for key in [key for key in self._flows if key[2] == port]:
                self._forget_flow(key)  # (the service is gone with its flows)

    # -- datagrams -------------------------------------------------------------------------------

    def _datagram(
        self, port: int, payload: bytes, remote: tuple[str, int], local: tuple[str, int]
    ) -> None:
        served = self._served[port]
        if local[0] != self._contact_text:
            self._count("not_to_contact_address")  # the member's own address: not a service
            return
        client, client_port = IPv6Address(remote[0]), remote[1]
        now = self._clock()
        if client in self._frozen:
            served.counters["dropped_in_handoff"] += 1
            return
        until = self._released.get(client)
        if until is not None:
            if now < until:
                served.counters["dropped_not_owned"] += 1
                return
            del self._released[client]
        key = (client, client_port, port)
        flow = self._flows.get(key)
        if flow is None:
            if len(self._flows) >= self.max_flows:
                self._count("flows_full")
                return
            first = client not in self._by_client
            flow = self._add_flow(client, client_port, port)
            if first:
                self._new_client(client)
        flow.last_heard = now
        flow.requests += 1
        served.counters["requests"] += 1
        served.service.received(flow, payload)

    def send(self, flow: Flow, payload: bytes) -> None:
        served = self._served.get(flow.port)
        if served is None or self._flows.get(flow.key) is not flow:
            self._count("send_not_held")  # a service writing to a flow it was told is gone
            return
        served.counters["answers"] += 1
        served.endpoint.sendto(
            payload, (str(flow.client), flow.client_port), source=self._contact_text
        )

    def _add_flow(self, client: IPv6Address, client_port: int, port: int) -> Flow:
        flow = Flow(self, client, client_port, port)
        self._flows[flow.key] = flow
        self._by_client.setdefault(client, set()).add(flow.key)
        return flow

    def _forget_flow(self, key: tuple[IPv6Address, int, int]) -> Flow | None:
        """The flow out of the tables, its service told (if it still runs)."""
        flow = self._flows.pop(key, None)
        if flow is not None:
            keys = self._by_client[flow.client]
            keys.discard(key)
            if not keys:
                del self._by_client[flow.client]
            served = self._served.get(key[2])
            if served is not None:
                served.service.forget(flow)
        return flow

    # -- the handoff's side ---------------------------------------------------------------------

    def holds(self, client: IPv6Address) -> bool:
        """Whether ``client`` has flows here."""
        return client in self._by_client

    def clients(self) -> set[IPv6Address]:
        return set(self._by_client)

    def freeze(self, client: IPv6Address) -> None:
        """A handoff of ``client`` froze it here: its datagrams are dropped until thawed."""
        self._frozen.add(client)

    def thaw(self, client: IPv6Address) -> None:
        """``client`` is bound here (again): its datagrams are answered."""
        self._frozen.discard(client)

    def export(self, client: IPv6Address) -> list[ConnectionState]:
        """The client's flows, for its INIT."""
        states = []
        for key in sorted(self._by_client.get(client, ()), key=lambda key: key[1:]):
            flow = self._flows[key]
            states.append(
                ConnectionState(
                    snapshot=FlowRepr(client_port=flow.client_port, service_port=flow.port).emit(),
                    datagram=True,
                    application_state=self._served[flow.port].service.export_state(flow),
                )
            )
        return states

    def import_(self, client: IPv6Address, state: ConnectionState) -> bool:
        """One flow of an INIT, held frozen until :meth:`thaw`; False when it cannot be (a
        malformed record, a port no service here serves, the table full)."""
        try:
            record = FlowRepr.parse(state.snapshot)
        except (Truncated, Malformed):
            self._count("import_malformed")
            return False
        served = self._served.get(record.service_port)
        if served is None:
            self._count("import_no_service")
            return False
        key = (client, record.client_port, record.service_port)
        if key not in self._flows and len(self._flows) >= self.max_flows:
            self._count("flows_full")
            return False
        self._frozen.add(client)
        self._released.pop(client, None)
        self._forget_flow(key)  # (a flow left from before: the INIT's is newer)
        flow = self._add_flow(client, record.client_port, record.service_port)
        flow.last_heard = self._clock()
        served.service.handed_in(flow, state.application_state)
        self._count("flows_handed_in")
        return True

    def release(self, client: IPv6Address) -> None:
        """The handoff completed: another member holds ``client``. Its flows are forgotten and
        its stragglers dropped for ``straggler_time``."""
        self._frozen.discard(client)
        for key in list(self._by_client.get(client, ())):
            self._forget_flow(key)
            self._count("flows_handed_off")
        self._released.pop(client, None)
        self._released[client] = self._clock() + self.straggler_time
        while len(self._released) > self.max_flows:
            self._released.popitem(last=False)

    def forget(self, client: IPv6Address) -> None:
        """Drop ``client``'s flows: a member that reset the client (it is bound nowhere)."""
        self._frozen.discard(client)
        for key in list(self._by_client.get(client, ())):
            self._forget_flow(key)

    # -- upkeep and show -------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Forget idle flows (not a frozen client's: its handoff ends them) and handed-off
        clients whose stragglers' time is over."""
        for key, flow in list(self._flows.items()):
            if flow.client not in self._frozen and now - flow.last_heard >= self.flow_idle:
                self._forget_flow(key)
                self._count("flows_expired")
        while self._released and next(iter(self._released.values())) <= now:
            self._released.popitem(last=False)

    def rows(self) -> list[dict[str, Any]]:
        """``mip6 show udp``: one row per service."""
        flows: dict[int, int] = {}
        for key in self._flows:
            flows[key[2]] = flows.get(key[2], 0) + 1
        return [
            {
                "port": port,
                "service": type(served.service).__name__,
                "flows": flows.get(port, 0),
                **served.counters,
                **served.service.counters,
            }
            for port, served in sorted(self._served.items())
        ]

    def service_counters(self) -> dict[str, int]:
        """Every service's counters as ``<port>.<name>``, and the table's own."""
        out = dict(self.counters)
        for port, served in self._served.items():
            counters = served.counters | served.service.counters
            out |= {f"{port}.{name}": value for name, value in counters.items()}
        out["flows"] = len(self._flows)
        return out

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
