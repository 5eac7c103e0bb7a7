"""Benchmarks that print JSON. Each compares our figure with its baseline in the same run,
because the machines are noisy: never compare a figure with one from another run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def rate(operation: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Operations per second: the median of ``rounds`` timed rounds of about ``seconds`` each
    (total), after a warm-up. Each round runs whole batches so timer reads stay negligible."""
    batch = 1
    while True:  # size a batch to ~10 ms so the clock is read rarely
        start = time.perf_counter()
        for _ in range(batch):
            operation()
        if time.perf_counter() - start > 0.01:
            break
        batch *= 2
    per_round = seconds / rounds
    results = []
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < per_round:
            for _ in range(batch):
                operation()
            done += batch
        results.append(done / elapsed)
    return statistics.median(results)
