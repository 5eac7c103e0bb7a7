"""The core's cache of freed ring buffers (csrc/tcp_ring_memory.h): reused for the next
connection, bounded, and never shared by two live connections."""

from __future__ import annotations

import gc

from tcp_migrate.core import Connection, ffi, lib

LOCAL, REMOTE = bytes(15) + b"\x01", bytes(15) + b"\x02"


def _connection(capacity: int) -> Connection:
    return Connection(
        local_address=LOCAL,
        local_port=80,
        remote_address=REMOTE,
        remote_port=1234,
        send_capacity=capacity,
        receive_capacity=capacity,
    )


def test_freed_rings_are_cached_and_taken_again() -> None:
    gc.collect()
    lib.ring_memory_release()  # what earlier tests left: the cache may be full
    assert lib.ring_memory_cached() == 0
    capacity = 12_345
    conn = _connection(capacity)
    del conn
    assert lib.ring_memory_cached() == 2 * capacity
    again = _connection(capacity)
    assert lib.ring_memory_cached() == 0
    assert again.raw.snd.capacity == capacity


def test_the_cache_is_bounded_in_blocks_and_bytes() -> None:
    connections = [_connection(4096 + i) for i in range(lib.RING_MEMORY_CACHE_BLOCKS)]
    big = [_connection(1 << 20) for _ in range(40)]  # 80 MiB of rings
    del connections, big
    gc.collect()
    assert 0 < lib.ring_memory_cached() <= lib.RING_MEMORY_CACHE_BYTES


def test_live_connections_never_share_a_ring() -> None:
    capacity = 23_456
    first = _connection(capacity)
    del first
    a, b = _connection(capacity), _connection(capacity)
    buffers = {int(ffi.cast("uintptr_t", conn.raw.snd.buf)) for conn in (a, b)} | {
        int(ffi.cast("uintptr_t", conn.raw.rcv.buf)) for conn in (a, b)
    }
    assert len(buffers) == 4
