"""Floods of arbitrary segments: no crash, no inconsistent state, no wedge.

Every flooding segment carries the connection's 4-tuple and a valid checksum (computed by
mip6.wire.checksum), so it reaches the state machine. A blind attacker's segments (random
sequence and acknowledgment numbers) must leave a transfer able to finish byte for byte; segments
aimed near the window but unable to be valid (old duplicates, RSTs and SYNs not exactly at
RCV.NXT, unacceptable ACKs) too. Segments in any state with any numbers near the window must keep
the connection consistent (tcp_conn_check after each).
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.wire import protocols
from mip6.wire.checksum import upper_layer_checksum
from tcp_migrate.core import Config, InputResult, TcpState

from .pair import ADDRESS_A, ADDRESS_B, PORT_A, PORT_B, Pair, Transfer

U32 = 2**32

OPTION_SAMPLES = [
    b"",
    b"\x01\x01\x08\x0a" + bytes(8),  # timestamps 0, 0
    b"\x02\x04\x00\x01",  # MSS 1
    b"\x03\x03\x0e\x00",  # window scale
    b"\x04\x02\x01\x01",  # SACK permitted
    b"\x01\x01\x05\x0a" + bytes(8),  # one SACK block
    b"\x05\x22" + bytes(32),  # four SACK blocks
    b"\x02\x00\x00\x00",  # MSS with length 0 (malformed)
    b"\x08\x0c" + bytes(10),  # timestamps overrunning (malformed)
    b"\xfe\x04\x00\x00",  # experimental
    b"\x00\x00\x00\x00",  # EOL
]


def raw_segment(
    to_b: bool,
    *,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    payload: bytes,
    tsval: int | None = None,
) -> bytes:
    """A segment toward B (from A's 4-tuple) or toward A, checksum computed independently."""
    if tsval is not None:
        options = b"\x01\x01\x08\x0a" + struct.pack("!II", tsval % U32, 0) + options
    options += bytes(-len(options) % 4)
    options = options[:40]
    source, destination = (ADDRESS_A, ADDRESS_B) if to_b else (ADDRESS_B, ADDRESS_A)
    ports = (PORT_A, PORT_B) if to_b else (PORT_B, PORT_A)
    header = struct.pack(
        "!HHIIBBHHH",
        *ports,
        seq % U32,
        ack % U32,
        (20 + len(options)) // 4 << 4 | (flags >> 8),
        flags & 0xFF,
        window,
        0,
        0,
    )
    segment = header + options + payload
    checksum = upper_layer_checksum(source, destination, protocols.TCP, segment)
    return segment[:16] + struct.pack("!H", checksum) + segment[18:]


def blind(rng: random.Random, to_b: bool, conn) -> bytes:
    ts = conn.raw.ts_recent + rng.randint(0, 1000) if rng.random() < 0.5 else None
    return raw_segment(
        to_b,
        seq=rng.randrange(U32),
        ack=rng.randrange(U32),
        flags=rng.randrange(512),
        window=rng.randrange(65536),
        options=rng.choice(OPTION_SAMPLES),
        payload=rng.randbytes(rng.choice((0, 0, 1, 10, 500))),
        tsval=ts,
    )


def near_but_invalid(rng: random.Random, to_b: bool, conn) -> bytes:
    """Numbers near the window, yet nothing a correct receiver may take as data or reset."""
    raw = conn.raw
    ts = raw.ts_recent + 1 if raw.flags & 2 else None
    kind = rng.randrange(4)
    if kind == 0:  # an old duplicate, entirely before RCV.NXT (its FIN included)
        payload = rng.randbytes(rng.randint(1, 100))
        return raw_segment(
            to_b,
            seq=raw.rcv_nxt - len(payload) - 1 - rng.randint(0, 5000),
            ack=raw.snd_una,
            flags=0x10 | rng.choice((0, 0x08, 0x01)),
            window=rng.randrange(65536),
            options=b"",
            payload=payload,
            tsval=ts,
        )
    if kind == 1:  # RST inside the window but not at RCV.NXT
        return raw_segment(
            to_b,
            seq=raw.rcv_nxt + rng.randint(1, 30000),
            ack=rng.randrange(U32),
            flags=0x04 | rng.choice((0, 0x10)),
            window=0,
            options=b"",
            payload=b"",
        )
    if kind == 2:  # SYN anywhere
        return raw_segment(
            to_b,
            seq=raw.rcv_nxt + rng.randint(-30000, 30000),
            ack=rng.randrange(U32),
            flags=0x02 | rng.choice((0, 0x10)),
            window=rng.randrange(65536),
            options=rng.choice(OPTION_SAMPLES),
            payload=rng.randbytes(rng.choice((0, 20))),
            tsval=ts,
        )
    # an ACK outside (SND.UNA - MAX.SND.WND, SND.NXT]
    far = (
        raw.snd_max + rng.randint(1, 2**30)
        if rng.random() < 0.5
        else (raw.snd_una - raw.max_snd_wnd - rng.randint(1, 2**30))
    )
    return raw_segment(
        to_b,
        seq=raw.rcv_nxt,
        ack=far,
        flags=0x10,
        window=rng.randrange(65536),
        options=b"",
        payload=rng.randbytes(rng.choice((0, 30))),
        tsval=ts,
    )


def flooded_transfer(
    seed: int, make_segment, segments_per_step: int, flood_steps: int, config=None
):
    rng = random.Random(seed)
    transfer = Transfer(rng.randbytes(1 << 20), rng.randbytes(300_000), close=True)
    pair = Pair(seed=seed, loss=0.01, reorder=0.02, config_a=config, config_b=config)
    pair.handshake()
    pair.start(transfer)
    results: dict[InputResult, int] = {}
    for _ in range(flood_steps):
        assert pair.step()
        for conn, to_b in ((pair.a, False), (pair.b, True)):
            for _ in range(segments_per_step):
                result = conn.input(pair.now, make_segment(rng, to_b, conn))
                results[result] = results.get(result, 0) + 1
                assert conn.check() == 0
        pair.flush()
    killed = results.get(InputResult.RESET, 0) > 0
    if not killed:
        pair.run(
            lambda: (
                transfer.complete()
                and pair.a.state == TcpState.CLOSED
                and pair.b.state == TcpState.CLOSED
            ),
            max_ms=5_000_000,
        )
    return results, pair


@pytest.mark.parametrize("timestamps", [True, False])
def test_blind_flood_during_transfer_then_transfer_completes_byte_exact(timestamps):
    results, _ = flooded_transfer(
        1, blind, segments_per_step=20, flood_steps=1000, config=Config(timestamps=timestamps)
    )
    assert sum(results.values()) == 40_000
    # The flood reached the state machine (checksums were right) and met its rules.
    reached = {InputResult.MALFORMED, InputResult.UNACCEPTABLE, InputResult.DROPPED}
    if timestamps:
        reached.add(InputResult.PAWS)
    assert reached <= set(results), results
    assert InputResult.BAD_CHECKSUM not in results
    assert InputResult.RESET not in results  # a blind RST matches RCV.NXT with p = 2^-32


@pytest.mark.parametrize("seed", [2, 12])  # 12 once wedged: see test_conn_rfc5961 ts_recent
def test_near_window_invalid_flood_then_transfer_completes_byte_exact(seed):
    results, _ = flooded_transfer(seed, near_but_invalid, segments_per_step=10, flood_steps=600)
    assert InputResult.RESET not in results
    assert results.get(InputResult.CHALLENGE, 0) > 0
    assert results.get(InputResult.CHALLENGE_LIMITED, 0) > 0  # the throttle engaged
    assert results.get(InputResult.UNACCEPTABLE, 0) > 0
    assert results.get(InputResult.BAD_ACK, 0) > 0


def connection_in(state_index: int, seed: int):
    """A pair driven to one of several states; returns the pair."""
    rng = random.Random(seed)
    pair = Pair(seed=seed)
    pair.handshake()
    if state_index >= 1:
        transfer = Transfer(rng.randbytes(50_000), rng.randbytes(20_000))
        pair.start(transfer)
        pair.run(lambda: len(transfer.received["b"]) > 10_000)
    if state_index >= 2:
        pair.a.shutdown_write()
        pair.flush()
        pair.step()
    if state_index >= 3:
        pair.b.shutdown_write()
        pair.flush()
        pair.step()
    return pair


@settings(max_examples=150, deadline=None)
@given(
    state_index=st.integers(0, 3),
    seed=st.integers(0, 5),
    segments=st.lists(
        st.tuples(
            st.booleans(),  # toward B?
            st.integers(-70000, 70000),  # seq offset from RCV.NXT
            st.integers(-70000, 70000),  # ack offset from SND.UNA
            st.integers(0, 511),  # flags
            st.integers(0, 65535),  # window
            st.sampled_from(OPTION_SAMPLES),
            st.integers(0, 1500),  # payload length
            st.booleans(),  # with a fresh timestamp
            st.integers(0, 3000),  # ms later
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_any_segment_near_window_any_state_keeps_connection_consistent(state_index, seed, segments):
    pair = connection_in(state_index, seed)
    for to_b, dseq, dack, flags, window, options, length, ts, later in segments:
        conn = pair.b if to_b else pair.a
        raw = conn.raw
        pair.now += later
        segment = raw_segment(
            to_b,
            seq=raw.rcv_nxt + dseq,
            ack=raw.snd_una + dack,
            flags=flags,
            window=window,
            options=options,
            payload=bytes(length),
            tsval=raw.ts_recent + 1 if ts else None,
        )
        result = conn.input(pair.now, segment)
        assert result in set(InputResult)
        assert conn.check() == 0
        for c in (pair.a, pair.b):
            c.timer(pair.now)
            assert c.check() == 0
            sent = c.output_all(pair.now)  # terminates: a bounded number of segments
            assert len(sent) < 1000
            deadline = c.next_deadline()
            assert deadline is None or deadline > pair.now or c.state == TcpState.CLOSED
