"""``labnet bench dserver`` with tiny parameters: every figure is there and sane (timings are
not checked: the machines are noisy), and the command dispatches to it."""

from __future__ import annotations

import json

import pytest

from labnet import cli
from labnet.bench import dserver


@pytest.fixture(scope="module")
def results() -> dict:
    return dserver.run(0.1, clients=4, gap_handoffs=10)


def test_local_handoff_and_its_baseline(results: dict) -> None:
    assert results["local_handoff_us"] > 0 and results["local_handoff_full_us"] > 0
    assert results["local_handoff_samples"] > 0 and results["local_release_us"] > 0
    # the regenerable form is short whatever the fill; the full one carries the send ring
    assert results["state_bytes_regenerable"] < 200
    assert results["state_bytes_full"] > results["send_buffered_bytes"]
    assert "tcp_repair_swap_us" in results
    if results["tcp_repair_swap_us"] is None:
        assert results["reason"]
    else:
        assert results["tcp_repair_swap_us"] == pytest.approx(
            results["tcp_repair_checkpoint_us"] + results["tcp_repair_restore_us"], abs=0.02
        )
        assert results["local_handoff_vs_tcp_repair"] == pytest.approx(
            results["local_handoff_us"] / results["tcp_repair_swap_us"], abs=0.002
        )


def test_handoffs_per_cpu_second(results: dict) -> None:
    counted = results["handoffs_counted"]
    assert counted["as_donor"] + counted["as_acceptor"] > 0
    assert counted["failed_anywhere"] == 0
    # every 'H' was answered by another member than the last, and nothing else came back
    clients = counted["echo_clients"]
    assert clients["announced"] > 0
    assert clients["failed"] == clients["same_member"] == clients["unexpected"] == 0
    assert results["handoffs_per_s"] > 0 and results["member_cpu_us_per_handoff"] > 0
    assert results["handoff_clients"] == 4


def test_handoffs_in_downloads_per_cpu_second(results: dict) -> None:
    counted = results["download_handoffs_counted"]
    assert counted["as_donor"] + counted["as_acceptor"] > 0
    assert counted["failed_anywhere"] == 0 and counted["downloads_ended"] == 0
    assert results["download_handoffs_per_s"] > 0
    assert results["download_member_cpu_us_per_handoff"] > 0


def test_distributions_per_cpu_second(results: dict) -> None:
    counted = results["distributions_counted"]
    assert counted["distributed"] > 0
    assert counted["failed_anywhere"] == 0 and counted["fetches_failed"] == 0
    assert results["distributions_per_s"] > 0
    assert results["contact_cpu_us_per_distribution"] > 0
    assert results["distributions_per_virtual_s"] > 0


def test_handoff_gap_within_the_bounds(results: dict) -> None:
    gaps = results["handoff_gap_ms"]
    assert gaps["clock"].startswith("virtual")
    for key in ("rr_in_advance", "no_rr_in_advance"):
        run = gaps[key]
        assert run["handoffs"] >= 10 and run["resets"] == 0 and not run["download_failed"]
        assert run["median_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["median_ms"] <= run["seeds_ms"]
        assert run["freeze_to_acceptor_median_ms"] <= run["our_bound_ms"]
    lss, lcs = gaps["lss_ms"], gaps["lcs_ms"]
    assert gaps["rr_in_advance"]["our_bound_ms"] == pytest.approx(lss + 2 * lcs + 5)
    assert gaps["rr_in_advance"]["seeds_ms"] == pytest.approx(4 * lcs + lss)
    assert gaps["no_rr_in_advance"]["seeds_ms"] == pytest.approx(6 * lcs + 3 * lss)
    json.dumps(results)  # one JSON object


def test_command_dispatches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    seen = []

    def run(seconds: float) -> dict:
        seen.append(seconds)
        return {"local_handoff_us": 1.0}

    monkeypatch.setattr(dserver, "run", run)
    assert cli.main(["bench", "dserver", "--json", "--seconds", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == {"local_handoff_us": 1.0}
    assert seen == [2.0]
