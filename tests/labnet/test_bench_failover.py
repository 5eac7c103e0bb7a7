"""``labnet bench failover`` with few kills: the figures are there, the takeover lands within a
second of the death and not before the membership's failure timeout could have run out."""

from __future__ import annotations

import json

import pytest

from labnet import cli
from labnet.bench import failover


def test_takeover_figures() -> None:
    results = failover.run(kills=3)
    takeover = results["takeover_ms"]
    timers = results["membership_timers_s"]
    assert takeover["kills"] == 3
    assert timers["failure_timeout"] * 1000 <= takeover["median"] <= takeover["max"] < 1000
    registered = results["takeover_registered_ms"]
    assert registered["median"] <= takeover["median"] and registered["max"] <= takeover["max"]
    assert results["member_failover_ms"] is None and "issue 15" in results["reason"]
    json.dumps(results)


def test_command_dispatches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(failover, "run", lambda seconds: {"takeover_ms": {"max": 1.0}})
    assert cli.main(["bench", "failover", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"takeover_ms": {"max": 1.0}}
