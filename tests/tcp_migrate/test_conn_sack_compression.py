"""Loss recovery against a receiver that compresses SACKs, as Linux does (``tcp_comp_sack_nr``):
one duplicate ACK may report several segments that arrived above a hole, and the window it
advertises may move between duplicates. Found by the 40 ms / 1% loss interop run (``labnet
bench tcp-lossy``): the fast retransmission came a round trip late and often after a spurious
timeout, and recovery sent no new data, so it ended with cwnd at 2*SMSS.

The connection under test is A; its peer is driven by hand (pair.Peer), without timestamps.
"""

from __future__ import annotations

from tcp_migrate._core import lib
from tcp_migrate.core import Config

from .pair import ISS_B, SMSS, established_with_peer, sack_option, syn_options

U32 = 2**32
SACK_PEER = syn_options(tsval=None)  # MSS, window scale 7, SACK permitted


def window_of_segments(count: int):
    """A in congestion avoidance with ``count`` full segments in flight, none acknowledged:
    (conn, peer, now, SND.UNA)."""
    conn, peer, now = established_with_peer(
        Config(timestamps=False, rto_min_ms=200), peer_options=SACK_PEER, capacity=1 << 20
    )
    conn.send(b"d" * conn.send_space)
    while conn.raw.cwnd < count * SMSS:
        for s in peer.receive(now):
            now += 1
            peer.send(now, seq=ISS_B + 1, ack=s.sequence_number + len(s.payload))
    peer.receive(now)
    now += 1
    peer.send(now, seq=ISS_B + 1, ack=conn.raw.snd_max)  # everything so far acknowledged
    conn.raw.cwnd = conn.raw.ssthresh = count * SMSS  # congestion avoidance, exactly
    una = conn.raw.snd_una
    assert len(peer.receive(now)) == count and conn.raw.snd_max == (una + count * SMSS) % U32
    return conn, peer, now, una


def test_established_one_dupack_sacking_three_segments_fast_retransmits():
    # RFC 6675 4 IsLost: more than 2*SMSS SACKed above SND.UNA means the first segment is
    # lost, however few duplicate ACKs carried the news.
    conn, peer, now, una = window_of_segments(10)
    sack = sack_option((una + SMSS, una + 4 * SMSS))
    peer.send(now + 50, seq=ISS_B + 1, ack=una, options=sack)
    out = peer.receive(now + 50)
    assert out[0].sequence_number == una and len(out[0].payload) == SMSS
    assert conn.raw.flags & lib.TCP_CF_IN_RECOVERY
    assert conn.raw.dupacks == 1


def test_established_dupacks_with_new_sack_and_moving_window_counted():
    # The receiving application reads between the duplicates: the window moves, but each ACK
    # SACKs a segment that arrived above the hole, so each is a duplicate.
    conn, peer, now, una = window_of_segments(10)
    for i, window in enumerate((1000, 1010)):
        sack = sack_option((una + SMSS, una + (2 + i) * SMSS))
        peer.send(now + 50, seq=ISS_B + 1, ack=una, window=window, options=sack)
        assert conn.raw.dupacks == i + 1
    peer.send(now + 50, seq=ISS_B + 1, ack=una, window=1020, options=sack)  # nothing new
    assert conn.raw.dupacks == 2


def test_fast_recovery_compressed_sacks_send_new_data_and_end_at_ssthresh():
    conn, peer, now, una = window_of_segments(16)
    end = (una + 16 * SMSS) % U32
    # Segment 0 is lost; the other fifteen arrive together and draw two compressed ACKs.
    now += 50
    peer.send(now, seq=ISS_B + 1, ack=una, options=sack_option((una + SMSS, una + 5 * SMSS)))
    peer.send(now, seq=ISS_B + 1, ack=una, options=sack_option((una + SMSS, end)))
    out = peer.receive(now)
    ssthresh = conn.raw.ssthresh
    assert out[0].sequence_number == una  # the fast retransmission
    new = [s for s in out[1:] if (s.sequence_number - end) % U32 < 2**31]
    # RFC 6675 5: pipe (outstanding less SACKed: the retransmission) may grow to ssthresh, so
    # new data goes out, where one SMSS per duplicate ACK (RFC 6582 3.2 step 4) allowed none.
    assert ssthresh == 8 * SMSS
    assert len(new) * SMSS == ssthresh - SMSS
    # The full ACK finds those in flight: cwnd = min(ssthresh, FlightSize + SMSS) = ssthresh.
    peer.send(now + 50, seq=ISS_B + 1, ack=end)
    assert not conn.raw.flags & lib.TCP_CF_IN_RECOVERY
    assert conn.raw.cwnd == ssthresh


def test_fast_retransmit_late_restarts_retransmission_timer():
    # The duplicates come 150 ms after the last new ACK, RTO 200 ms: left running, the timer
    # would expire 50 ms after the fast retransmission, before its ACK could return.
    conn, peer, now, una = window_of_segments(10)
    rto = conn.raw.rto_ms
    assert rto == 200
    sack = sack_option((una + SMSS, una + 4 * SMSS))
    peer.send(now + 150, seq=ISS_B + 1, ack=una, options=sack)
    (first, *_) = peer.receive(now + 150)
    assert first.sequence_number == una
    assert conn.next_deadline() == now + 150 + rto
    assert conn.raw.backoff == 0
