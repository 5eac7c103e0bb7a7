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

On the netns backend (:mod:`labnet.experiments.netns_failover`) the daemons are killed for
real (SIGKILL) in one lab (the built-in ``dserver`` topology, dynamic membership, ESP): the
contact node while a plain kernel client opens a new connection to C every 20 ms, and the
member serving a stock curl's 50 MB download; each dead member's daemon starts again and
rejoins before the next kill. The kind without replication is not run there (its client is
left to its own TCP's give-up, minutes).
"""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labnet.bench import failover
from labnet.dserver_lab import innermost
from labnet.experiments import netns_failover, netns_testbed
from labnet.experiments.base import Experiment, Outcome, Settings
from labnet.netns import NetnsLab
from mip6.apps.http import generated_body
from mip6.dserver.membership import MembershipConfig
from mip6.wire import protocols
from mip6.wire.pcap import read_capture_file

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


def _netns_rows(settings: Settings, kills: int) -> list[dict[str, Any]]:
    """``kills`` contact node kills, then ``kills`` member kills, in one netns lab."""
    rows: list[dict[str, Any]] = []
    name = netns_testbed.lab_name(settings.lab_prefix, "fo")
    with tempfile.TemporaryDirectory(prefix="labnet-failover-") as directory:
        lab = NetnsLab.up(netns_failover.with_membership(), name, esp=True)
        try:
            alive = list(netns_failover.MEMBERS)
            netns_failover.wait_for_views(lab, alive)
            for kill in range(1, kills + 1):
                dead, seconds = netns_failover.contact_kill(lab, alive)
                rows.append(_row("contact", kill, seconds, whole=True, resets=0))
                settings.progress(
                    f"{NAME} kill {kill}: contact node {dead} killed, a new client served "
                    f"{seconds * 1000:.1f} ms later"
                )
                netns_failover.rejoin(lab, alive, dead)
            rows += _member_kills(lab, alive, Path(directory), kills, settings)
        finally:
            lab.down(discard=True)
    return rows


def _member_kills(
    lab: NetnsLab, alive: list[str], directory: Path, kills: int, settings: Settings
) -> list[dict[str, Any]]:
    """The member kills of :func:`_netns_rows`: curls one after another, each checked whole,
    each kill in the one under way; RSTs counted as they reached the client."""
    client = str(netns_failover.BASE.nodes["client"].addresses[0])
    size = netns_failover.DOWNLOAD_SIZE
    expected = hashlib.sha256(b"".join(generated_body(size, 1))).hexdigest()
    downloads: list[tuple[Path, subprocess.Popen[bytes]]] = []

    def current() -> Path:
        """The download in progress; a new one when the last has ended."""
        if not downloads or downloads[-1][1].poll() is not None:
            out = directory / f"download-{len(downloads)}"
            argv = ["curl", "-sS", "-g", "--max-time", "300", "-o", str(out)]
            argv.append(f"http://[{netns_failover.CONTACT}]/")
            curl = subprocess.Popen(lab.exec_argv("client", argv), stderr=subprocess.DEVNULL)
            downloads.append((out, curl))
        return downloads[-1][0]

    killed: list[tuple[int, netns_failover.MemberKill]] = []
    for kill in range(1, kills + 1):
        out, done = netns_failover.member_kill(lab, alive, current, client)
        index = next(i for i, (path, _) in enumerate(downloads) if path == out)
        killed.append((index, done))
        settings.progress(
            f"{NAME} kill {kill}: member {done.dead} killed mid-download, its client stalled "
            f"{done.stall * 1000:.1f} ms ({'resumed' if done.recovered else 'NOT resumed'})"
        )
        netns_failover.rejoin(lab, alive, done.dead)
    whole = []
    for out, curl in downloads:
        curl.wait(timeout=400)
        digest = hashlib.sha256(out.read_bytes()).hexdigest() if out.exists() else ""
        whole.append(curl.returncode == 0 and digest == expected)
    resets = _resets(Path(lab.pcap("client")))
    return [
        _row(
            "member",
            kill,
            done.stall,
            whole=done.recovered and whole[index],
            resets=resets if kill == 1 else 0,  # the capture's count, once
        )
        for kill, (index, done) in enumerate(killed, 1)
    ]


def _resets(pcap: Path) -> int:
    """TCP segments with RST in a link's capture (tunnelled or not)."""
    count = 0
    for frame in read_capture_file(pcap):
        if len(frame.data) < 40:
            continue
        data, protocol, offset = innermost(frame.data)
        if protocol == protocols.TCP and len(data) > offset + 13 and data[offset + 13] & 0x04:
            count += 1
    return count


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    kills = EXPERIMENT.runs(settings)
    if settings.backend == "netns":
        rows = _netns_rows(settings, kills)
    else:
        rows = _sim_rows(settings, kills)
    results = _results(rows)
    config = MembershipConfig()
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "kills_per_kind": kills,
            "seed": settings.seed,
            **(
                {"lss_ms": 10, "lcs_ms": 20, "probe_interval_ms": failover.PROBE_INTERVAL * 1000}
                if settings.backend == "sim"
                else {
                    "topology": "dserver (built-in), membership: {}, ESP",
                    "probe_interval_ms": 20,
                }
            ),
            "heartbeat_interval_s": config.heartbeat_interval,
            "failure_timeout_s": config.failure_timeout,
            "download_bytes": failover.DOWNLOAD
            if settings.backend == "sim"
            else netns_failover.DOWNLOAD_SIZE,
            "kinds": KINDS,
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=results,
        summary=_summary(results, kills, config, settings.backend),
        plot=lambda figure: _plot(figure, rows, settings.backend),
        wall_seconds=time.perf_counter() - started,
        notes=[
            "virtual time: the membership timers set these times; each seed moves the death "
            "within a heartbeat tick"
            if settings.backend == "sim"
            else "real kernels and clocks: the membership timers and the machine's load set "
            "these times; the member kills' RSTs are those that reached the client",
        ],
    )


def _sim_rows(settings: Settings, kills: int) -> list[dict[str, Any]]:
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
    return rows


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
    contact = [
        r["registered_ms"]
        for r in rows
        if r["kind"] == "contact" and r["registered_ms"] is not None  # not timed on netns
    ]
    results["contact"]["registered_ms"] = _spread(contact)
    return results


def _summary(results: dict[str, Any], kills: int, config: MembershipConfig, backend: str) -> str:
    contact, member, lost = (
        results["contact"],
        results["member"],
        results["member_no_replication"],
    )

    def cell(spread: dict[str, float] | None) -> str:
        return "-" if spread is None else f"{spread['median']:g} / {spread['max']:g}"

    lines = [
        f"{kills} kills of each kind, milliseconds of "
        f"{'virtual time' if backend == 'sim' else 'wall clock (SIGKILLed daemons)'}, "
        "median / max; membership's "
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
        f"{lost['kills']} | {lost['resets']} |"
        if lost["kills"]
        else "| member, replication off | not run on this backend | | |",
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


def _plot(figure: Figure, rows: list[dict[str, Any]], backend: str) -> None:
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
    clock = "virtual time" if backend == "sim" else "wall clock"
    axes.set_xlabel(f"milliseconds from the death ({clock})")
    kills = sum(r["kind"] == "contact" for r in rows)
    axes.set_title(
        f"failover, {kills} kills each"
        + (f"; without replication {lost} of {total} downloads lost" if total else "")
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
    backends=("sim", "netns"),
    netns_runs=3,
    netns_wall_time="about 1 min",
    sweeps=False,
)
