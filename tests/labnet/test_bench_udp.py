"""``labnet bench udp`` with one run of each: the figures are there, every request answered,
none by two members, and moving clients costs what the retransmissions say (each request a
donor dropped waited for its client's retransmission)."""

from __future__ import annotations

import json

import pytest

from labnet import cli
from labnet.bench import udp


def test_udp_figures() -> None:
    results = udp.run(runs=1)
    for suffix in ("", "_no_handoff"):
        assert results[f"answered{suffix}"] == results[f"requests{suffix}"] == 10_000
        assert results[f"failed{suffix}"] == 0 and results[f"two_members{suffix}"] == 0
        dropped = results[f"dropped_in_handoff{suffix}"] + results[f"dropped_not_owned{suffix}"]
        assert results[f"retried{suffix}"] >= dropped
    assert results["handoffs"] > 10 * results["handoffs_no_handoff"] > 0
    assert results["request_ms_mean_no_handoff"] < results["request_ms_mean"]
    json.dumps(results)


def test_command_dispatches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(udp, "run", lambda seconds: {"request_ms_mean": 1.0})
    assert cli.main(["bench", "udp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"request_ms_mean": 1.0}
