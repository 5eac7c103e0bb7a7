"""``labnet experiment``: the seeds' experiments on the simulator with tiny settings (virtual
time, so a handful of samples per point gives the shape exactly), the files they write, and
the command's answers when matplotlib or a backend is missing."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from labnet import experiments
from labnet.bench import dserver as bench_dserver
from labnet.cli import main
from labnet.experiments import (
    buffer_sweep,
    rr_in_advance,
    split_download,
    testbed,
    unresponsive_members,
)
from labnet.experiments.base import thin
from labnet.experiments.fit import least_squares, line

MS = 1e-3


def _slope(lss: float | None, lcs: float | None, prepare: bool) -> float:
    """The fitted slope of the gap against the latency left as None, swept over 10..80 ms."""
    sweep = [10 * MS, 40 * MS, 80 * MS]
    gaps = [
        min(
            rr_in_advance.measure(
                lss if lss is not None else x, lcs if lcs is not None else x, prepare, 2, 1
            )
        )
        for x in sweep
    ]
    slope, _ = line(sweep, gaps)
    return slope


@pytest.mark.parametrize(
    ("prepare", "slope_in_lcs", "slope_in_lss"),
    [(True, 2, 1), (False, 4, 3)],
)
def test_rr_in_advance_gap_grows_linearly_with_our_model_slopes(
    prepare: bool, slope_in_lcs: float, slope_in_lss: float
) -> None:
    # Fig. 12 (a) and (b): our model is the seeds' formula less 2·Lcs (the donor does not wait
    # for the client's last ACK): Lss + 2·Lcs with PREPARE, 3·Lss + 4·Lcs without
    assert _slope(20 * MS, None, prepare) == pytest.approx(slope_in_lcs, rel=0.1)
    assert _slope(None, 40 * MS, prepare) == pytest.approx(slope_in_lss, rel=0.1)


@pytest.mark.parametrize("prepare", [True, False])
def test_rr_in_advance_gap_under_seeds_formula_within_10_percent_of_ours(prepare: bool) -> None:
    lss, lcs = 20 * MS, 40 * MS
    gaps = rr_in_advance.measure(lss, lcs, prepare, 3, 1)
    assert len(gaps) == 3
    for gap in gaps:
        assert gap == pytest.approx(rr_in_advance.our_formula(lss, lcs, prepare), rel=0.1)
        assert gap < rr_in_advance.seeds_formula(lss, lcs, prepare)
    if prepare:
        assert max(gaps) <= lss + 2 * lcs + 5 * MS  # issue 12's target


@pytest.mark.parametrize("prepare", [True, False])
def test_rr_in_advance_seeds_setup_follows_their_formulas(prepare: bool) -> None:
    """Their modified server (full state, the handoff once the client acknowledged the share)
    on our members: the gap is the seeds' formula, 2·Lcs over ours, plus the acceptor's first
    segment at 2 Mbit/s (5.8 ms) and the on-link hops."""
    lss, lcs = 20 * MS, 40 * MS
    gaps = rr_in_advance.measure(lss, lcs, prepare, 2, 1, rr_in_advance.SEEDS)
    assert len(gaps) == 2
    for gap in gaps:
        assert gap == pytest.approx(rr_in_advance.seeds_formula(lss, lcs, prepare), rel=0.05)
        assert gap > rr_in_advance.our_formula(lss, lcs, prepare) + 2 * lcs


def test_access_latency_fit_has_seeds_slopes_and_small_intercepts() -> None:
    outcome = experiments.run("access-latency", experiments.Settings(runs=2))
    results = outcome.results
    # virtual time: the intercepts are the lab's on-link hops, well under a millisecond
    assert 0 <= results["x_ms"] < 1 and 0 <= results["y_ms"] < 1
    assert results["local_free_fit"]["a"] == pytest.approx(2, rel=0.1)
    assert abs(results["local_free_fit"]["b"]) < 0.1
    assert results["remote_free_fit"]["a"] == pytest.approx(2, rel=0.1)
    assert results["remote_free_fit"]["b"] == pytest.approx(2, rel=0.1)
    assert {r["config"] for r in outcome.rows} == {"local", "remote"}
    assert all(r["echoes"] == 2 for r in outcome.rows)
    assert "2.13 ms" in outcome.summary and "3.61 ms" in outcome.summary


def _without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry makes every import of the name raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)


def test_experiment_without_matplotlib_writes_json_csv_and_says_how_to_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_matplotlib(monkeypatch)
    code = main(["experiment", "access-latency", "--runs", "1", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert not (tmp_path / "access-latency.png").exists()
    assert "pip install '.[plots]'" in err
    document = json.loads((tmp_path / "access-latency.json").read_text())
    assert document["experiment"] == "access-latency" and document["backend"] == "sim"
    assert document["results"]["seeds_x_ms"] == 2.13
    with (tmp_path / "access-latency.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(document["rows"]) == 32
    assert float(rows[0]["rtt_median_ms"]) == document["rows"][0]["rtt_median_ms"]
    markdown = (tmp_path / "access-latency.md").read_text()
    assert "pip install '.[plots]'" in markdown and "| X:" in markdown
    assert "Lcs1 10 ms Lss 10 ms" in err  # a line per point
    assert f"wrote {tmp_path / 'access-latency.json'}" in out


def test_rr_in_advance_json_lists_every_point_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_matplotlib(monkeypatch)
    code = main(["experiment", "rr-in-advance", "--runs", "3", "--out", str(tmp_path), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    printed = json.loads(out)
    assert printed == json.loads((tmp_path / "rr-in-advance.json").read_text())
    assert printed["files"] == ["rr-in-advance.json", "rr-in-advance.csv", "rr-in-advance.md"]
    # (a), (b) x PREPARE x the two setups; three handoffs a point: the seeds' setup's first
    # at Lss 80 ms comes before return routability is done (their rise from 60 ms)
    assert len(printed["rows"]) == 2 * 2 * 2 * len(rr_in_advance.SWEEP)
    for key, series in printed["results"].items():
        # the seeds' setup lies over its formulas by one segment's time at 2 Mbit/s and the
        # on-link hops (under 10 ms), 13% where Lcs is 10 ms
        bound = 0.1 if series["setup"] == "ours" else 0.15
        assert series["max_deviation_from_model"] <= bound, key
        assert series["fitted_slope"] == pytest.approx(series["model_slope"], rel=0.1), key
    seeds = [row for row in printed["rows"] if row["setup"] == "seeds"]
    assert all(0 <= row["median_ms"] - row["seeds_formula_ms"] < 10 for row in seeds)
    with (tmp_path / "rr-in-advance.csv").open() as file:
        assert len(list(csv.DictReader(file))) == len(printed["rows"])


def test_experiment_with_matplotlib_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert main(["experiment", "access-latency", "--runs", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "access-latency.png").read_bytes().startswith(b"\x89PNG")
    assert "![access-latency](access-latency.png)" in (tmp_path / "access-latency.md").read_text()


def test_backend_an_experiment_cannot_run_on_refused_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the proxy relays to a kernel server: netns only
    assert main(["experiment", "proxy-overhead", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot run on the sim backend yet (it runs on: netns)" in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_experiment_list_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "list"]) == 0
    listed = capsys.readouterr().out
    assert "rr-in-advance" in listed and "access-latency" in listed
    assert main(["experiment", "fig-99"]) == 2
    assert "no experiment 'fig-99'" in capsys.readouterr().err


def test_testbed_uplinks_give_the_seeds_latencies() -> None:
    setting = testbed.Testbed(lss=20 * MS, lcs1=40 * MS, lcs2=30 * MS)
    up = setting.uplinks()
    assert up["site1"] + up["site2"] == pytest.approx(setting.lss)
    assert up["site1"] + up["client"] == pytest.approx(setting.lcs1)
    assert up["site2"] + up["client"] == pytest.approx(setting.lcs2)
    assert up["home1"] == up["site1"]  # HA1 is Node 1's router
    with pytest.raises(ValueError, match="star of uplinks"):
        testbed.Testbed(lss=80 * MS, lcs1=10 * MS, lcs2=10 * MS).uplinks()
    # on the edge (Lcs2 = Lcs1 + Lss, netns access-latency's), whatever the rounding
    edge = testbed.Testbed(lss=10 * MS, lcs1=40 * MS, lcs2=40 * MS + 10 * MS).uplinks()
    assert edge["site1"] == 0 and edge["site2"] == pytest.approx(10 * MS)


def test_least_squares_recovers_a_plane_and_refuses_dependent_columns() -> None:
    rows = [(x, y, 1.0) for x in (1.0, 2.0, 5.0) for y in (0.0, 3.0)]
    values = [2 * x - 0.5 * y + 7 for x, y, _ in rows]
    assert least_squares(rows, values) == pytest.approx([2, -0.5, 7])
    with pytest.raises(ValueError, match="linearly dependent"):
        least_squares([(1.0, 2.0), (2.0, 4.0)], [1.0, 2.0])


def test_testbed_bandwidth_shapes_only_the_path_between_members() -> None:
    lab = testbed.sim_lab(testbed.Testbed(20 * MS, 40 * MS, 40 * MS, bandwidth=2e6))
    paths = lab.net._paths
    for a, b in (("node1", "node2"), ("node2", "node1")):
        assert paths[(a, b)].bandwidth_bits_per_s == 2e6
        assert paths[(a, b)].latency == pytest.approx(20 * MS)
    assert paths[("node1", "client")].bandwidth_bits_per_s is None
    unshaped = testbed.sim_lab(testbed.Testbed(20 * MS, 40 * MS, 40 * MS))
    assert unshaped.net._paths[("node1", "node2")].bandwidth_bits_per_s is None


def test_testbed_shape_sites_one_queue_per_site_for_all_it_sends_out() -> None:
    lab = testbed.sim_lab(testbed.Testbed(20 * MS, 40 * MS, 40 * MS, 2e6, shape_sites=True))
    paths = lab.net._paths
    for sender, site in (("node1", "site1"), ("ha1", "site1"), ("node2", "site2")):
        for receiver in ("client", "node2" if site == "site1" else "node1"):
            assert paths[(sender, receiver)].shared_queue == f"{site} uplink"
            assert paths[(sender, receiver)].bandwidth_bits_per_s == 2e6
    assert paths[("node1", "client")].latency == pytest.approx(40 * MS)
    assert paths[("node1", "ha1")].bandwidth_bits_per_s is None  # inside the site
    assert paths[("client", "node1")].bandwidth_bits_per_s is None  # the client is not shaped


def _sweep_gap(wait_ms: float, regenerable: bool) -> float:
    """Fig. 10's point at 2 Mbit/s, Lss = 20 ms, Lcs = 40 ms (the buffer-sweep's): ms."""
    setting = split_download.Setting(
        2e6, regenerable, wait=wait_ms * MS, lss=buffer_sweep.LSS, lcs=buffer_sweep.LCS
    )
    return split_download.run(setting, 1).gap / MS


def test_buffer_sweep_full_state_minimum_at_the_drained_buffer_regenerable_flat() -> None:
    # Fig. 10: ~88 kB take ~350 ms to drain at 2 Mbit/s; full state falls about 1 ms per ms
    # waited until then and rises 1 ms per ms after; regenerable is flat, under full's best
    full = {wait: _sweep_gap(wait, False) for wait in (0, 200, 375, 600)}
    regenerable = {wait: _sweep_gap(wait, True) for wait in (0, 200, 600)}
    assert full[0] > full[200] > full[375] < full[600]
    assert full[0] - full[200] == pytest.approx(200, rel=0.15)
    assert full[600] - full[375] == pytest.approx(225, rel=0.05)
    assert regenerable[200] == pytest.approx(regenerable[0], abs=1)
    assert regenerable[0] < full[375] - 2 * buffer_sweep.LCS / MS * 0.9
    assert regenerable[600] == pytest.approx(full[600], abs=5)  # both only idle by then


def test_handoff_phases_state_transfer_follows_inverse_bandwidth_only_with_full_state() -> None:
    # Table 1: phase 2 carries the ~90 kB of full state at the sites' rate; a regenerable
    # snapshot is a few hundred bytes whatever the buffers hold
    full = {
        mbit: split_download.run(split_download.Setting(mbit * 1e6, False), 1) for mbit in (1, 2)
    }
    regenerable = split_download.run(split_download.Setting(1e6, True), 1)
    for mbit, handoff in full.items():
        assert 80_000 < handoff.state_bytes <= split_download.SEEDS_STATE_BYTES
        assert handoff.phases[1] == pytest.approx(handoff.state_bytes * 8 / (mbit * 1e6), rel=0.1)
    assert full[1].phases[1] / full[2].phases[1] == pytest.approx(2, rel=0.05)
    assert regenerable.state_bytes < 1_000 and regenerable.phases[1] < 0.01
    for handoff in (*full.values(), regenerable):
        assert len(handoff.phases) == 7 and min(handoff.phases) >= 0
        # no NISTnet delay: the client sees the whole handoff, as the core does
        assert sum(handoff.phases) == pytest.approx(handoff.gap, abs=1e-4)


def test_report_runs_every_experiment_into_one_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CI-sized: one sample per point, every eighth point of each sweep
    assert main(["report", "--runs", "1", "--every", "8", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    report = (tmp_path / "report.md").read_text()
    assert f"wrote {tmp_path / 'report.md'}" in out
    for name, experiment in experiments.EXPERIMENTS.items():
        if "sim" not in experiment.backends:  # listed, with the reason
            assert f"## {name}: not run" in report and "it runs on: netns" in report
            continue
        assert f"## {name}: {experiment.title}" in report
        assert (tmp_path / f"{name}.json").exists() and (tmp_path / f"{name}.csv").exists()
        assert f"labnet experiment {name} --backend sim --runs 1" in report
    assert "648.2" in report and "2.13 ms" in report  # the seeds' numbers beside ours
    assert "buffer-sweep 1 Mbit/s, wait 1000 ms" in err  # a line per point
    document = json.loads((tmp_path / "buffer-sweep.json").read_text())
    assert document["parameters"]["waits_ms"] == [0, 200, 400, 600, 800, 1000]
    phases = json.loads((tmp_path / "handoff-phases.json").read_text())["results"]
    for state in ("full", "regenerable"):  # timed in process (no timing asserted)
        assert set(phases["local_phases_cpu_us"][state]) == set(bench_dserver.LOCAL_PHASES)
        assert all(us > 0 for us in phases["local_phases_cpu_us"][state].values())
    scalability = json.loads((tmp_path / "handoff-scalability.json").read_text())
    assert [r["clients"] for r in scalability["rows"]] == [1, 100]
    assert scalability["results"]["failed"] == 0
    # each client's round trips set its pace: the rate grows with the clients
    per_client = [r["handoffs_per_virtual_s"] / r["clients"] for r in scalability["rows"]]
    assert per_client[1] == pytest.approx(per_client[0], rel=0.1)
    contact = json.loads((tmp_path / "contact-scalability.json").read_text())
    assert [r["clients"] for r in contact["rows"]] == [10, 120]
    assert contact["results"]["failed"] == contact["results"]["fetches_failed"] == 0
    failover = json.loads((tmp_path / "failover.json").read_text())["results"]
    assert failover["member"]["connections_lost"] == failover["member"]["resets"] == 0
    assert failover["member_no_replication"]["connections_lost"] == 1  # nobody held it
    if (tmp_path / "access-latency.png").exists():  # matplotlib installed
        assert "![buffer-sweep](buffer-sweep.png)" in report
    else:
        assert "pip install '.[plots]'" in report


def test_report_on_a_backend_no_experiment_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sim_only = {n: e for n, e in experiments.EXPERIMENTS.items() if "netns" not in e.backends}
    monkeypatch.setattr(experiments, "EXPERIMENTS", sim_only)
    assert main(["report", "--backend", "netns", "--out", str(tmp_path)]) == 2
    assert "no experiment runs on the netns backend" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_thin_keeps_the_last_point() -> None:
    assert thin((1, 2, 3, 4, 5), 2) == (1, 3, 5)
    assert thin((1, 2, 3, 4), 2) == (1, 3, 4)
    assert thin((1, 2, 3), 1) == (1, 2, 3)


@pytest.mark.parametrize(("bogus", "prepare", "per_attempt"), [(2, True, 2.0), (1, False, 5.0)])
def test_unresponsive_members_each_attempt_costs_its_timeouts_connection_lives(
    bogus: int, prepare: bool, per_attempt: float
) -> None:
    # with PREPARE an attempt is the attempt timeout (the seeds' 2 s); without, the INIT's
    # 1.5 timeouts and the abort's one
    attempts = unresponsive_members.measure(bogus, prepare, 1)
    assert attempts.tried == bogus and attempts.alive
    assert attempts.answer == pytest.approx(bogus * per_attempt, abs=0.05)
    # the later line is read as soon as the 'H' is answered: with PREPARE the connection is
    # never frozen; without, the frozen donor keeps the line and reads it when it keeps the
    # client (FROZEN_INPUT; dropped there, it waited for the client's retransmission)
    assert attempts.later_echo == pytest.approx(
        attempts.answer - unresponsive_members.LATER, abs=0.05
    )
