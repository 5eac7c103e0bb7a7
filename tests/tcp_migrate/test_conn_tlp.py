"""RACK-TLP's parts in tcp_migrate (RFC 8985). The tail loss probe (7): a segment lost at the
tail of a flight, with nothing after it to make the peer send duplicate ACKs, goes again at the
probe timeout (two smoothed round trips) instead of the retransmission timeout (a second or
more, backed off). A lost fast retransmission (6.2) goes again once data sent after it has
been SACKed, instead of at the retransmission timeout.

The connection under test is A; its peer is driven by hand (pair.Peer) so every ACK is exact.
"""

from __future__ import annotations

from mip6.wire.tcp import TcpFlags
from tcp_migrate._core import lib
from tcp_migrate.core import Config

from .pair import (
    ADDRESS_A,
    ADDRESS_B,
    ISS_B,
    SMSS,
    Pair,
    Transfer,
    decode,
    established_with_peer,
    sack_option,
    syn_options,
)

RTT = 40  # ms, the handshake's sample: SRTT 40, RTO 1 s (RFC 6298's minimum)
NO_TS = Config(timestamps=False)
SACK_PEER = syn_options(tsval=None)  # SACK permitted, no timestamps


def a_request_answered(conn, peer, now: int, size: int = 100) -> int:
    """A sends ``size`` bytes, the peer acknowledges them one RTT later; returns the time."""
    conn.send(b"r" * size)
    (s,) = peer.receive(now)
    now += RTT
    peer.send(now, seq=ISS_B + 1, ack=s.sequence_number + size)
    return now


def test_a_lost_last_segment_goes_again_at_two_round_trips_and_a_delayed_ack():
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    assert (conn.raw.srtt_ms, conn.raw.rto_ms) == (RTT, 1000)
    conn.send(b"q" * 100)
    (lost,) = peer.receive(now)
    # 7.2: PTO = 2 * SRTT, plus WCDelAckT (200 ms) for a flight of one segment; the RTO
    # stays where RFC 6298 (5.1) armed it
    assert conn.next_deadline() == now + 2 * RTT + 200
    now = conn.next_deadline()
    conn.timer(now)
    (probe,) = peer.receive(now)
    # 7.3: no new data, so the last segment again
    assert (probe.sequence_number, probe.payload) == (lost.sequence_number, lost.payload)
    assert conn.raw.flags & lib.TCP_CF_TLP and conn.raw.flags & lib.TCP_CF_TLP_RXT
    assert conn.raw.backoff == 0 and conn.raw.rto_ms == 1000  # not a timeout
    # 7.3: "the sender MUST arm the RTO timer, not the PTO timer"
    assert conn.next_deadline() == now + 1000
    ssthresh = conn.raw.ssthresh
    now += RTT
    end = lost.sequence_number + 100
    peer.send(now, seq=ISS_B + 1, ack=end)
    # the ACK that reaches TLP.end_seq decides nothing yet: a D-SACK may follow (7.4.1)
    assert conn.raw.flags & lib.TCP_CF_TLP and conn.raw.ssthresh == ssthresh
    assert conn.next_deadline() is None
    conn.send(b"n" * 100)
    peer.receive(now)
    peer.send(now + RTT, seq=ISS_B + 1, ack=end + 100)
    # 7.4.2: an ACK above it without a D-SACK: the probe repaired a loss, and congestion
    # control hears of it
    assert not conn.raw.flags & lib.TCP_CF_TLP
    assert conn.raw.ssthresh < ssthresh and conn.raw.cwnd == conn.raw.ssthresh


def test_a_dsack_for_the_probe_says_nothing_was_lost():
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    conn.send(b"q" * 100)
    (late,) = peer.receive(now)
    now = conn.next_deadline()
    conn.timer(now)
    (probe,) = peer.receive(now)
    cwnd, ssthresh = conn.raw.cwnd, conn.raw.ssthresh
    end = late.sequence_number + 100
    # the original's ACK was only slow: it covers TLP.end_seq, and the episode waits for what
    # the peer says of the probe (RFC 8985 7.4.1)
    peer.send(now + 1, seq=ISS_B + 1, ack=end)
    assert conn.raw.flags & lib.TCP_CF_TLP
    # the probe arrived as a duplicate: a D-SACK (RFC 2883 4)
    peer.send(now + RTT, seq=ISS_B + 1, ack=end, options=sack_option((probe.sequence_number, end)))
    assert not conn.raw.flags & lib.TCP_CF_TLP
    assert conn.raw.ssthresh == ssthresh and conn.raw.cwnd >= cwnd
    # or without D-SACK (tcp_migrate's own receivers, RFC 9293's ACK of an old segment): a
    # pure duplicate ACK at TLP.end_seq says the same
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    conn.send(b"q" * 100)
    (late,) = peer.receive(now)
    now = conn.next_deadline()
    conn.timer(now)
    peer.receive(now)
    ssthresh = conn.raw.ssthresh
    end = late.sequence_number + 100
    peer.send(now + 1, seq=ISS_B + 1, ack=end)
    peer.send(now + RTT, seq=ISS_B + 1, ack=end)
    assert not conn.raw.flags & lib.TCP_CF_TLP and conn.raw.ssthresh == ssthresh


def test_the_probe_is_new_data_when_the_window_allows_and_its_sack_starts_recovery():
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    now = a_request_answered(conn, peer, now)
    conn.send(b"d" * (40 * SMSS))
    flight = peer.receive(now)
    assert len(flight) == conn.raw.cwnd // SMSS >= 2  # cwnd-limited: more is queued
    # more than a segment in flight: no delayed-ACK allowance
    assert conn.next_deadline() == now + 2 * conn.raw.srtt_ms
    now = conn.next_deadline()
    conn.timer(now)
    (probe,) = peer.receive(now)
    last = flight[-1]
    assert probe.sequence_number == (last.sequence_number + len(last.payload)) % 2**32  # new
    assert conn.raw.flags & lib.TCP_CF_TLP and not conn.raw.flags & lib.TCP_CF_TLP_RXT
    # the whole flight was lost and only the probe arrived: its SACK says so (RACK's
    # inference, RFC 8985 6.2: everything sent a PTO before a delivered segment is lost)
    una = flight[0].sequence_number
    top = (probe.sequence_number + len(probe.payload)) % 2**32
    peer.send(now + RTT, seq=ISS_B + 1, ack=una, options=sack_option((probe.sequence_number, top)))
    assert conn.raw.flags & lib.TCP_CF_IN_RECOVERY and not conn.raw.flags & lib.TCP_CF_TLP
    (again, *_) = peer.receive(now + RTT)
    assert again.sequence_number == una  # fast retransmission, no timeout
    assert conn.raw.backoff == 0


def test_no_probe_without_sack_after_a_timeout_or_in_recovery():
    # 7.2 (1): SACK
    conn, peer, now = established_with_peer(Config(timestamps=False, sack=False), rtt_ms=RTT)
    conn.send(b"q" * 100)
    peer.receive(now)
    assert conn.next_deadline() == now + 1000
    # after a timeout: loss recovery until SND.UNA passes recover
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    conn.send(b"q" * 3 * SMSS)
    first = peer.receive(now)
    now = conn.next_deadline()
    conn.timer(now)  # the probe
    peer.receive(now)
    now = conn.next_deadline()
    conn.timer(now)  # the retransmission timeout
    assert conn.raw.backoff == 1 and not conn.raw.flags & lib.TCP_CF_TLP
    peer.receive(now)
    peer.send(now + RTT, seq=ISS_B + 1, ack=first[0].sequence_number + SMSS)
    assert conn.raw.backoff == 0  # a new ACK, but below recover
    assert conn.raw.t_tlp == lib.TCP_NO_DEADLINE
    # 7.2 (2): nothing SACKed
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    conn.send(b"q" * 3 * SMSS)
    first = peer.receive(now)
    una = first[0].sequence_number
    peer.send(now + 5, seq=ISS_B + 1, ack=una, options=sack_option((una + SMSS, una + 2 * SMSS)))
    assert conn.raw.t_tlp == lib.TCP_NO_DEADLINE


def test_a_request_lost_in_a_pair_arrives_at_the_probe_not_the_timeout():
    # End to end, as the farm's clients meet it: a keep-alive request whose only copy is lost
    for sack in (True, False):
        config = Config(timestamps=False, sack=sack)
        pair = Pair(delay_ms=20, config_a=config, config_b=config)
        pair.handshake()
        app = Transfer(a_data=b"first")
        pair.start(app)
        a = pair.a
        pair.run(lambda a=a: a.raw.snd_una == a.raw.snd_max)  # "first" acknowledged
        srtt = a.raw.srtt_ms
        dropped = []

        def drop_once(raw: bytes, dropped=dropped) -> list[bytes]:
            if not dropped and len(raw) > 20:  # carries data (no options here)
                dropped.append(raw)
                return []
            return [raw]

        pair.filters["ab"] = drop_once
        app.data["a"] += b"second"
        sent = pair.now
        pair.start(app)
        pair.run(lambda app=app: bytes(app.received["b"]) == b"firstsecond")
        waited = pair.now - sent
        if sack:
            # PTO (2 * SRTT + 200: one segment in flight) and the one-way delay
            assert waited == 2 * srtt + 200 + 20, (waited, srtt)
            assert a.raw.backoff == 0
        else:
            assert waited >= 1000, waited  # the retransmission timeout
            assert a.raw.backoff == 1
        assert dropped


def test_a_probe_outstanding_is_never_followed_by_another():
    conn, peer, now = established_with_peer(NO_TS, peer_options=SACK_PEER, rtt_ms=RTT)
    conn.send(b"q" * 100)
    peer.receive(now)
    now = conn.next_deadline()
    conn.timer(now)
    assert len(peer.receive(now)) == 1
    # the peer answers nothing: the next event is the RTO, not a second probe
    now = conn.next_deadline()
    conn.timer(now)
    (rxt,) = peer.receive(now)
    assert conn.raw.backoff == 1 and rxt.flags == TcpFlags.ACK | TcpFlags.PSH


def test_a_lost_fast_retransmission_goes_again_a_round_trip_later_not_at_the_timeout():
    # RFC 8985 6.2: the hole's retransmission is lost too; the peer SACKs what A sent after
    # it, so it is sent again once that has had a round trip (and SRTT/4) to arrive
    pair = Pair(delay_ms=20)
    pair.handshake()
    data = bytes(range(256)) * 1200  # 300 kB
    app = Transfer(a_data=data)
    copies: dict[int, list[int]] = {}
    target: list[int] = []

    def drop_twice(raw: bytes) -> list[bytes]:
        segment = decode(raw, source=ADDRESS_A, destination=ADDRESS_B)
        if not segment.payload:
            return [raw]
        seq = segment.sequence_number
        copies.setdefault(seq, []).append(pair.now)
        if not target and len(copies) == 60:
            target.append(seq)
        if target and seq == target[0] and len(copies[seq]) <= 2:
            return []
        return [raw]

    pair.filters["ab"] = drop_twice
    pair.start(app)
    pair.run(app.complete, max_ms=60_000)
    first, second, third = copies[target[0]]
    assert second - first < 1000  # a fast retransmission
    assert third - second < 1000, (third - second, pair.a.raw.srtt_ms)  # not the RTO
    assert third - second >= pair.a.raw.srtt_ms  # its round trip given
    assert pair.a.raw.backoff == 0


def test_a_timeouts_lost_go_back_copy_goes_again_once_later_data_is_sacked():
    # Chaos seed 711: the peer has the first flight but its ACK is lost, and so is the probe
    # (new data).  The timeout's retransmission gets through, and the go-back-N copy of the
    # probe's segment is lost as well; the peer SACKs what A sends after it at once.  In a
    # timeout's recovery no duplicate ACK starts a fast retransmit (RFC 6582 4.1), so without
    # RFC 8985 6.2 the copy waits for the timer, backed off: 2 s here (11 s in the chaos
    # run).  With it, it goes again a round trip and SRTT/4 after the lost copy.
    pair = Pair(delay_ms=20)
    pair.handshake()
    app = Transfer(a_data=bytes(range(256)) * 400)  # 100 kB
    sent: list[int] = []  # data segments' sequence numbers, first copies in order
    copies: dict[int, list[int]] = {}
    target: list[int] = []  # the probe's segment

    def a_to_b(raw: bytes) -> list[bytes]:
        segment = decode(raw, source=ADDRESS_A, destination=ADDRESS_B)
        if not segment.payload:
            return [raw]
        seq = segment.sequence_number
        if seq not in copies:
            sent.append(seq)
        copies.setdefault(seq, []).append(pair.now)
        if not target and len(copies[seq]) == 1 and copies[sent[0]][0] < pair.now:
            target.append(seq)  # the first segment after the first flight: the probe
        if target and seq == target[0] and len(copies[seq]) <= 2:
            return []
        return [raw]

    def b_to_a(raw: bytes) -> list[bytes]:
        # the first flight's ACKs, until A times out and sends it again
        if not any(len(times) > 1 for seq, times in copies.items() if seq != (target or [0])[0]):
            return []
        return [raw]

    pair.filters["ab"] = a_to_b
    pair.filters["ba"] = b_to_a
    pair.start(app)
    pair.run(app.complete, max_ms=60_000)
    probe, go_back, third = copies[target[0]]
    assert go_back - probe >= 1000  # the timeout (RFC 6298's minimum) came between
    assert third - go_back < 1000, (third - go_back, pair.a.raw.srtt_ms)  # not the timer
    assert third - go_back >= pair.a.raw.srtt_ms  # its round trip given
