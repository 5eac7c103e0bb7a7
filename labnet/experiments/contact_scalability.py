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

On the netns backend (:mod:`labnet.experiments.netns_testbed`'s lab helpers; the topology is the
built-in ``dserver-farm``, Lss = 10 ms and Lcs = 25 ms there) the clients are a client farm
(:mod:`mip6.farm`: one ``mip6 run`` daemon holding that many correspondents, each its own
address, binding cache and TCP stack) that all arrive within one second, as the seeds started
their 60 together, and fetch 10 kB once each: every fetch a new client of the contact node m1,
a ``mip6 run`` daemon that accepts it and hands it to the random policy's member (itself
included). Per point (one lab each): the wall-clock time until every fetch has ended, the
distributions per second that makes, and m1's CPU time (``/proc``) per new client, which says
where its CPU would saturate. ``--runs`` is not used there (each point is one burst).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from labnet.bench import dserver
from labnet.bench.proxy import cpu_seconds
from labnet.experiments import netns_testbed
from labnet.experiments.base import Experiment, Outcome, Settings, thin
from labnet.netns import NetnsLab, control_request
from labnet.topology import Topology, builtin
from mip6.runtime.config import AppConfig

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


NETNS_CLIENTS = (20, 60, 180)  # the seeds' 60, a third of it, three times it
NETNS_PORT = 81  # the farm topology's fetch port
NETNS_BURST = 1.0  # seconds over which the farm's clients arrive
NETNS_LIMIT = 120.0  # seconds every fetch must have ended in


def farm_topology(clients: int) -> Topology:
    """``dserver-farm`` with ``clients`` clients fetching 10 kB once each, all within
    :data:`NETNS_BURST`, the members answering without handing on."""
    base = builtin("dserver-farm")
    nodes = dict(base.nodes)
    fetch = AppConfig("download", NETNS_PORT, size=FETCH_BYTES, seed=3)
    for name in ("m1", "m2", "m3"):
        apps = tuple(app for app in nodes[name].apps if app.port != NETNS_PORT)
        nodes[name] = dataclasses.replace(nodes[name], apps=(*apps, fetch))
    farm = nodes["farm"]
    options = {
        **farm.options,
        "clients": clients,
        "fetches": 1,
        "think": 0,
        "ramp": NETNS_BURST,
        "size": FETCH_BYTES,
    }
    nodes["farm"] = dataclasses.replace(farm, options=options)
    return dataclasses.replace(base, nodes=nodes)


def _counters(lab: NetnsLab, node: str) -> dict[str, int]:
    control = lab.state["nodes"][node]["control"]
    counters: dict[str, int] = control_request(control, {"show": "stats"})["counters"]
    return counters


def measure_netns(clients: int, settings: Settings) -> dict[str, Any]:
    """One burst of ``clients`` new clients on netns (see the module docstring): its row."""
    name = netns_testbed.lab_name(settings.lab_prefix, f"cs{clients}")
    lab = NetnsLab.up(farm_topology(clients), name, wait=True)
    try:
        # the farm's clients arrived as the lab came up, before the contact node had
        # registered: that farm goes, and a new one (new clients for m1: their bindings died
        # with the old) arrives on a registered contact node, measured from its start
        lab.kill("farm")
        time.sleep(0.5)
        m1 = lab.state["nodes"]["m1"]["pid"]
        before = _counters(lab, "m1")
        cpu_before = cpu_seconds(m1)
        lab.restart("farm")
        started = time.monotonic()
        while True:
            farm = _counters(lab, "farm")
            ended = farm.get("fetches_ok", 0) + farm.get("fetches_failed", 0)
            if ended >= clients:
                break
            if time.monotonic() - started > NETNS_LIMIT:
                raise RuntimeError(f"{NAME}: {ended} of {clients} fetches ended")
            time.sleep(0.05)
        served = time.monotonic() - started
        cpu = cpu_seconds(m1) - cpu_before
        after = _counters(lab, "m1")
    finally:
        lab.down(discard=True)
    new = after.get("clients_accepted", 0) - before.get("clients_accepted", 0)
    ok = farm.get("fetches_ok", 0)
    return {
        "clients": clients,
        "served_s": round(served, 3),
        "distributions_per_s": round(new / served, 1),
        "accepted": new,
        "handed_to_others": after.get("handoff_completed", 0) - before.get("handoff_completed", 0),
        "cpu_us_per_distribution": round(cpu * 1e6 / new, 1) if new else None,
        "distributions_per_cpu_s": round(new / cpu) if cpu and new else None,
        "contact_cpu_share": round(cpu / served, 3),
        "fetch_ms_mean": round(farm.get("fetch_ms_total", 0) / ok, 1) if ok else None,
        "fetch_ms_max": farm.get("fetch_ms_max"),
        "failed": after.get("handoff_failed", 0) - before.get("handoff_failed", 0),
        "fetches_failed": farm.get("fetches_failed", 0),
    }


def _run_netns(settings: Settings, started: float) -> Outcome:
    rows = []
    for clients in thin(NETNS_CLIENTS, settings.every):
        rows.append(measure_netns(clients, settings))
        row = rows[-1]
        settings.progress(
            f"{NAME} {clients} new clients at once: all served in {row['served_s']:g} s "
            f"({row['distributions_per_s']:g}/s), m1 busy {row['contact_cpu_share']:.0%} of "
            f"it, {row['cpu_us_per_distribution']} us of its CPU per new client; "
            f"{row['fetches_failed']} fetches failed"
        )
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "clients": [r["clients"] for r in rows],
            "arrivals_within_s": NETNS_BURST,
            "fetch_bytes": FETCH_BYTES,
            "topology": "dserver-farm (Lss 10 ms, Lcs 25 ms), one farm daemon for the clients",
            "counted": "new clients m1 accepted (clients_accepted), from the farm daemon's "
            "start (its control socket answering) to every fetch ended",
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=_netns_results(rows),
        summary=_netns_summary(rows),
        plot=lambda figure: _netns_plot(figure, rows),
        wall_seconds=time.perf_counter() - started,
        notes=[
            "real kernels and clocks: the rates and CPU times are this machine's, shared with "
            "the farm, the other members and the hub, and move with its load",
        ],
    )


def _netns_results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    busiest = max(rows, key=lambda r: r["contact_cpu_share"])
    cpu = [r["distributions_per_cpu_s"] for r in rows if r["distributions_per_cpu_s"]]
    return {
        "distributions_per_s_max": max(r["distributions_per_s"] for r in rows),
        "distributions_per_cpu_s_min": min(cpu) if cpu else None,
        "contact_cpu_share_max": busiest["contact_cpu_share"],
        "fetches_failed": sum(r["fetches_failed"] for r in rows),
        "failed": sum(r["failed"] for r in rows),
        "seeds_burst_in_1_s": SEEDS_BURST,
        "seeds_extrapolated_per_s": SEEDS_EXTRAPOLATED_PER_S,
        "seeds_cpu_us_per_distribution": round(SEEDS_CPU_US),
    }


def _netns_summary(rows: list[dict[str, Any]]) -> str:
    results = _netns_results(rows)
    lines = [
        f"New clients (a client farm, each its own address) arriving within {NETNS_BURST:g} s "
        f"and fetching {FETCH_BYTES // 1000} kB once through the contact node m1, a mip6 "
        "daemon; wall clock until every fetch ended, and m1's CPU time.",
        "",
        "| clients | all served in (s) | distributions per s | m1 CPU per new client (us) "
        "| m1 busy | fetch mean / max (ms) | fetches failed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['served_s']:g} | {r['distributions_per_s']:g} | "
            f"{r['cpu_us_per_distribution']} | {r['contact_cpu_share']:.0%} | "
            f"{r['fetch_ms_mean']} / {r['fetch_ms_max']} | {r['fetches_failed']} |"
        )
    lines += [
        f"| seeds (003 6.3.2), 60 clients | {SEEDS_BURST} in the first second | "
        f"{SEEDS_SUSTAINED_PER_S:g} sustained | {results['seeds_cpu_us_per_distribution']} "
        "(0.13 s / 549, derived) | 0 % (top) | 23.41 (through the proxy) | |",
        "",
        f"At its busiest m1 was on the CPU {results['contact_cpu_share_max']:.0%} of the "
        f"time; at the CPU cost measured ({results['distributions_per_cpu_s_min']:,} new "
        "clients per second of it at the least) one contact node would saturate there, "
        f"where the seeds extrapolated {SEEDS_EXTRAPOLATED_PER_S:,}/s for their C daemon and "
        "application. What saturates first here is the machine itself: the farm's daemon, "
        "the hub and three members share its two cores with m1.",
    ]
    return "\n".join(lines)


def _netns_plot(figure: Figure, rows: list[dict[str, Any]]) -> None:
    rate, cpu = figure.subplots(1, 2)
    clients = [r["clients"] for r in rows]
    rate.plot(clients, [r["distributions_per_s"] for r in rows], "o-", label="ours")
    rate.plot([60], [SEEDS_BURST], "^", color="tab:gray", label="seeds: 56 in the first second")
    rate.set_xlabel("new clients arriving within 1 s")
    rate.set_ylabel("distributions per second (wall clock)")
    rate.set_title("a burst of new clients, served")
    cpu.plot(clients, [r["cpu_us_per_distribution"] for r in rows], "o-", label="ours")
    cpu.axhline(SEEDS_CPU_US, color="tab:gray", linestyle="--", label="seeds: 237 us (derived)")
    cpu.set_xlabel("new clients arriving within 1 s")
    cpu.set_ylabel("m1's CPU per new client (us)")
    cpu.set_title("the contact node's cost")
    cpu.set_ylim(bottom=0)
    for axes in (rate, cpu):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    if settings.backend == "netns":
        return _run_netns(settings, started)
    seconds = EXPERIMENT.runs(settings)
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
    backends=("sim", "netns"),
    netns_runs_mean="not used (one burst of new clients per client count)",
    netns_wall_time="about 25 s",
)
