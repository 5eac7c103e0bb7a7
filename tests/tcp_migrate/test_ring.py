"""Byte ring and out-of-order reassembly (csrc/tcp_ring.c) against Python models.

The ring is checked against a bytearray, operation by operation (a hypothesis state machine);
reassembly against sets of received offsets and, end to end, by pushing a shuffled, duplicated,
overlapping segmentation of a stream through ``ring_receive`` and reading the stream back.
Rings over caller-owned memory sit between guard bytes that must never change.
"""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tcp_migrate._core import ffi, lib

GUARD = 16
GUARD_BYTE = 0xA5
HUGE = 2**64 - 1  # largest size_t
U32_MAX = 2**32 - 1


class Ring:
    """A struct tcp_ring for tests: caller-owned memory between guards, or ring_alloc'd."""

    def __init__(self, capacity: int, *, owned: bool = False) -> None:
        self.ptr = ffi.new("struct tcp_ring *")
        self.capacity = capacity
        self.owned = owned
        if owned:
            self.memory = None
            assert lib.ring_alloc(self.ptr, capacity) == lib.TCP_RING_OK
        else:
            self.memory = ffi.new("uint8_t[]", capacity + 2 * GUARD)
            ffi.memmove(
                self.memory, bytes([GUARD_BYTE]) * (capacity + 2 * GUARD), capacity + 2 * GUARD
            )
            assert lib.ring_init(self.ptr, self.memory + GUARD, capacity) == lib.TCP_RING_OK

    def close(self) -> None:
        lib.ring_free(self.ptr)

    def guards_intact(self) -> bool:
        if self.memory is None:
            return True
        raw = ffi.buffer(self.memory, self.capacity + 2 * GUARD)
        return raw[:GUARD] + raw[GUARD + self.capacity :] == bytes([GUARD_BYTE]) * (2 * GUARD)

    def write(self, data: bytes) -> int:
        return lib.ring_write(self.ptr, data, len(data))

    def write_at(self, offset: int, data: bytes) -> int:
        return lib.ring_write_at(self.ptr, offset, data, len(data))

    def peek(self, offset: int, n: int) -> bytes:
        dst = ffi.new("uint8_t[]", n)
        got = lib.ring_peek(self.ptr, offset, dst, n)
        return ffi.buffer(dst, got)[:]

    def read(self, n: int) -> bytes:
        dst = ffi.new("uint8_t[]", n)
        got = lib.ring_read(self.ptr, dst, n)
        return ffi.buffer(dst, got)[:]

    @property
    def length(self) -> int:
        return lib.ring_length(self.ptr)

    @property
    def free(self) -> int:
        return lib.ring_free_space(self.ptr)


def new_reasm(limit: int):
    reasm = ffi.new("struct tcp_reasm *")
    assert lib.reasm_init(reasm, limit) == lib.TCP_RING_OK
    return reasm


def intervals(reasm) -> list[tuple[int, int]]:
    """(offset, end) of each recorded interval, in stored order."""
    return [
        (reasm.iv[i].offset, reasm.iv[i].offset + reasm.iv[i].length) for i in range(reasm.count)
    ]


def covered(spans: list[tuple[int, int]]) -> set[int]:
    return {x for start, end in spans for x in range(start, end)}


def assert_intervals_well_formed(reasm) -> None:
    """Checked here independently of reasm_valid: sorted, non-empty, apart, within the limit."""
    spans = intervals(reasm)
    assert reasm.count <= reasm.limit <= lib.TCP_REASM_MAX_INTERVALS
    assert all(start < end for start, end in spans)
    assert all(prev_end < start for (_, prev_end), (start, _) in itertools.pairwise(spans))
    assert lib.reasm_valid(reasm)


# ---- ring against a bytearray ------------------------------------------------------------


class RingMachine(RuleBasedStateMachine):
    """Every ring operation against a bytearray of the readable bytes.

    ``pending`` models the free space: offset after the readable bytes -> byte placed there by
    ring_write_at. Offsets whose content the model does not know are not compared.
    """

    @initialize(capacity=st.integers(0, 48), owned=st.booleans())
    def create(self, capacity, owned):
        self.ring = Ring(capacity, owned=owned)
        self.capacity = capacity
        self.model = bytearray()
        self.pending: dict[int, int] = {}

    def teardown(self):
        if hasattr(self, "ring"):
            self.ring.close()

    @property
    def space(self) -> int:
        return self.capacity - len(self.model)

    @rule(data=st.binary(max_size=64))
    def write(self, data):
        expected = min(len(data), self.space)
        assert self.ring.write(data) == expected
        self.model += data[:expected]
        self.pending = {k - expected: v for k, v in self.pending.items() if k >= expected}

    @rule(offset=st.integers(0, 64), n=st.integers(0, 64))
    def peek(self, offset, n):
        assert self.ring.peek(offset, n) == bytes(self.model[offset : offset + n])

    @rule(n=st.integers(0, 64))
    def consume(self, n):
        expected = min(n, len(self.model))
        assert lib.ring_consume(self.ring.ptr, n) == expected
        del self.model[:expected]

    @rule(n=st.integers(0, 64))
    def read(self, n):
        assert self.ring.read(n) == bytes(self.model[:n])
        del self.model[:n]

    @rule(offset=st.integers(0, 64), data=st.binary(max_size=64))
    def write_at(self, offset, data):
        expected = max(0, min(len(data), self.space - offset))
        assert self.ring.write_at(offset, data) == expected
        for i in range(expected):
            self.pending[offset + i] = data[i]

    @rule(n=st.integers(0, 64))
    def commit(self, n):
        expected = min(n, self.space)
        before = len(self.model)
        assert lib.ring_commit(self.ring.ptr, n) == expected
        committed = self.ring.peek(before, expected)
        for i in range(expected):
            if i in self.pending:
                assert committed[i] == self.pending[i]
        self.model += committed
        self.pending = {k - expected: v for k, v in self.pending.items() if k >= expected}

    @precondition(lambda self: self.capacity > 0)
    @rule(huge=st.sampled_from([HUGE, 2**63, 2**32, U32_MAX]))
    def huge_counts_are_clipped(self, huge):
        dst = ffi.new("uint8_t[]", self.capacity)
        assert lib.ring_peek(self.ring.ptr, huge, dst, 1) == 0
        assert lib.ring_peek(self.ring.ptr, 0, dst, huge) == len(self.model)
        assert ffi.buffer(dst, len(self.model))[:] == bytes(self.model)
        assert lib.ring_write_at(self.ring.ptr, huge, b"x", 1) == 0

    @invariant()
    def matches_model(self):
        if not hasattr(self, "ring"):
            return
        assert lib.ring_valid(self.ring.ptr)
        assert self.ring.length == len(self.model)
        assert self.ring.free == self.space
        assert lib.ring_capacity(self.ring.ptr) == self.capacity
        assert self.ring.peek(0, self.capacity) == bytes(self.model)
        assert self.ring.guards_intact()


TestRingMachine = RingMachine.TestCase
TestRingMachine.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


def test_ring_full_write_rejects_excess():
    ring = Ring(4)
    assert ring.write(b"abcdef") == 4
    assert ring.write(b"g") == 0
    assert ring.peek(0, 10) == b"abcd"
    assert ring.guards_intact()


def test_ring_wrapped_peek_at_offset_returns_both_parts():
    ring = Ring(8)
    assert ring.write(b"012345") == 6
    assert lib.ring_consume(ring.ptr, 5) == 5
    assert ring.write(b"6789abc") == 7  # wraps: 4 bytes at the end, 3 at the start
    assert ring.peek(0, 8) == b"56789abc"
    assert ring.peek(2, 4) == b"789a"
    assert ring.peek(7, 4) == b"c"
    assert ring.read(8) == b"56789abc"
    assert ring.guards_intact()


def test_ring_empty_after_consume_keeps_free_space_bytes_in_place():
    # Out-of-order bytes in the free space must not move when the reader empties the ring.
    ring = Ring(8)
    ring.write(b"abc")
    assert ring.write_at(2, b"XY") == 2
    assert ring.read(3) == b"abc"
    assert lib.ring_commit(ring.ptr, 4) == 4
    assert ring.peek(2, 2) == b"XY"


def test_ring_alloc_owned_memory_freed_and_reset():
    ring = Ring(32, owned=True)
    assert ring.ptr.owned and ring.write(b"x" * 40) == 32
    lib.ring_free(ring.ptr)
    assert ring.ptr.buf == ffi.NULL and ring.ptr.capacity == 0 and not ring.ptr.owned
    assert lib.ring_valid(ring.ptr) and ring.write(b"x") == 0
    lib.ring_free(ring.ptr)  # a second free is harmless


def test_ring_free_caller_owned_memory_not_released():
    ring = Ring(8)
    ring.write(b"abc")
    lib.ring_free(ring.ptr)  # must not free(): ASan would report a bad free
    assert ring.ptr.buf == ffi.NULL and ring.guards_intact()


# ---- bounds robustness --------------------------------------------------------------------


@pytest.mark.parametrize("owned", [False, True])
def test_ring_zero_capacity_every_operation_does_nothing(owned):
    ring = Ring(0, owned=owned)
    reasm = new_reasm(4)
    dst = ffi.new("uint8_t[]", 4)
    assert lib.ring_valid(ring.ptr)
    assert ring.ptr.buf == ffi.NULL
    assert ring.write(b"abc") == 0
    assert lib.ring_peek(ring.ptr, 0, dst, HUGE) == 0
    assert lib.ring_consume(ring.ptr, HUGE) == 0
    assert lib.ring_read(ring.ptr, dst, 4) == 0
    assert lib.ring_write_at(ring.ptr, 0, b"abc", 3) == 0
    assert lib.ring_commit(ring.ptr, HUGE) == 0
    assert lib.ring_free_space(ring.ptr) == 0
    res = lib.ring_receive(ring.ptr, reasm, 0, b"abc", 3)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_BEYOND, 0, 0)
    assert ring.guards_intact()
    ring.close()


def test_ring_init_rejects_bad_arguments():
    ring = ffi.new("struct tcp_ring *")
    mem = ffi.new("uint8_t[]", 8)
    assert lib.ring_init(ring, ffi.NULL, 8) == lib.TCP_RING_EINVAL
    assert lib.ring_init(ffi.NULL, mem, 8) == lib.TCP_RING_EINVAL
    assert lib.ring_init(ring, mem, lib.TCP_RING_MAX_CAPACITY + 1) == lib.TCP_RING_EINVAL
    assert lib.ring_init(ring, mem, HUGE) == lib.TCP_RING_EINVAL
    assert lib.ring_alloc(ring, lib.TCP_RING_MAX_CAPACITY + 1) == lib.TCP_RING_EINVAL
    assert lib.ring_alloc(ring, HUGE) == lib.TCP_RING_EINVAL
    assert lib.ring_alloc(ffi.NULL, 8) == lib.TCP_RING_EINVAL


def test_ring_null_pointers_do_nothing():
    ring = Ring(8)
    ring.write(b"abcd")
    assert lib.ring_peek(ring.ptr, 0, ffi.NULL, 4) == 0
    assert lib.ring_read(ring.ptr, ffi.NULL, 4) == 0
    assert lib.ring_write(ring.ptr, ffi.NULL, 4) == 0
    assert lib.ring_write_at(ring.ptr, 0, ffi.NULL, 4) == 0
    assert ring.length == 4
    for fn in (lib.ring_capacity, lib.ring_length, lib.ring_free_space):
        assert fn(ffi.NULL) == 0
    assert lib.ring_consume(ffi.NULL, 4) == 0
    assert lib.ring_commit(ffi.NULL, 4) == 0
    assert not lib.ring_valid(ffi.NULL)
    lib.ring_free(ffi.NULL)
    assert lib.ring_receive(ffi.NULL, new_reasm(1), 0, b"a", 1).status == lib.TCP_REASM_INVALID
    assert lib.ring_receive(ring.ptr, ffi.NULL, 0, b"a", 1).status == lib.TCP_REASM_INVALID
    assert lib.ring_receive(ring.ptr, new_reasm(1), 0, ffi.NULL, 1).status == lib.TCP_REASM_INVALID


@pytest.mark.parametrize("capacity", [0, 1, 8])
@pytest.mark.parametrize("head_choice", ["zero", "capacity-1", "capacity", "capacity+1", "u32max"])
@pytest.mark.parametrize("length_choice", ["zero", "capacity", "capacity+1", "u32max"])
@pytest.mark.parametrize("fake_capacity", [None, lib.TCP_RING_MAX_CAPACITY + 1, U32_MAX])
@pytest.mark.parametrize("null_buf", [False, True])
def test_ring_corrupt_fields_refused_without_touching_memory(
    capacity, head_choice, length_choice, fake_capacity, null_buf
):
    choices = {
        "zero": 0,
        "capacity-1": max(0, capacity - 1),
        "capacity": capacity,
        "capacity+1": capacity + 1,
        "u32max": U32_MAX,
    }
    head, length = choices[head_choice], choices[length_choice]
    ring = Ring(capacity)
    ring.ptr.head, ring.ptr.length = head, length
    if fake_capacity is not None:
        ring.ptr.capacity = fake_capacity
    if null_buf:
        ring.ptr.buf = ffi.NULL
    valid = (
        fake_capacity is None
        and (capacity == 0 or not null_buf)
        and (head == length == 0 if capacity == 0 else head < capacity and length <= capacity)
    )
    assert lib.ring_valid(ring.ptr) == valid
    if valid:
        return
    snapshot = (ring.ptr.head, ring.ptr.length, ring.ptr.capacity)
    dst = ffi.new("uint8_t[]", 64)
    reasm = new_reasm(4)
    assert ring.write(b"z" * 64) == 0
    assert ring.write_at(0, b"z" * 64) == 0
    assert lib.ring_peek(ring.ptr, 0, dst, 64) == 0
    assert lib.ring_read(ring.ptr, dst, 64) == 0
    assert lib.ring_consume(ring.ptr, 64) == 0
    assert lib.ring_commit(ring.ptr, 64) == 0
    assert lib.ring_receive(ring.ptr, reasm, 0, b"z" * 8, 8).status == lib.TCP_REASM_INVALID
    assert lib.ring_length(ring.ptr) == lib.ring_free_space(ring.ptr) == 0
    assert (ring.ptr.head, ring.ptr.length, ring.ptr.capacity) == snapshot
    assert ring.guards_intact()


# ---- reassembly record against a set of offsets -------------------------------------------

segment_spans = st.tuples(st.integers(0, 120), st.integers(0, 24))


@settings(max_examples=400)
@given(
    limit=st.integers(1, 6),
    ops=st.lists(st.one_of(segment_spans, st.just("pop")), max_size=40),
)
def test_reasm_add_and_pop_match_set_model(limit, ops):
    reasm = new_reasm(limit)
    for op in ops:
        before = intervals(reasm)
        have = covered(before)
        if op == "pop":
            n = lib.reasm_pop_front(reasm)
            run = 0
            while run in have:
                run += 1
            assert n == run
            assert covered(intervals(reasm)) == {x - n for x in have if x >= n}
        else:
            offset, length = op
            segment = set(range(offset, offset + length))
            touches = any(start <= offset + length and offset <= end for start, end in before)
            status = lib.reasm_add(reasm, offset, length)
            after = covered(intervals(reasm))
            if status == lib.TCP_REASM_STORED:
                assert after == have | segment
                assert len(before) < limit or touches or length == 0
            elif status == lib.TCP_REASM_EVICTED:
                last_start, last_end = before[-1]
                assert len(before) == limit and not touches and offset + length < last_start
                assert after == (have - set(range(last_start, last_end))) | segment
            else:
                assert status == lib.TCP_REASM_DROPPED
                assert len(before) == limit and not touches and offset > before[-1][1]
                assert after == have
        assert_intervals_well_formed(reasm)
        assert lib.reasm_front(reasm) == (
            reasm.iv[0].length if reasm.count and reasm.iv[0].offset == 0 else 0
        )


def test_reasm_full_in_order_segment_evicts_furthest_interval():
    reasm = new_reasm(2)
    assert lib.reasm_add(reasm, 10, 5) == lib.TCP_REASM_STORED
    assert lib.reasm_add(reasm, 30, 5) == lib.TCP_REASM_STORED
    assert lib.reasm_add(reasm, 50, 5) == lib.TCP_REASM_DROPPED
    assert intervals(reasm) == [(10, 15), (30, 35)]
    assert lib.reasm_add(reasm, 0, 3) == lib.TCP_REASM_EVICTED
    assert intervals(reasm) == [(0, 3), (10, 15)]
    assert lib.reasm_pop_front(reasm) == 3
    assert intervals(reasm) == [(7, 12)]


def test_reasm_full_segment_bridging_intervals_merges_them():
    reasm = new_reasm(2)
    lib.reasm_add(reasm, 10, 5)
    lib.reasm_add(reasm, 20, 5)
    assert lib.reasm_add(reasm, 15, 5) == lib.TCP_REASM_STORED  # adjacent on both sides
    assert intervals(reasm) == [(10, 25)]


def test_reasm_end_beyond_sequence_space_clipped():
    reasm = new_reasm(4)
    assert lib.reasm_add(reasm, U32_MAX, U32_MAX) == lib.TCP_REASM_STORED  # clipped: empty
    assert reasm.count == 0
    assert lib.reasm_add(reasm, U32_MAX - 4, U32_MAX) == lib.TCP_REASM_STORED
    assert intervals(reasm) == [(U32_MAX - 4, U32_MAX)]
    assert lib.reasm_add(reasm, 0, U32_MAX) == lib.TCP_REASM_STORED
    assert intervals(reasm) == [(0, U32_MAX)]
    assert lib.reasm_pop_front(reasm) == U32_MAX and reasm.count == 0


def test_reasm_init_rejects_bad_limits():
    reasm = ffi.new("struct tcp_reasm *")
    assert lib.reasm_init(reasm, 0) == lib.TCP_RING_EINVAL
    assert lib.reasm_init(reasm, lib.TCP_REASM_MAX_INTERVALS + 1) == lib.TCP_RING_EINVAL
    assert lib.reasm_init(ffi.NULL, 4) == lib.TCP_RING_EINVAL
    assert lib.reasm_add(ffi.NULL, 0, 1) == lib.TCP_REASM_INVALID
    assert lib.reasm_front(ffi.NULL) == 0 and lib.reasm_pop_front(ffi.NULL) == 0
    assert lib.reasm_init(reasm, lib.TCP_REASM_MAX_INTERVALS) == lib.TCP_RING_OK


def test_reasm_limit_max_fills_every_slot():
    reasm = new_reasm(lib.TCP_REASM_MAX_INTERVALS)
    for i in range(lib.TCP_REASM_MAX_INTERVALS):
        assert lib.reasm_add(reasm, 10 + 3 * i, 1) == lib.TCP_REASM_STORED
    assert lib.reasm_add(reasm, 1000, 1) == lib.TCP_REASM_DROPPED
    assert lib.reasm_add(reasm, 0, 1) == lib.TCP_REASM_EVICTED
    assert reasm.count == lib.TCP_REASM_MAX_INTERVALS
    assert_intervals_well_formed(reasm)


def fill_reasm(reasm, count: int, limit: int, spans: list[tuple[int, int]]) -> None:
    """Writes raw fields, as an import of an untrusted snapshot would: (offset, length) pairs."""
    reasm.count, reasm.limit = count, limit
    for i, (offset, length) in enumerate(spans):
        reasm.iv[i].offset, reasm.iv[i].length = offset, length


@pytest.mark.parametrize(
    ("count", "limit", "spans"),
    [
        pytest.param(3, 2, [(0, 1), (5, 1), (9, 1)], id="count-over-limit"),
        pytest.param(0, 0, [], id="limit-zero"),
        pytest.param(0, 33, [], id="limit-over-max"),
        pytest.param(2, 4, [(9, 1), (5, 1)], id="unsorted"),
        pytest.param(2, 4, [(5, 3), (7, 3)], id="overlapping"),
        pytest.param(2, 4, [(5, 3), (8, 3)], id="adjacent"),
        pytest.param(2, 4, [(5, 3), (10, 0)], id="empty-interval"),
        pytest.param(1, 4, [(U32_MAX, 1)], id="end-past-2^32"),
        pytest.param(1, 4, [(1, U32_MAX)], id="length-past-2^32"),
    ],
)
def test_reasm_corrupt_record_refused_unchanged(count, limit, spans):
    reasm = ffi.new("struct tcp_reasm *")
    fill_reasm(reasm, count, limit, spans)
    raw = bytes(ffi.buffer(reasm))
    ring = Ring(16)
    assert not lib.reasm_valid(reasm)
    assert lib.reasm_add(reasm, 0, 4) == lib.TCP_REASM_INVALID
    assert lib.reasm_front(reasm) == 0 and lib.reasm_pop_front(reasm) == 0
    res = lib.ring_receive(ring.ptr, reasm, 0, b"abcd", 4)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_INVALID, 0, 0)
    assert bytes(ffi.buffer(reasm)) == raw
    assert ring.length == 0 and ring.guards_intact()


@st.composite
def reasm_layouts(draw):
    """A record as a snapshot might carry it: a valid layout of intervals anywhere in the
    32-bit offset space (gaps and lengths of any size), then perhaps one field overwritten."""
    limit = draw(st.integers(1, lib.TCP_REASM_MAX_INTERVALS))
    sizes = st.one_of(st.integers(1, 40), st.integers(1, U32_MAX))
    spans, position = [], draw(st.one_of(st.integers(0, 40), st.integers(0, U32_MAX)))
    for _ in range(draw(st.integers(0, limit))):
        length = draw(sizes)
        if position + length > U32_MAX:
            break
        spans.append((position, length))
        position += length + draw(sizes)
    count = len(spans)
    spans += [(0, 0)] * (lib.TCP_REASM_MAX_INTERVALS - count)
    if draw(st.booleans()):
        field = draw(st.sampled_from(["count", "limit", "offset", "length"]))
        value = draw(st.one_of(st.integers(0, 40), st.integers(0, U32_MAX)))
        if field == "count":
            count = value
        elif field == "limit":
            limit = value
        else:
            i = draw(st.integers(0, lib.TCP_REASM_MAX_INTERVALS - 1))
            offset, length = spans[i]
            spans[i] = (value, length) if field == "offset" else (offset, value)
    return count, limit, spans


@settings(max_examples=300)
@given(
    layout=reasm_layouts(),
    capacity=st.integers(0, 64),
    ops=st.lists(
        st.tuples(
            st.one_of(st.integers(0, 80), st.integers(0, U32_MAX)),
            st.one_of(st.integers(0, 80), st.integers(0, U32_MAX)),
        ),
        max_size=8,
    ),
)
def test_reasm_arbitrary_record_never_breaks_invariants(layout, capacity, ops):
    # A corrupt record is refused and left as it is; a valid one stays valid through add, pop
    # and ring_receive, and the ring is never written outside its buffer, even when the
    # record's intervals lie beyond the ring's free space.
    reasm = ffi.new("struct tcp_reasm *")
    fill_reasm(reasm, *layout)
    raw = bytes(ffi.buffer(reasm))
    ring = Ring(capacity)
    for offset, length in ops:
        valid = lib.reasm_valid(reasm)
        status = lib.reasm_add(reasm, offset, length)
        lib.reasm_pop_front(reasm)
        payload = bytes([offset & 0xFF]) * min(length, 100)
        res = lib.ring_receive(ring.ptr, reasm, offset, payload, len(payload))
        if valid:
            assert status != lib.TCP_REASM_INVALID and res.status != lib.TCP_REASM_INVALID
            assert_intervals_well_formed(reasm)
        else:
            assert status == res.status == lib.TCP_REASM_INVALID
            assert bytes(ffi.buffer(reasm)) == raw
        assert lib.ring_valid(ring.ptr) and ring.guards_intact()
        ring.read(capacity)


# ---- ring_receive end to end ----------------------------------------------------------------


@st.composite
def segmentations(draw):
    """A stream and segments covering it, with extra overlapping and duplicate segments,
    in arbitrary order."""
    stream = draw(st.binary(min_size=1, max_size=200))
    cuts = sorted(
        draw(st.sets(st.integers(1, len(stream) - 1), max_size=20)) if len(stream) > 1 else set()
    )
    bounds = [0, *cuts, len(stream)]
    segments = list(itertools.pairwise(bounds))
    extra = draw(
        st.lists(
            st.tuples(st.integers(0, len(stream) - 1), st.integers(1, 60)).map(
                lambda s: (s[0], min(len(stream), s[0] + s[1]))
            ),
            max_size=10,
        )
    )
    segments += extra + draw(st.lists(st.sampled_from(segments), max_size=5))
    return stream, draw(st.permutations(segments))


@settings(max_examples=300, deadline=None)
@given(
    case=segmentations(),
    capacity=st.integers(1, 256),
    limit=st.integers(1, lib.TCP_REASM_MAX_INTERVALS),
    read_sizes=st.lists(st.integers(0, 64), min_size=1, max_size=8),
)
def test_ring_receive_any_order_delivers_original_stream(case, capacity, limit, read_sizes):
    """A sender repeats every segment each round (as retransmission would) until the receiver
    has the whole stream; the reader takes varying amounts between segments, and everything
    at the end of a round. Each round delivers at least one byte, whatever the limit."""
    stream, segments = case
    ring, reasm = Ring(capacity), new_reasm(limit)
    delivered = bytearray()
    rcv_nxt = 0  # stream offset of the end of the readable bytes
    reads = iter(read_sizes * (len(segments) * (len(stream) + 1)))
    for _round in range(len(stream) + 1):
        for start, end in segments:
            if end <= rcv_nxt:
                continue  # an old duplicate: the caller drops it before the ring
            start_trimmed = max(start, rcv_nxt)
            payload = stream[start_trimmed:end]
            offset = start_trimmed - rcv_nxt
            free_before = ring.free
            res = lib.ring_receive(ring.ptr, reasm, offset, payload, len(payload))
            if offset >= free_before:
                assert (res.status, res.stored) == (lib.TCP_REASM_BEYOND, 0)
            elif res.status == lib.TCP_REASM_DROPPED:
                assert res.stored == 0
            else:
                assert res.status in (lib.TCP_REASM_STORED, lib.TCP_REASM_EVICTED)
                assert res.stored == min(len(payload), free_before - offset)
            rcv_nxt += res.readable
            assert_intervals_well_formed(reasm)
            spans = intervals(reasm)
            assert not spans or (spans[0][0] > 0 and spans[-1][1] <= ring.free)
            delivered += ring.read(next(reads))
            assert stream.startswith(delivered)
            assert len(delivered) + ring.length == rcv_nxt
        delivered += ring.read(capacity)
        if rcv_nxt == len(stream):
            break
    assert bytes(delivered) == stream
    assert ring.guards_intact()


def test_ring_receive_out_of_order_then_gap_filled_all_readable():
    ring, reasm = Ring(16), new_reasm(4)
    res = lib.ring_receive(ring.ptr, reasm, 4, b"efgh", 4)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_STORED, 4, 0)
    res = lib.ring_receive(ring.ptr, reasm, 10, b"klm", 3)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_STORED, 3, 0)
    res = lib.ring_receive(ring.ptr, reasm, 0, b"abcd", 4)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_STORED, 4, 8)
    assert ring.read(16) == b"abcdefgh"
    res = lib.ring_receive(ring.ptr, reasm, 0, b"ij", 2)
    assert res.readable == 5
    assert ring.read(16) == b"ijklm"
    assert reasm.count == 0 and ring.guards_intact()


def test_ring_receive_segment_past_free_space_clipped():
    ring, reasm = Ring(8), new_reasm(4)
    ring.write(b"xyz")  # 5 bytes free
    res = lib.ring_receive(ring.ptr, reasm, 2, b"0123456789", 10)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_STORED, 3, 0)
    res = lib.ring_receive(ring.ptr, reasm, 5, b"0", 1)
    assert (res.status, res.stored) == (lib.TCP_REASM_BEYOND, 0)
    res = lib.ring_receive(ring.ptr, reasm, HUGE, b"0", 1)
    assert res.status == lib.TCP_REASM_BEYOND
    res = lib.ring_receive(ring.ptr, reasm, 0, b"ab", 2)
    assert res.readable == 5 and ring.read(8) == b"xyzab012"
    assert ring.guards_intact()


def test_ring_receive_overlap_newer_copy_wins():
    # Pinned: overlapping bytes are overwritten by the later segment.
    ring, reasm = Ring(8), new_reasm(4)
    lib.ring_receive(ring.ptr, reasm, 2, b"AAAA", 4)
    lib.ring_receive(ring.ptr, reasm, 4, b"BB", 2)
    lib.ring_receive(ring.ptr, reasm, 0, b"cc", 2)
    assert ring.read(8) == b"ccAABB"


def test_ring_receive_empty_payload_stored_nothing():
    ring, reasm = Ring(8), new_reasm(4)
    res = lib.ring_receive(ring.ptr, reasm, 0, ffi.NULL, 0)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_STORED, 0, 0)
    res = lib.ring_receive(ring.ptr, reasm, 100, b"", 0)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_STORED, 0, 0)


def test_ring_receive_full_record_segment_dropped_nothing_written():
    ring, reasm = Ring(16), new_reasm(1)
    lib.ring_receive(ring.ptr, reasm, 2, b"AA", 2)
    res = lib.ring_receive(ring.ptr, reasm, 8, b"ZZ", 2)
    assert (res.status, res.stored, res.readable) == (lib.TCP_REASM_DROPPED, 0, 0)
    assert ring.write_at(0, b"") == 0
    lib.ring_commit(ring.ptr, 10)
    assert ring.peek(8, 2) != b"ZZ"


def test_ring_peek_free_reads_back_what_write_at_placed_wrapped_and_clipped():
    ring = Ring(8)
    ring.write(b"abcde")
    lib.ring_consume(ring.ptr, 4)  # head at 4: the free space wraps past the end
    assert ring.write_at(1, b"XYZ") == 3
    dst = ffi.new("uint8_t[]", 16)
    assert lib.ring_peek_free(ring.ptr, 1, dst, 3) == 3
    assert ffi.buffer(dst, 3)[:] == b"XYZ"
    assert lib.ring_peek_free(ring.ptr, 0, dst, 16) == 7  # clipped to the free space
    assert ffi.buffer(dst, 7)[1:4] == b"XYZ"
    assert lib.ring_peek_free(ring.ptr, 7, dst, 1) == 0
    assert lib.ring_peek_free(ring.ptr, HUGE, dst, 1) == 0
    assert lib.ring_peek_free(ring.ptr, 0, ffi.NULL, 1) == 0
    assert lib.ring_peek_free(ffi.NULL, 0, dst, 1) == 0
    assert ring.length == 1 and ring.guards_intact()
