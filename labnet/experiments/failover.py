"""``failover`` (ours; the seeds measured none): how long a distributed server is without a
contact node when it dies, and what a client sees when the member serving it dies, with and
without replication to a buddy. The runs are ``labnet bench failover``'s
(:func:`labnet.bench.failover.contact_kill`, :func:`~labnet.bench.failover.member_kill`:
:class:`labnet.dserver_lab.DServerLab`, three members with dynamic membership and its default
timers, Lss = 10 ms, Lcs = 20 ms), one per seed, the death falling anywhere in a heartbeat
tick.

- contact node killed (C's registration under ESP): from the death to the home agent's binding
  at the successor, and to the first of a new client's connections (one every 10 ms)
  established by it;
- member killed mid-download (3 MB): the stall the client sees, from the death to the next
  data packet another member sends it; whether the download ends whole (sha256) and the RSTs
  on the wire. Without replication no member holds the client's connection (the seeds' case:
  a dead replica's clients were lost).

``--runs``: kills of each kind, each on its own seed.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from labnet.bench import failover
from labnet.experiments.base import Experiment, Outcome, Settings
from mip6.dserver.membership import MembershipConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "failover"
KINDS = {
    "contact": "contact node killed: new client served by its successor",
    "member": "member killed mid-download, replication on: client's stall",
    "member_no_replication": "member killed mid-download, replication off",
}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    kills = settings.runs or EXPERIMENT.default_runs
    rows: list[dict[str, Any]] = []
    for i in range(kills):
        seed = settings.seed + i
        registered, served = failover.contact_kill(seed)
        rows.append(_row("contact", seed, served, registered=registered, whole=True, resets=0))
        for kind, replication in (("member", True), ("member_no_replication", False)):
            killed = failover.member_kill(seed, replication=replication)
            rows.append(_row(kind, seed, killed.stall, whole=killed.whole, resets=killed.resets))
        contact, member, lost = rows[-3], rows[-2], rows[-1]
        settings.progress(
            f"{NAME} seed {seed}: new client served {contact['ms']:g} ms after the contact "
            f"node's death; a member's death stalled its client {member['ms']:g} ms "
            f"(download {'whole' if member['whole'] else 'LOST'}), without replication "
            f"{'whole' if lost['whole'] else 'lost'}"
        )
    results = _results(rows)
    config = MembershipConfig()
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "kills_per_kind": kills,
            "seed": settings.seed,
            "lss_ms": 10,
            "lcs_ms": 20,
            "heartbeat_interval_s": config.heartbeat_interval,
            "failure_timeout_s": config.failure_timeout,
            "probe_interval_ms": failover.PROBE_INTERVAL * 1000,
            "download_bytes": failover.DOWNLOAD,
            "kinds": KINDS,
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=results,
        summary=_summary(results, kills, config),
        plot=lambda figure: _plot(figure, rows),
        wall_seconds=time.perf_counter() - started,
        notes=[
            "virtual time: the membership timers set these times; each seed moves the death "
            "within a heartbeat tick",
        ],
    )


def _row(
    kind: str,
    seed: int,
    seconds: float | None,
    *,
    whole: bool,
    resets: int,
    registered: float | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "seed": seed,
        "ms": _ms(seconds),
        "registered_ms": _ms(registered),
        "whole": whole,
        "resets": resets,
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "max": max(values)}


def _results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in KINDS:
        series = [r for r in rows if r["kind"] == kind]
        results[kind] = {
            "ms": _spread([r["ms"] for r in series if r["ms"] is not None]),
            "kills": len(series),
            "connections_lost": sum(not r["whole"] for r in series),
            "resets": sum(r["resets"] for r in series),
        }
    contact = [r["registered_ms"] for r in rows if r["kind"] == "contact"]
    results["contact"]["registered_ms"] = _spread(contact)
    return results


def _summary(results: dict[str, Any], kills: int, config: MembershipConfig) -> str:
    contact, member, lost = (
        results["contact"],
        results["member"],
        results["member_no_replication"],
    )

    def cell(spread: dict[str, float] | None) -> str:
        return "-" if spread is None else f"{spread['median']:g} / {spread['max']:g}"

    lines = [
        f"{kills} kills of each kind, milliseconds of virtual time, median / max; membership's "
        f"default timers (heartbeat every {config.heartbeat_interval * 1000:g} ms, a member "
        f"suspected after {config.failure_timeout * 1000:g} ms of silence).",
        "",
        "| what died | time | connections lost | RSTs |",
        "|---|---:|---:|---:|",
        f"| contact node: C registered at the successor | {cell(contact['registered_ms'])} | | |",
        f"| contact node: a new client served | {cell(contact['ms'])} | | |",
        f"| member, replication on: its client's stall | {cell(member['ms'])} | "
        f"{member['connections_lost']} of {member['kills']} | {member['resets']} |",
        f"| member, replication off | {cell(lost['ms'])} | {lost['connections_lost']} of "
        f"{lost['kills']} | {lost['resets']} |",
        "",
        "The seeds measured no failover: their design has backups take the contact address "
        "over (001 2.3) but no figure, and a dead replica's clients were lost. Here a new "
        "client is served by the successor once the failure timeout has run out (checked "
        "at each heartbeat tick) and C is registered; with replication the buddy resumes "
        "the dead member's client from the replica it holds (tcp_migrate's "
        "resynchronization) and the download ends whole; without replication nobody holds "
        "the connection: the client is left waiting, with no RST (its TCP gives up on its "
        "own, after its retransmissions).",
    ]
    return "\n".join(lines)


def _plot(figure: Figure, rows: list[dict[str, Any]]) -> None:
    axes = figure.subplots()
    kinds = ("contact", "member")
    labels = ("contact node killed:\nnew client served", "member killed:\nits client's stall")
    data = [[r["ms"] for r in rows if r["kind"] == kind and r["ms"] is not None] for kind in kinds]
    for y, values in enumerate(data, 1):
        axes.plot(values, [y] * len(values), "o", alpha=0.5, color="tab:blue")
        if values:
            median = statistics.median(values)
            axes.plot([median], [y], "|", markersize=30, color="tab:red")
            axes.annotate(f"median {median:g} ms", (median, y + 0.15), ha="center")
    axes.set_yticks([1, 2], labels)
    axes.set_ylim(0.5, 2.5)
    lost = sum(not r["whole"] for r in rows if r["kind"] == "member_no_replication")
    total = sum(r["kind"] == "member_no_replication" for r in rows)
    axes.set_xlabel("milliseconds from the death (virtual time)")
    axes.set_title(
        f"failover, {total} kills each; without replication {lost} of {total} downloads lost"
    )
    axes.grid(True, alpha=0.3)


EXPERIMENT = Experiment(
    name=NAME,
    title="failover (ours): contact node and member deaths, takeover and stall times",
    run=run,
    default_runs=20,
    runs_mean="kills of each kind",
    default_wall_time="about 10 s",
    report_runs=5,
    sweeps=False,
)
