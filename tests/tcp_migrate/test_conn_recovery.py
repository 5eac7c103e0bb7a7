"""Retransmission and loss recovery: RTO (RFC 6298), NewReno fast retransmit and recovery
(RFC 5681 3.2, RFC 6582), the sender's use of SACK (RFC 2018), timestamps and PAWS (RFC 7323).

The connection under test is A; its peer is driven by hand (pair.Peer) so every ACK is exact.
"""

from __future__ import annotations

from mip6.wire.tcp import TcpFlags, Timestamps
from tcp_migrate._core import lib
from tcp_migrate.core import CloseReason, Config, InputResult, TcpState

from .pair import (
    ISS_A,
    ISS_B,
    PLAIN,
    SMSS,
    Pair,
    Transfer,
    established_with_peer,
    sack_option,
    syn_options,
    ts_option,
)

U32 = 2**32


def rel(seq: int) -> int:
    """A's sequence number as an offset from its first data byte."""
    return (seq - ISS_A - 1) % U32


def grow_cwnd(conn, peer, now: int, segments: int) -> int:
    """Acknowledges A's segments one by one (slow start) until cwnd holds `segments`."""
    conn.send(b"d" * conn.send_space)
    while conn.raw.cwnd < segments * SMSS:
        for s in peer.receive(now):
            now += 1
            peer.send(now, seq=ISS_B + 1, ack=s.sequence_number + len(s.payload))
    return now


def test_rto_initial_1s_then_doubling_up_to_max_then_gives_up():
    # no SACK, so no tail loss probe (RFC 8985 7.2) ahead of the timer: test_conn_tlp
    config = Config(rto_max_ms=8000, max_retries=5, sack=False)
    conn, peer, now = established_with_peer(config, rtt_ms=10)
    assert conn.raw.rto_ms == 1000  # RFC 6298 (2.4): at least 1 s
    conn.send(b"x" * 100)
    start = now
    times = []
    while conn.state == TcpState.ESTABLISHED:
        for s in peer.receive(now):
            assert s.sequence_number == ISS_A + 1 and len(s.payload) == 100
            times.append(now - start)
        now = conn.next_deadline()
        conn.timer(now)
    # (5.5) "RTO <- RTO * 2", (2.5) a maximum (8 s here), then R2: give up, no RST.
    assert times == [0, 1000, 3000, 7000, 15000, 23000]
    assert now - start == 31000
    assert conn.close_reason == CloseReason.TIMEOUT
    assert peer.receive(now) == []


def test_rto_minimum_configurable():
    conn, peer, now = established_with_peer(Config(rto_min_ms=200), rtt_ms=10)
    # SRTT 10, RTTVAR 5: SRTT + 4*RTTVAR = 30 ms, raised to the 200 ms minimum.
    assert (conn.raw.srtt_ms, conn.raw.rttvar_ms, conn.raw.rto_ms) == (10, 5, 200)
    conn.send(b"x" * 100)
    peer.receive(now)
    assert conn.next_deadline() == now + 200


def test_rto_restarted_by_ack_of_new_data_stopped_when_all_acked():
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=PLAIN)
    conn.send(b"x" * 2880)
    assert len(peer.receive(now)) == 2
    assert conn.next_deadline() == now + 1000  # (5.1)
    peer.send(now + 300, seq=ISS_B + 1, ack=ISS_A + 1 + 1440)
    assert conn.next_deadline() == now + 300 + 1000  # (5.3)
    peer.send(now + 400, seq=ISS_B + 1, ack=ISS_A + 1 + 2880)
    assert conn.next_deadline() is None  # (5.2)


def rfc6298(samples: list[int]) -> tuple[float, float, float]:
    srtt = rttvar = 0.0
    for i, r in enumerate(samples):
        if i == 0:
            srtt, rttvar = r, r / 2
        else:
            rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
    return srtt, rttvar, max(1000.0, srtt + max(1, 4 * rttvar))


def test_rtt_estimation_follows_rfc6298_without_timestamps():
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=PLAIN, rtt_ms=40)
    samples = [40]
    for r in (60, 100, 30, 500, 45, 45, 45, 250):
        conn.send(b"y" * 100)
        (s,) = peer.receive(now)
        now += r
        peer.send(now, seq=ISS_B + 1, ack=s.sequence_number + 100)
        samples.append(r)
        srtt, rttvar, rto = rfc6298(samples)
        assert abs(conn.raw.srtt_ms - srtt) <= 2
        assert abs(conn.raw.rttvar_ms - rttvar) <= 2
        assert abs(conn.raw.rto_ms - rto) <= 10


def test_rtt_karn_retransmitted_segment_not_timed():
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=PLAIN, rtt_ms=40)
    conn.send(b"y" * 100)
    peer.receive(now)
    now += 1000
    conn.timer(now)
    peer.receive(now)  # the retransmission
    assert conn.raw.rto_ms == 2000
    peer.send(now + 5, seq=ISS_B + 1, ack=ISS_A + 101)
    # Karn: no sample from the ambiguous ACK; the backed-off RTO stays.
    assert (conn.raw.srtt_ms, conn.raw.rto_ms) == (40, 2000)


def test_rtt_from_timestamps_every_ack():
    conn, peer, now = established_with_peer(rtt_ms=20)
    conn.send(b"y" * 100)
    (s,) = peer.receive(now)
    tsval = s.find(Timestamps).tsval
    now += 80
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 101, options=ts_option(2, tsval))
    # RFC 7323 4.1: R = now - TSecr (80 ms): SRTT = 7/8*20 + 80/8 = 27.5 and
    # RTTVAR = 3/4*10 + 1/4*60 = 22.5, both in whole milliseconds, rounded half up.
    assert (conn.raw.srtt_ms, conn.raw.rttvar_ms) == (28, 23)


def test_newreno_three_dupacks_fast_retransmit_and_window():
    conn, peer, now = established_with_peer(
        Config(timestamps=False), peer_options=PLAIN, capacity=1 << 20
    )
    now = grow_cwnd(conn, peer, now, 10)
    una = conn.raw.snd_una
    flight_segments = peer.receive(now)
    assert len(flight_segments) >= 10
    flight = conn.raw.snd_max - una
    snd_max = conn.raw.snd_max
    cwnd = conn.raw.cwnd
    # The first segment is lost; each later one draws a duplicate ACK.
    for i in range(2):
        peer.send(now + 1, seq=ISS_B + 1, ack=una)
        # RFC 5681 3.2: no retransmission before the third; Limited Transmit (RFC 3042)
        # sends one new segment on each of the first two, cwnd unchanged.
        (new,) = peer.receive(now + 1)
        assert new.sequence_number == (snd_max + i * SMSS) % U32
        assert conn.raw.cwnd == cwnd
    assert conn.raw.dupacks == 2
    limited_max = conn.raw.snd_max
    peer.send(now + 1, seq=ISS_B + 1, ack=una)
    (rexmit,) = peer.receive(now + 1)
    assert rexmit.sequence_number == una and len(rexmit.payload) == SMSS
    raw = conn.raw
    assert raw.flags & lib.TCP_CF_IN_RECOVERY
    # RFC 6582 3.2 step 2-3: ssthresh = max(FlightSize/2, 2*SMSS) without the Limited
    # Transmit segments, recover = highest sent, cwnd = ssthresh + 3*SMSS.
    assert raw.ssthresh == flight // 2
    assert raw.recover == (limited_max - 1) % U32
    assert raw.cwnd == flight // 2 + 3 * SMSS
    snd_max = limited_max
    # Step 4: each further duplicate ACK inflates cwnd by SMSS; new data once it allows.
    sent_new = []
    for _ in range(len(flight_segments) - 4):
        peer.send(now + 2, seq=ISS_B + 1, ack=una)
        sent_new += peer.receive(now + 2)
    assert raw.cwnd == flight // 2 + (len(flight_segments) - 1) * SMSS
    assert sent_new and all(
        s.sequence_number == (snd_max + i * SMSS) % U32 for i, s in enumerate(sent_new)
    )
    # Step 5: the full ACK ends recovery: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
    new_max = conn.raw.snd_max
    peer.send(now + 3, seq=ISS_B + 1, ack=snd_max)
    assert not raw.flags & lib.TCP_CF_IN_RECOVERY
    outstanding = (new_max - snd_max) % U32
    assert raw.cwnd == min(flight // 2, max(outstanding, SMSS) + SMSS)
    assert raw.dupacks == 0


def test_newreno_partial_ack_retransmits_next_hole_and_deflates():
    conn, peer, now = established_with_peer(
        Config(timestamps=False), peer_options=PLAIN, capacity=1 << 20
    )
    now = grow_cwnd(conn, peer, now, 10)
    una = conn.raw.snd_una
    segments = peer.receive(now)
    assert len(segments) >= 10
    for _ in range(3):
        peer.send(now + 1, seq=ISS_B + 1, ack=una)
    peer.receive(now + 1)  # the fast retransmission of segment 0
    rto_deadline = conn.next_deadline()
    cwnd = conn.raw.cwnd
    # Segment 5 was lost too: the retransmission of 0 brings a partial ACK up to 5.
    partial = (una + 5 * SMSS) % U32
    peer.send(now + 50, seq=ISS_B + 1, ack=partial)
    out = peer.receive(now + 50)
    assert out[0].sequence_number == partial and len(out[0].payload) == SMSS
    raw = conn.raw
    assert raw.flags & lib.TCP_CF_IN_RECOVERY  # "do not exit the fast recovery procedure"
    # "deflate the congestion window by the amount of new data acknowledged ..., then add
    # back SMSS bytes if the partial ACK acknowledges SMSS or more bytes of new data"
    assert raw.cwnd == cwnd - 5 * SMSS + SMSS
    # "For the first partial ACK ... also reset the retransmit timer."
    assert conn.next_deadline() == now + 50 + raw.rto_ms != rto_deadline


def test_newreno_after_rto_dupacks_below_recover_no_fast_retransmit():
    conn, peer, now = established_with_peer(
        Config(timestamps=False), peer_options=PLAIN, capacity=1 << 20
    )
    now = grow_cwnd(conn, peer, now, 6)
    una = conn.raw.snd_una
    peer.receive(now)
    snd_max = conn.raw.snd_max
    now += 1000
    conn.timer(now)  # RTO
    (rexmit,) = peer.receive(now)
    assert rexmit.sequence_number == una
    raw = conn.raw
    # RFC 6582 3.2 step 4 (after a timeout): recover = highest sent; cwnd = 1 SMSS (RFC 5681).
    assert raw.recover == (snd_max - 1) % U32 and raw.cwnd == SMSS
    assert raw.snd_nxt == (una + SMSS) % U32  # go-back-N from SND.UNA
    # The retransmission and two more segments are acknowledged in pieces, then duplicates
    # for data sent before the timeout arrive: ACK <= recover, no fast retransmit (step 2).
    peer.send(now + 10, seq=ISS_B + 1, ack=una + SMSS)
    peer.receive(now + 10)
    for _ in range(4):
        peer.send(now + 11, seq=ISS_B + 1, ack=una + SMSS)
    assert not raw.flags & lib.TCP_CF_IN_RECOVERY
    assert raw.dupacks == 4


def sack_receiver(conn, peer, now: int, first: list, lost: set[int]) -> list[int]:
    """Plays a SACK receiver (RFC 2018 4) for A's segments: the first transmission of each
    segment index in ``lost`` disappears, every other segment is answered at once with the
    cumulative ACK and up to three SACK blocks, most recent first. Returns the indices of
    A's retransmissions, in order, until everything is acknowledged; no timer ever runs."""
    una = conn.raw.snd_una
    have: set[int] = set()
    seen: set[int] = set()
    ends: dict[int, int] = {}  # segment index -> its end, as an offset from una
    retransmitted = []
    pending = list(first)
    while pending:
        segment = pending.pop(0)
        index = (segment.sequence_number - una) % U32 // SMSS
        if index in seen:
            retransmitted.append(index)
        seen.add(index)
        if index in lost and retransmitted.count(index) == 0:
            continue
        have.add(index)
        ends[index] = (segment.sequence_number - una) % U32 + len(segment.payload)
        cumulative = 0
        while cumulative in have:
            cumulative += 1
        ranges = []
        for i in sorted(x for x in have if x > cumulative):
            if ranges and ranges[-1][1] == i:
                ranges[-1][1] = i + 1
            else:
                ranges.append([i, i + 1])
        ranges.sort(key=lambda r: not r[0] <= index < r[1])  # the newest block first
        blocks = [(una + lo * SMSS, una + ends[hi - 1]) for lo, hi in ranges[:3]]
        options = sack_option(*blocks) if blocks else ()
        now += 1
        ack = una + (ends[cumulative - 1] if cumulative else 0)
        peer.send(now, seq=ISS_B + 1, ack=ack, options=options)
        pending += peer.receive(now)
    assert conn.raw.snd_una == conn.raw.snd_max
    return retransmitted


def test_sack_sender_retransmits_holes_not_sacked_data():
    conn, peer, now = established_with_peer(
        Config(timestamps=False),
        peer_options=syn_options(tsval=None),  # SACK permitted
        capacity=1 << 20,
    )
    now = grow_cwnd(conn, peer, now, 12)
    conn.send(b"d" * conn.send_space)
    first = peer.receive(now)
    assert len(first) >= 12
    # Three holes in one window: each is sent again exactly once, in order, and nothing the
    # peer has SACKed is, all within one fast recovery (no timeout).
    assert sack_receiver(conn, peer, now, first, {0, 3, 7}) == [0, 3, 7]
    assert conn.raw.sack_count == 0 and not conn.raw.flags & lib.TCP_CF_IN_RECOVERY
    assert conn.raw.backoff == 0


def test_sack_sender_holes_filled_faster_than_newreno_alone():
    # Without SACK, NewReno repairs one hole per round trip (one per partial ACK); with the
    # scoreboard the holes are sent as soon as cwnd allows, before the partial ACKs.
    results = {}
    for sack in (True, False):
        conn, peer, now = established_with_peer(
            Config(timestamps=False, sack=sack),
            peer_options=syn_options(tsval=None),
            capacity=1 << 20,
        )
        now = grow_cwnd(conn, peer, now, 16)
        conn.send(b"d" * conn.send_space)
        first = peer.receive(now)
        results[sack] = sack_receiver(conn, peer, now, first, {0, 2, 4})
    assert results[True] == [0, 2, 4]
    assert sorted(set(results[False])) == [0, 2, 4]


def test_sack_scoreboard_cleared_on_rto():
    # RFC 2018 8: "after a retransmit timeout the data sender SHOULD turn off all of the
    # SACKed bits"
    conn, peer, now = established_with_peer(
        Config(timestamps=False), peer_options=syn_options(tsval=None), capacity=1 << 20
    )
    conn.send(b"s" * 4000)
    segments = peer.receive(now)
    una = conn.raw.snd_una
    peer.send(now + 1, seq=ISS_B + 1, ack=una, options=sack_option((una + SMSS, una + 2 * SMSS)))
    assert conn.raw.sack_count == 1
    conn.timer(conn.next_deadline())
    assert conn.raw.sack_count == 0
    assert len(segments) == 2  # the 1120-byte tail waits for an ACK (Nagle)


def test_sack_blocks_outside_outstanding_data_ignored():
    conn, peer, now = established_with_peer(
        Config(timestamps=False), peer_options=syn_options(tsval=None)
    )
    conn.send(b"s" * 2000)
    peer.receive(now)
    una = conn.raw.snd_una
    for block in ((una - 100, una), (una + 10, una + 5000), (una + 5, una + 5)):
        peer.send(now + 1, seq=ISS_B + 1, ack=una, options=sack_option(block))
        assert conn.raw.sack_count == 0
        assert conn.check() == 0


def test_timestamps_echo_earliest_unacknowledged_segment():
    conn, peer, now = established_with_peer()
    # RFC 7323 4.3: with a delayed ACK covering two segments, TSecr echoes the first.
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1, payload=b"a" * 100, options=ts_option(1000, 1))
    peer.send(
        now + 5, seq=ISS_B + 101, ack=ISS_A + 1, payload=b"b" * 100, options=ts_option(1005, 1)
    )
    conn.timer(conn.next_deadline())
    (ack,) = peer.receive(conn.raw.t_delack)
    assert ack.find(Timestamps).tsecr == 1000


def test_timestamps_paws_old_tsval_dropped_and_acked():
    conn, peer, now = established_with_peer()
    peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1, payload=b"a" * 10, options=ts_option(5000, 1))
    conn.recv(100)
    # RFC 7323 5.3 R1: an older TSval makes the segment unacceptable, answered with an ACK.
    result = peer.send(
        now + 1, seq=ISS_B + 11, ack=ISS_A + 1, payload=b"old", options=ts_option(4000, 1)
    )
    assert result == InputResult.PAWS
    assert conn.recv(100) == b""
    assert [s.acknowledgment_number for s in peer.receive(now + 1)][-1] == ISS_B + 11


def test_timestamps_negotiated_segment_without_tsopt_dropped():
    conn, peer, now = established_with_peer()
    # RFC 7323 3.2: "If a non-RST segment is received without a TSopt, a TCP SHOULD silently
    # drop the segment."
    assert peer.send(now, seq=ISS_B + 1, ack=ISS_A + 1, payload=b"x") == InputResult.DROPPED
    assert conn.readable == 0 and peer.receive(now) == []


def test_timestamp_clock_from_offset_and_now():
    conn, peer, now = established_with_peer()
    conn.send(b"t")
    (s,) = peer.receive(now + 0)
    assert s.find(Timestamps).tsval == (now + conn.raw.ts_offset) % U32


def test_fast_recovery_in_a_faulty_pair_uses_fewer_timeouts_than_losses():
    pair = Pair(seed=9, loss=0.03)
    transfer = Transfer(bytes(range(256)) * 4000)
    pair.handshake()
    timeouts = []
    original = pair.a.timer

    def counting_timer(now):
        before = pair.a.raw.backoff
        original(now)
        if pair.a.raw.backoff > before:
            timeouts.append(now)

    pair.a.timer = counting_timer
    pair.start(transfer)
    pair.run(transfer.complete, max_ms=2_000_000)
    assert pair.ab.dropped > 10
    assert len(timeouts) < pair.ab.dropped / 2


def test_fin_retransmitted_after_rto_until_acked():
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=PLAIN)
    conn.send(b"bye")
    conn.shutdown_write()
    (fin,) = peer.receive(now)
    assert fin.flags & TcpFlags.FIN and fin.payload == b"bye"
    now = conn.next_deadline()
    conn.timer(now)
    (again,) = peer.receive(now)
    assert again.flags & TcpFlags.FIN and again.payload == b"bye"
    peer.send(now + 5, seq=ISS_B + 1, ack=ISS_A + 5)
    assert conn.state == TcpState.FIN_WAIT_2
    assert conn.next_deadline() is None


def test_a_pure_ack_after_a_timeout_carries_the_first_unsent_octet():
    # RFC 9293 3.10.7.4: an acknowledgment is <SEQ=SND.NXT><ACK=RCV.NXT>, SND.NXT being the
    # next new octet. A timeout sends again from SND.UNA (RFC 6298 5.4), and the stack's own
    # send point goes back with it; an acknowledgment numbered from there lies below what
    # the peer has received, which the peer drops as an old duplicate (3.10.7.4's
    # acceptability test) without reading its ACK field.
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=PLAIN)
    conn.send(b"x" * 3 * SMSS)
    assert [len(s.payload) for s in peer.receive(now)] == [SMSS] * 3  # received, ACKs lost
    now = conn.next_deadline()
    conn.timer(now)
    (again,) = peer.receive(now)
    assert again.sequence_number == ISS_A + 1 and len(again.payload) == SMSS
    peer.send(
        now + 5, seq=ISS_B + 1, ack=ISS_A + 1, flags=TcpFlags.ACK | TcpFlags.PSH, payload=b"hello"
    )
    now += 5
    answers = peer.receive(now)
    while not answers:  # the acknowledgment may be delayed (RFC 9293 3.8.6.3)
        now = conn.next_deadline()
        conn.timer(now)
        answers = peer.receive(now)
    (ack,) = answers
    assert not ack.payload and ack.acknowledgment_number == ISS_B + 1 + 5
    assert ack.sequence_number == (ISS_A + 1 + 3 * SMSS) % U32


def test_two_ends_timed_out_together_still_hear_each_others_acknowledgments():
    # A member channel (chaos seed 440): both ends had segments in flight whose ACKs were
    # lost, both timed out and sent again from SND.UNA, and each answered the other's old
    # segment with an acknowledgment numbered below what the other had received: each
    # dropped the other's as an old duplicate and answered it the same way, so neither
    # ever learned its data had arrived and the channel carried nothing more.
    pair = Pair(config_a=Config(timestamps=False), config_b=Config(timestamps=False))
    pair.handshake()
    start = pair.now

    def drop_pure_acks(raw: bytes) -> list[bytes]:
        return [] if pair.now < start + 500 and payload_length(raw) == 0 else [raw]

    pair.filters = {"ab": drop_pure_acks, "ba": drop_pure_acks}
    transfer = Transfer(b"a" * 3 * SMSS, b"b" * 3 * SMSS)
    pair.start(transfer)

    def acknowledged() -> bool:
        return transfer.complete() and all(
            conn.raw.snd_una == conn.raw.snd_max for _, conn in pair.connections()
        )

    pair.run(acknowledged, max_ms=10_000)
    assert pair.a.state == pair.b.state == TcpState.ESTABLISHED


def payload_length(raw: bytes) -> int:
    return len(raw) - (raw[12] >> 4) * 4  # the data offset, RFC 9293 3.1
