"""A short run of the mutation fuzzer (the long one: ``python -m tests.wire.fuzz``)."""

from __future__ import annotations

from .fuzz import run


def test_mutated_real_packets_raise_only_wire_errors() -> None:
    result = run(seed=20261123, count=20_000)
    # the repair step must let a real share of inputs through to deep parsing
    assert result["parsed"] > 1_000 and result["rejected"] > 1_000
