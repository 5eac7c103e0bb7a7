"""``labnet bench tunnel``: both downloads end whole (the bench raises otherwise), both clients
are handed on, the first byte costs the same (both first reach the contact node through the
home agent), and only the client without Mobile IPv6 makes the contact node forward its
traffic."""

from __future__ import annotations

import json

import pytest

from labnet import cli
from labnet.bench import tunnel


def test_tunnel_figures_beside_their_mipv6_baseline() -> None:
    results = tunnel.run(size=3_000_000, every=500_000)
    tunnelled, mipv6 = results["tunnel"], results["mipv6"]
    assert tunnelled["handoffs"] >= 3 and mipv6["handoffs"] >= 3
    assert tunnelled["handoff_gap_ms"]["count"] >= 3
    assert tunnelled["first_byte_ms"] == mipv6["first_byte_ms"]
    # the data m2 and m3 serve (two thirds of the body) and the ACKs to them cross it
    assert tunnelled["contact_node_forwarded_per_mb"] > 1e6 / 1500 / 3
    assert mipv6["contact_node_forwarded_per_mb"] < 10
    json.dumps(results)


def test_command_dispatches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(tunnel, "run", lambda seconds: {"tunnel": {"handoffs": 1}})
    assert cli.main(["bench", "tunnel", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"tunnel": {"handoffs": 1}}
