"""``labnet bench proxy`` with few fetches (root): every figure is there, each fetch was
checked (the bench raises on a wrong status or size), and nothing of its lab is left: no
namespace, and not its directory either (its captures of the large body ran to tens of MB a
run, in the state directory's tmpfs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labnet import cli
from labnet.bench import proxy
from tests.runtime.netns import require_root


@pytest.mark.netns
def test_proxy_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    results = proxy.run(fetches=3, requests=20, large=2_000_000)
    for key in ("proxy_fetch_ms", "direct_fetch_ms", "member_fetch_ms"):
        assert 0 < results[key] < 1000, (key, results)
    assert results["proxy_added_fetch_ms"] == pytest.approx(
        results["proxy_fetch_ms"] - results["direct_fetch_ms"], abs=0.02
    )
    for key in ("proxy_mbps", "direct_mbps", "requests_per_s", "direct_requests_per_s"):
        assert results[key] > 0, (key, results)
    assert results["member_cpu_ns_per_byte"] > 0
    # the member's own share, read off the captures: inside the whole fetch's time
    for key in ("member_request_ms", "member_response_ms"):
        assert 0 < results[key] < results["proxy_fetch_ms"], (key, results)
    json.dumps(results)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "bproxy" not in namespaces
    assert list(tmp_path.iterdir()) == []


def test_command_dispatches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(proxy, "run", lambda seconds: {"proxy_fetch_ms": 1.0})
    assert cli.main(["bench", "proxy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"proxy_fetch_ms": 1.0}
