"""The stack over an in-memory IPv6 link on a manual millisecond clock: demultiplexing,
listeners and their bounds, RSTs for segments to no connection (RFC 9293 3.10.7.1), ISS
(RFC 6528), ephemeral ports, and handoffs between stacks. Every segment a stack emits is
decoded by ``mip6.wire.tcp.TcpSegment.parse`` (checksum verified) before it is carried."""

from __future__ import annotations

import heapq
import struct

import pytest

from mip6.wire.tcp import MaximumSegmentSize, TcpFlags, TcpSegment
from tcp_migrate._core import lib
from tcp_migrate.core import CloseReason, Config, TcpState
from tcp_migrate.stack import Stack, StackError

ADDRESS_A = bytes.fromhex("20010db8000000000000000000000001")
ADDRESS_B = bytes.fromhex("20010db8000000000000000000000002")
OTHER = bytes.fromhex("20010db8000000000000000000000099")
SECRET = bytes(range(32))
CONFIG = Config(time_wait_ms=2000, delack_ms=40)


def ipv6(source: bytes, destination: bytes, payload: bytes, next_header: int = 6) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64) + (
        source + destination + payload
    )


def tcp(
    source: bytes,
    destination: bytes,
    *,
    sport: int = 40000,
    dport: int = 80,
    seq: int = 1000,
    ack: int = 0,
    flags: TcpFlags = TcpFlags.SYN,
    payload: bytes = b"",
) -> bytes:
    segment = TcpSegment(
        source_port=sport,
        destination_port=dport,
        sequence_number=seq,
        acknowledgment_number=ack,
        flags=flags,
        window=65535,
        payload=payload,
    )
    return ipv6(source, destination, segment.emit(source=source, destination=destination))


def decode(packet: bytes) -> TcpSegment:
    assert packet[0] >> 4 == 6 and packet[6] == 6
    return TcpSegment.parse(packet[40:], source=packet[8:24], destination=packet[24:40])


class Net:
    """Stacks A and B joined by a link of ``delay_ms`` each way; ``now`` is the clock."""

    def __init__(self, delay_ms: int = 10, **kwargs) -> None:
        self.now = 0
        self.delay_ms = delay_ms
        self.queue: list[tuple[int, int, bytes]] = []
        self.counter = 0
        self.sent: list[bytes] = []
        kwargs.setdefault("config", CONFIG)
        self.a = Stack(transmit=self._send, local_addresses=[ADDRESS_A], secret=SECRET, **kwargs)
        self.b = Stack(transmit=self._send, local_addresses=[ADDRESS_B], secret=SECRET, **kwargs)
        self.stacks = {ADDRESS_A: self.a, ADDRESS_B: self.b}

    def _send(self, packet: bytes) -> None:
        decode(packet)  # independent check of every segment
        self.sent.append(packet)
        self.counter += 1
        heapq.heappush(self.queue, (self.now + self.delay_ms, self.counter, packet))

    def run(self, until, limit_ms: int = 60000) -> None:
        """Advance the clock, delivering packets and running timers, until ``until()``."""
        end = self.now + limit_ms
        while not until():
            for stack in self.stacks.values():
                stack.poll(self.now)
            times = [t for s in self.stacks.values() if (t := s.next_deadline()) is not None]
            if self.queue:
                times.append(self.queue[0][0])
            if not times:
                break
            self.now = max(self.now, min(times))
            assert self.now <= end, "did not converge"
            while self.queue and self.queue[0][0] <= self.now:
                packet = heapq.heappop(self.queue)[2]
                stack = self.stacks.get(packet[24:40])
                if stack is not None:
                    stack.receive(self.now, packet)


def only_sent(net: Net) -> TcpSegment:
    assert len(net.sent) == 1, net.sent
    return decode(net.sent.pop())


# ---- RFC 9293 3.10.7.1: segments to no connection -----------------------------------------


def test_closed_syn_no_listener_rst_ack_seq_zero_ack_seq_plus_len():
    net = Net()
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, seq=1000, flags=TcpFlags.SYN))
    rst = only_sent(net)
    assert rst.flags == TcpFlags.RST | TcpFlags.ACK
    assert rst.sequence_number == 0 and rst.acknowledgment_number == 1001
    assert (rst.source_port, rst.destination_port) == (80, 40000)


def test_closed_data_fin_no_ack_rst_ack_counts_payload_and_fin():
    net = Net()
    segment = tcp(ADDRESS_A, ADDRESS_B, seq=2**32 - 2, flags=TcpFlags.FIN, payload=b"abc")
    net.b.receive(0, segment)
    rst = only_sent(net)
    assert rst.acknowledgment_number == 2  # (2^32 - 2 + 3 + 1) mod 2^32


def test_closed_ack_no_connection_rst_seq_is_seg_ack():
    net = Net()
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, seq=5, ack=777, flags=TcpFlags.ACK))
    rst = only_sent(net)
    assert rst.flags == TcpFlags.RST and rst.sequence_number == 777


def test_closed_rst_no_connection_dropped_silently():
    net = Net()
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, ack=1, flags=TcpFlags.RST | TcpFlags.ACK))
    assert net.sent == []


def test_closed_bad_checksum_no_rst():
    net = Net()
    packet = bytearray(tcp(ADDRESS_A, ADDRESS_B, flags=TcpFlags.SYN))
    packet[40 + 16] ^= 0xFF
    net.b.receive(0, bytes(packet))
    assert net.sent == [] and net.b.counters["bad_checksum"] == 1


def test_closed_not_our_address_or_not_tcp_ignored():
    net = Net()
    net.b.receive(0, tcp(ADDRESS_A, OTHER, flags=TcpFlags.SYN))
    net.b.receive(0, ipv6(ADDRESS_A, ADDRESS_B, b"\0" * 8, next_header=17))
    net.b.receive(0, b"\x60garbage")
    assert net.sent == []
    assert net.b.counters["not_ours"] == 2 and net.b.counters["malformed"] == 1


def test_closed_rst_rate_limited_per_second():
    net = Net(rst_limit_per_s=3)
    for i in range(5):
        net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, sport=1000 + i, flags=TcpFlags.SYN))
    assert len(net.sent) == 3 and net.b.counters["rst_limited"] == 2
    net.b.receive(1000, tcp(ADDRESS_A, ADDRESS_B, flags=TcpFlags.SYN))
    assert len(net.sent) == 4


# ---- RFC 9293 3.10.7.2: listeners ----------------------------------------------------------


def test_listen_ack_gets_rst_and_no_connection():
    net = Net()
    net.b.listen(ADDRESS_B, 80)
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, ack=4242, flags=TcpFlags.ACK))
    rst = only_sent(net)
    assert rst.flags == TcpFlags.RST and rst.sequence_number == 4242
    assert net.b.connections == []


def test_withheld_rst_drops_a_segment_for_no_connection_silently_where_asked():
    """``withhold_rst`` (a host whose peers' connections may be resumed elsewhere): no RST
    for the addresses it names, counted; others still get theirs, and SYNs still open."""
    net = Net()
    net.b.listen("::", 80)
    net.b.withhold_rst = lambda local, port, remote: remote == ADDRESS_A
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, seq=5, ack=777, flags=TcpFlags.ACK))
    assert net.sent == [] and net.b.counters["rst_withheld"] == 1
    net.b.receive(0, tcp(OTHER, ADDRESS_B, seq=5, ack=777, flags=TcpFlags.ACK))
    rst = only_sent(net)
    assert rst.flags == TcpFlags.RST and rst.sequence_number == 777
    net.sent.clear()
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, seq=1000, flags=TcpFlags.SYN))
    assert only_sent(net).flags == TcpFlags.SYN | TcpFlags.ACK


def test_listener_names_each_half_open_connection_before_its_syn_ack():
    net = Net()
    listener = net.b.listen("::", 80)
    half_open = []
    listener.on_half_open = lambda sock: half_open.append((sock.state, len(net.sent)))
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, seq=1000, flags=TcpFlags.SYN))
    assert half_open == [(TcpState.SYN_RECEIVED, 0)] and len(net.sent) == 1
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, seq=1000, flags=TcpFlags.SYN))  # again
    assert len(half_open) == 1


def test_a_held_connection_sends_nothing_until_released_then_all_in_order():
    """Socket.hold: the SYN-ACK is built (the state moves on) but kept; release_hold sends it
    and the connection goes on as if nothing had happened."""
    net = Net()
    listener = net.b.listen("::", 80)
    listener.on_half_open = lambda sock: sock.hold()
    client = net.a.connect(0, ADDRESS_B, 80)
    net.run(lambda: bool(net.b.connections), limit_ms=100)
    (server,) = net.b.connections
    assert len(net.sent) == 1 and decode(net.sent[0]).flags == TcpFlags.SYN  # the client's
    assert server.held is not None and len(server.held) == 1  # the SYN-ACK, kept
    assert decode(server.held[0]).flags == TcpFlags.SYN | TcpFlags.ACK
    server.release_hold(net.now)
    net.run(lambda: client.state == TcpState.ESTABLISHED, limit_ms=1000)
    assert server.held is None
    client.send(b"request")
    net.run(lambda: bool(listener.queue), limit_ms=1000)
    accepted = listener.accept()
    assert accepted is server
    net.run(lambda: server.conn.received_offset == 7, limit_ms=1000)
    assert server.recv(100) == b"request"


def test_on_received_holds_the_acknowledgement_of_new_data_before_it_goes():
    """Socket.on_received: called when a segment moves RCV.NXT (data, then the FIN), before
    the output it causes: holding there keeps the ACK; a pure ACK does not call it."""
    net = Net()
    listener = net.b.listen("::", 80)
    client = net.a.connect(0, ADDRESS_B, 80)
    net.run(lambda: bool(listener.queue), limit_ms=1000)
    server = listener.accept()
    calls: list[int] = []

    def received(sock) -> None:
        calls.append(sock.conn.received_offset)
        sock.hold()

    server.on_received = received
    net.sent.clear()
    client.send(b"line one\n")
    net.run(lambda: server.conn.received_offset == 9, limit_ms=1000)
    start = net.now
    net.run(lambda: net.now >= start + 250, limit_ms=5000)  # past the delayed ACK: held too
    assert calls == [9]
    assert all(decode(packet).payload for packet in net.sent)  # only the client's data
    assert server.held and decode(server.held[-1]).acknowledgment_number == (
        client.conn.raw.snd_nxt
    )
    server.release_hold(net.now)
    net.run(lambda: client.conn.acked_offset == 9, limit_ms=1000)
    client.close()
    net.run(lambda: len(calls) == 2, limit_ms=1000)  # the FIN moved RCV.NXT
    assert server.recv(100) == b"line one\n" and server.at_eof


def test_a_release_after_a_long_hold_clears_the_retransmission_back_off():
    """Held for seconds, a connection's retransmission timer fired (its retransmissions
    kept too) and backed off; those timeouts lost nothing, so the release clears the
    back-off: a segment lost after the release goes again a timeout later, not half a
    minute later."""
    net = Net()
    listener = net.b.listen("::", 80)
    client = net.a.connect(0, ADDRESS_B, 80)
    net.run(lambda: bool(listener.queue), limit_ms=1000)
    server = listener.accept()
    server.hold()
    server.send(b"answer")
    start = net.now
    net.run(lambda: net.now >= start + 5_000, limit_ms=20_000)
    assert server.conn.raw.backoff >= 2 and len(server.held) >= 3
    server.release_hold(net.now)
    assert server.conn.raw.backoff == 0
    assert server.conn.raw.t_rtx - net.now <= max(server.conn.raw.rto_ms, 1000)
    net.run(lambda: client.conn.received_offset == 6, limit_ms=1000)


def test_listen_neither_syn_nor_ack_dropped():
    net = Net()
    net.b.listen("::", 80)
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, flags=TcpFlags.FIN, payload=b"x"))
    assert net.sent == [] and net.b.connections == []


def test_listen_syn_gets_syn_ack_with_iss_from_hash():
    net = Net()
    net.b.listen("::", 80)
    net.b.receive(5, tcp(ADDRESS_A, ADDRESS_B, seq=1000, flags=TcpFlags.SYN))
    synack = only_sent(net)
    assert synack.flags == TcpFlags.SYN | TcpFlags.ACK and synack.acknowledgment_number == 1001
    assert synack.sequence_number == net.b.iss(5, (ADDRESS_B, 80, ADDRESS_A, 40000))
    assert net.b.connections[0].state == TcpState.SYN_RECEIVED


def test_listen_backlog_full_syn_dropped_until_accepted():
    net = Net()
    listener = net.b.listen(ADDRESS_B, 80, backlog=2)
    clients = [net.a.connect(0, ADDRESS_B, 80) for _ in range(3)]
    net.run(lambda: len(listener.queue) == 2)
    assert len(listener.queue) == 2 and net.b.counters["syn_dropped"] >= 1
    waiting = [c for c in clients if c.state == TcpState.SYN_SENT]
    assert len(waiting) == 1
    listener.accept()
    net.run(lambda: len(listener.queue) == 2)  # the SYN retransmission got in
    assert waiting[0].state == TcpState.ESTABLISHED


def test_listen_half_open_bound_syn_flood_dropped():
    net = Net()
    listener = net.b.listen(ADDRESS_B, 80, backlog=4)
    for i in range(10):
        net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, sport=2000 + i, flags=TcpFlags.SYN))
    assert listener.half_open == 4 and len(net.b.connections) == 4
    assert net.b.counters["syn_dropped"] == 6


def test_stack_table_full_connect_refused_and_syn_dropped():
    net = Net(max_connections=2)
    net.b.listen(ADDRESS_B, 80)
    net.b.connect(0, ADDRESS_A, 1)
    net.b.connect(0, ADDRESS_A, 2)
    with pytest.raises(StackError) as err:
        net.b.connect(0, ADDRESS_A, 3)
    assert err.value.reason == "table-full"
    net.b.receive(0, tcp(ADDRESS_A, ADDRESS_B, flags=TcpFlags.SYN))
    assert net.b.counters["syn_dropped"] == 1


def test_listen_same_port_twice_address_in_use():
    net = Net()
    net.b.listen(ADDRESS_B, 80)
    with pytest.raises(StackError) as err:
        net.b.listen(ADDRESS_B, 80)
    assert err.value.reason == "address-in-use"
    with pytest.raises(StackError):
        net.b.listen(OTHER, 81)


def test_listen_close_aborts_queued_connections_with_rst():
    net = Net()
    listener = net.b.listen(ADDRESS_B, 80)
    client = net.a.connect(0, ADDRESS_B, 80)
    net.run(lambda: len(listener.queue) == 1)
    listener.close()
    net.run(lambda: client.state == TcpState.CLOSED)
    assert client.close_reason == CloseReason.RESET


# ---- RFC 6528 ISS and RFC 6056 ports -------------------------------------------------------


def test_iss_keyed_per_four_tuple_and_advancing_with_clock():
    net = Net()
    key = (ADDRESS_A, 40000, ADDRESS_B, 80)
    other = (ADDRESS_A, 40001, ADDRESS_B, 80)
    assert net.a.iss(0, key) != net.a.iss(0, other)
    assert (net.a.iss(1000, key) - net.a.iss(0, key)) % 2**32 == 250_000  # 4 us ticks
    stranger = Stack(transmit=print, local_addresses=[ADDRESS_A], secret=bytes(32))
    assert stranger.iss(0, key) != net.a.iss(0, key)
    with pytest.raises(ValueError):
        Stack(transmit=print, local_addresses=[ADDRESS_A], secret=b"short")


def test_ephemeral_ports_distinct_in_range_then_exhausted():
    net = Net(ephemeral_ports=(50000, 50003))
    ports = {net.a.connect(0, ADDRESS_B, 80).key[1] for _ in range(4)}
    assert ports == {50000, 50001, 50002, 50003}
    with pytest.raises(StackError) as err:
        net.a.connect(0, ADDRESS_B, 80)
    assert err.value.reason == "no-ports"
    assert net.a.connect(0, ADDRESS_B, 81).key[1] in ports  # another remote port: reusable


# ---- transfers, closing, handoffs -----------------------------------------------------------


def _established(net: Net):
    listener = net.b.listen(ADDRESS_B, 80)
    client = net.a.connect(0, ADDRESS_B, 80)
    net.run(lambda: bool(listener.queue))
    server = listener.accept()
    net.run(lambda: client.state == TcpState.ESTABLISHED)
    return client, server


def _pump(net: Net, sender, receiver, data: bytes) -> bytes:
    got = bytearray()
    offset = 0

    def step() -> bool:
        nonlocal offset
        if offset < len(data):
            offset += sender.send(data[offset : offset + 65536])
        got.extend(receiver.recv(1 << 20))
        return len(got) >= len(data)

    net.run(step)
    return bytes(got)


def test_established_transfer_both_ways_then_close_and_time_wait_expiry_empty_table():
    net = Net()
    client, server = _established(net)
    up = bytes(range(256)) * 4000
    down = bytes(reversed(range(256))) * 3000
    assert _pump(net, client, server, up) == up
    assert _pump(net, server, client, down) == down
    client.close()
    net.run(lambda: server.at_eof)
    server.close()
    net.run(lambda: not net.a.connections and not net.b.connections)
    assert client.state == server.state == TcpState.CLOSED
    assert client.close_reason == server.close_reason == CloseReason.NORMAL
    assert net.a.next_deadline() is None and net.b.next_deadline() is None


def test_established_unknown_four_tuple_same_ports_other_address_gets_rst():
    net = Net()
    _established(net)
    sent = len(net.sent)
    net.b.receive(net.now, tcp(OTHER, ADDRESS_B, sport=40000, ack=9, flags=TcpFlags.ACK))
    assert len(net.sent) == sent + 1 and decode(net.sent[-1]).flags == TcpFlags.RST


@pytest.mark.parametrize("include_unacked", [True, False], ids=["full", "regenerable"])
def test_established_handoff_to_second_stack_transfer_completes(include_unacked):
    net = Net()
    client, server = _established(net)
    stream = bytes(i % 251 for i in range(400_000))
    written = server.send(stream[:100_000])
    net.run(lambda: net.now > 300)  # partly delivered
    received = bytearray(client.recv(1 << 20))
    server.freeze(net.now)
    blob = server.export(include_unacked=include_unacked)
    # A frozen connection answers nothing: not even to a segment that would be a RST case.
    sent = len(net.sent)
    net.b.receive(net.now, tcp(ADDRESS_A, ADDRESS_B, sport=client.key[1], flags=TcpFlags.ACK))
    assert len(net.sent) == sent
    acceptor = Stack(transmit=net._send, local_addresses=[ADDRESS_B], secret=b"x" * 32)
    moved = acceptor.import_connection(blob)
    with pytest.raises(StackError) as err:
        acceptor.import_connection(blob)
    assert err.value.reason == "duplicate"
    assert moved.frozen and moved.key == server.key
    net.b.detach(server)
    net.stacks[ADDRESS_B] = acceptor
    offset = moved.write_offset
    assert offset == (written if include_unacked else server.conn.acked_offset)
    moved.thaw(net.now)
    rest = stream[offset:]

    def step() -> bool:
        nonlocal rest
        if rest:
            rest = rest[moved.send(rest[:65536]) :]
        received.extend(client.recv(1 << 20))
        return len(received) >= len(stream)

    net.run(step)
    assert bytes(received) == stream


def test_segments_reaching_a_frozen_connection_go_to_on_frozen_input_and_can_be_replayed():
    """A request sent while the server is frozen is dropped there (nothing answered) but
    handed to ``on_frozen_input`` whole; the same packet given to the acceptor's stack
    after the import and thaw is read there, so the client need not send it again."""
    net = Net()
    client, server = _established(net)
    server.freeze(net.now)
    blob = server.export(include_unacked=False)
    kept: list[tuple[object, bytes]] = []
    server.on_frozen_input = lambda sock, packet: kept.append((sock, packet))
    assert client.send(b"GET /next") == 9
    net.a.poll(net.now)
    sent = len(net.sent)
    while net.queue:
        net.now = max(net.now, net.queue[0][0])
        net.b.receive(net.now, heapq.heappop(net.queue)[2])
    assert len(net.sent) == sent and server.recv(100) == b""  # dropped, unanswered
    assert [sock for sock, _ in kept] == [server]
    assert decode(kept[0][1]).payload == b"GET /next"
    acceptor = Stack(transmit=net._send, local_addresses=[ADDRESS_B], secret=b"x" * 32)
    net.b.detach(server)
    moved = acceptor.import_connection(blob)
    net.stacks[ADDRESS_B] = acceptor
    moved.thaw(net.now)
    for _, packet in kept:
        acceptor.receive(net.now, packet)
    assert moved.recv(100) == b"GET /next"
    net.run(lambda: client.conn.acked_offset == 9)


def test_established_import_foreign_address_not_local():
    net = Net()
    _, server = _established(net)
    server.freeze(net.now)
    other = Stack(transmit=net._send, local_addresses=[OTHER], secret=SECRET)
    with pytest.raises(StackError) as err:
        other.import_connection(server.export())
    assert err.value.reason == "not-local"


def test_timers_of_many_connections_fire_in_deadline_order_and_the_heap_stays_bounded():
    """The stack's deadline heap: each connection's SYN retransmission fires once when due
    (none early, none lost), connections re-armed again and again leave no growing heap."""
    net = Net()
    net.b = Stack(transmit=lambda packet: None, local_addresses=[ADDRESS_B], secret=SECRET)
    net.stacks = {ADDRESS_A: net.a}  # SYNs go nowhere: every connection retransmits
    socks = []
    for i in range(200):  # one SYN a millisecond: 200 different deadlines
        socks.append(net.a.connect(i, ADDRESS_B, 80))
        net.a.poll(i)
    first = net.a.next_deadline()
    assert first is not None and first > 200
    net.sent.clear()
    net.a.poll(first - 1)
    assert not net.sent  # nothing early
    net.a.poll(first)
    assert [decode(p).flags & TcpFlags.SYN for p in net.sent] == [TcpFlags.SYN]
    for step in range(50):
        for sock in socks[::7]:
            sock.send(b"")  # marks the socket: its timer is re-armed (unchanged)
        net.a.poll(first + step)
    assert len(net.a._heap) <= 2 * len(net.a._deadlines) + 64
    net.a.poll(first + 1000)  # every first retransmission is due by now (RTO 1 s + 199 ms)
    assert len(net.sent) == 200  # each once
    assert net.a.next_deadline() == first + 2000  # the first one's second retransmission


# ---- RFC 8201 5.2, RFC 9293 3.7.1: the MSS the path allows --------------------------------


def _mss_option(segment: TcpSegment) -> int | None:
    for option in segment.options:
        if isinstance(option, MaximumSegmentSize):
            return option.maximum_segment_size
    return None


def _largest_data_segment(packets: list[bytes], source: bytes) -> int:
    """The largest TCP segment (header, options and data) ``source`` sent among ``packets``."""
    return max(len(p) - 40 for p in packets if p[8:24] == source and decode(p).payload)


def test_new_connection_mss_limit_bounds_offered_and_sent_mss():
    asked = []

    def limit(now_ms: int, local: bytes, remote: bytes) -> int:
        asked.append((local, remote))
        return 1000 if remote == ADDRESS_B else 5000

    net = Net()
    net.a.mss_limit = limit
    net.b.mss_limit = limit
    client, server = _established(net)
    syn, syn_ack = decode(net.sent[0]), decode(net.sent[1])
    # A's SYN offers what the path to B carries; B's path to A is wider than its own 1440
    assert (_mss_option(syn), _mss_option(syn_ack)) == (1000, CONFIG.mss)
    assert asked == [(ADDRESS_A, ADDRESS_B), (ADDRESS_B, ADDRESS_A)]
    net.sent.clear()
    data = bytes(range(256)) * 400
    assert _pump(net, server, client, data) == data
    # B sends with A's offer: no segment bigger than 20 + 1000 bytes (options within the MSS)
    assert _largest_data_segment(net.sent, ADDRESS_B) == 20 + 1000


def test_established_limit_mss_lowers_later_segments_only_never_raises():
    net = Net()
    client, server = _established(net)
    data = bytes(range(256)) * 400
    assert _pump(net, server, client, data) == data
    assert _largest_data_segment(net.sent, ADDRESS_B) == 20 + CONFIG.mss
    assert net.b.limit_mss(ADDRESS_A, 700) == 1
    assert net.b.limit_mss(ADDRESS_A, 900) == 0  # never up
    assert net.b.limit_mss(OTHER, 300) == 0  # no connection to it
    net.sent.clear()
    assert _pump(net, server, client, data) == data
    assert _largest_data_segment(net.sent, ADDRESS_B) == 20 + 700
    assert client.conn.raw.snd_mss == CONFIG.mss  # A's own unchanged
    assert net.b.limit_mss(ADDRESS_A, 1) == 1  # the core's floor, TCP_MIN_MSS
    net.sent.clear()
    assert _pump(net, server, client, data[:4000]) == data[:4000]
    assert _largest_data_segment(net.sent, ADDRESS_B) == 20 + lib.TCP_MIN_MSS


def test_limit_mss_travels_in_the_snapshot():
    net = Net()
    client, _ = _established(net)
    client.conn.limit_mss(900)
    client.freeze(net.now)
    blob = client.export()
    other = Stack(transmit=lambda p: None, local_addresses=[ADDRESS_A], secret=SECRET)
    net.a.detach(client)
    imported = other.import_connection(blob)
    assert imported.conn.raw.snd_mss == 900
