"""Snapshot sizes and export/import times, outside the test suite::

    python -m tests.tcp_migrate.bench_snapshot [--runs N]

Sizes: an idle established connection (every option negotiated, keepalive on, empty rings),
and a bulk sender caught mid-transfer with a full 1 MiB send ring, in the full and the short
(``include_unacked=False``) form. Times: the median over N runs of one ``tcp_export`` and one
``tcp_import`` call through cffi (the C work plus about a third of a microsecond of call
overhead), and of the Python methods ``Connection.export`` / ``Connection.import_`` (which
also allocate). Build without sanitizers first (``python tcp_migrate/_build.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from tcp_migrate._core import ffi, lib
from tcp_migrate.core import Config, Connection

from .pair import Pair, Transfer, established_with_peer


def median_ns(fn, runs: int) -> float:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()

    idle, _, now = established_with_peer(Config(keepalive_idle_ms=7_200_000))
    idle.freeze(now)

    rng = random.Random(1)
    transfer = Transfer(rng.randbytes(8 << 20))
    pair = Pair(seed=1, loss=0.01, capacity_a=1 << 20, capacity_b=1 << 20)
    pair.handshake()
    pair.start(transfer)
    pair.run(lambda: len(transfer.received["b"]) > 4 << 20, max_ms=10_000_000)
    busy = pair.a
    busy.freeze(pair.now)

    results = {
        "sizeof_struct_tcp_conn": ffi.sizeof("struct tcp_conn"),
        "idle_full_bytes": len(idle.export(True)),
        "idle_short_bytes": len(idle.export(False)),
        "busy_send_buffered_bytes": busy.send_buffered,
        "busy_full_bytes": len(busy.export(True)),
        "busy_short_bytes": len(busy.export(False)),
    }

    size = lib.tcp_export_size(idle.raw, 1)
    out = ffi.new("uint8_t[]", size)
    blob = idle.export(True)
    target = Connection(
        local_address=bytes(16), local_port=0, remote_address=bytes(16), remote_port=0
    )
    results["c_export_idle_median_us"] = (
        median_ns(lambda: lib.tcp_export(idle.raw, 1, out, size), args.runs) / 1000
    )
    results["c_import_idle_median_us"] = (
        median_ns(lambda: lib.tcp_import(blob, len(blob), target.raw), args.runs) / 1000
    )
    results["py_export_idle_median_us"] = median_ns(idle.export, args.runs) / 1000
    results["py_import_idle_median_us"] = (
        median_ns(lambda: Connection.import_(blob), max(args.runs // 10, 1)) / 1000
    )
    short = busy.export(False)
    results["c_import_busy_short_median_us"] = (
        median_ns(lambda: lib.tcp_import(short, len(short), target.raw), args.runs) / 1000
    )
    busy_size = lib.tcp_export_size(busy.raw, 0)
    busy_out = ffi.new("uint8_t[]", busy_size)
    results["c_export_busy_short_median_us"] = (
        median_ns(lambda: lib.tcp_export(busy.raw, 0, busy_out, busy_size), args.runs) / 1000
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
