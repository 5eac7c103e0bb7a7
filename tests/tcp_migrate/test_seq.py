"""Sequence arithmetic and segment acceptability (csrc/tcp_seq.c) against Python models.

The models restate RFC 9293 in Python integers: sequence numbers live modulo 2^32 (3.4), a
number is "before" another when the other lies 1 .. 2^31 steps ahead, and the acceptability
test is Table 6 of 3.10.7.4, row by row.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcp_migrate._core import lib

MOD = 2**32
HALF = 2**31
u32 = st.integers(0, MOD - 1)
# Distances that exercise the edges: tiny, around 2^31, and near 2^32.
distances = st.one_of(
    st.integers(0, 16),
    st.integers(HALF - 4, HALF + 4),
    st.integers(MOD - 16, MOD - 1),
    st.integers(0, MOD - 1),
)


def model_lt(a: int, b: int) -> bool:
    """a < b modulo 2^32: b is 1 .. 2^31 steps after a (2^31 itself counts both ways)."""
    return 0 < (b - a) % MOD <= HALF


def model_leq(a: int, b: int) -> bool:
    return a == b or model_lt(a, b)


def model_in_window(start: int, x: int, size: int) -> bool:
    """start =< x < start + size, by walking the window (for small sizes only)."""
    return any((start + i) % MOD == x for i in range(size))


def model_acceptable(rcv_nxt: int, rcv_wnd: int, seg_seq: int, seg_len: int) -> bool:
    """RFC 9293 3.10.7.4 Table 6, with windows small enough to walk."""
    if seg_len == 0 and rcv_wnd == 0:
        return seg_seq == rcv_nxt
    if seg_len == 0:
        return model_in_window(rcv_nxt, seg_seq, rcv_wnd)
    if rcv_wnd == 0:
        return False
    last = (seg_seq + seg_len - 1) % MOD
    return model_in_window(rcv_nxt, seg_seq, rcv_wnd) or model_in_window(rcv_nxt, last, rcv_wnd)


@given(a=u32, distance=distances)
def test_comparisons_match_modular_model(a, distance):
    b = (a + distance) % MOD
    for x, y in ((a, b), (b, a)):
        assert lib.seq_lt(x, y) == model_lt(x, y)
        assert lib.seq_leq(x, y) == model_leq(x, y)
        assert lib.seq_gt(x, y) == model_lt(y, x)
        assert lib.seq_geq(x, y) == model_leq(y, x)


@given(a=u32, distance=st.integers(0, HALF - 1))
def test_comparisons_within_half_space_are_a_total_order(a, distance):
    b = (a + distance) % MOD
    assert [lib.seq_lt(a, b), a == b, lib.seq_gt(a, b)].count(True) == 1
    assert lib.seq_leq(a, b)
    assert lib.seq_lt(a, b) == (distance > 0)


def test_comparisons_wrap_around_zero():
    assert lib.seq_lt(0xFFFFFFFF, 0)
    assert lib.seq_gt(0, 0xFFFFFFFF)
    assert lib.seq_lt(0xFFFFFFF0, 0x10)
    assert not lib.seq_lt(0x10, 0xFFFFFFF0)
    assert lib.seq_leq(7, 7) and lib.seq_geq(7, 7) and not lib.seq_lt(7, 7)


def test_comparisons_at_half_space_hold_both_ways():
    # Pinned: exactly 2^31 apart, each is "before" the other (as Linux's before()).
    assert lib.seq_lt(0, HALF) and lib.seq_lt(HALF, 0)
    assert lib.seq_lt(HALF + 5, 5) and lib.seq_lt(5, HALF + 5)
    assert not lib.seq_lt(0, HALF + 1) and lib.seq_lt(HALF + 1, 0)


@given(a=u32, b_distance=distances, c_distance=distances)
def test_between_is_half_open_interval_from_a(a, b_distance, c_distance):
    b, c = (a + b_distance) % MOD, (a + c_distance) % MOD
    assert lib.seq_between(a, b, c) == (b_distance < c_distance)


@given(a=u32, b_distance=st.integers(0, 40), size=st.integers(0, 32))
def test_between_small_window_matches_walk(a, b_distance, size):
    b = (a + b_distance) % MOD
    c = (a + size) % MOD
    assert lib.seq_between(a, b, c) == model_in_window(a, b, size)


@given(a=u32, b_distance=distances, size=st.integers(1, HALF - 1))
def test_between_equals_rfc_comparisons_below_half_space(a, b_distance, size):
    # RFC 9293 3.4 writes "RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND" as two comparisons.
    b, c = (a + b_distance) % MOD, (a + size) % MOD
    assert lib.seq_between(a, b, c) == (model_leq(a, b) and model_lt(b, c))


def test_between_empty_interval_contains_nothing():
    assert not lib.seq_between(5, 5, 5)
    assert not lib.seq_between(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    # Where the two comparisons disagree: a + 2^31 is both >= a and < a.
    assert model_leq(5, 5 + HALF) and model_lt(5 + HALF, 5)
    assert not lib.seq_between(5, 5 + HALF, 5)


def test_between_across_wrap():
    assert lib.seq_between(0xFFFFFFF0, 0xFFFFFFF0, 0x10)
    assert lib.seq_between(0xFFFFFFF0, 0, 0x10)
    assert lib.seq_between(0xFFFFFFF0, 0xF, 0x10)
    assert not lib.seq_between(0xFFFFFFF0, 0x10, 0x10)
    assert not lib.seq_between(0xFFFFFFF0, 0xFFFFFFEF, 0x10)


@given(
    rcv_nxt=st.one_of(u32, st.integers(MOD - 40, MOD - 1)),
    rcv_wnd=st.integers(0, 40),
    seg_delta=st.integers(-60, 60),
    seg_len=st.integers(0, 50),
)
def test_segment_acceptability_matches_rfc_table(rcv_nxt, rcv_wnd, seg_delta, seg_len):
    seg_seq = (rcv_nxt + seg_delta) % MOD
    assert lib.seq_segment_acceptable(rcv_nxt, rcv_wnd, seg_seq, seg_len) == model_acceptable(
        rcv_nxt, rcv_wnd, seg_seq, seg_len
    )


@given(rcv_nxt=u32, rcv_wnd=st.integers(1, 2**30), seg_seq=u32, seg_len=st.integers(1, 2**16))
def test_segment_acceptability_large_window_first_or_last_octet_inside(
    rcv_nxt, rcv_wnd, seg_seq, seg_len
):
    start_inside = (seg_seq - rcv_nxt) % MOD < rcv_wnd
    last_inside = (seg_seq + seg_len - 1 - rcv_nxt) % MOD < rcv_wnd
    assert lib.seq_segment_acceptable(rcv_nxt, rcv_wnd, seg_seq, seg_len) == (
        start_inside or last_inside
    )


def test_zero_window_empty_segment_at_rcv_nxt_acceptable():
    assert lib.seq_segment_acceptable(1000, 0, 1000, 0)
    assert not lib.seq_segment_acceptable(1000, 0, 1001, 0)
    assert not lib.seq_segment_acceptable(1000, 0, 999, 0)


def test_zero_window_data_segment_not_acceptable():
    assert not lib.seq_segment_acceptable(1000, 0, 1000, 1)


def test_open_window_empty_segment_at_right_edge_not_acceptable():
    assert lib.seq_segment_acceptable(1000, 10, 1009, 0)
    assert not lib.seq_segment_acceptable(1000, 10, 1010, 0)


def test_open_window_segment_overlapping_left_edge_acceptable():
    # Starts before RCV.NXT, last octet inside: acceptable (the caller trims the old part).
    assert lib.seq_segment_acceptable(1000, 10, 995, 6)
    assert not lib.seq_segment_acceptable(1000, 10, 995, 5)


def test_open_window_segment_overlapping_right_edge_acceptable():
    assert lib.seq_segment_acceptable(1000, 10, 1009, 100)


def test_open_window_segment_spanning_whole_window_not_acceptable():
    # Pinned, as RFC 9293 Table 6 is written: neither the first nor the last octet is inside.
    assert not lib.seq_segment_acceptable(1000, 10, 990, 30)


def test_open_window_segment_across_sequence_wrap_acceptable():
    assert lib.seq_segment_acceptable(0xFFFFFFFE, 100, 0xFFFFFFFE, 10)
    assert lib.seq_segment_acceptable(0xFFFFFFFE, 100, 0xFFFFFFF0, 20)
    assert not lib.seq_segment_acceptable(0xFFFFFFFE, 100, 0xFFFFFFF0, 14)
