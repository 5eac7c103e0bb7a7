"""The fast path's TCP host (mip6.runtime.fast.FastHost): a member's established connections
take their segments in C, their answers leave in C, and everything else stays with Python.

The harness stands in for a member daemon without the member: a tcp_migrate stack on the
contact address K behind a datagram socket pair (the hub's UDP link), a client stack on C that
reaches it through a type 2 routing header to the care-of address M (RFC 3775 6.4) and hears
it through the Home Address option, and an engine whose decisions are a mobile node's for that
binding (its type 2 routing header removed, the option inserted). What C does not take, the
harness's Python path does as the engine and host would.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

import pytest

from mip6.core.datapath import (
    FastAction,
    FastDecision,
    Ingress,
    insert_home_address_option,
    insert_type2_routing,
)
from tcp_migrate.core import Config
from tcp_migrate.stack import Socket, Stack, carriable

fast = pytest.importorskip("mip6.runtime.fast", reason="the fast path is not built")
lib = fast.lib

CONTACT = IPv6Address("2001:db8:1::100")  # the home address K
CARE_OF = IPv6Address("2001:db8:10::1")  # the member's own address M
CLIENT = IPv6Address("2001:db8:2::1")
PORT = 80


class Engine:
    """A mobile node's decisions for one binding with CLIENT (the FastEngine contract)."""

    def __init__(self) -> None:
        self.version = 0

    def fast_version(self) -> int:
        return self.version

    def fast_decision(
        self, now: float, ingress: Ingress, source: bytes, destination: bytes
    ) -> FastDecision | None:
        if ingress is Ingress.NETWORK and destination == CARE_OF.packed:
            return FastDecision(
                action=FastAction.REMOVE_TYPE2_ROUTING,
                deliver=True,
                verify=True,
                address=CONTACT.packed,
            )
        if ingress is Ingress.UPPER and source == CONTACT.packed:
            return FastDecision(
                action=FastAction.INSERT_HOME_ADDRESS_OPTION, address=CARE_OF.packed
            )
        return None


def without_type2_routing(packet: bytes) -> bytes:
    """RFC 3775 11.3.3 as the engine does it: the home address becomes the destination."""
    assert packet[6] == 43 and packet[40 + 2] == 2
    inner = bytearray(packet[:40]) + packet[40 + 24 :]
    inner[6] = packet[40]
    inner[24:40] = packet[40 + 8 : 40 + 24]
    struct.pack_into("!H", inner, 4, len(inner) - 40)
    return bytes(inner)


def without_home_address_option(packet: bytes) -> bytes:
    assert packet[6] == 60
    plain = bytearray(packet[:40]) + packet[40 + 24 :]
    plain[6] = packet[40]
    plain[8:24] = packet[40 + 8 : 40 + 24]
    struct.pack_into("!H", plain, 4, len(plain) - 40)
    return bytes(plain)


class Lab:
    """The clock is the monotonic one, which C reads itself (CLOCK_MONOTONIC)."""

    def __init__(self) -> None:
        self.member_end, self.client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.member_end.setblocking(False)
        self.client_end.setblocking(False)
        self.engine = Engine()
        self.punted: list[bytes] = []
        self.python_sent = 0
        self.member = Stack(
            transmit=self.transmit,
            local_addresses=[CONTACT],
            secret=bytes(32),
            config=Config(time_wait_ms=50),
        )
        self.client = Stack(
            transmit=lambda packet: self.client_end.send(insert_type2_routing(packet, CARE_OF)),
            local_addresses=[CLIENT],
            secret=bytes(range(32)),
        )
        link = fast.FastLink(
            "network", self.member_end.fileno(), Ingress.NETWORK, self.received, True
        )
        self.path = fast.FastPath(self.engine, [link], fast.HOST, time.monotonic)
        self.delivered: list[tuple[Socket, bool]] = []
        self.opens = False  # a SYN is C's to answer (FastHost's opens)
        self.host = fast.FastHost(
            self.path,
            self.member,
            lambda remote: 1500,
            lambda: 1500,
            self.after_input,
            lambda: self.opens,
        )

    def transmit(self, packet: bytes) -> None:
        """The Python path of what the member sends: the engine's Home Address option."""
        self.python_sent += 1
        self.member_end.send(insert_home_address_option(packet, CARE_OF))

    def received(self, data: bytes) -> None:
        """The Python path of a punted packet: the engine, then the stack."""
        self.punted.append(data)
        self.member.receive(self.ms, without_type2_routing(data))

    def after_input(self, delivered: list[tuple[Socket, bool]]) -> None:
        self.delivered += delivered
        for sock, received in delivered:
            self.member.after_input(self.ms, sock, received=received)

    @property
    def ms(self) -> int:
        return int(time.monotonic() * 1000 + 0.5)  # mip6.runtime.host.stack_ms

    def run(self, rounds: int = 50) -> None:
        """Both ends until nothing moves (the member's link read in C, as a wait would)."""
        for _ in range(rounds):
            moved = False
            self.member.poll(self.ms)
            self.client.poll(self.ms)
            while True:
                try:
                    data = self.client_end.recv(70000)
                except BlockingIOError:
                    break
                moved = True
                self.client.receive(self.ms, without_home_address_option(data))
            before = (len(self.punted), self.counter("segments"), self.counter("opened"))
            self.host.refresh(self.ms)  # as before a wait in C
            self.path.drain(0)
            after = (len(self.punted), self.counter("segments"), self.counter("opened"))
            moved = moved or before != after
            if not moved:
                return

    def counter(self, name: str) -> int:
        return self.host.counters()[f"host.{name}"]

    def close(self) -> None:
        self.member_end.close()
        self.client_end.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    made = Lab()
    yield made
    made.close()


def connect(lab: Lab) -> tuple[Socket, Socket]:
    listener = lab.member.listen(CONTACT, PORT)
    client = lab.client.connect(lab.ms, CONTACT, PORT)
    lab.run()
    server = listener.accept()
    assert server is not None
    return client, server


def pump(lab: Lab, sender: Socket, receiver: Socket, data: bytes) -> bytes:
    got = bytearray()
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sent < len(data):
            sent += sender.send(data[sent : sent + 65536])
            sender.stack._mark(sender)
        lab.run()
        while chunk := receiver.recv():
            got += chunk
        if len(got) == len(data):
            return bytes(got)
        time.sleep(0.001)  # timers (a delayed ACK) come due in real time
    raise AssertionError(f"{len(got)} of {len(data)} bytes arrived")


def test_established_segments_go_to_the_core_in_c_and_answers_leave_in_c(lab: Lab) -> None:
    client, server = connect(lab)
    # the SYN took the Python path (opens not allowed here), the ACK that ends the handshake C's
    assert len(lab.punted) == 1
    assert carriable(server)
    punted = len(lab.punted)
    data = bytes(range(256)) * 400  # 102,400 bytes each way
    python_sent = lab.python_sent
    assert pump(lab, client, server, data) == data
    assert pump(lab, server, client, data[::-1]) == data[::-1]
    # every segment after the handshake went to the core in C; the ACKs it answered with, and
    # the data the application wrote, left in C too
    assert len(lab.punted) == punted
    assert lab.python_sent == python_sent
    assert lab.counter("segments") > 70
    assert lab.counter("answers") > 70
    assert lab.counter("answers_lost") == 0
    # the stack heard of each: RCV.NXT moved for the client's data
    assert any(received for sock, received in lab.delivered if sock is server)


def test_a_frozen_connection_takes_its_segments_in_python(lab: Lab) -> None:
    client, server = connect(lab)
    kept: list[bytes] = []
    server.on_frozen_input = lambda sock, packet: kept.append(packet)
    server.freeze(lab.ms)
    assert not carriable(server)
    assert lab.path.host is not None and lab.member.carrier is lab.host
    assert lib.dfast_host_connections(lab.path._fast) == 1  # its 4-tuple known, not carried
    punted = len(lab.punted)
    client.send(b"during the handoff")
    lab.client._mark(client)
    lab.run()
    assert len(lab.punted) > punted
    assert kept  # the donor's on_frozen_input saw it, as without the fast path


def test_a_holding_connection_and_a_syn_stay_with_python(lab: Lab) -> None:
    client, server = connect(lab)
    server.hold()
    assert lab.host._carried[server] == lib.DFAST_CARRY_NONE
    segments = lab.counter("segments")
    client.send(b"x" * 100)
    lab.client._mark(client)
    lab.run()
    assert lab.counter("segments") == segments
    server.release_hold(lab.ms)
    lab.run()
    assert lab.host._carried[server] == lib.DFAST_CARRY_ALL
    # a second connection's SYN is punted although the first is carried (opens not allowed)
    second = lab.client.connect(lab.ms, CONTACT, PORT)
    punted = len(lab.punted)
    lab.run()
    assert len(lab.punted) > punted
    assert second.state.name == "ESTABLISHED"


def test_a_closed_connection_leaves_the_table(lab: Lab) -> None:
    client, server = connect(lab)
    assert lib.dfast_host_connections(lab.path._fast) == 1
    client.close()
    lab.client._mark(client)
    server.close()
    lab.member._mark(server)
    lab.run()
    assert {client.state.name, server.state.name} <= {"TIME_WAIT", "CLOSED"}
    time.sleep(0.1)  # TIME_WAIT's end (50 ms here)
    lab.run()
    assert server.state.name == "CLOSED"
    assert lib.dfast_host_connections(lab.path._fast) == 0


def test_no_way_back_punts_the_segment(lab: Lab) -> None:
    client, server = connect(lab)
    lab.engine.version += 1  # the binding changed: every decision forgotten
    lab.path._check_version()
    punted = len(lab.punted)
    client.send(b"after the change")
    lab.client._mark(client)
    lab.run()
    # the first segment is the engine's and teaches the way again; the next is C's
    assert len(lab.punted) == punted + 1
    assert server.recv() == b"after the change"
    segments = lab.counter("segments")
    assert pump(lab, client, server, b"and then") == b"and then"
    assert lab.counter("segments") > segments
    assert len(lab.punted) == punted + 1


def test_host_table_bounds_and_reuse() -> None:
    made = Lab()
    try:
        handle = made.path._fast
        keys = [i.to_bytes(4, "big") * 9 for i in range(lib.DFAST_HOST_CONNECTIONS)]
        for ident, key in enumerate(keys):
            assert lib.dfast_host_add(handle, key, 1, ident, 1500, 1) == 0
        assert lib.dfast_host_add(handle, b"\xff" * 36, 1, 0, 1500, 1) == -28  # ENOSPC
        assert lib.dfast_host_connections(handle) == lib.DFAST_HOST_CONNECTIONS
        # removing and adding again many times (deleted slots, then a rehash) loses none
        for turn in range(3):
            for key in keys[turn::3]:
                assert lib.dfast_host_remove(handle, key) == 0
            assert lib.dfast_host_remove(handle, keys[turn]) == -2  # ENOENT
            for ident, key in enumerate(keys[turn::3]):
                assert lib.dfast_host_add(handle, key, 1, ident, 1500, 1) == 0
        assert lib.dfast_host_connections(handle) == lib.DFAST_HOST_CONNECTIONS
        for key in keys:
            assert lib.dfast_host_remove(handle, key) == 0
        assert lib.dfast_host_connections(handle) == 0
    finally:
        made.close()


def test_a_syn_opens_a_connection_in_c_as_the_stack_would(lab: Lab) -> None:
    connect(lab)  # the client's first packet is the engine's: the decisions come with it
    listener = lab.member._listeners[(CONTACT.packed, PORT)]
    assert listener.accept() is None
    lab.opens = True
    punted = len(lab.punted)
    client = lab.client.connect(lab.ms, CONTACT, PORT)
    lab.run()
    # the SYN and everything after it were C's; the stack adopted the connection and queued it
    assert len(lab.punted) == punted
    assert lab.counter("opened") == 1
    server = listener.accept()
    assert server is not None and server.state.name == "ESTABLISHED"
    assert client.state.name == "ESTABLISHED"
    assert listener.half_open == 0
    # the ISS and timestamp offset the stack's keyed hashes give (RFC 6528, RFC 7323 7.1), at
    # the millisecond C read its clock
    raw = server.conn.raw
    now = lab.ms
    assert raw.iss in {lab.member.iss(ms, server.key) for ms in range(now - 2000, now + 1)}
    assert raw.ts_offset == lab.member.ts_offset(server.key)
    assert server.conn.raw.snd_mss == client.conn.raw.snd_mss == 1500 - 24 - 60
    data = bytes(range(256)) * 100
    assert pump(lab, client, server, data) == data
    assert pump(lab, server, client, data) == data


def test_opens_follow_the_listeners_room_and_the_quiet_tuples(lab: Lab) -> None:
    warm = lab.client.connect(lab.ms, CONTACT, PORT + 1)  # the decisions come with it (a RST)
    lab.run()
    assert warm.state.name == "CLOSED"
    lab.opens = True
    listener = lab.member.listen(CONTACT, PORT, backlog=1)
    first = lab.client.connect(lab.ms, CONTACT, PORT)
    lab.run()
    assert lab.counter("opened") == 1
    # the accept queue is full (backlog 1): the next SYN is the stack's, which drops it
    punted = len(lab.punted)
    second = lab.client.connect(lab.ms, CONTACT, PORT)
    lab.run()
    assert len(lab.punted) > punted and lab.counter("opened") == 1
    assert lab.member.counters["syn_dropped"] >= 1
    server = listener.accept()
    assert server is not None
    assert first.state.name == "ESTABLISHED" and second.state.name == "SYN_SENT"
    # a released 4-tuple is quiet: while it is, C opens nothing (the stack does)
    lab.member.release(lab.ms, server)
    third = lab.client.connect(lab.ms, CONTACT, PORT)
    lab.run()
    assert lab.counter("opened") == 1
    assert third.state.name == "ESTABLISHED"


def test_data_a_replica_must_cover_first_is_the_stacks_and_acks_stay_in_c(lab: Lab) -> None:
    """A member that replicates watches what each connection receives (``on_received``) and
    holds the answer and its acknowledgement until a replica covers it: C must not
    acknowledge such data first, so it takes only the segments without data or a FIN."""
    client, server = connect(lab)
    seen: list[int] = []
    server.on_received = lambda sock: seen.append(sock.readable)
    lab.member._mark(server)
    lab.run()
    assert lab.host._carried[server] == lib.DFAST_CARRY_ACKS
    punted = len(lab.punted)
    assert pump(lab, client, server, b"a request") == b"a request"
    assert len(lab.punted) == punted + 1  # the data segment: the stack's
    assert seen  # on_received ran before anything acknowledged it
    segments = lab.counter("segments")
    data = bytes(range(256)) * 64
    assert pump(lab, server, client, data) == data
    assert lab.counter("segments") > segments  # the client's ACKs of the answer: C's
    assert len(lab.punted) == punted + 1


def test_a_punted_packet_that_stops_opens_holds_for_the_next_syn_of_the_same_read() -> None:
    """The engine's answer to a punted packet may make a rule for SYNs (a handoff froze the
    client): C opens nothing more from the next packet it reads on, not from the next wait."""
    lab = Lab()
    try:
        lab.member.listen(CONTACT, PORT)
        lab.opens = True

        def received(data: bytes) -> None:
            lab.opens = False  # as a member that froze the client
            lab.received(data)

        lab.path.links[0] = dataclasses.replace(lab.path.links[0], received=received)
        lab.client.connect(lab.ms, CONTACT, PORT + 1)  # no listener: punted
        lab.client.connect(lab.ms, CONTACT, PORT)  # would open in C
        lab.client.poll(lab.ms)
        lab.host.refresh(lab.ms)  # opens allowed, as before a wait
        lab.path.drain(0)
        assert lab.counter("opened") == 0
        assert len(lab.punted) == 2  # both SYNs took the engine's way
    finally:
        lab.close()
