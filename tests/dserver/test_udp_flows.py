"""The member's flow table (mip6.dserver.udp.DatagramServices) on a bare host: bounded in flows
and in handed-off clients remembered, idle flows forgotten (their service told), datagrams to
the member's own address refused, and who answers: the holder, never a frozen or released
client's member."""

from __future__ import annotations

from ipaddress import IPv6Address

from mip6.dserver.udp import DatagramServices, Flow
from mip6.runtime.host import Host, Transmit
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

CONTACT = IPv6Address("2001:db8:1::c")
OWN = IPv6Address("2001:db8:10::1")
PORT = 53


class Answering:
    """Answers every datagram with its payload; remembers what it was told to forget."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.forgotten: list[tuple[IPv6Address, int, int]] = []

    def received(self, flow: Flow, payload: bytes) -> None:
        flow.send(payload)

    def export_state(self, flow: Flow) -> bytes:
        return b"s%d" % flow.client_port

    def handed_in(self, flow: Flow, state: bytes) -> None:
        assert state == b"s%d" % flow.client_port

    def forget(self, flow: Flow) -> None:
        self.forgotten.append(flow.key)


class Table:
    def __init__(self, **limits: float) -> None:
        self.now = 0.0
        self.new: list[IPv6Address] = []
        self.host = Host(addresses=(OWN, CONTACT), secret=bytes(32))
        self.udp = DatagramServices(
            self.host,
            CONTACT,
            lambda: self.now,
            self.new.append,
            **limits,  # type: ignore[arg-type]
        )
        self.service = Answering()
        self.udp.serve(PORT, self.service)

    def datagram(self, client: int, client_port: int = 40000, to: IPv6Address = CONTACT) -> int:
        """A client's datagram; how many answers left."""
        packet = Ipv6Packet(
            source=IPv6Address(f"2001:db8:2::{client:x}"),
            destination=to,
            payload=UdpDatagram(source_port=client_port, destination_port=PORT, payload=b"q"),
        )
        actions = self.host.deliver(self.now, packet.emit())
        return sum(isinstance(action, Transmit) for action in actions)

    def counter(self, name: str) -> int:
        return self.udp.service_counters().get(name, 0)


def client(number: int) -> IPv6Address:
    return IPv6Address(f"2001:db8:2::{number:x}")


def test_flow_table_full_refuses_a_new_flow_and_counts_it() -> None:
    table = Table(max_flows=3)
    assert [table.datagram(n) for n in (1, 2, 3, 4)] == [1, 1, 1, 0]
    assert table.counter("flows_full") == 1 and table.counter("flows") == 3
    assert table.new == [client(1), client(2), client(3)]  # each one's first datagram
    assert table.datagram(1, 40001) == 0  # another port of a client: a flow too
    assert table.datagram(1) == 1  # a flow it has goes on


def test_idle_flows_are_forgotten_and_their_service_told() -> None:
    table = Table(flow_idle=10.0)
    table.datagram(1)
    table.now = 5.0
    table.datagram(2)
    table.udp.expire(12.0)
    assert table.udp.clients() == {client(2)}
    assert table.service.forgotten == [(client(1), 40000, PORT)]
    assert table.counter("flows_expired") == 1


def test_frozen_then_released_client_is_dropped_then_served_after_the_straggler_time() -> None:
    table = Table(straggler_time=2.0)
    table.datagram(1)
    table.udp.freeze(client(1))
    assert table.datagram(1) == 0 and table.counter(f"{PORT}.dropped_in_handoff") == 1
    [state] = table.udp.export(client(1))
    assert state.datagram and state.application_state == b"s40000"
    table.udp.release(client(1))
    assert table.service.forgotten == [(client(1), 40000, PORT)]
    table.now = 1.0
    assert table.datagram(1) == 0 and table.counter(f"{PORT}.dropped_not_owned") == 1
    assert not table.udp.holds(client(1))
    table.now = 2.5
    assert table.datagram(1) == 1 and table.udp.holds(client(1))


def test_imported_flow_waits_for_the_thaw() -> None:
    donor, acceptor = Table(), Table()
    donor.datagram(1)
    donor.udp.freeze(client(1))
    [state] = donor.udp.export(client(1))
    assert acceptor.udp.import_(client(1), state)
    assert acceptor.datagram(1) == 0  # not bound here yet
    acceptor.udp.thaw(client(1))
    assert acceptor.datagram(1) == 1
    assert acceptor.new == []  # handed in: not a new client


def test_released_clients_remembered_are_bounded() -> None:
    table = Table(max_flows=4)
    for number in range(1, 11):
        table.udp.release(client(number))
    assert len(table.udp._released) == 4
    table.now = 0.5
    assert table.datagram(1) == 1  # forgotten first: served again


def test_datagram_to_the_members_own_address_is_not_a_service() -> None:
    table = Table()
    assert table.datagram(1, to=OWN) == 0
    assert table.counter("not_to_contact_address") == 1 and table.counter(f"{PORT}.requests") == 0


def test_import_of_a_port_not_served_or_a_bad_record_fails() -> None:
    donor, acceptor = Table(), Table()
    donor.datagram(1)
    [state] = donor.udp.export(client(1))
    acceptor.udp.stop_serving(PORT)
    assert not acceptor.udp.import_(client(1), state)
    assert acceptor.counter("import_no_service") == 1
    table = Table()
    bad = type(state)(snapshot=b"\x00\x00\x00\x35", datagram=True)
    assert not table.udp.import_(client(1), bad)
    assert table.counter("import_malformed") == 1
