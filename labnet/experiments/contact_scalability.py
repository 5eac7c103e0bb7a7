"""``contact-scalability``: the seeds' contact-node scalability (003 6.3.2; SPEC-dserver 9.7):
clients fetching 10 kB, each fetch a new client of the contact node (the seeds restarted the
client's Mobile IPv6 daemon to clear its binding cache), which accepts it, route-optimizes
with it, relays the acceptor's home test and hands it to one of two other members by the
random policy. The workload is ``labnet bench dserver``'s
(:func:`labnet.bench.dserver.distribution_figures`: a contact node m1, members m2 and m3
answering 10 kB, each client back 0.1 s after its fetch ends with a new address; Lss = 10 ms,
Lcs = 20 ms), swept over the number of clients. There is no proxy yet (issue 16): m2 and m3
answer with the download service, where the seeds had Apache behind their proxy.

Per point: the distributions per second on the simulator's virtual clock (the load the
clients offer: the seeds measured 9.4/s, their clients held to a fetch every 6.4 s by a bug),
and per second of the contact node's CPU time (the seeds extrapolated 4,200/s from 549
distributions in 0.13 s of CPU). On virtual time the contact node computes in no time, so the
offered load is always served; the CPU figure says where a real one would saturate.
``--runs``: seconds of wall clock measured per point.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from labnet.bench import dserver
from labnet.experiments.base import Experiment, Outcome, Settings, thin

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "contact-scalability"
CLIENTS = (10, 30, 60, 120)  # the seeds ran 60
FETCH_BYTES = 10_000  # 003 6.3.2: a static "10kb" document
THINK = 0.1  # seconds between a client's fetch ending and its next arrival
SEEDS_SUSTAINED_PER_S = 9.4  # 003 6.3.2, 60 clients, one fetch each every 6.4 s
SEEDS_BURST = 56  # 003 6.3.2: "56 handoffs executed within the same second" at the start
SEEDS_EXTRAPOLATED_PER_S = 4_200  # 003 6.3.2: (60 / 0.13) * 549 / 60
SEEDS_CPU_US = 0.13 / 549 * 1e6  # 0.13 s of CPU for 549 distributions: ~237 us each


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    seconds = settings.runs or EXPERIMENT.default_runs
    rows: list[dict[str, Any]] = []
    for clients in thin(CLIENTS, settings.every):
        figures = dserver.distribution_figures(
            float(seconds), clients=clients, size=FETCH_BYTES, think=THINK
        )
        counted = figures["distributions_counted"]
        rows.append(
            {
                "clients": clients,
                "distributions_per_virtual_s": figures["distributions_per_virtual_s"],
                "distributions_per_cpu_s": figures["distributions_per_s"],
                "cpu_us_per_distribution": figures["contact_cpu_us_per_distribution"],
                "distributed": counted["distributed"],
                "failed": counted["failed_anywhere"],
                "fetches_whole": counted["fetches_whole"],
                "fetches_failed": counted["fetches_failed"],
                "virtual_s": figures["distribution_virtual_s"],
            }
        )
        row = rows[-1]
        settings.progress(
            f"{NAME} {clients} clients: {row['distributions_per_virtual_s']:g} distributions "
            f"per virtual second, {row['distributions_per_cpu_s']} per second of the contact "
            f"node's CPU ({row['cpu_us_per_distribution']} us each); {row['failed']} failed"
        )
    results = _results(rows)
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "clients": [r["clients"] for r in rows],
            "wall_seconds_per_point": seconds,
            "fetch_bytes": FETCH_BYTES,
            "think_s": THINK,
            "lss_ms": dserver.LSS * 1000,
            "lcs_ms": dserver.LCS * 1000,
            "members": "m1 the contact node (distributes only), m2 and m3 answering",
            "counted": "new clients m1 accepted and handed to m2 or m3 (DONE received)",
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=results,
        summary=_summary(rows, results),
        plot=lambda figure: _plot(figure, rows, results),
        wall_seconds=time.perf_counter() - started,
        notes=[
            "the virtual rate is exact for the latencies and the think time; the CPU rate is "
            "this machine's and moves with its load",
            "no burst figure: the clients start 10 ms apart, not together as the seeds' 60",
            "the seeds' figures are their 2008 hardware's and Grid'5000's LAN: not a same-run "
            "baseline",
        ],
    )


def _results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    per_client = [r["distributions_per_virtual_s"] / r["clients"] for r in rows]
    cpu = [r["distributions_per_cpu_s"] for r in rows if r["distributions_per_cpu_s"]]
    slowest = min(cpu) if cpu else None
    return {
        "virtual_rate_per_client_min": round(min(per_client), 2),
        "virtual_rate_per_client_max": round(max(per_client), 2),
        "distributions_per_cpu_s_min": slowest,
        "distributions_per_cpu_s_max": max(cpu) if cpu else None,
        # where one contact node's CPU would be busy all the time at this pace per client
        "clients_to_saturate_cpu": round(slowest / max(per_client)) if slowest else None,
        "failed": sum(r["failed"] for r in rows),
        "fetches_failed": sum(r["fetches_failed"] for r in rows),
        "seeds_sustained_per_s": SEEDS_SUSTAINED_PER_S,
        "seeds_burst_in_1_s": SEEDS_BURST,
        "seeds_extrapolated_per_s": SEEDS_EXTRAPOLATED_PER_S,
        "seeds_cpu_us_per_distribution": round(SEEDS_CPU_US),
    }


def _summary(rows: list[dict[str, Any]], results: dict[str, Any]) -> str:
    lines = [
        f"New clients fetching {FETCH_BYTES // 1000} kB through the contact node m1, each "
        f"back {THINK:g} s after its fetch with a new address; Lss = {dserver.LSS * 1000:g} "
        f"ms, Lcs = {dserver.LCS * 1000:g} ms.",
        "",
        "| clients | distributions per virtual second | per second of m1's CPU | CPU per "
        "distribution (us) | failed | fetches failed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['distributions_per_virtual_s']:g} | "
            f"{r['distributions_per_cpu_s']} | {r['cpu_us_per_distribution']} | {r['failed']} "
            f"| {r['fetches_failed']} |"
        )
    lines += [
        f"| seeds (003 6.3.2), 60 clients | {SEEDS_SUSTAINED_PER_S:g} sustained, "
        f"{SEEDS_BURST} in the first second | {SEEDS_EXTRAPOLATED_PER_S:,} extrapolated | "
        f"{results['seeds_cpu_us_per_distribution']} (0.13 s / 549, derived) | | |",
        "",
        "The rate on the virtual clock is what the clients offer, "
        f"{results['virtual_rate_per_client_min']:g} to "
        f"{results['virtual_rate_per_client_max']:g} distributions per second per client (a "
        "fetch through the home agent, the distribution and the think time), all of it "
        "served: the seeds' 9.4/s was their clients' pace too, one fetch every 6.4 s because "
        "of a stale binding at the contact node (003 6.4.3), where ours fetch again 0.1 s "
        f"after each answer. {results['failed']} distributions and "
        f"{results['fetches_failed']} fetches failed.",
        "",
        f"On the virtual clock nothing saturates up to {rows[-1]['clients']} clients (no "
        "failure, every table has room); a real contact node's CPU, which virtual time does "
        f"not charge, would: {results['distributions_per_cpu_s_min']:,} to "
        f"{results['distributions_per_cpu_s_max']:,} distributions per second of it here (its "
        "whole work: the handshake through the home agent's tunnel, route optimization with "
        "the client, the relayed home test, the handoff and the release), about "
        f"{results['clients_to_saturate_cpu']:,} clients at this pace; the seeds "
        f"extrapolated {SEEDS_EXTRAPOLATED_PER_S:,}/s for their C daemon and application.",
    ]
    return "\n".join(lines)


def _plot(figure: Figure, rows: list[dict[str, Any]], results: dict[str, Any]) -> None:
    virtual, cpu = figure.subplots(1, 2)
    clients = [r["clients"] for r in rows]
    virtual.plot(clients, [r["distributions_per_virtual_s"] for r in rows], "o-", label="ours")
    virtual.plot([60], [SEEDS_SUSTAINED_PER_S], "s", color="tab:gray", label="seeds: 9.4/s")
    virtual.plot([60], [SEEDS_BURST], "^", color="tab:gray", label="seeds: 56 in the first second")
    virtual.set_xlabel("clients")
    virtual.set_ylabel("distributions per second (virtual time)")
    virtual.set_title("the load the clients offer, all served")
    cpu.plot(clients, [r["distributions_per_cpu_s"] for r in rows], "o-", label="ours")
    cpu.axhline(
        SEEDS_EXTRAPOLATED_PER_S,
        color="tab:gray",
        linestyle="--",
        label="seeds: 4,200/s extrapolated",
    )
    cpu.set_xlabel("clients")
    cpu.set_ylabel("distributions per second of the contact node's CPU")
    cpu.set_title("the rate one contact node's CPU allows")
    cpu.set_ylim(bottom=0)
    for axes in (virtual, cpu):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")


EXPERIMENT = Experiment(
    name=NAME,
    title="contact-node scalability (003 6.3.2): distributions per second, 10 kB fetches",
    run=run,
    default_runs=1,
    runs_mean="seconds of wall clock measured per client count",
    default_wall_time="about 8 s",
    report_runs=1,
)
