"""Resets, SYNs and ACKs in synchronized states (RFC 9293 3.10.7.4 with RFC 5961 3.2, 4.2, 5.2
and the challenge ACK throttle of section 7), ABORT (3.10.5), and malformed segments: whatever
arrives, the connection's state changes only as the RFCs say."""

from __future__ import annotations

import pytest

from mip6.wire.tcp import TcpFlags
from tcp_migrate._core import ffi, lib
from tcp_migrate.core import CloseReason, Config, InputResult, TcpState

from .pair import ISS_A, ISS_B, PLAIN, SMSS, Pair, established_with_peer, ts_option

RCV_NXT = ISS_B + 1  # what A expects next from its peer


def snapshot_struct(conn) -> bytes:
    return bytes(ffi.buffer(conn.raw))


def established(config: Config | None = None):
    """A with timestamps off (so segments need no TSopt) and 10 bytes sent."""
    conn, peer, now = established_with_peer(
        config if config is not None else Config(timestamps=False),
        peer_options=(),
    )
    conn.send(b"0123456789")
    peer.receive(now)
    return conn, peer, now


def test_established_rst_exactly_at_rcv_nxt_resets():
    conn, peer, now = established()
    assert peer.send(now, seq=RCV_NXT, flags=TcpFlags.RST) == InputResult.RESET
    assert conn.state == TcpState.CLOSED and conn.close_reason == CloseReason.RESET
    assert conn.output(now) is None
    assert conn.send_buffered == 0  # queues flushed


@pytest.mark.parametrize("offset", [1, 100, 65534])
def test_established_rst_in_window_not_exact_challenge_ack(offset):
    conn, peer, now = established()
    result = peer.send(now, seq=RCV_NXT + offset, flags=TcpFlags.RST)
    assert result == InputResult.CHALLENGE
    assert conn.state == TcpState.ESTABLISHED
    # RFC 5961 3.2: "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>"
    (ack,) = peer.receive(now)
    assert ack.flags == TcpFlags.ACK
    assert ack.sequence_number == ISS_A + 11 and ack.acknowledgment_number == RCV_NXT


@pytest.mark.parametrize("offset", [-1, -1000, 65535, 2**31])
def test_established_rst_outside_window_dropped_silently(offset):
    conn, peer, now = established()
    before = snapshot_struct(conn)
    assert peer.send(now, seq=RCV_NXT + offset, flags=TcpFlags.RST) == InputResult.DROPPED
    assert snapshot_struct(conn) == before
    assert peer.receive(now) == []


@pytest.mark.parametrize("offset", [0, 1, 5000])
def test_established_syn_in_window_challenge_ack_not_reset(offset):
    conn, peer, now = established()
    # RFC 5961 4.2: "If the SYN bit is set, irrespective of the exact sequence number, TCP
    # MUST send an ACK (also referred to as challenge ACK) to the remote peer"
    result = peer.send(now, seq=RCV_NXT + offset, flags=TcpFlags.SYN)
    assert result == InputResult.CHALLENGE
    assert conn.state == TcpState.ESTABLISHED
    (ack,) = peer.receive(now)
    assert ack.flags == TcpFlags.ACK and ack.acknowledgment_number == RCV_NXT


def test_established_syn_outside_window_acked_as_unacceptable():
    conn, peer, now = established()
    assert peer.send(now, seq=RCV_NXT - 5000, flags=TcpFlags.SYN) == InputResult.UNACCEPTABLE
    (ack,) = peer.receive(now)
    assert ack.acknowledgment_number == RCV_NXT and conn.state == TcpState.ESTABLISHED


def test_established_syn_ack_with_data_in_window_challenged_data_not_taken():
    conn, peer, now = established()
    result = peer.send(
        now, seq=RCV_NXT, ack=ISS_A + 11, flags=TcpFlags.SYN | TcpFlags.ACK, payload=b"evil"
    )
    assert result == InputResult.CHALLENGE
    assert conn.readable == 0


def test_challenge_acks_rate_limited_per_second():
    conn, peer, now = established(Config(timestamps=False, challenge_ack_limit=3))
    results = [peer.send(now, seq=RCV_NXT + 10, flags=TcpFlags.RST) for _ in range(5)]
    assert results == [InputResult.CHALLENGE] * 3 + [InputResult.CHALLENGE_LIMITED] * 2
    assert len(peer.receive(now)) == 1  # pending ACKs merge into one segment
    results = [peer.send(now + 999, seq=RCV_NXT, flags=TcpFlags.SYN) for _ in range(2)]
    assert results == [InputResult.CHALLENGE_LIMITED] * 2
    assert peer.send(now + 1000, seq=RCV_NXT, flags=TcpFlags.SYN) == InputResult.CHALLENGE
    assert conn.state == TcpState.ESTABLISHED


def test_established_ack_above_snd_nxt_answered_and_dropped():
    conn, peer, now = established()
    result = peer.send(now, seq=RCV_NXT, ack=ISS_A + 12, payload=b"data")
    assert result == InputResult.BAD_ACK
    assert conn.readable == 0  # the whole segment is discarded
    (ack,) = peer.receive(now)
    assert ack.acknowledgment_number == RCV_NXT
    assert conn.raw.snd_una == ISS_A + 1


def test_established_ack_below_max_window_answered_and_dropped():
    conn, peer, now = established()
    max_wnd = conn.raw.max_snd_wnd
    # RFC 5961 5.2: acceptable only if (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT.
    result = peer.send(now, seq=RCV_NXT, ack=ISS_A + 1 - max_wnd - 1, payload=b"data")
    assert result == InputResult.BAD_ACK and conn.readable == 0
    assert peer.send(now, seq=RCV_NXT, ack=ISS_A + 1 - max_wnd, payload=b"data") == (InputResult.OK)
    assert conn.recv(10) == b"data"


def test_established_refused_ack_does_not_move_ts_recent():
    # Found by the near-window flood: TS.Recent taken from segments refused for their ACK let
    # forged segments run it ahead of the peer's clock, after which PAWS refused the peer.
    conn, peer, now = established_with_peer()
    peer.send(now, seq=RCV_NXT, ack=ISS_A + 1, options=ts_option(1000, now))
    assert conn.raw.ts_recent == 1000
    for tsval in (1001, 5000, 2**31):
        result = peer.send(now, seq=RCV_NXT, ack=ISS_A + 50_000, options=ts_option(tsval, now))
        assert result == InputResult.BAD_ACK
    assert conn.raw.ts_recent == 1000
    assert peer.send(
        now, seq=RCV_NXT, ack=ISS_A + 1, payload=b"ok", options=ts_option(1001, 0)
    ) == (InputResult.OK)
    assert conn.raw.ts_recent == 1001 and conn.recv(10) == b"ok"


def test_established_old_duplicate_ack_ignored_text_taken():
    conn, peer, now = established()
    peer.send(now, seq=RCV_NXT, ack=ISS_A + 11)
    assert peer.send(now, seq=RCV_NXT, ack=ISS_A + 5, payload=b"xy") == InputResult.OK
    assert conn.raw.snd_una == ISS_A + 11 and conn.recv(10) == b"xy"


def test_established_segment_without_ack_dropped():
    conn, peer, now = established()
    assert peer.send(now, seq=RCV_NXT, flags=TcpFlags(0), payload=b"z") == InputResult.DROPPED
    assert conn.readable == 0


def test_established_data_before_window_unacceptable_acked():
    conn, peer, now = established()
    peer.send(now, seq=RCV_NXT, ack=ISS_A + 1, payload=b"abc")
    result = peer.send(now, seq=RCV_NXT - 10, ack=ISS_A + 1, payload=b"old")
    assert result == InputResult.UNACCEPTABLE
    assert peer.receive(now)[-1].acknowledgment_number == RCV_NXT + 3
    assert conn.recv(10) == b"abc"


def test_established_segment_overlapping_left_edge_trimmed():
    conn, peer, now = established()
    peer.send(now, seq=RCV_NXT, ack=ISS_A + 1, payload=b"abc")
    peer.send(now, seq=RCV_NXT + 1, ack=ISS_A + 1, payload=b"bcdef")
    assert conn.recv(10) == b"abcdef"


def test_established_data_beyond_window_trimmed_to_advertised_edge():
    conn, peer, now = established_with_peer(
        Config(timestamps=False), peer_options=(), capacity=4096
    )
    edge = conn.raw.rcv_adv
    payload = bytes(range(256)) * 20  # 5120 bytes, more than the window
    peer.send(now, seq=RCV_NXT, ack=ISS_A + 1, payload=payload)
    assert conn.raw.rcv_nxt == edge
    assert conn.recv(10000) == payload[: edge - RCV_NXT]


def test_time_wait_rst_exact_closes():
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=())
    conn.shutdown_write()
    (fin,) = peer.receive(now)
    peer.send(now, seq=RCV_NXT, ack=fin.sequence_number + 1, flags=TcpFlags.FIN | TcpFlags.ACK)
    assert conn.state == TcpState.TIME_WAIT
    assert peer.send(now, seq=RCV_NXT + 1, flags=TcpFlags.RST) == InputResult.RESET
    assert conn.state == TcpState.CLOSED


def test_abort_sends_rst_at_snd_nxt_then_closed():
    conn, peer, now = established()
    conn.abort()
    assert conn.state == TcpState.CLOSED and conn.close_reason == CloseReason.ABORTED
    (rst,) = peer.receive(now)
    # RFC 9293 3.10.5: "<SEQ=SND.NXT><CTL=RST>"
    assert rst.flags == TcpFlags.RST and rst.sequence_number == ISS_A + 11
    assert peer.receive(now) == []
    assert conn.input(now, peer.build(seq=RCV_NXT, ack=ISS_A + 11)) == InputResult.CLOSED


def test_abort_while_a_timeout_retransmits_sends_rst_at_the_first_unsent_octet():
    # SND.NXT in 3.10.5 is the next new octet: a timeout's retransmission from SND.UNA does
    # not move it back. A RST numbered from the retransmission's point lies below what the
    # peer received, and the peer drops it (RFC 5961 3.2: not even a challenge ACK).
    conn, peer, now = established_with_peer(Config(timestamps=False), peer_options=PLAIN)
    conn.send(b"x" * 3 * SMSS)
    assert len(peer.receive(now)) == 3
    now = conn.next_deadline()
    conn.timer(now)
    (again,) = peer.receive(now)
    assert again.sequence_number == ISS_A + 1
    conn.abort()
    (rst,) = peer.receive(now)
    assert rst.flags == TcpFlags.RST and rst.sequence_number == (ISS_A + 1 + 3 * SMSS) % 2**32


def test_abort_in_syn_sent_sends_nothing():
    pair = Pair()
    pair.open()
    pair.a.abort()
    assert pair.a.output(0) is None and pair.a.state == TcpState.CLOSED


def test_rst_valid_with_timestamps_but_without_tsopt_accepted():
    # RFC 7323 3.2: "A received RST segment MUST be processed even if it does not contain
    # TSopt" (and RSTs are exempt from PAWS).
    _, peer, now = established_with_peer()
    assert peer.send(now, seq=RCV_NXT, flags=TcpFlags.RST) == InputResult.RESET


def test_rst_old_tsval_not_subject_to_paws():
    _, peer, now = established_with_peer()
    peer.send(now, seq=RCV_NXT, ack=ISS_A + 1, options=ts_option(1000, now))
    result = peer.send(now, seq=RCV_NXT, flags=TcpFlags.RST, options=ts_option(1, 0))
    assert result == InputResult.RESET


# ---- malformed segments -------------------------------------------------------------------


def corrupt(segment: bytes, offset: int, value: int) -> bytes:
    out = bytearray(segment)
    out[offset] = value
    return bytes(out)


def refix_checksum(segment: bytes) -> bytes:
    out = bytearray(segment)
    out[16:18] = b"\0\0"
    checksum = lib.tcp_checksum(
        bytes.fromhex("20010db8000000000000000000000002"),
        bytes.fromhex("20010db8000000000000000000000001"),
        bytes(out),
        len(out),
    )
    out[16:18] = checksum.to_bytes(2, "big")
    return bytes(out)


def test_checksum_matches_python_codec():
    _, peer, _ = established()
    segment = peer.build(seq=RCV_NXT, ack=ISS_A + 1, payload=b"odd length!")
    assert refix_checksum(segment) == segment


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda s: s[:19], InputResult.MALFORMED),
        (lambda s: b"", InputResult.MALFORMED),
        (lambda s: refix_checksum(corrupt(s, 12, 0x40 | (s[12] & 0x0F))), InputResult.MALFORMED),
        (lambda s: refix_checksum(corrupt(s, 12, 0xF0 | (s[12] & 0x0F))), InputResult.MALFORMED),
        (lambda s: corrupt(s, 30, s[30] ^ 0xFF), InputResult.BAD_CHECKSUM),
        (lambda s: refix_checksum(corrupt(s, 1, 81)), InputResult.WRONG_PORTS),
        (lambda s: refix_checksum(corrupt(s, 3, 0x41)), InputResult.WRONG_PORTS),
    ],
)
def test_established_malformed_segment_refused_state_unchanged(mangle, expected):
    conn, peer, now = established()
    segment = peer.build(seq=RCV_NXT, ack=ISS_A + 11, payload=b"some payload bytes")
    before = snapshot_struct(conn)
    assert conn.input(now, mangle(segment)) == expected
    assert snapshot_struct(conn) == before
    assert conn.output(now) is None


@pytest.mark.parametrize(
    "options",
    [
        b"\x02\x00\x00\x00",  # MSS with length 0
        b"\x08\x0c" + bytes(10),  # timestamps with a length overrunning the header
        b"\x05\x03\x00\x01",  # SACK whose length is not 2 + 8n
        b"\x03\x04\x07\x00",  # window scale of length 4
        b"\x01\x01\x01\x22",  # unknown option without its length byte... at the end
    ],
)
def test_established_bad_option_lengths_dropped(options):
    conn, peer, now = established()
    plain = peer.build(seq=RCV_NXT, ack=ISS_A + 11, payload=b"x")
    segment = plain[:12] + bytes([0x60 | (plain[12] & 0x0F)]) + plain[13:20] + options + plain[20:]
    before = snapshot_struct(conn)
    assert conn.input(now, refix_checksum(segment)) == InputResult.MALFORMED
    assert snapshot_struct(conn) == before


def test_established_unknown_options_skipped():
    conn, peer, now = established()
    plain = peer.build(seq=RCV_NXT, ack=ISS_A + 11, payload=b"x")
    options = b"\xfe\x06abcd" + b"\x01\x00"  # experimental kind 254, NOP, EOL
    segment = plain[:12] + bytes([0x70 | (plain[12] & 0x0F)]) + plain[13:20] + options + plain[20:]
    assert conn.input(now, refix_checksum(segment)) == InputResult.OK
    assert conn.recv(5) == b"x"


def test_null_and_tiny_arguments_are_refused_not_crashing():
    conn, _, now = established()
    assert lib.tcp_input(conn.raw, now, ffi.NULL, 0) == lib.TCP_IN_MALFORMED
    assert lib.tcp_input(conn.raw, now, ffi.NULL, 100) == lib.TCP_IN_MALFORMED
    assert lib.tcp_input(ffi.NULL, now, b"x" * 40, 40) == lib.TCP_IN_MALFORMED
    out = ffi.new("uint8_t[]", 59)
    assert lib.tcp_output(conn.raw, now, out, 59) == 0  # below TCP_MAX_HEADER_LEN
    assert lib.tcp_output(conn.raw, now, ffi.NULL, 1000) == 0
    assert lib.tcp_output(ffi.NULL, now, out, 59) == 0
    assert lib.tcp_send(conn.raw, ffi.NULL, 5) == lib.TCP_EINVAL
    assert lib.tcp_recv(conn.raw, ffi.NULL, 5) == lib.TCP_EINVAL
    assert lib.tcp_next_deadline(ffi.NULL) == lib.TCP_NO_DEADLINE
    lib.tcp_timer(ffi.NULL, now)
    assert lib.tcp_conn_check(ffi.NULL) != 0
    assert conn.check() == 0
