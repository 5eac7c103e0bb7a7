"""Opening a connection (RFC 9293 3.5, 3.10.7.2-3.10.7.4) and option negotiation: MSS (3.7.1),
window scaling and timestamps (RFC 7323), SACK-permitted (RFC 2018).

Segments are decoded with mip6.wire.tcp (independent of the C core; it verifies checksums).
"""

from __future__ import annotations

import pytest

from mip6.wire.tcp import (
    MaximumSegmentSize,
    SackPermitted,
    TcpFlags,
    Timestamps,
    WindowScale,
)
from tcp_migrate._core import lib
from tcp_migrate.core import CloseReason, Config, InputResult, TcpState

from .pair import (
    ISS_A,
    ISS_B,
    Pair,
    Peer,
    connection_a,
    connection_b,
    decode,
    established_with_peer,
    syn_options,
    ts_option,
)

SYN_ACK = TcpFlags.SYN | TcpFlags.ACK


def test_closed_active_open_sends_syn_with_all_options():
    conn = connection_a(receive_capacity=1 << 20)
    conn.connect(0, iss=ISS_A, ts_offset=7)
    (syn,) = Peer(conn).receive(0)
    assert syn.flags == TcpFlags.SYN
    assert syn.sequence_number == ISS_A
    assert syn.find(MaximumSegmentSize).maximum_segment_size == 1440
    # RFC 7323 2.3: the smallest shift that covers a 1 MiB buffer is 5 (2^20 >> 5 < 65536).
    assert syn.find(WindowScale).shift_count == 5
    assert syn.find(SackPermitted) is not None
    assert syn.find(Timestamps) == Timestamps(tsval=7, tsecr=0)
    # RFC 7323 2.2: the window of a SYN is never scaled.
    assert syn.window == 65535
    assert conn.state == TcpState.SYN_SENT
    assert conn.next_deadline() == 1000  # RFC 6298 (2.1): initial RTO of one second


def test_syn_sent_syn_ack_established_options_negotiated():
    pair = Pair(capacity_a=1 << 20, capacity_b=1 << 18, record=True)
    pair.handshake()
    a, b = pair.a.raw, pair.b.raw
    for raw in (a, b):
        assert raw.flags & lib.TCP_CF_SACK_OK
        assert raw.flags & lib.TCP_CF_TS_OK
        assert raw.flags & lib.TCP_CF_WS_OK
        assert raw.snd_mss == raw.rcv_mss == 1440
    assert (a.rcv_wscale, a.snd_wscale) == (5, 3)
    assert (b.rcv_wscale, b.snd_wscale) == (3, 5)
    syn_ack = pair.sent_by("ba")[0].segment
    assert syn_ack.flags == SYN_ACK
    assert syn_ack.acknowledgment_number == (ISS_A + 1) % 2**32
    assert syn_ack.find(WindowScale).shift_count == 3
    # RFC 7323 3.2: the SYN-ACK echoes the SYN's TSval.
    syn = pair.sent_by("ab")[0].segment
    assert syn_ack.find(Timestamps).tsecr == syn.find(Timestamps).tsval
    # After the handshake windows are scaled: A's ACK says 2^20 >> 5.
    ack = pair.sent_by("ab")[1].segment
    assert ack.flags == TcpFlags.ACK and ack.window == (1 << 20) >> 5
    assert b.snd_wnd == 1 << 20
    # RFC 5681 3.1: IW = 3 * SMSS for an SMSS of 1428 (1440 less 12 bytes of timestamps).
    assert a.cwnd == 3 * 1428


@pytest.mark.parametrize(
    ("config", "segments"),
    [
        # RFC 5681 3.1 (3390): 3 segments of 1428 bytes (1440 less 12 of timestamps)
        (Config(), 3),
        # RFC 6928 2: min (10*MSS, max (2*MSS, 14600)): 10 segments of 1428
        (Config(initial_window=10), 10),
        # N segments (Linux's initcwnd), bound by N*1460 bytes: 4 segments of 1428
        (Config(initial_window=4), 4),
        # min (10*1448, max (2*1448, 14600)) = 14600 bytes: 10 segments, the last shorter
        (Config(initial_window=10, timestamps=False, mss=1460), 10),
    ],
)
def test_the_first_flight_is_the_initial_window(config: Config, segments: int) -> None:
    conn, peer, now = established_with_peer(config)
    smss = conn.raw.snd_mss - (12 if conn.raw.flags & lib.TCP_CF_TS_OK else 0)
    conn.send(b"d" * 100_000)
    flight = peer.receive(now)
    assert len(flight) == segments
    window = segments * smss
    if config.initial_window:
        window = min(window, max(2 * smss, config.initial_window * 1460))
    assert sum(len(segment.payload) for segment in flight) == conn.raw.cwnd == window


def test_an_initial_window_past_its_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid TCP settings"):
        connection_a(config=Config(initial_window=65))


def test_mss_negotiation_uses_smaller_of_both():
    pair = Pair(config_a=Config(mss=1440), config_b=Config(mss=1000))
    pair.handshake()
    assert pair.a.raw.snd_mss == 1000 and pair.a.raw.rcv_mss == 1440
    assert pair.b.raw.snd_mss == 1000 and pair.b.raw.rcv_mss == 1000


def test_syn_sent_syn_ack_without_options_uses_defaults():
    conn, peer, now = established_with_peer(peer_options=(), peer_window=5000)
    raw = conn.raw
    # RFC 9293 3.7.1: no MSS option means 1220 for IPv6.
    assert raw.snd_mss == lib.TCP_DEFAULT_MSS
    assert not raw.flags & (lib.TCP_CF_SACK_OK | lib.TCP_CF_TS_OK | lib.TCP_CF_WS_OK)
    assert raw.snd_wscale == raw.rcv_wscale == 0
    assert raw.snd_wnd == 5000
    conn.send(b"x" * 3000)
    segments = peer.receive(now)
    # The short tail waits for the ACK of what is in flight (Nagle, RFC 9293 3.7.4).
    assert [len(s.payload) for s in segments] == [1220, 1220]
    assert all(s.options == () for s in segments)
    peer.send(now + 10, seq=ISS_B + 1, ack=ISS_A + 1 + 2440, window=5000)
    (tail,) = peer.receive(now + 10)
    assert len(tail.payload) == 560 and tail.flags == TcpFlags.ACK | TcpFlags.PSH


def test_syn_sent_peer_window_scale_above_14_clamped():
    # RFC 7323 2.3: "MUST use 14 instead of the specified value".
    conn, _, _ = established_with_peer(peer_options=syn_options(wscale=15, tsval=None))
    assert conn.raw.snd_wscale == 14


def test_syn_sent_tiny_peer_mss_clamped_to_minimum():
    conn, _, _ = established_with_peer(peer_options=syn_options(mss=1, tsval=None))
    assert conn.raw.snd_mss == lib.TCP_MIN_MSS


def test_options_disabled_by_config_not_offered_nor_accepted():
    conn = connection_a(config=Config(sack=False, timestamps=False, window_scaling=False))
    conn.connect(0, iss=ISS_A)
    (syn,) = Peer(conn).receive(0)
    assert [type(o) for o in syn.options] == [MaximumSegmentSize]
    Peer(conn).send(10, seq=ISS_B, ack=ISS_A + 1, flags=SYN_ACK, options=syn_options())
    assert not conn.raw.flags & (lib.TCP_CF_SACK_OK | lib.TCP_CF_TS_OK | lib.TCP_CF_WS_OK)


def test_listen_syn_passive_open_syn_ack_mirrors_offered_options():
    conn = connection_b()
    peer = Peer(conn, swap=True)
    syn = peer.build(seq=ISS_A, flags=TcpFlags.SYN, options=syn_options(wscale=None, tsval=99))
    assert conn.accept(0, syn, iss=ISS_B, ts_offset=500) == InputResult.OK
    assert conn.state == TcpState.SYN_RECEIVED
    (syn_ack,) = peer.receive(0)
    assert syn_ack.flags == SYN_ACK
    assert syn_ack.sequence_number == ISS_B
    assert syn_ack.acknowledgment_number == ISS_A + 1
    # No window scale offered: none answered (RFC 7323 1.3); SACK and timestamps answered.
    assert syn_ack.find(WindowScale) is None
    assert syn_ack.find(SackPermitted) is not None
    assert syn_ack.find(Timestamps) == Timestamps(tsval=500, tsecr=99)
    # The ACK completes the handshake.
    assert peer.send(5, seq=ISS_A + 1, ack=ISS_B + 1, options=ts_option(100, 500)) == InputResult.OK
    assert conn.state == TcpState.ESTABLISHED
    assert conn.raw.srtt_ms == 5  # RFC 7323 4.1: measured from the echoed timestamp


@pytest.mark.parametrize(
    "flags",
    [TcpFlags.SYN | TcpFlags.ACK, TcpFlags.SYN | TcpFlags.RST, TcpFlags.ACK, TcpFlags.FIN],
)
def test_listen_not_a_plain_syn_does_not_open(flags):
    conn = connection_b()
    segment = Peer(conn, swap=True).build(seq=1, ack=2, flags=flags)
    assert conn.accept(0, segment, iss=ISS_B) == InputResult.DROPPED
    assert conn.state == TcpState.CLOSED
    assert conn.output(0) is None


def test_listen_corrupted_syn_bad_checksum():
    conn = connection_b()
    segment = bytearray(Peer(conn, swap=True).build(seq=1, flags=TcpFlags.SYN))
    segment[4] ^= 1
    assert conn.accept(0, bytes(segment), iss=ISS_B) == InputResult.BAD_CHECKSUM
    assert conn.state == TcpState.CLOSED


def test_syn_sent_rst_with_acceptable_ack_connection_refused():
    conn = connection_a()
    conn.connect(0, iss=ISS_A)
    peer = Peer(conn)
    peer.receive(0)
    result = peer.send(10, seq=0, ack=ISS_A + 1, flags=TcpFlags.RST | TcpFlags.ACK)
    assert result == InputResult.RESET
    assert conn.state == TcpState.CLOSED
    assert conn.close_reason == CloseReason.REFUSED
    assert conn.output(10) is None  # never a RST in answer to a RST


def test_syn_sent_rst_without_ack_dropped():
    conn = connection_a()
    conn.connect(0, iss=ISS_A)
    peer = Peer(conn)
    peer.receive(0)
    assert peer.send(10, seq=0, flags=TcpFlags.RST) == InputResult.DROPPED
    assert conn.state == TcpState.SYN_SENT


def test_syn_sent_unacceptable_ack_answered_with_rst_at_seg_ack():
    conn = connection_a()
    conn.connect(0, iss=ISS_A)
    peer = Peer(conn)
    peer.receive(0)
    # RFC 9293 3.10.7.3: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
    # <SEQ=SEG.ACK><CTL=RST>".
    assert peer.send(10, seq=5, ack=ISS_A + 7, flags=SYN_ACK) == InputResult.BAD_ACK
    (rst,) = peer.receive(10)
    assert rst.flags == TcpFlags.RST
    assert rst.sequence_number == (ISS_A + 7) % 2**32
    assert conn.state == TcpState.SYN_SENT
    # ... and with the RST bit set, silently dropped.
    assert peer.send(10, seq=5, ack=ISS_A + 7, flags=TcpFlags.RST | TcpFlags.ACK) == (
        InputResult.DROPPED
    )
    assert peer.receive(10) == []


def test_syn_sent_no_answer_syn_retransmitted_with_backoff_then_timeout():
    conn = connection_a(config=Config(syn_retries=3))
    conn.connect(0, iss=ISS_A)
    peer = Peer(conn)
    times = []
    now = 0
    while conn.state == TcpState.SYN_SENT:
        for segment in peer.receive(now):
            assert segment.flags == TcpFlags.SYN and segment.sequence_number == ISS_A
            times.append(now)
        now = conn.next_deadline()
        conn.timer(now)
    # RFC 6298 (2.1) and (5.5): 1 s, then doubling; after syn_retries the attempt fails.
    assert times == [0, 1000, 3000, 7000]
    assert now == 15000
    assert conn.close_reason == CloseReason.TIMEOUT
    assert peer.receive(now) == []  # giving up sends nothing


@pytest.mark.parametrize("initial_window", [0, 10])
def test_syn_sent_after_syn_retransmission_rto_reset_to_3s(initial_window: int) -> None:
    # RFC 6298 (5.7): no RTT sample (no timestamps, Karn) after a retransmitted SYN.
    conn = connection_a(config=Config(timestamps=False, initial_window=initial_window))
    conn.connect(0, iss=ISS_A)
    peer = Peer(conn)
    peer.receive(0)
    conn.timer(1000)
    peer.receive(1000)
    peer.send(1010, seq=ISS_B, ack=ISS_A + 1, flags=SYN_ACK, options=syn_options(tsval=None))
    assert conn.state == TcpState.ESTABLISHED
    assert conn.raw.srtt_ms == 0 and conn.raw.rto_ms == 3000
    # RFC 5681 3.1, and RFC 6928 2 for a ten-segment window ("the initial window used by a
    # sender after a correctly transmitted SYN MUST be one segment"): after a lost SYN the
    # initial window is one segment.
    assert conn.raw.cwnd == conn.raw.snd_mss


def test_syn_sent_rtt_from_syn_without_timestamps():
    conn = connection_a(config=Config(timestamps=False))
    conn.connect(0, iss=ISS_A)
    peer = Peer(conn)
    peer.receive(0)
    peer.send(40, seq=ISS_B, ack=ISS_A + 1, flags=SYN_ACK, options=syn_options(tsval=None))
    # RFC 6298 (2.2): SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR, at least 1 s.
    assert (conn.raw.srtt_ms, conn.raw.rttvar_ms, conn.raw.rto_ms) == (40, 20, 1000)


def test_simultaneous_open_both_established():
    a = connection_a()
    b = connection_b()
    a.connect(0, iss=ISS_A, ts_offset=1)
    b.connect(0, iss=ISS_B, ts_offset=2)
    syn_a, syn_b = a.output(0), b.output(0)
    # The SYNs cross: each side moves to SYN-RECEIVED and answers with a SYN-ACK.
    assert b.input(10, syn_a) == InputResult.OK and b.state == TcpState.SYN_RECEIVED
    assert a.input(10, syn_b) == InputResult.OK and a.state == TcpState.SYN_RECEIVED
    syn_ack_a, syn_ack_b = a.output(10), b.output(10)
    decoded = decode(syn_ack_a, source=a.local_address, destination=b.local_address)
    assert decoded.flags == SYN_ACK and decoded.sequence_number == ISS_A
    assert b.input(20, syn_ack_a) == InputResult.OK
    assert a.input(20, syn_ack_b) == InputResult.OK
    assert a.state == b.state == TcpState.ESTABLISHED
    assert a.check() == b.check() == 0


def test_syn_received_retransmitted_syn_answered_with_syn_ack_again():
    conn = connection_b()
    peer = Peer(conn, swap=True)
    syn = peer.build(seq=ISS_A, flags=TcpFlags.SYN, options=syn_options())
    conn.accept(0, syn, iss=ISS_B)
    peer.receive(0)
    assert conn.input(500, syn) == InputResult.UNACCEPTABLE
    (again,) = peer.receive(500)
    assert again.flags == SYN_ACK and again.sequence_number == ISS_B


def test_syn_received_syn_ack_lost_retransmitted_after_rto():
    conn = connection_b()
    peer = Peer(conn, swap=True)
    conn.accept(0, peer.build(seq=ISS_A, flags=TcpFlags.SYN), iss=ISS_B)
    peer.receive(0)
    assert conn.next_deadline() == 1000
    conn.timer(1000)
    (again,) = peer.receive(1000)
    assert again.flags == SYN_ACK
    assert conn.next_deadline() == 3000


def test_syn_received_unacceptable_ack_answered_with_rst():
    conn = connection_b()
    peer = Peer(conn, swap=True)
    conn.accept(0, peer.build(seq=ISS_A, flags=TcpFlags.SYN), iss=ISS_B)
    peer.receive(0)
    assert peer.send(5, seq=ISS_A + 1, ack=ISS_B + 100) == InputResult.BAD_ACK
    (rst,) = peer.receive(5)
    assert rst.flags == TcpFlags.RST and rst.sequence_number == ISS_B + 100
    assert conn.state == TcpState.SYN_RECEIVED


def test_syn_received_rst_exact_closes_passive_connection():
    conn = connection_b()
    peer = Peer(conn, swap=True)
    conn.accept(0, peer.build(seq=ISS_A, flags=TcpFlags.SYN), iss=ISS_B)
    peer.receive(0)
    assert peer.send(5, seq=ISS_A + 1, flags=TcpFlags.RST) == InputResult.RESET
    assert conn.state == TcpState.CLOSED and conn.close_reason == CloseReason.RESET


def test_syn_received_shutdown_fin_wait_1_once_established():
    conn = connection_b()
    peer = Peer(conn, swap=True)
    conn.accept(0, peer.build(seq=ISS_A, flags=TcpFlags.SYN), iss=ISS_B)
    peer.receive(0)
    conn.shutdown_write()
    assert conn.state == TcpState.SYN_RECEIVED
    peer.send(5, seq=ISS_A + 1, ack=ISS_B + 1)
    assert conn.state == TcpState.FIN_WAIT_1
    (fin,) = peer.receive(5)
    assert fin.flags == TcpFlags.FIN | TcpFlags.ACK and fin.sequence_number == ISS_B + 1


def test_syn_sent_shutdown_deletes_connection():
    conn = connection_a()
    conn.connect(0, iss=ISS_A)
    conn.shutdown_write()
    assert conn.state == TcpState.CLOSED
    assert conn.output(0) is None
