"""The host's IPv6 layer, sans-I/O (mip6.runtime.host.Host): reassembly of what it receives,
fragmentation of what it sends, the ICMPv6 errors it asks its engine for (Parameter Problem
for an unknown Next Header and for bad fragments, Time Exceeded for a reassembly that timed
out), and path MTU discovery for its TCP (RFC 8201) with a mobile node's send overhead."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6, IPv6ExtHdrFragment, Raw, defragment6

from mip6.core.actions import CancelTimer, StartTimer, Transmit
from mip6.core.config import CorrespondentConfig
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.runtime.host import TCP_TIMER, Host, IcmpError, IpSettings
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire import icmpv6 as icmp
from mip6.wire import protocols
from mip6.wire.ipv6 import Ipv6Packet, RawPayload
from mip6.wire.ipv6ext import DestinationOptions, FragmentHeader
from mip6.wire.udp import UdpDatagram
from tests.engines import PassThrough

from .test_fragments import raw_fragment, scapy_fragments

A = IPv6Address("2001:db8:1::a")  # the peer
B = IPv6Address("2001:db8:2::b")  # the host
ROUTER = IPv6Address("2001:db8:9::1")


def host(**kwargs: object) -> Host:
    return Host(addresses=[B], secret=bytes(32), rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def transmitted(actions: list) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Transmit)]


def errors(actions: list) -> list[IcmpError]:
    return [a for a in actions if isinstance(a, IcmpError)]


def echo_request(size: int, source: IPv6Address = A, destination: IPv6Address = B) -> bytes:
    data = random.Random(size).randbytes(size)
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=icmp.EchoRequest(identifier=7, sequence=1, data=data),
    ).emit()


# -- reassembly ----------------------------------------------------------------------------------


def test_fragmented_echo_request_60000_reassembled_and_answered_in_fragments() -> None:
    """The must-show ping, sans-I/O: a 60,000-byte Echo Request in 1,280-byte fragments (as
    scapy cuts it) is answered with a 60,000-byte reply in fragments of at most the link MTU,
    which scapy puts back together."""
    h = host()
    request = echo_request(60_000)
    replies: list[bytes] = []
    for piece in reversed(scapy_fragments(request, 1280)):
        replies += transmitted(h.deliver(1.0, piece))
    # 60,008 bytes of ICMPv6, 1,448 a fragment (1,500 less 48, down to a multiple of 8)
    assert len(replies) == 42 and max(len(r) for r in replies) == 1496
    assert h.counters["reassembled"] == 1 and h.counters["echo_answered"] == 1
    assert h.counters["fragmented_out"] == 1 and h.counters["fragments_out"] == 42
    identifications = {IPv6(r)[IPv6ExtHdrFragment].id for r in replies}
    assert len(identifications) == 1
    whole = defragment6([IPv6(r) for r in replies])
    reply = whole[ICMPv6EchoReply]
    assert (reply.id, reply.seq, whole.src, whole.dst) == (7, 1, str(B), str(A))
    assert bytes(reply.data) == bytes(Ipv6Packet.parse(request).payload.data)


def test_udp_60000_delivered_whole_and_sent_in_fragments() -> None:
    h = host()
    got: list[bytes] = []
    h.udp_bind(9, lambda data, remote, local: got.append(data))
    payload = random.Random(3).randbytes(60_000)
    datagram = Ipv6Packet(
        source=A,
        destination=B,
        payload=UdpDatagram(source_port=4000, destination_port=9, payload=payload),
    ).emit()
    pieces = scapy_fragments(datagram, 1500)
    random.Random(5).shuffle(pieces)
    for piece in pieces:
        h.deliver(2.0, piece)
    assert got == [payload]
    h.send_udp(payload, 9, (str(A), 4000), None)
    sent = transmitted(h.poll(2.0))
    assert len(sent) == 42 and max(len(p) for p in sent) == 1496
    whole = defragment6([IPv6(p) for p in sent])
    assert bytes(whole[Raw].load)[-60_000:] == payload


def test_fragment_overlap_dropped_and_counted_datagram_never_delivered() -> None:
    h = host()
    got: list[bytes] = []
    h.udp_bind(9, lambda data, remote, local: got.append(data))
    datagram = UdpDatagram(source_port=4000, destination_port=9, payload=bytes(3000))
    whole = Ipv6Packet(source=A, destination=B, payload=datagram).emit()
    pieces = scapy_fragments(whole, 1280)
    overlapping = raw_fragment(1224, bytes(64), more=True, identification=77)
    assert errors(h.deliver(0.0, pieces[0])) == []
    assert errors(h.deliver(0.0, overlapping)) == []  # RFC 5722: silently
    for piece in pieces[1:]:
        assert errors(h.deliver(0.0, piece)) == []
    assert got == []
    assert h.counters["fragment_overlap"] == 1
    assert h.counters["fragment_abandoned"] == len(pieces) - 1
    assert "reassembled" not in h.counters


def test_fragment_length_not_multiple_of_8_parameter_problem_at_payload_length() -> None:
    h = host()
    fragment = raw_fragment(0, bytes(8) + bytes(13), more=True)
    assert errors(h.deliver(0.0, fragment)) == [
        IcmpError(fragment, icmp.ParameterProblem(code=0, pointer=4))
    ]
    beyond = raw_fragment(65528, bytes(16), more=False)
    assert errors(h.deliver(0.0, beyond)) == [
        IcmpError(beyond, icmp.ParameterProblem(code=0, pointer=42))
    ]
    assert h.counters["fragment_length_not_multiple_of_8"] == 1
    assert h.counters["fragment_too_big"] == 1


def test_reassembly_timeout_time_exceeded_about_the_first_fragment() -> None:
    h = host()
    first = raw_fragment(0, bytes(8) + bytes(16), more=True, identification=1)
    actions = h.deliver(10.0, first)
    assert StartTimer(70.0, TCP_TIMER) in actions  # the host's one timer, at the timeout
    only_later = raw_fragment(24, bytes(16), more=True, identification=2)
    h.deliver(20.0, only_later)
    actions = h.handle_timer(70.0, TCP_TIMER)
    assert errors(actions) == [
        IcmpError(first, icmp.TimeExceeded(code=icmp.FRAGMENT_REASSEMBLY_TIME_EXCEEDED))
    ]
    assert StartTimer(80.0, TCP_TIMER) in actions
    actions = h.handle_timer(80.0, TCP_TIMER)
    assert errors(actions) == []  # RFC 8200 4.5: no first fragment, no Time Exceeded
    assert not [a for a in actions if isinstance(a, StartTimer | CancelTimer)]  # none left
    assert h.counters["fragment_timeout"] == 2


def test_atomic_fragment_processed_at_once_beside_a_datagram_of_the_same_id() -> None:
    """RFC 6946: offset 0 and M clear is a whole packet, processed on its own, even while a
    reassembly with the same source, destination and Identification is under way."""
    h = host()
    h.deliver(0.0, raw_fragment(8, bytes(16), more=True, identification=42, next_header=58))
    request = Ipv6Packet.parse(echo_request(100))
    atomic = Ipv6Packet(
        source=A,
        destination=B,
        extension_headers=(FragmentHeader(identification=42),),
        payload=request.payload,
    ).emit()
    (reply,) = transmitted(h.deliver(0.0, atomic))
    assert isinstance(Ipv6Packet.parse(reply).payload, icmp.EchoReply)
    assert h.counters["atomic_fragment_in"] == 1
    assert len(h.reassembler) == 1


# -- unknown Next Header -------------------------------------------------------------------------


def test_unknown_next_header_parameter_problem_code_1_pointing_at_next_header() -> None:
    h = host()
    bare = Ipv6Packet(source=A, destination=B, payload=RawPayload(protocol=132, data=bytes(8)))
    data = bare.emit()
    assert errors(h.deliver(0.0, data)) == [
        IcmpError(data, icmp.ParameterProblem(code=1, pointer=6))
    ]
    # after a Destination Options header, the pointer is that header's Next Header byte
    optioned = Ipv6Packet(
        source=A,
        destination=B,
        extension_headers=(DestinationOptions.aligned([]),),
        payload=RawPayload(protocol=132, data=bytes(8)),
    ).emit()
    assert errors(h.deliver(0.0, optioned)) == [
        IcmpError(optioned, icmp.ParameterProblem(code=1, pointer=40))
    ]
    # RFC 8200 4.7: No Next Header is not an error
    none = Ipv6Packet(
        source=A, destination=B, payload=RawPayload(protocol=protocols.NO_NEXT_HEADER, data=b"")
    ).emit()
    assert h.deliver(0.0, none) == []
    assert h.counters == {"unrecognized_next_header": 2, "no_next_header": 1}


def test_unknown_next_header_error_leaves_from_the_host_address_rate_limited() -> None:
    """Through a correspondent engine's error path (its NodePipeline): from the address the
    packet was sent to, to its source, and no more than the ICMPv6 rate limit allows."""
    config = CorrespondentConfig(icmp_error_rate=1.0, icmp_error_burst=2)
    net = MemoryNetwork()
    net.add("cn", CorrespondentNode(config=config, rng=random.Random(1)), host=host())
    net.route(f"{A}/128", "cn")  # its answers come back to it: the trace is all we read
    bad = Ipv6Packet(source=A, destination=B, payload=RawPayload(protocol=132, data=bytes(8)))
    for _ in range(5):
        net.inject("cn", bad.emit())
    net.run_for(0.001)
    problems = [
        Ipv6Packet.parse(sent.data)
        for sent in net.trace
        if sent.sender == "cn" and sent.data[40] == icmp.PARAMETER_PROBLEM
    ]
    assert len(problems) == 2
    for problem in problems:
        assert (problem.source, problem.destination) == (B, A)
        message = problem.payload
        assert isinstance(message, icmp.ParameterProblem)
        assert (message.code, message.pointer) == (1, 6)
        assert message.invoking_packet == bad.emit()
    assert net.nodes["cn"].engine.counters["icmp_rate_limited"] == 3


# -- fragmentation and path MTU ------------------------------------------------------------------


def packet_too_big(mtu: int, invoking: bytes, to: IPv6Address = B) -> bytes:
    return Ipv6Packet(
        source=ROUTER,
        destination=to,
        payload=icmp.PacketTooBig(mtu=mtu, invoking_packet=invoking[:1232]),
    ).emit()


def test_packet_too_big_lowers_the_path_for_udp_ignores_bigger_smaller_and_strangers() -> None:
    h = host()
    h.send_udp(bytes(1452), 9, (str(A), 4000), None)  # 1500 bytes: fits the link
    (big,) = transmitted(h.poll(0.0))
    assert len(big) == 1500
    h.deliver(0.0, packet_too_big(1600, big))  # more than the estimate
    h.deliver(0.0, packet_too_big(1000, big))  # under 1280: discarded (RFC 8201 4)
    stranger = big[:8] + IPv6Address("2001:db8::99").packed + big[24:]
    h.deliver(0.0, packet_too_big(1300, stranger))  # not a packet of ours
    assert h.counters["packet_too_big_ignored"] == 2
    assert h.counters["packet_too_big_not_ours"] == 1
    h.deliver(0.0, packet_too_big(1400, big))
    assert h.counters["packet_too_big"] == 1
    assert h.path_mtu.get(0.0, A.packed) == 1400
    h.send_udp(bytes(1452), 9, (str(A), 4000), None)
    pieces = transmitted(h.poll(1.0))
    assert [len(p) for p in pieces] == [1400, 156]
    # RFC 8201 4: ten minutes later the estimate goes back to the link MTU
    h.send_udp(bytes(1452), 9, (str(A), 4000), None)
    assert [len(p) for p in transmitted(h.poll(600.0))] == [1500]


def test_send_overhead_leaves_room_for_the_tunnel_and_for_the_home_address_option() -> None:
    """A mobile node away from home: its send path adds 40 bytes (reverse tunnel) or 24 (Home
    Address option); the host's packets leave room so the outer packet fits the path."""
    overhead = {A.packed: 40}
    h = host(send_overhead=lambda now, source, destination: overhead.get(destination, 0))
    h.send_udp(bytes(1452), 9, (str(A), 4000), None)
    assert [len(p) for p in transmitted(h.poll(0.0))] == [1456, 100]
    overhead[A.packed] = 24
    h.send_udp(bytes(1452), 9, (str(A), 4000), None)
    assert [len(p) for p in transmitted(h.poll(0.0))] == [1472, 84]
    small = host(send_overhead=lambda now, source, destination: 40, ip=IpSettings(link_mtu=1280))
    small.send_udp(bytes(1200), 9, (str(A), 4000), None)
    assert max(len(p) for p in transmitted(small.poll(0.0))) <= 1240  # 1280 once tunnelled


class Pair:
    """Host A (client) and host B (server) over the in-memory network, each behind an engine
    that passes packets through and whose send overhead the test sets."""

    def __init__(self, link_mtu: int = 1500) -> None:
        self.net = MemoryNetwork(seed=1, default_path=Path(latency=0.005))
        self.overhead = {"a": 0, "b": 0}
        self.hosts = {}
        for name, address in (("a", A), ("b", B)):
            h = Host(
                addresses=[address],
                secret=bytes(32),
                rng=random.Random(2),
                ip=IpSettings(link_mtu=link_mtu),
                send_overhead=lambda now, s, d, name=name: self.overhead[name],
            )
            self.hosts[name] = h
            self.net.add(name, PassThrough([]), host=h)
            self.net.route(f"{address}/128", name)

    def sent_by(self, name: str) -> list[bytes]:
        return [s.data for s in self.net.trace if s.sender == name]


def test_tcp_mss_from_path_for_new_connections_lowered_by_packet_too_big_for_open_ones() -> None:
    pair = Pair()
    pair.overhead["b"] = 40  # the server is a mobile node in its reverse tunnel
    a, b = pair.hosts["a"], pair.hosts["b"]
    listener = b.listen(80)
    client = a.connect(0.0, B, 80)
    pair.net.nodes["a"].runtime.flush_host()
    pair.net.run_for(0.1)
    server = listener.accept()
    assert server is not None
    assert server.conn.raw.snd_mss == 1500 - 40 - 60  # its own path, not the client's 1440
    assert client.conn.raw.snd_mss == 1500 - 40 - 60  # the MSS the server offered
    body = bytes(200_000)
    server.send(body)
    pair.net.nodes["b"].runtime.flush_host()
    pair.net.run_for(0.05)
    full = max(len(p) for p in pair.sent_by("b"))
    assert full == 1460  # 1500 once tunnelled
    # a router on the way says 1400: the open connection's segments shrink (RFC 8201 5.2)
    segment = next(p for p in pair.sent_by("b") if len(p) == full)
    pair.net.trace.clear()
    pair.net.inject("b", packet_too_big(1400, segment))
    pair.net.run_for(0.001)
    assert b.counters["packet_too_big"] == 1
    assert server.conn.raw.snd_mss == 1400 - 40 - 60
    received = bytearray()
    for _ in range(100):
        received += client.recv(1 << 20)
        pair.net.nodes["a"].runtime.flush_host()
        pair.net.run_for(0.05)
        if len(received) >= len(body):
            break
    assert bytes(received) == body
    assert max(len(p) for p in pair.sent_by("b")) <= 1360
    assert "fragmented_out" not in b.counters


def test_tcp_segment_too_big_for_a_new_overhead_fragmented_once_then_mss_lowered() -> None:
    """A move into the reverse tunnel under an open connection: the first full segment after
    it leaves in fragments and lowers the connection's MSS; the next ones fit."""
    pair = Pair()
    a, b = pair.hosts["a"], pair.hosts["b"]
    listener = b.listen(80)
    client = a.connect(0.0, B, 80)
    pair.net.nodes["a"].runtime.flush_host()
    pair.net.run_for(0.1)
    server = listener.accept()
    assert server is not None and server.conn.raw.snd_mss == 1440
    pair.overhead["b"] = 40
    body = bytes(100_000)
    server.send(body)
    received = bytearray()
    for _ in range(100):
        pair.net.nodes["b"].runtime.flush_host()
        pair.net.run_for(0.05)
        received += client.recv(1 << 20)
        if len(received) >= len(body):
            break
    assert bytes(received) == body
    assert b.counters["tcp_mss_lowered"] >= 1
    assert server.conn.raw.snd_mss == 1400
    assert max(len(p) for p in pair.sent_by("b")) <= 1460


@pytest.mark.parametrize("size", [1, 1232, 60_000])
def test_fragments_out_are_atomic_free_and_identified_from_the_rng(size: int) -> None:
    h = Host(addresses=[B], secret=bytes(32), rng=random.Random(9))
    h.send_udp(bytes(size), 9, (str(A), 4000), None)
    sent = transmitted(h.poll(0.0))
    if size + 48 <= 1500:
        assert len(sent) == 1 and sent[0][6] == protocols.UDP  # never an atomic fragment
    else:
        expected = random.Random(9).getrandbits(32)
        assert {IPv6(p)[IPv6ExtHdrFragment].id for p in sent} == {expected}
