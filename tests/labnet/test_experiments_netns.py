"""``labnet experiment NAME --backend netns`` (root): each experiment on real namespaces,
``mip6 run`` daemons and kernel clients, with tiny settings (a few points, a few samples),
checked for the seeds' shape, not for timing (the machine's load moves every figure)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet import experiments
from labnet.cli import main
from labnet.experiments import (
    buffer_sweep,
    contact_scalability,
    handoff_scalability,
    rr_in_advance,
    unresponsive_members,
)
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

# the labs' names start with it (their namespaces: NAME-NODE); a test run beside others may
# choose its own
PREFIX = os.environ.get("LABNET_TEST_LAB_PREFIX", "xpt")


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """The labs' state directory, and afterwards no namespace of this run's labs left."""
    require_root()
    previous = os.environ.get("LABNET_STATE_DIR")
    os.environ["LABNET_STATE_DIR"] = str(tmp_path)
    try:
        yield tmp_path
    finally:
        if previous is None:
            os.environ.pop("LABNET_STATE_DIR", None)
        else:
            os.environ["LABNET_STATE_DIR"] = previous
    ours = f"{PREFIX}{os.getpid() % 100000}"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in namespaces.splitlines() if line.startswith(ours)]
    assert not list(tmp_path.glob("*.json"))  # every lab's state file removed by its down


def _settings(runs: int, every: int = 1) -> experiments.Settings:
    return experiments.Settings(backend="netns", runs=runs, every=every, lab_prefix=PREFIX)


def test_access_latency_netns_linear_with_real_intercepts(state: Path) -> None:
    outcome = experiments.run("access-latency", _settings(runs=2, every=3))
    assert outcome.backend == "netns"
    assert len(outcome.rows) == 2 * 4 and all(r["echoes"] == 2 for r in outcome.rows)
    results = outcome.results
    assert results["local_free_fit"]["a"] == pytest.approx(2, rel=0.1)
    assert abs(results["local_free_fit"]["b"]) < 0.1
    assert results["remote_free_fit"]["a"] == pytest.approx(2, rel=0.1)
    assert results["remote_free_fit"]["b"] == pytest.approx(2, rel=0.1)
    # real work on the way: the daemons, the hub and the TUN devices take time, the remote
    # configuration's tunnel twice more than the local's; a few ms each at most here
    assert 0 < results["x_ms"] < 20 and 0 < results["y_ms"] < 20
    assert "this machine" in outcome.summary


def test_proxy_overhead_netns_from_the_command_proxy_costs_more_than_direct(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    argv = ["experiment", "proxy-overhead", "--backend", "netns", "--runs", "3"]
    assert main([*argv, "--out", str(out), "--lab-prefix", PREFIX]) == 0
    printed, err = capsys.readouterr()
    assert "proxy-overhead fetch 3 of 3" in err  # a line per fetch
    document = json.loads((out / "proxy-overhead.json").read_text())
    assert document["backend"] == "netns" and [r["fetch"] for r in document["rows"]] == [1, 2, 3]
    results = document["results"]
    # every fetch checked (status 200, 10 kB) by the bench's curl; the relay through the
    # member's kernel server is a second connection: never free
    assert 0 < results["direct_fetch_ms"] < results["proxy_fetch_ms"]
    assert results["proxy_added_ms"] == pytest.approx(
        results["proxy_fetch_ms"] - results["direct_fetch_ms"], abs=0.002
    )
    assert "3.18 ms" in printed
    markdown = (out / "proxy-overhead.md").read_text()
    assert "labnet experiment proxy-overhead --backend netns --runs 3" in markdown


def test_handoff_phases_netns_phase_2_follows_the_state_and_the_bandwidth(state: Path) -> None:
    # one download per cell of Table 1: a curl through mip6 daemons, the phases from the
    # hub's captures
    outcome = experiments.run("handoff-phases", _settings(runs=1))
    full = [r for r in outcome.rows if r["state"] == "full"]
    regenerable = [r for r in outcome.rows if r["state"] == "regenerable"]
    assert [r["bandwidth_mbit"] for r in full] == [100, 2, 1.5, 1]
    fit = outcome.results["full"]["fit_state_transfer_vs_inverse_bandwidth"]
    # full state: the 90 kB send ring's worth crosses the shaped link (the seeds: ~81 kB)
    assert 40 < fit["implied_kilobytes"] < 200
    assert outcome.results["full"]["state_transfer_share_at_1_mbit"] > 0.8
    for row in regenerable:
        assert row["state_bytes"] < 1000 and row["state_transfer_ms"] < 20
    assert regenerable[-1]["total_ms"] < full[-1]["total_ms"] / 5


def test_buffer_sweep_netns_full_state_waits_for_the_drain_regenerable_does_not(
    state: Path,
) -> None:
    # Fig. 10 at one bandwidth and two waits (the experiment sweeps three and eleven): the
    # full snapshot at wait 0 carries the 90 kB ring across 2 Mbit/s, drained by 400 ms
    measured = buffer_sweep.measure_netns((2e6,), (0.0, 0.4), 1, _settings(runs=1))
    ((full_now,),) = [measured[2e6, 0.0, False]]
    ((full_drained,),) = [measured[2e6, 0.4, False]]
    ((regenerable_now,),) = [measured[2e6, 0.0, True]]
    assert full_now.state_bytes > 50_000 and full_drained.state_bytes < buffer_sweep.DRAINED_BYTES
    assert regenerable_now.state_bytes < 1000
    assert full_drained.gap < full_now.gap
    assert regenerable_now.gap < full_now.gap / 2


@pytest.mark.parametrize("prepare", [True, False])
def test_rr_in_advance_netns_gap_follows_our_model(state: Path, prepare: bool) -> None:
    # one point of Fig. 12 (both of its series pass through it): Lss 20 ms, Lcs 40 ms; the
    # gaps at a kernel client, from the hub's captures; real work adds a few ms to the model
    lss, lcs = 0.020, 0.040
    (gaps,) = rr_in_advance.measure_netns([(lss, lcs)], prepare, 2, _settings(runs=2))
    model = rr_in_advance.our_formula(lss, lcs, prepare)
    assert len(gaps) == 2
    assert model - 0.005 <= statistics.median(gaps) <= model * 1.25 + 0.015
    assert statistics.median(gaps) < rr_in_advance.seeds_formula(lss, lcs, prepare)


def test_failover_netns_sigkilled_members_clients_served_and_resumed(state: Path) -> None:
    outcome = experiments.run("failover", _settings(runs=1))
    results = outcome.results
    assert results["contact"]["kills"] == results["member"]["kills"] == 1
    # the membership's failure timeout (300 ms) and registration, well inside the probe's 5 s
    assert 0.3 * 1000 < results["contact"]["ms"]["median"] < 5000
    assert results["member"]["connections_lost"] == 0 and results["member"]["resets"] == 0
    assert results["member"]["ms"]["median"] < 4000  # the stall window
    assert "not run on this backend" in outcome.summary


@pytest.mark.parametrize(("bogus", "prepare", "per_attempt"), [(2, True, 2.0), (1, False, 5.0)])
def test_unresponsive_members_netns_each_attempt_costs_its_timeouts(
    state: Path, bogus: int, prepare: bool, per_attempt: float
) -> None:
    # the seeds' 2 s per attempt with PREPARE; without, the INIT's 1.5 timeouts and the
    # abort's one; the bogus members counted from the hub's capture of Node 1's SYNs
    attempts = unresponsive_members.measure_netns(bogus, prepare, _settings(runs=1))
    assert attempts.tried == bogus and attempts.alive
    assert attempts.answer == pytest.approx(bogus * per_attempt, abs=0.3)
    if prepare:  # never frozen: the later line is echoed as soon as it is sent
        assert attempts.later_echo == pytest.approx(
            attempts.answer - unresponsive_members.LATER, abs=0.3
        )


def test_contact_scalability_netns_a_burst_of_new_clients_all_served(state: Path) -> None:
    row = contact_scalability.measure_netns(20, _settings(runs=1))
    # every client new to m1 (its first connection through the home agent), every fetch
    # whole, within the burst and a few of the testbed's round trips
    assert row["accepted"] == 20 and row["fetches_failed"] == row["failed"] == 0
    assert row["served_s"] < contact_scalability.NETNS_BURST + 10
    # m1's CPU time, counted in clock ticks, over the burst: never more than the wall clock
    assert row["cpu_us_per_distribution"] is not None and 0 <= row["contact_cpu_share"] <= 1


def test_handoff_scalability_netns_kernel_clients_each_h_another_member(state: Path) -> None:
    # two kernel clients, five 'H' each: every answer from another member (the client checks),
    # none failed, m2 took part as donor and acceptor
    row = handoff_scalability.measure_netns(2, 5, _settings(runs=1))
    assert row["failed"] == 0 and row["as_donor"] + row["as_acceptor"] > 0
    assert row["handoffs_per_s"] > 0 and row["wall_s"] < 60
