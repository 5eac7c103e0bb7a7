"""``labnet bench failover`` with few kills: the figures are there, the takeover lands within a
second of the death and not before the membership's failure timeout could have run out, and a
member's death stalls its client's download briefly (the download itself must survive: the
bench raises otherwise)."""

from __future__ import annotations

import json

import pytest

from labnet import cli
from labnet.bench import failover


def test_takeover_figures() -> None:
    results = failover.run(kills=3, cost_runs=1)
    takeover = results["takeover_ms"]
    timers = results["membership_timers_s"]
    assert takeover["kills"] == 3
    assert timers["failure_timeout"] * 1000 <= takeover["median"] <= takeover["max"] < 1000
    registered = results["takeover_registered_ms"]
    assert registered["median"] <= takeover["median"] and registered["max"] <= takeover["max"]
    stall = results["member_failover_ms"]
    assert timers["failure_timeout"] * 1000 < stall["median"] <= stall["max"] < 1500
    assert results["replications_timed"] > 0 and results["replication_added_latency_ms"] > 0
    assert isinstance(results["replication_overhead_pct"], float)
    json.dumps(results)


def test_command_dispatches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(failover, "run", lambda seconds: {"takeover_ms": {"max": 1.0}})
    assert cli.main(["bench", "failover", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"takeover_ms": {"max": 1.0}}
