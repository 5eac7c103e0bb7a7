"""Data transfer and closing: bulk transfer over a faulty link (seeded loss, duplication and
reordering, virtual clock), FIN exchange (RFC 9293 3.6), TIME-WAIT, delayed ACKs (RFC 5681 4.2,
RFC 9293 3.8.6.3), Nagle (3.7.4), zero-window probing (3.8.6.1) and keepalive (3.8.4)."""

from __future__ import annotations

import itertools
import random

import pytest

from mip6.wire.tcp import Sack, TcpFlags, Timestamps
from tcp_migrate._core import lib
from tcp_migrate.core import CloseReason, Config, ConnectionStateError, InputResult, TcpState

from .pair import ISS_A, ISS_B, Pair, Transfer, established_with_peer, ts_option

MB = 1 << 20


def both_closed(pair: Pair) -> bool:
    return pair.a.state == TcpState.CLOSED and pair.b.state == TcpState.CLOSED


def test_established_bulk_transfer_lossless_byte_exact():
    rng = random.Random(7)
    transfer = Transfer(rng.randbytes(2 * MB), rng.randbytes(MB // 2), close=True)
    pair = Pair(seed=7, capacity_a=256 * 1024, capacity_b=256 * 1024)
    pair.handshake()
    pair.start(transfer)
    pair.run(lambda: transfer.complete() and both_closed(pair))
    assert pair.a.close_reason == pair.b.close_reason == CloseReason.NORMAL
    assert pair.a.acked_offset == 2 * MB and pair.b.received_offset == 2 * MB
    assert pair.b.acked_offset == MB // 2 and pair.a.received_offset == MB // 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_established_bulk_transfer_loss_duplication_reordering_byte_exact(seed):
    rng = random.Random(seed)
    transfer = Transfer(rng.randbytes(3 * MB), rng.randbytes(MB // 4), close=True)
    pair = Pair(seed=seed, loss=0.02, duplicate=0.02, reorder=0.05)
    pair.handshake()
    pair.start(transfer)
    pair.run(lambda: transfer.complete() and both_closed(pair), max_ms=5_000_000)
    assert pair.ab.dropped > 20 and pair.ba.dropped > 10  # the faults did happen
    assert pair.a.close_reason == pair.b.close_reason == CloseReason.NORMAL


def test_established_transfer_with_large_window_scaled():
    rng = random.Random(11)
    data = rng.randbytes(4 * MB)
    transfer = Transfer(data, close=True)
    pair = Pair(seed=11, capacity_a=MB, capacity_b=MB, delay_ms=50, loss=0.001)
    pair.handshake()
    pair.start(transfer)
    pair.run(lambda: transfer.complete() and both_closed(pair), max_ms=5_000_000)
    # A window far above 64 KiB was in use (RFC 7323 window scaling).
    assert pair.a.raw.max_snd_wnd > 512 * 1024


def test_close_both_ways_fin_acked_time_wait_then_closed():
    pair = Pair(record=True, config_a=Config(time_wait_ms=5000))
    pair.handshake()
    pair.a.send(b"request")
    pair.a.shutdown_write()
    assert pair.a.state == TcpState.FIN_WAIT_1
    pair.flush()
    pair.run(lambda: pair.b.at_eof or pair.b.readable)
    pair.run(lambda: pair.a.state == TcpState.FIN_WAIT_2)
    assert pair.b.recv(100) == b"request" and pair.b.at_eof
    assert pair.b.state == TcpState.CLOSE_WAIT
    # The half-closed connection still carries data the other way.
    pair.b.send(b"response")
    pair.b.shutdown_write()
    assert pair.b.state == TcpState.LAST_ACK
    pair.flush()
    pair.run(lambda: pair.b.state == TcpState.CLOSED)
    assert pair.a.state == TcpState.TIME_WAIT
    assert pair.a.recv(100) == b"response" and pair.a.at_eof
    assert pair.b.close_reason == CloseReason.NORMAL
    entered = pair.now - pair.ab.delay_ms  # A entered TIME-WAIT when B's FIN arrived
    pair.run(lambda: pair.a.state == TcpState.CLOSED)
    assert pair.now == entered + 5000  # 2 MSL, configurable
    fins = [s.segment for s in pair.sent if s.segment.flags & TcpFlags.FIN]
    # Each FIN rides on the last data segment and takes the sequence number after it.
    assert [(f.sequence_number + len(f.payload)) % 2**32 for f in fins] == [
        (ISS_A + 8) % 2**32,
        ISS_B + 9,
    ]


def test_close_simultaneous_both_closing_then_time_wait():
    pair = Pair(config_a=Config(time_wait_ms=3000), config_b=Config(time_wait_ms=3000))
    pair.handshake()
    pair.a.shutdown_write()
    pair.b.shutdown_write()
    pair.flush()
    # Each FIN arrives before the ACK of the other's: FIN-WAIT-1 -> CLOSING -> TIME-WAIT.
    pair.step()
    assert pair.a.state == pair.b.state == TcpState.CLOSING
    pair.run(lambda: pair.a.state == pair.b.state == TcpState.TIME_WAIT)
    pair.run(lambda: both_closed(pair))
    assert pair.a.close_reason == pair.b.close_reason == CloseReason.NORMAL


def test_time_wait_retransmitted_fin_acked_and_timer_restarted():
    conn, peer, now = established_with_peer(Config(time_wait_ms=1000))
    conn.shutdown_write()
    (fin,) = peer.receive(now)
    tsval = fin.find(Timestamps).tsval
    now += 10
    peer.send(
        now,
        seq=ISS_B + 1,
        ack=fin.sequence_number + 1,
        flags=TcpFlags.FIN | TcpFlags.ACK,
        options=ts_option(2, tsval),
    )
    assert conn.state == TcpState.TIME_WAIT
    (ack,) = peer.receive(now)
    assert ack.acknowledgment_number == ISS_B + 2
    assert conn.next_deadline() == now + 1000
    now += 600  # the ACK was lost: the FIN comes again
    result = peer.send(
        now,
        seq=ISS_B + 1,
        ack=fin.sequence_number + 1,
        flags=TcpFlags.FIN | TcpFlags.ACK,
        options=ts_option(3, tsval),
    )
    assert result == InputResult.UNACCEPTABLE
    (again,) = peer.receive(now)
    assert again.acknowledgment_number == ISS_B + 2
    assert conn.next_deadline() == now + 1000
    conn.timer(now + 1000)
    assert conn.state == TcpState.CLOSED and conn.close_reason == CloseReason.NORMAL


def test_send_after_shutdown_refused():
    conn, _, _ = established_with_peer()
    conn.shutdown_write()
    with pytest.raises(ConnectionStateError) as info:
        conn.send(b"late")
    assert info.value.status == lib.TCP_ESHUTDOWN


def test_established_one_segment_ack_delayed_two_segments_ack_immediate():
    conn, peer, now = established_with_peer(Config(delack_ms=100))
    ts = ts_option(5, conn.raw.ts_offset + now)
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1, payload=b"a" * 1000, options=ts)
    assert peer.receive(now) == []
    assert conn.next_deadline() == now + 100  # RFC 9293 3.8.6.3: delayed, < 0.5 s
    conn.timer(now + 100)
    (ack,) = peer.receive(now + 100)
    assert ack.acknowledgment_number == ISS_B + 1001
    # RFC 5681 4.2: "an ACK SHOULD be generated for at least every second full-sized segment"
    now += 200
    peer.send(now, seq=ISS_B + 1001, ack=ISS_A + 1, payload=b"b" * 1428, options=ts)
    assert peer.receive(now) == []
    peer.send(now, seq=ISS_B + 2429, ack=ISS_A + 1, payload=b"c" * 1428, options=ts)
    (ack,) = peer.receive(now)
    assert ack.acknowledgment_number == ISS_B + 3857
    assert conn.raw.t_delack == lib.TCP_NO_DEADLINE


def test_established_out_of_order_segment_acked_immediately_with_sack():
    conn, peer, now = established_with_peer()
    ts = ts_option(5, now)
    peer.send(now, seq=ISS_B + 1 + 1000, ack=ISS_A + 1, payload=b"b" * 500, options=ts)
    (ack,) = peer.receive(now)
    assert ack.acknowledgment_number == ISS_B + 1
    assert ack.find(Sack).blocks == ((ISS_B + 1001, ISS_B + 1501),)
    # The gap filled: immediately acknowledged, no SACK left.
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1, payload=b"a" * 1000, options=ts)
    (ack,) = peer.receive(now)
    assert ack.acknowledgment_number == ISS_B + 1501 and ack.find(Sack) is None
    assert conn.recv(5000) == b"a" * 1000 + b"b" * 500


def test_established_sack_blocks_most_recent_first_at_most_three_with_timestamps():
    _, peer, now = established_with_peer()
    ts = ts_option(5, now)
    base = ISS_B + 1
    for offset in (100, 300, 500, 700, 200):  # 200 merges nothing: 100..110, 200..210, ...
        peer.send(now, seq=base + offset, ack=ISS_A + 1, payload=b"x" * 10, options=ts)
        (ack,) = peer.receive(now)
        blocks = ack.find(Sack).blocks
        # RFC 2018 4: the first block holds the segment that triggered the ACK.
        assert blocks[0] == (base + offset, base + offset + 10)
        assert len(blocks) <= 3  # 40 option bytes: timestamps + 3 SACK blocks
    assert blocks == ((base + 200, base + 210), (base + 100, base + 110), (base + 300, base + 310))


def test_nagle_holds_small_segment_until_ack_unless_nodelay():
    for nodelay, expected in ((False, [10]), (True, [10, 10])):
        conn, peer, now = established_with_peer(Config(nodelay=nodelay))
        conn.send(b"x" * 10)
        conn.output(now)
        conn.send(b"y" * 10)
        assert [len(s.payload) for s in peer.receive(now)] == expected[1:]
        assert nodelay or conn.raw.snd_max - conn.raw.snd_una == 10


def test_zero_window_persist_probes_back_off_then_resume():
    conn, peer, now = established_with_peer(peer_options=(), peer_window=1000)
    conn.send(b"z" * 3000)
    (first,) = peer.receive(now)
    assert len(first.payload) == 1000
    now += 10
    # The peer's buffer is full: everything acknowledged, window zero.
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1001, window=0)
    assert peer.receive(now) == []
    assert conn.raw.t_rtx == lib.TCP_NO_DEADLINE
    probes = []
    for _ in range(4):
        now = conn.next_deadline()
        conn.timer(now)
        (probe,) = peer.receive(now)
        probes.append((now, probe.sequence_number, len(probe.payload)))
        # Not accepted by a zero window: the peer answers with an ACK, window still zero.
        peer.send(now + 10, seq=ISS_B + 1, ack=ISS_A + 1001, window=0)
        assert peer.receive(now + 10) == []
    # RFC 9293 3.8.6.1: one byte beyond the window, repeated with exponential backoff.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probes)]
    assert all(p[1:] == (ISS_A + 1001, 1) for p in probes)
    assert gaps == [2000, 4000, 8000]
    assert conn.state == TcpState.ESTABLISHED
    # The window opens (the probe byte included): the rest flows.
    now += 50
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1002, window=5000)
    (segment,) = peer.receive(now)
    assert (segment.sequence_number, len(segment.payload)) == (ISS_A + 1002, 1220)
    assert conn.raw.t_persist == lib.TCP_NO_DEADLINE
    assert conn.raw.t_rtx == now + conn.raw.rto_ms
    peer.send(now + 10, seq=ISS_B + 1, ack=ISS_A + 2222, window=5000)
    (tail,) = peer.receive(now + 10)  # Nagle kept the short tail until this ACK
    assert (tail.sequence_number, len(tail.payload)) == (ISS_A + 2222, 779)


def test_a_pure_ack_while_probing_a_zero_window_stays_inside_it():
    # The probe's byte (3.8.6.1) lies past the peer's zero window; an ACK numbered after it
    # is unacceptable there (3.10.7.4: with RCV.WND 0 only SEG.SEQ = RCV.NXT is) and the
    # peer, dropping it, never learns its own data arrived. Numbered at the window's edge,
    # as Linux's tcp_acceptable_seq does, it is read.
    conn, peer, now = established_with_peer(peer_options=(), peer_window=1000)
    conn.send(b"z" * 3000)
    peer.receive(now)
    now += 10
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1001, window=0)
    now = conn.next_deadline()
    conn.timer(now)
    (probe,) = peer.receive(now)
    assert (probe.sequence_number, len(probe.payload)) == (ISS_A + 1001, 1)
    peer.send(
        now + 10,
        seq=ISS_B + 1,
        ack=ISS_A + 1001,
        window=0,
        flags=TcpFlags.ACK | TcpFlags.PSH,
        payload=b"hello",
    )
    now += 10
    answers = peer.receive(now)
    while not answers:  # the acknowledgment may be delayed
        now = min(conn.next_deadline(), now + 500)
        conn.timer(now)
        answers = [s for s in peer.receive(now) if not s.payload]
    (ack,) = answers
    assert ack.acknowledgment_number == ISS_B + 6
    assert ack.sequence_number == ISS_A + 1001  # the zero window's edge, SND.UNA


def test_zero_window_receiver_advertises_zero_then_window_update():
    rng = random.Random(3)
    data = rng.randbytes(200_000)
    pair = Pair(capacity_b=16384, record=True)
    transfer = Transfer(data)
    pair.handshake()
    pair.a.send(data[:60000])
    transfer.written["a"] = 60000
    pair.flush()
    pair.run(lambda: pair.b.readable == 16384 and pair.a.raw.snd_wnd == 0)
    assert any(s.segment.window == 0 for s in pair.sent_by("ba"))
    # B's application reads again: a window update restarts the flow.
    pair.start(transfer)
    pair.run(transfer.complete, max_ms=300_000)


def test_keepalive_probes_answered_then_idle_peer_times_out():
    config = Config(keepalive_idle_ms=10_000, keepalive_intvl_ms=1000, keepalive_count=3)
    conn, peer, now = established_with_peer(config)
    assert conn.next_deadline() == now + 10_000
    now += 10_000
    conn.timer(now)
    (probe,) = peer.receive(now)
    # RFC 9293 3.8.4: SEG.SEQ = SND.NXT - 1, no data: the peer must answer with an ACK.
    assert probe.sequence_number == (ISS_A + 1 - 1) % 2**32 and probe.payload == b""
    peer.send(now + 10, seq=ISS_B + 1, ack=ISS_A + 1, options=ts_option(9, now))
    assert conn.raw.ka_probes == 0 and conn.next_deadline() == now + 10 + 10_000
    # Now the peer is gone: three probes a second apart, then the connection is dropped.
    now = now + 10 + 10_000
    for i in range(3):
        conn.timer(now)
        assert len(peer.receive(now)) == 1 and conn.raw.ka_probes == i + 1
        now = conn.next_deadline()
        assert now is not None
    conn.timer(now)
    assert conn.state == TcpState.CLOSED and conn.close_reason == CloseReason.TIMEOUT
    (rst,) = peer.receive(now)
    assert rst.flags == TcpFlags.RST


def test_keepalive_off_by_default():
    conn, _, _ = established_with_peer()
    assert conn.next_deadline() is None


def test_receive_window_right_edge_never_moves_left():
    rng = random.Random(5)
    transfer = Transfer(rng.randbytes(500_000))
    pair = Pair(seed=5, capacity_b=20000, loss=0.01, record=True)
    pair.handshake()

    calls = [0]

    def slow_reader(p: Pair) -> None:
        transfer.written["a"] += p.a.send(
            transfer.data["a"][transfer.written["a"] : transfer.written["a"] + p.a.send_space]
        )
        calls[0] += 1
        if calls[0] % 3 == 0:  # reads less than arrives: the window closes and reopens
            transfer.received["b"] += p.b.recv(3000)

    pair.start(slow_reader)
    pair.run(lambda: len(transfer.received["b"]) >= 400_000, max_ms=2_000_000)
    edge = None
    for sent in pair.sent_by("ba"):
        s = sent.segment
        right = s.acknowledgment_number + (s.window << pair.a.raw.snd_wscale)
        if edge is not None:
            assert (right - edge) % 2**32 < 2**31  # never to the left (RFC 9293 3.8.6)
        edge = right
