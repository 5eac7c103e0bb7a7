"""UDP services on the contact address (mip6.dserver.udp) on the in-memory network: a client's
lookups are answered by the member that holds it while it is handed from member to member,
never by two; a donor drops the client's datagrams from the freeze on; a client with a TCP
connection and a UDP flow moves as one; a stateful flow's application state travels."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

import pytest

from labnet.dserver_lab import CLIENT, CONTACT, MEMBERS, DServerLab
from mip6.apps.http import generated_body
from mip6.apps.lookup import Answer, LookupService, Query
from mip6.apps.udp_echo import UdpEchoService
from mip6.apps.udp_requests import Requester, Service
from mip6.apps.udp_stream import (
    CHUNK,
    Data,
    Get,
    StateError,
    StreamReader,
    StreamService,
    StreamState,
)
from mip6.dserver.udp import Flow
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import RoutingType2
from mip6.wire.udp import UdpDatagram

SEED = 5
LOOKUP_PORT = 53
ECHO_PORT = 7


class UdpClient:
    """The lab's client asking ``requests`` questions one after another (a Requester on its
    host's UDP), each sent from the network's scheduler."""

    def __init__(
        self, lab: DServerLab, service: Service, port: int, requests: int, timeout: float = 0.3
    ) -> None:
        self.lab, self.port, self.left = lab, port, requests
        self.requester = Requester(service, b"c", random.Random(SEED), timeout=timeout, retries=20)
        self.endpoint = lab.client_host.udp_bind(0, self._received)

    def start(self) -> None:
        self.lab.net.call_at(self.lab.net.now, self._next)

    def _send(self, datagram: bytes) -> None:
        self.endpoint.sendto(datagram, (str(CONTACT), self.port))
        self.lab.net.nodes["client"].runtime.flush_host()

    def _next(self) -> None:
        if self.left == 0:
            return
        self.left -= 1
        request_id, datagram = self.requester.request(self.lab.net.now)
        self._send(datagram)
        self._arm(request_id)

    def _arm(self, request_id: int) -> None:
        self.lab.net.call_at(self.lab.net.now + self.requester.timeout, self._expired, request_id)

    def _expired(self, request_id: int) -> None:
        datagram = self.requester.expired(self.lab.net.now, request_id)
        if datagram is not None:
            self._send(datagram)
            self._arm(request_id)
        elif self.requester.outstanding == 0:
            self._next()  # given up: on to the next

    def _received(self, data: bytes, remote: tuple[str, int], local: tuple[str, int]) -> None:
        if self.requester.answer(self.lab.net.now, data) is not None:
            self.lab.net.call_at(self.lab.net.now, self._next)

    @property
    def counters(self) -> dict[str, int]:
        return self.requester.counters

    def done(self) -> bool:
        return self.left == 0 and self.requester.outstanding == 0


def lookup_lab(handoff_every: int, *, loss: float = 0.0) -> DServerLab:
    lab = DServerLab(SEED, loss=loss)
    for member in lab.members.values():
        member.serve_datagrams(LOOKUP_PORT, LookupService(member, handoff_every))
    return lab


def run(lab: DServerLab, client: UdpClient, limit: float = 120.0) -> None:
    lab.net.run_until(1.0)  # the contact node has registered
    client.start()
    while not client.done() and lab.net.now < limit:
        lab.net.run_for(0.25)
    lab.net.run_for(3.0)  # stragglers and late duplicates arrive


def udp_counters(lab: DServerLab, name: str) -> dict[str, int]:
    return lab.members[name].udp.service_counters()


def test_lookups_handed_off_every_five_are_each_answered_by_one_member() -> None:
    lab = lookup_lab(handoff_every=5)
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=200)
    run(lab, client)
    counters = client.counters
    assert client.done()
    assert counters["answered"] == 200, counters
    assert "failed" not in counters and "wrong" not in counters
    assert "two_members" not in counters, counters
    # every member answered, and the answers say so
    by = {key: value for key, value in counters.items() if key.startswith("answered_by.")}
    assert set(by) == {f"answered_by.{address}" for address in MEMBERS.values()}, by
    # a handoff after each member's fifth answer; the client's next request reaches the donor
    # while the client is frozen there, is dropped and retried: about seven requests a member
    completed = sum(m.counters.get("handoff_completed", 0) for m in lab.members.values())
    assert completed >= 25, completed
    assert sum(m.counters.get("handoff_failed", 0) for m in lab.members.values()) == 0
    # each answer the members sent was one request's: what they answered is what the client got
    answers = sum(udp_counters(lab, name)[f"{LOOKUP_PORT}.answers"] for name in MEMBERS)
    assert answers == counters["answered"] + counters.get("duplicate", 0)
    dropped = sum(
        udp_counters(lab, name)[f"{LOOKUP_PORT}.dropped_in_handoff"]
        + udp_counters(lab, name)[f"{LOOKUP_PORT}.dropped_not_owned"]
        for name in MEMBERS
    )
    # a request dropped by a donor is retried: the client's retries cover every drop
    assert counters.get("retried", 0) >= dropped


def test_handoff_asked_before_the_client_is_bound_starts_once_it_is() -> None:
    """Without the contact node's own distribution, the service's handoff after the first
    lookup is asked while the client's binding is still under way: it waits for the binding
    (the client's first INIT then carries a number it accepts) and then starts, although the
    client has no connection, only a flow."""
    lab = DServerLab(SEED, distribute=False)
    for member in lab.members.values():
        member.serve_datagrams(LOOKUP_PORT, LookupService(member, handoff_every=1))
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=1)
    run(lab, client)
    assert client.counters["answered"] == 1, client.counters
    contact = lab.members["m1"].counters
    assert contact.get("handoff_awaiting_mipv6", 0) == 1, contact
    assert contact.get("handoff_completed", 0) == 1, contact
    assert not lab.members["m1"].udp.holds(CLIENT)


def test_lookups_with_loss_every_request_answered_or_retried_never_by_two() -> None:
    lab = lookup_lab(handoff_every=3, loss=0.02)
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=150)
    run(lab, client)
    counters = client.counters
    assert counters["answered"] == 150, counters
    assert "failed" not in counters and "two_members" not in counters, counters
    assert counters.get("retried", 0) > 0  # the loss made some


def through_binding(member: str, payload: bytes) -> bytes:
    """The client's datagram to the contact address through a binding naming ``member``."""
    return Ipv6Packet(
        source=CLIENT,
        destination=MEMBERS[member],
        extension_headers=(RoutingType2(home_address=CONTACT),),
        payload=UdpDatagram(source_port=40000, destination_port=LOOKUP_PORT, payload=payload),
    ).emit()


def test_donor_drops_datagrams_of_a_client_it_handed_off_and_counts_them() -> None:
    lab = lookup_lab(handoff_every=0)
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=1)
    run(lab, client)
    holder = next(name for name, m in lab.members.items() if m.udp.holds(CLIENT))
    donor = lab.members[holder]
    lab.handoff(holder)
    lab.net.run_for(2.0)
    assert not donor.udp.holds(CLIENT)
    assert any(m.udp.holds(CLIENT) for m in lab.members.values())
    answers = udp_counters(lab, holder)[f"{LOOKUP_PORT}.answers"]
    # a datagram the client sent before it took the acceptor's binding, reaching the donor late
    late = through_binding(holder, Query(request_id=9, name=b"late.example").emit())
    lab.net.inject(holder, late)
    lab.net.run_for(0.1)
    counters = udp_counters(lab, holder)
    assert counters[f"{LOOKUP_PORT}.dropped_not_owned"] == 1
    assert counters[f"{LOOKUP_PORT}.answers"] == answers
    assert not donor.udp.holds(CLIENT)
    # after the straggler time it is a client like any other (one whose binding ended, say)
    lab.net.run_for(donor.udp.straggler_time)
    lab.net.inject(holder, late)
    lab.net.run_for(0.1)
    assert udp_counters(lab, holder)[f"{LOOKUP_PORT}.answers"] == answers + 1


def test_client_with_a_download_and_lookups_moves_both_in_one_init() -> None:
    lab = lookup_lab(handoff_every=0)
    lab.net.run_until(1.0)
    fetch = lab.download(at=1.0)
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=400, timeout=0.2)
    client.start()
    for _ in range(6):
        lab.net.run_for(1.5)
        holder = next(
            (n for n, m in lab.members.items() if m.client_sockets(CLIENT) and not m._by_client),
            None,
        )
        if holder is not None:
            lab.handoff(holder)
    lab.run_to_end(fetch)
    while not client.done() and lab.net.now < 120:
        lab.net.run_for(0.25)
    assert fetch.done and not fetch.failed and fetch.received == lab.body.size
    counters = client.counters
    assert counters["answered"] == 400 and "two_members" not in counters, counters
    # a member held the client's flow exactly when it held its connection: every handoff
    # that moved the connection moved the flow (the same INIT)
    handed_in = sum(m.udp.counters.get("flows_handed_in", 0) for m in lab.members.values())
    accepted = sum(m.counters.get("handoff_accepted", 0) for m in lab.members.values())
    assert handed_in == accepted >= 6, (handed_in, accepted)
    holders = [n for n, m in lab.members.items() if m.udp.holds(CLIENT)]
    assert len(holders) == 1


class OffsetEcho:
    """A stateful flow's service for the test: the state is (stream id, offset) and each
    datagram answers with both; a handoff carries them (SPEC-dserver 4.13)."""

    def __init__(self, member_address: IPv6Address) -> None:
        self.address = member_address
        self.counters: dict[str, int] = {}
        self.offsets: dict[tuple[IPv6Address, int, int], int] = {}
        self.states_in: list[bytes] = []

    def received(self, flow: Flow, payload: bytes) -> None:
        offset = self.offsets.get(flow.key, 0) + len(payload)
        self.offsets[flow.key] = offset
        flow.send(b"7:%d:%s" % (offset, self.address.packed.hex().encode()))

    def export_state(self, flow: Flow) -> bytes:
        return b"7:%d" % self.offsets.get(flow.key, 0)

    def handed_in(self, flow: Flow, state: bytes) -> None:
        self.states_in.append(state)
        stream, offset = state.split(b":")
        assert stream == b"7"
        self.offsets[flow.key] = int(offset)

    def forget(self, flow: Flow) -> None:
        del self.offsets[flow.key]


def test_stateful_flow_resumes_at_its_offset_on_the_acceptor() -> None:
    lab = DServerLab(SEED)
    services = {}
    for name, member in lab.members.items():
        services[name] = OffsetEcho(member.own_address)
        member.serve_datagrams(ECHO_PORT, services[name])
    answers: list[bytes] = []
    lab.net.run_until(1.0)
    endpoint = lab.client_host.udp_bind(0, lambda data, remote, local: answers.append(data))

    def send(data: bytes) -> None:
        endpoint.sendto(data, (str(CONTACT), ECHO_PORT))
        lab.net.nodes["client"].runtime.flush_host()

    send(b"x" * 10)
    lab.net.run_for(2.0)  # distributed by the contact node, bound at the first holder
    holder = next(name for name, m in lab.members.items() if m.udp.holds(CLIENT))
    send(b"y" * 5)
    lab.net.run_for(0.5)
    lab.handoff(holder)
    lab.net.run_for(2.0)
    acceptor = next(name for name, m in lab.members.items() if m.udp.holds(CLIENT))
    assert acceptor != holder
    assert services[acceptor].states_in[-1] == b"7:15"
    send(b"z" * 3)
    lab.net.run_for(0.5)
    assert answers[-1] == b"7:18:" + MEMBERS[acceptor].packed.hex().encode()
    assert not services[holder].offsets  # forgotten on the donor


def test_echo_service_answers_with_the_payload() -> None:
    lab = DServerLab(SEED)
    for member in lab.members.values():
        member.serve_datagrams(ECHO_PORT, UdpEchoService(member, handoff_every=4))
    client = UdpClient(lab, Service.UDP_ECHO, ECHO_PORT, requests=40)
    run(lab, client)
    assert client.counters["answered"] == 40 and "wrong" not in client.counters
    # one handoff after each member's fourth echo (and the retry of the request it dropped)
    assert sum(m.counters.get("handoff_completed", 0) for m in lab.members.values()) >= 6


def test_show_udp_rows_per_service() -> None:
    lab = lookup_lab(handoff_every=0)
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=3)
    run(lab, client)
    rows = {name: lab.members[name].describe("udp", lab.net.now)["rows"] for name in lab.members}
    total = sum(row["requests"] for name in rows for row in rows[name])
    assert total == 3
    row = rows["m1"][0]
    assert row["port"] == LOOKUP_PORT and row["service"] == "LookupService"
    assert set(row) >= {"flows", "answers", "dropped_not_owned", "dropped_in_handoff", "malformed"}
    stats = lab.members["m1"].describe("stats", lab.net.now)["counters"]
    assert f"udp.{LOOKUP_PORT}.requests" in stats


def test_malformed_query_is_counted_not_answered() -> None:
    lab = lookup_lab(handoff_every=0)
    lab.net.run_until(1.0)
    lab.net.inject("m1", through_binding("m1", b"\x01\x01\x00"))
    lab.net.run_for(0.1)
    counters = udp_counters(lab, "m1")
    assert counters[f"{LOOKUP_PORT}.malformed"] == 1
    assert counters[f"{LOOKUP_PORT}.answers"] == 0


def test_answer_round_trips() -> None:
    answer = Answer(request_id=7, value=1 << 63, member=MEMBERS["m2"], name=b"a.example")
    assert Answer.parse(answer.emit()) == answer


STREAM_PORT = 5004


def test_stream_read_across_handoffs_whole_resumed_from_the_donors_offset() -> None:
    size, stream_id = 600_000, 11
    lab = DServerLab(SEED)
    services = {}
    for name, member in lab.members.items():
        services[name] = StreamService(member, size, handoff_every=5)
        member.serve_datagrams(STREAM_PORT, services[name])
    lab.net.run_until(1.0)
    reader = StreamReader(stream_id)
    progress = [0.0]

    def received(data: bytes, remote: tuple[str, int], local: tuple[str, int]) -> None:
        before = reader.offset
        get = reader.received(data)
        if reader.offset != before:
            progress[0] = lab.net.now
        if get is not None:
            lab.net.call_at(lab.net.now, send, get)

    endpoint = lab.client_host.udp_bind(0, received)

    def send(data: bytes) -> None:
        endpoint.sendto(data, (str(CONTACT), STREAM_PORT))
        lab.net.nodes["client"].runtime.flush_host()

    send(reader.start())
    progress[0] = lab.net.now
    while not reader.done and lab.net.now < 120:
        lab.net.run_for(0.1)
        if lab.net.now - progress[0] >= 0.3:  # nothing for a while: ask again
            progress[0] = lab.net.now
            send(reader.expired())
    assert reader.done and reader.offset == size
    assert b"".join(reader.data) == b"".join(generated_body(size, stream_id))
    sent_by = {k: v for k, v in reader.counters.items() if k.startswith("from.")}
    assert len(sent_by) == 3, reader.counters  # every member sent part of it
    accepted = sum(m.counters.get("handoff_accepted", 0) for m in lab.members.values())
    handed_in = sum(m.udp.counters.get("flows_handed_in", 0) for m in lab.members.values())
    resumed = sum(s.counters["resumed"] for s in services.values())
    # every flow handed in came with its state (a local handoff's too)
    assert resumed == handed_in >= accepted >= 6, (resumed, handed_in, accepted)
    # the acceptors went on from where each donor had sent to: (almost) nothing came twice
    assert reader.counters.get("duplicate", 0) <= 2 * 16 * accepted // 4, reader.counters
    assert "duplicate" not in reader.counters, reader.counters
    assert sum(s.counters["bad_state"] for s in services.values()) == 0


def test_stream_state_round_trips_and_a_bad_one_is_refused() -> None:
    state = StreamState(7, 1024, 4096)
    assert StreamState.decode(state.encode(), 10_000) == state
    for bad in (b"", state.encode()[:-1], StreamState(7, 4096, 1024).encode()):
        with pytest.raises(StateError):
            StreamState.decode(bad, 10_000)
    with pytest.raises(StateError):
        StreamState.decode(state.encode(), 2048)  # past the stream's end


class SentFlow:
    """A flow for one service's eyes: what it sends is kept."""

    def __init__(self) -> None:
        self.key = (CLIENT, 40000, STREAM_PORT)
        self.client = CLIENT
        self.requests = 1
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)


def test_handed_in_stream_goes_on_from_the_donors_sent_offset_not_the_acknowledged() -> None:
    lab = DServerLab(SEED)
    service = StreamService(lab.members["m2"], 100_000, window=8 * CHUNK)
    flow = SentFlow()
    # the donor had sent up to 8 kB; the client acknowledged 4 kB (its GET reached the acceptor)
    service.handed_in(flow, StreamState(3, 0, 8 * CHUNK).encode())  # type: ignore[arg-type]
    service.received(flow, Get(stream_id=3, offset=4 * CHUNK).emit())  # type: ignore[arg-type]
    offsets = [Data.parse(d).offset for d in flow.sent]
    assert offsets == [8 * CHUNK + i * CHUNK for i in range(4)]  # 8 kB up to 4 + 8 kB
    # the same acknowledgement again: the client lost some; from its offset
    flow.sent.clear()
    service.received(flow, Get(stream_id=3, offset=4 * CHUNK).emit())  # type: ignore[arg-type]
    assert Data.parse(flow.sent[0]).offset == 4 * CHUNK
    exported = service.export_state(flow)  # type: ignore[arg-type]
    assert exported == StreamState(3, 4 * CHUNK, 12 * CHUNK).encode()


def test_acceptor_without_the_service_refuses_and_the_client_goes_elsewhere() -> None:
    lab = DServerLab(SEED, distribute=False)  # the client stays at the contact node m1
    for name in ("m1", "m3"):  # m2 serves no lookups
        member = lab.members[name]
        member.serve_datagrams(LOOKUP_PORT, LookupService(member))
    client = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=3)
    run(lab, client)
    assert lab.members["m1"].udp.holds(CLIENT)
    lab.handoff("m1", "m2")
    lab.net.run_for(3.0)
    m2 = lab.members["m2"]
    assert m2.udp.counters["import_no_service"] == 1
    assert m2.counters["handoff_refused_import_failed"] == 1
    assert not m2.udp.holds(CLIENT)
    # the policy's next member took the client, flow and all
    assert lab.members["m3"].udp.holds(CLIENT) and not lab.members["m1"].udp.holds(CLIENT)
    more = UdpClient(lab, Service.LOOKUP, LOOKUP_PORT, requests=5)
    more.start()
    lab.net.run_for(5.0)
    assert more.counters["answered"] == 5
    assert more.counters["answered_by.2001:db8:30::1"] == 5
