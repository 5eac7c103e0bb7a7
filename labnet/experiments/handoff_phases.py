"""``handoff-phases``: the seeds' Table 1 (004 6.2; SPEC-dserver 9.3), the handoff of a 1 MB
download from Node 1 to Node 2 after 500 kB, split into its seven phases from the packets
crossing the core router (as the seeds' tcpdump did), at 100, 2, 1.5 and 1 Mbit/s between the
sites and without NISTnet delays, with the full state the seeds moved (every unacknowledged
byte, their TCPCP) and with our regenerable snapshot. The run, the phases' boundaries and how
full state is modelled: :mod:`labnet.experiments.split_download`. ``--runs``: downloads per
bandwidth and state, each on its own seed (the seeds: 100, averaged).

On the simulator a node's own work takes no virtual time, so the local phases (1, 3, 5, 7)
hold only what the shaped uplinks add (a packet is seen at the core once it is serialized);
the seeds' local phases were their 2005 CPUs and kernels. Their work is timed in process
instead (:func:`labnet.bench.dserver.local_phase_figures`) and shown beside the seeds'.

On the netns backend (:mod:`labnet.experiments.netns_handoff`) a stock curl downloads from
``mip6 run`` members whose download services are the seeds' modified server (``handoff_wait:
0``, a 90 kB send ring: ``send_buffer``), one lab for the whole table (the full and the
regenerable service on two ports, the hub's shaping changed per column), and every phase is
timed from the hub's captures: the local phases are then real work, the daemons' and the
hub's, on this machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from labnet.bench.dserver import LOCAL_PHASES, local_phase_figures
from labnet.experiments import netns_handoff, netns_testbed, split_download
from labnet.experiments.base import Experiment, Outcome, Settings
from labnet.experiments.fit import line
from labnet.experiments.split_download import PHASES, Handoff, Setting
from labnet.experiments.testbed import Testbed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "handoff-phases"
MBIT = 1e6
BANDWIDTHS = (100 * MBIT, 2 * MBIT, 1.5 * MBIT, 1 * MBIT)  # Table 1's columns
# Table 1 (004 6.2), ms: each phase at 100, 2, 1.5 and 1 Mbit/s
SEEDS_TABLE_1 = {
    "socket extraction": (0.8, 5.8, 6.9, 11.8),
    "state transfer": (6.5, 319.1, 434.1, 648.2),
    "socket re-creation": (2.2, 2.1, 2.1, 2.2),
    "RR procedure": (2.5, 3.7, 4.9, 8.9),
    "BU construction": (2.7, 2.7, 2.7, 2.7),
    "BM procedure": (2.6, 2.6, 2.6, 2.6),
    "socket activation": (1.1, 1.1, 1.1, 1.1),
}
SEEDS_TOTAL = (18.4, 337.1, 454.4, 677.5)
STATES = {False: "full", True: "regenerable"}
LOCAL_TIMING_S = 0.25  # wall seconds the local phases are timed for, per state


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _mbit(bandwidth: float) -> float:
    return round(bandwidth / MBIT, 3)


def _key(phase: str) -> str:
    return phase.replace(" ", "_").replace("-", "_").lower() + "_ms"


def _sim_handoffs(settings: Settings, runs: int) -> Iterator[tuple[float, bool, list[Handoff]]]:
    """Per column and state, ``runs`` handoffs on the simulator, each on its own seed."""
    for bandwidth in BANDWIDTHS:
        for regenerable in (False, True):
            yield (
                bandwidth,
                regenerable,
                [
                    split_download.run(Setting(bandwidth, regenerable), settings.seed + i)
                    for i in range(runs)
                ],
            )


NETNS_PORTS = {False: 80, True: 81}  # the full state's download service, the regenerable's


def _netns_handoffs(settings: Settings, runs: int) -> Iterator[tuple[float, bool, list[Handoff]]]:
    """Per column and state, ``runs`` handoffs on the netns backend, all in one lab."""
    splits = [
        netns_handoff.Split(
            port, split_download.SIZE, split_download.SHARE, regenerable, seed=settings.seed
        )
        for regenerable, port in NETNS_PORTS.items()
    ]
    # no NISTnet delays: none emulated (the hub's own forwarding is real, unlike the
    # simulator's 0.1 ms stand-in for the seeds' Ethernet)
    testbed = Testbed(
        0.0,
        0.0,
        0.0,
        member_options={
            "distribute": False,
            "prepare": False,
            "send_buffer": split_download.SEEDS_STATE_BYTES,
        },
    )
    name = netns_testbed.lab_name(settings.lab_prefix, "hp")
    with netns_handoff.download_lab(testbed, name, netns_handoff.split_apps(splits)) as lab:
        for bandwidth in BANDWIDTHS:
            lab.shape(Testbed(0.0, 0.0, 0.0, bandwidth=bandwidth))
            for regenerable, port in NETNS_PORTS.items():
                windows = [lab.download(port) for _ in range(runs)]
                yield bandwidth, regenerable, [lab.handoff(window) for window in windows]


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    runs = EXPERIMENT.runs(settings)
    rows: list[dict[str, Any]] = []
    measured = (_netns_handoffs if settings.backend == "netns" else _sim_handoffs)(settings, runs)
    for bandwidth, regenerable, handoffs in measured:
        column = BANDWIDTHS.index(bandwidth)
        row: dict[str, Any] = {
            "bandwidth_mbit": _mbit(bandwidth),
            "state": STATES[regenerable],
            "runs": runs,
            "state_bytes": round(statistics.mean(h.state_bytes for h in handoffs)),
        }
        for index, phase in enumerate(PHASES):
            row[_key(phase)] = _ms(statistics.mean(h.phases[index] for h in handoffs))
        row["total_ms"] = _ms(statistics.mean(sum(h.phases) for h in handoffs))
        row["client_gap_ms"] = _ms(statistics.mean(h.gap for h in handoffs))
        row["seeds_state_transfer_ms"] = SEEDS_TABLE_1["state transfer"][column]
        row["seeds_total_ms"] = SEEDS_TOTAL[column]
        rows.append(row)
        settings.progress(
            f"{NAME} {_mbit(bandwidth):g} Mbit/s, {STATES[regenerable]} state: phase 2 "
            f"{row['state_transfer_ms']:g} ms of {row['total_ms']:g} ms "
            f"({row['state_bytes']} bytes moved; seeds {row['seeds_state_transfer_ms']:g} "
            f"of {row['seeds_total_ms']:g} ms); {runs} downloads"
        )
    results = _results(rows)
    results["local_phases_cpu_us"] = {
        state: local_phase_figures(
            LOCAL_TIMING_S, split_download.SEEDS_STATE_BYTES, full=not regenerable
        )
        for regenerable, state in STATES.items()
    }
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "bandwidths_mbit": [_mbit(b) for b in BANDWIDTHS],
            "download_bytes": split_download.SIZE,
            "handed_off_after_bytes": split_download.SHARE,
            "send_buffer_bytes": split_download.SEEDS_STATE_BYTES,
            "lss_ms": _ms(split_download.NO_NISTNET_DELAY) if settings.backend == "sim" else 0,
            "lcs_ms": _ms(split_download.NO_NISTNET_DELAY) if settings.backend == "sim" else 0,
            "prepare": False,
            "downloads_per_point": runs,
            "seed": settings.seed,
            "shaping": _SHAPING[settings.backend],
            "timed": "packets crossing the core router (split_download.phases)"
            + (": the hub's captures" if settings.backend == "netns" else ""),
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=results,
        summary=_summary(rows, results, runs, settings.backend),
        plot=lambda figure: _plot(figure, rows),
        wall_seconds=time.perf_counter() - started,
        notes=[
            "virtual time: runs differ only by their seed; --runs adds samples, not confidence"
            if settings.backend == "sim"
            else "real kernels and clocks: the figures move with the machine's load",
            "full state is the connection exported with its unacknowledged bytes (tcp_migrate's "
            "full snapshot, the download service's regenerable: false), the seeds' TCPCP",
        ],
    )


_SHAPING = {
    "sim": "everything each site (a member and its home agent) sends out of it, one queue per "
    "site (testbed.Testbed.shape_sites)",
    "netns": "everything each member and each home agent sends into the hub, one queue each "
    "(netns_testbed.profiles)",
}


def _series(rows: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["state"] == state]


def _results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Phase 2 against 1/bandwidth: the fitted line (its slope in ms per 1/(Mbit/s) is the
    state moved, in Mbit) for ours, each state, and the seeds'; and phase 2's share of the
    total at 1 Mbit/s (the seeds: 95.7 %)."""
    inverse = [1 / _mbit(b) for b in BANDWIDTHS]
    results: dict[str, Any] = {}
    for state in STATES.values():
        series = _series(rows, state)
        phase2 = [r["state_transfer_ms"] for r in series]
        slope, intercept = line(inverse, phase2)
        slowest = series[-1]
        results[state] = {
            "state_transfer_ms": dict(
                zip([str(r["bandwidth_mbit"]) for r in series], phase2, strict=True)
            ),
            "state_bytes": series[0]["state_bytes"],
            "fit_state_transfer_vs_inverse_bandwidth": {
                "slope_ms_mbit_per_s": round(slope, 3),
                "intercept_ms": round(intercept, 3),
                "implied_kilobytes": round(slope / 8, 1),  # ms·Mbit/s / 8 = kB
            },
            "state_transfer_share_at_1_mbit": round(
                slowest["state_transfer_ms"] / slowest["total_ms"], 4
            ),
        }
    seeds_slope, seeds_intercept = line(inverse, list(SEEDS_TABLE_1["state transfer"]))
    results["seeds"] = {
        "state_transfer_ms": dict(
            zip([str(_mbit(b)) for b in BANDWIDTHS], SEEDS_TABLE_1["state transfer"], strict=True)
        ),
        "state_bytes": split_download.SEEDS_STATE_BYTES,
        "fit_state_transfer_vs_inverse_bandwidth": {
            "slope_ms_mbit_per_s": round(seeds_slope, 3),
            "intercept_ms": round(seeds_intercept, 3),
            "implied_kilobytes": round(seeds_slope / 8, 1),
        },
        "state_transfer_share_at_1_mbit": round(
            SEEDS_TABLE_1["state transfer"][-1] / SEEDS_TOTAL[-1], 4
        ),
    }
    return results


def _summary(rows: list[dict[str, Any]], results: dict[str, Any], runs: int, backend: str) -> str:
    full, regenerable = _series(rows, "full"), _series(rows, "regenerable")
    header = " | ".join(f"{_mbit(b):g} Mbit/s" for b in BANDWIDTHS)
    lines = [
        "Table 1 (004 6.2), each phase in ms as seeds / ours with full state / ours with "
        f"regenerable state; ours the mean of {runs} downloads per cell, timed at the core "
        "router from the packets, no NISTnet delays"
        + (" (every path 0.1 ms)" if backend == "sim" else " (none emulated)")
        + ", every site's uplink shaped to the column's bandwidth.",
        "",
        f"| No. | phase | {header} |",
        "|---:|---|" + "---:|" * len(BANDWIDTHS),
    ]
    for number, phase in enumerate(PHASES, 1):
        key = _key(phase)
        cells = [
            f"{seeds:g} / {f[key]:.3g} / {r[key]:.3g}"
            for seeds, f, r in zip(SEEDS_TABLE_1[phase], full, regenerable, strict=True)
        ]
        lines.append(f"| {number} | {phase} | " + " | ".join(cells) + " |")
    totals = [
        f"**{seeds:g} / {f['total_ms']:.3g} / {r['total_ms']:.3g}**"
        for seeds, f, r in zip(SEEDS_TOTAL, full, regenerable, strict=True)
    ]
    lines.append("| | **total** | " + " | ".join(totals) + " |")
    gaps = [
        f"{f['client_gap_ms']:.3g} / {r['client_gap_ms']:.3g}"
        for f, r in zip(full, regenerable, strict=True)
    ]
    lines.append("| | client-perceived (full / regenerable) | " + " | ".join(gaps) + " |")
    ours, seeds = results["full"], results["seeds"]
    fit, seeds_fit = (
        ours["fit_state_transfer_vs_inverse_bandwidth"],
        seeds["fit_state_transfer_vs_inverse_bandwidth"],
    )
    regenerable_max = max(r["state_transfer_ms"] for r in regenerable)
    lines += [
        "",
        "Phase 2 against 1/bandwidth: with full state ours lies on "
        f"{fit['slope_ms_mbit_per_s']:.0f} ms·Mbit/s × 1/bandwidth + "
        f"{fit['intercept_ms']:.2g} ms, the time {fit['implied_kilobytes']:g} kB take at the "
        f"bandwidth (the snapshot was {ours['state_bytes']:,} bytes on the member channel); "
        f"the seeds' column fits {seeds_fit['slope_ms_mbit_per_s']:.0f} ms·Mbit/s "
        f'({seeds_fit["implied_kilobytes"]:g} kB; they reported "about 90 kB"). At 1 Mbit/s '
        f"phase 2 is {ours['state_transfer_share_at_1_mbit']:.1%} of our total with full state "
        f"(the seeds: {seeds['state_transfer_share_at_1_mbit']:.1%}). With regenerable state "
        f"the snapshot is {results['regenerable']['state_bytes']:,} bytes and phase 2 at most "
        f"{regenerable_max:.2g} ms: it no longer depends on what the buffers hold.",
        "",
        "How full state is modelled: each member's send buffer is sized to the seeds' 90 kB "
        "and the donor exports the connection with every unacknowledged byte (tcp_migrate's "
        "full snapshot; the download service with regenerable: false), so the INIT carries "
        "what the seeds' TCPCP carried. Regenerable state is the same connection exported "
        "without them; Node 2 writes them again from the acknowledged offset.",
    ]
    if backend == "sim":
        lines += [
            "",
            "On the simulator a node's own work takes no virtual time: phases 1, 3 and 5 are "
            "one small packet's serialization at the shaped rate (a packet is seen at the core "
            "once its site's uplink has sent it, as the seeds' router saw theirs), phase 7 the "
            "acceptor's first full-sized data segment's, phase 6 the Binding Update's "
            "round trip past the core (0.1 ms). Phase 2 and the client-perceived handoff are "
            "what the model measures: the donor's INIT waits behind the data it had queued "
            "for the client in its site's uplink (one queue per site, as the seeds' cbq), so "
            "the client keeps receiving while the state is on its way.",
        ]
    else:
        lines += [
            "",
            "On the netns backend every boundary is a packet in the hub's captures, as the "
            "seeds' tcpdump on their router: a stock curl downloads, the members are mip6 "
            "daemons (userspace TCP and engine, Python with a C fast path) behind TUN devices, "
            "and each one's packets to the hub are shaped on its own queue. The local phases "
            "(1, 3, 5, 7) are real work here: the daemons', the kernels' and the hub's, on "
            "this machine, under whatever else runs on it.",
        ]
    cpu = results["local_phases_cpu_us"]
    lines += [
        "",
        "The local phases' own work, measured in process instead (labnet bench dserver's "
        "local handoff, a connection with the seeds' 90 kB unacknowledged, split at Table 1's "
        "phases; median microseconds on this machine, beside the seeds' milliseconds on "
        "their 450-700 MHz machines):",
        "",
        "| No. | phase | seeds (ms, 100 Mbit/s) | ours, full state (us) | ours, regenerable (us) |",
        "|---:|---|---:|---:|---:|",
    ]
    for phase in LOCAL_PHASES:
        number = PHASES.index(phase) + 1
        lines.append(
            f"| {number} | {phase} | {SEEDS_TABLE_1[phase][0]:g} | {cpu['full'][phase]:g} | "
            f"{cpu['regenerable'][phase]:g} |"
        )
    return "\n".join(lines)


def _plot(figure: Figure, rows: list[dict[str, Any]]) -> None:
    bars, lines = figure.subplots(1, 2, width_ratios=(3, 2))
    labels = [f"{_mbit(b):g}" for b in BANDWIDTHS]
    width = 0.27
    colours = (
        "tab:gray",
        "tab:red",
        "tab:olive",
        "tab:purple",
        "tab:cyan",
        "tab:blue",
        "tab:green",
    )
    series = (
        ("seeds", [[SEEDS_TABLE_1[p][i] for p in PHASES] for i in range(len(BANDWIDTHS))]),
        ("full", [[r[_key(p)] for p in PHASES] for r in _series(rows, "full")]),
        ("regen.", [[r[_key(p)] for p in PHASES] for r in _series(rows, "regenerable")]),
    )
    for offset, (label, columns) in enumerate(series):
        for column, values in enumerate(columns):
            x = column + (offset - 1) * width
            bottom = 0.0
            for phase, value, colour in zip(PHASES, values, colours, strict=True):
                bars.bar(
                    x,
                    value,
                    width * 0.9,
                    bottom=bottom,
                    color=colour,
                    hatch="//" if label == "seeds" else None,  # theirs apart from ours
                    label=phase if offset == 1 and column == 0 else None,
                )
                bottom += value
            bars.annotate(
                f"{label}\n{bottom:.0f}", (x, bottom), ha="center", va="bottom", fontsize="x-small"
            )
    bars.set_xticks(range(len(BANDWIDTHS)), labels)
    bars.set_xlabel("bandwidth between the sites (Mbit/s)")
    bars.set_ylabel("handoff time (ms), by phase")
    bars.set_title("Table 1: seeds / ours full state / ours regenerable")
    bars.legend(fontsize="x-small", loc="upper left")
    bars.margins(y=0.15)
    inverse = [1 / _mbit(b) for b in BANDWIDTHS]
    lines.plot(inverse, SEEDS_TABLE_1["state transfer"], "s--", color="tab:gray", label="seeds")
    for state, colour in (("full", "tab:red"), ("regenerable", "tab:blue")):
        lines.plot(
            inverse,
            [r["state_transfer_ms"] for r in _series(rows, state)],
            "o-",
            color=colour,
            label=f"ours, {state} state",
        )
    lines.set_xlabel("1 / bandwidth (s per Mbit)")
    lines.set_ylabel("phase 2, state transfer (ms)")
    lines.set_title("Phase 2 against 1/bandwidth")
    lines.grid(True, alpha=0.3)
    lines.legend(fontsize="small")


EXPERIMENT = Experiment(
    name=NAME,
    title="Table 1 (004 6.2): the handoff's seven phases at 100/2/1.5/1 Mbit/s, full vs "
    "regenerable state",
    run=run,
    default_runs=5,
    runs_mean="downloads per bandwidth and state",
    default_wall_time="about 5 s",
    report_runs=3,
    backends=("sim", "netns"),
    netns_runs=1,
    netns_wall_time="about 1 min",
    sweeps=False,  # Table 1's four columns, always
)
