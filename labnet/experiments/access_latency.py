"""``access-latency``: the seeds' server access latency (004 6.1; SPEC-dserver 9.2). The client
sends a 128-byte UDP datagram to the contact address and times the echo. The contact node is
local to the contact address's home agent (Node 1, beside HA1: the seeds' configuration 1) or
remote from it (Node 2 alone, Lss away: configuration 2, "the packets are tunneled between
Home Agent 1 and Node 2"). The seeds fitted RTT = 2·Lcs1 + X and RTT = 2·Lcs1 + 2·Lss + Y
and found X = 2.13 ms and Y = 3.61 ms on average, "small additional delays" of their Ethernet
links and local processing; route optimization was left out (members here never
route-optimize with a client they did not accept a TCP connection from).

On the simulator a node's processing takes no virtual time, so X and Y are the lab's on-link
hops alone (HA1 to Node 1 and back: 0.2 ms) and zero. On the netns backend
(:mod:`labnet.experiments.netns_testbed`) they are real: a Python client on the client
namespace's kernel sends the datagrams through its shim-mode correspondent daemon, the hub
emulates the latencies, the home agent and the contact node are ``mip6 run`` daemons (the
member's built-in UDP echo answers), and the client times each echo with its own clock. One
lab per configuration; the hub's profiles change between latency pairs. Lcs2, on no path
here, is Lcs1 + Lss there, which puts HA1 and Node 1 on one link as in the seeds' testbed.
``--runs``: echoes per latency pair and configuration (the seeds: 100).
"""

from __future__ import annotations

import statistics
import time
from itertools import product
from typing import TYPE_CHECKING, Any

from labnet.experiments import netns_testbed
from labnet.experiments.base import Experiment, Outcome, Settings, thin
from labnet.experiments.fit import least_squares
from labnet.experiments.testbed import CONTACT, Testbed, sim_lab
from mip6.apps.echo import ECHO_PORT, udp_echo
from mip6.runtime.config import AppConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "access-latency"
SWEEP_LCS1 = (0.010, 0.020, 0.040, 0.080)  # the seeds' values are not listed
SWEEP_LSS = (0.010, 0.020, 0.040, 0.080)
PAYLOAD = bytes(128)  # 004 6.1: "a 128-byte UDP packet"
INTERVAL = 1.0  # seconds between echoes: longer than any round trip here, so none overlap
SEEDS_X_MS = 2.13  # 004 6.1, configuration 1
SEEDS_Y_MS = 3.61  # 004 6.1, configuration 2
CONTACT_NODE = {"local": "node1", "remote": "node2"}


def measure(config: str, lcs1: float, lss: float, echoes: int, seed: int) -> list[float]:
    """Round-trip times (seconds) of ``echoes`` UDP echoes to the contact address."""
    member = CONTACT_NODE[config]
    # Lcs2 is on no path here (no route optimization): any value the star of uplinks can
    # realize with the other two
    testbed = Testbed(lss, lcs1, max(lcs1, lss), members=(member,))
    lab = sim_lab(testbed, seed)
    lab.run_until(1.0)  # the contact node has registered
    contact_host = lab.net.nodes[member].engine.host
    udp_echo(contact_host, ECHO_PORT)
    client = lab.net.nodes["client"]
    assert client.host is not None
    sent: list[float] = []
    rtts: list[float] = []

    def answered(data: bytes, remote: tuple[str, int], local: tuple[str, int]) -> None:
        rtts.append(lab.net.now - sent[len(rtts)])

    endpoint = client.host.udp_bind(0, answered)

    def send() -> None:
        sent.append(lab.net.now)
        endpoint.sendto(PAYLOAD, (str(CONTACT), ECHO_PORT))
        client.runtime.flush_host()

    for i in range(echoes):
        lab.net.call_at(lab.net.now + i * INTERVAL, send)
    lab.run_until(lab.net.now + echoes * INTERVAL + 1.0)
    if len(rtts) != echoes:
        raise RuntimeError(f"{NAME} {config}: {len(rtts)} of {echoes} echoes came back")
    return rtts


# the netns client: one echo at a time, each waited for (a lost one is an error), RTTs in
# seconds on its own monotonic clock, one per line
_ECHO_CLIENT = """
import socket, sys, time
address, port, echoes, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.settimeout(5.0)
payload = bytes(size)
for _ in range(echoes):
    sent = time.perf_counter()
    sock.sendto(payload, (address, port))
    while True:
        data, _ = sock.recvfrom(65536)
        if data == payload:
            break
    print(time.perf_counter() - sent)
"""


def measure_netns(
    config: str, pairs: list[tuple[float, float]], echoes: int, settings: Settings
) -> list[list[float]]:
    """Per (Lcs1, Lss) pair, the round-trip times (seconds) of ``echoes`` echoes from the
    kernel client on the netns backend, in one lab with ``config``'s contact node."""
    member = CONTACT_NODE[config]
    apps = (AppConfig("echo", ECHO_PORT),)
    first = pairs[0]
    testbed = Testbed(first[1], first[0], first[0] + first[1], members=(member,), apps=apps)
    name = netns_testbed.lab_name(settings.lab_prefix, f"al{config[0]}")
    out: list[list[float]] = []
    with netns_testbed.netns_lab(testbed, name) as lab:
        # the first echo after the lab is up meets cold paths (neighbour caches, the echo
        # socket): not a sample
        netns_testbed.client_run(lab, _ECHO_CLIENT, str(CONTACT), str(ECHO_PORT), "1", "128")
        for lcs1, lss in pairs:
            testbed = Testbed(lss, lcs1, lcs1 + lss, members=(member,), apps=apps)
            netns_testbed.check_on_link(testbed)
            netns_testbed.set_profiles(lab, testbed)
            printed = netns_testbed.client_run(
                lab, _ECHO_CLIENT, str(CONTACT), str(ECHO_PORT), str(echoes), str(len(PAYLOAD))
            )
            out.append([float(line) for line in printed.split()])
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    echoes = EXPERIMENT.runs(settings)
    sweep_lcs1, sweep_lss = thin(SWEEP_LCS1, settings.every), thin(SWEEP_LSS, settings.every)
    rows: list[dict[str, Any]] = []
    pairs = list(product(sweep_lcs1, sweep_lss))
    for config in ("local", "remote"):
        if settings.backend == "netns":
            measured = measure_netns(config, pairs, echoes, settings)
        else:
            measured = [measure(config, lcs1, lss, echoes, settings.seed) for lcs1, lss in pairs]
        for (lcs1, lss), rtts in zip(pairs, measured, strict=True):
            model = 2 * lcs1 + (2 * lss if config == "remote" else 0.0)
            median = statistics.median(rtts)
            rows.append(
                {
                    "config": config,
                    "lcs1_ms": _ms(lcs1),
                    "lss_ms": _ms(lss),
                    "echoes": len(rtts),
                    "rtt_median_ms": _ms(median),
                    "rtt_min_ms": _ms(min(rtts)),
                    "rtt_max_ms": _ms(max(rtts)),
                    "model_ms": _ms(model),
                    "excess_ms": _ms(median - model),
                }
            )
            settings.progress(
                f"{NAME} {config} contact node: Lcs1 {_ms(lcs1):g} ms Lss {_ms(lss):g} ms: "
                f"RTT {_ms(median):g} ms ({len(rtts)} echoes)"
            )
    results = _fits(rows)
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "lcs1_ms": [_ms(x) for x in sweep_lcs1],
            "lss_ms": [_ms(x) for x in sweep_lss],
            "payload_bytes": len(PAYLOAD),
            "echoes_per_point": echoes,
            "seed": settings.seed,
            "configurations": {
                "local": "node1 is the contact node, on HA1's site (seeds' configuration 1)",
                "remote": "node2 alone is the contact node, Lss from HA1 (configuration 2)",
            },
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=results,
        summary=_summary(results, echoes, settings.backend),
        plot=lambda figure: _plot(figure, rows),
        wall_seconds=time.perf_counter() - started,
        notes=[_NOTES[settings.backend]],
    )


_NOTES = {
    "sim": "virtual time: a node's processing takes none, so X and Y hold only the lab's "
    "on-link hops; the netns backend shows real ones",
    "netns": "real kernels and clocks: X and Y are the hub's, the TUN devices' and the "
    "userspace daemons' work on this machine, and move with its load",
}


def _rounded(value: float, digits: int) -> float:
    """Rounded, and never -0.0 (a fit's zero slope prints as 0)."""
    return round(value, digits) + 0.0


def _fits(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per configuration: the seeds' model with its slopes fixed at 2 (the intercept is then
    the mean excess: X or Y) and a free least-squares fit (its slopes should be 2)."""
    local = [r for r in rows if r["config"] == "local"]
    remote = [r for r in rows if r["config"] == "remote"]
    slope_lcs1, slope_lss, intercept_local = least_squares(
        [(r["lcs1_ms"], r["lss_ms"], 1.0) for r in local], [r["rtt_median_ms"] for r in local]
    )
    remote_lcs1, remote_lss, intercept_remote = least_squares(
        [(r["lcs1_ms"], r["lss_ms"], 1.0) for r in remote], [r["rtt_median_ms"] for r in remote]
    )
    return {
        "x_ms": _rounded(statistics.fmean(r["excess_ms"] for r in local), 3),
        "y_ms": _rounded(statistics.fmean(r["excess_ms"] for r in remote), 3),
        "seeds_x_ms": SEEDS_X_MS,
        "seeds_y_ms": SEEDS_Y_MS,
        "local_free_fit": {
            "model": "RTT = a*Lcs1 + b*Lss + c (seeds: a = 2, b = 0, c = X)",
            "a": _rounded(slope_lcs1, 4),
            "b": _rounded(slope_lss, 4),
            "c_ms": _rounded(intercept_local, 3),
        },
        "remote_free_fit": {
            "model": "RTT = a*Lcs1 + b*Lss + c (seeds: a = 2, b = 2, c = Y)",
            "a": _rounded(remote_lcs1, 4),
            "b": _rounded(remote_lss, 4),
            "c_ms": _rounded(intercept_remote, 3),
        },
    }


def _summary(results: dict[str, Any], echoes: int, backend: str) -> str:
    local, remote = results["local_free_fit"], results["remote_free_fit"]
    return "\n".join(
        [
            f"UDP echo of {len(PAYLOAD)} bytes to the contact address, {echoes} echoes per "
            "latency pair, median RTT fitted over every pair.",
            "",
            "| | ours | seeds (004 6.1) |",
            "|---|---:|---:|",
            f"| X: RTT - 2·Lcs1, contact node local to HA1 | {results['x_ms']:g} ms | "
            f"{SEEDS_X_MS} ms |",
            f"| Y: RTT - 2·Lcs1 - 2·Lss, contact node remote | {results['y_ms']:g} ms | "
            f"{SEEDS_Y_MS} ms |",
            f"| free fit, local: slopes in Lcs1, Lss; intercept | {local['a']:g}, {local['b']:g};"
            f" {local['c_ms']:g} ms | 2, 0; X |",
            f"| free fit, remote: slopes in Lcs1, Lss; intercept | {remote['a']:g}, "
            f"{remote['b']:g}; {remote['c_ms']:g} ms | 2, 2; Y |",
            "",
            _verdict(local, remote),
            "",
            "The seeds' X and Y were their Ethernet hops and local processing on 450-700 MHz "
            "machines."
            + (
                " On the simulator a node's processing takes no virtual time: our X is the "
                "lab's two on-link hops between HA1 and Node 1, and Y has none. The netns "
                "backend (real kernels, TUN devices, userspace daemons) is where ours would be "
                "comparable."
                if backend == "sim"
                else " Ours are the hub's forwarding, the TUN devices and the userspace daemons "
                "(the client's shim, the home agent, the member: Python with a C fast path) on "
                "this machine."
            ),
        ]
    )


def _verdict(local: dict[str, Any], remote: dict[str, Any]) -> str:
    """Whether the free fits have the seeds' slopes (2, 0 and 2, 2) within 10%."""
    seeds = ((local["a"], 2.0), (remote["a"], 2.0), (remote["b"], 2.0))
    if all(abs(fitted / slope - 1) <= 0.1 for fitted, slope in seeds) and abs(local["b"]) <= 0.2:
        return "The round trip is linear in the latencies with the seeds' slopes (within 10%)."
    return "The free fits' slopes differ from the seeds' by more than 10%: see the CSV."


def _plot(figure: Figure, rows: list[dict[str, Any]]) -> None:
    """Left: the round trip against the seeds' model latency (the slope); right: what is
    left over the model at each point, beside the seeds' X and Y (the intercepts)."""
    linear, excess = figure.subplots(1, 2)
    top = max(r["model_ms"] for r in rows)
    linear.plot([0, top], [0, top], "k:", label="RTT = model")
    for config, colour, marker, model, seeds in (
        ("remote", "tab:red", "s", "2·Lcs1 + 2·Lss", SEEDS_Y_MS),
        ("local", "tab:blue", "o", "2·Lcs1", SEEDS_X_MS),
    ):
        series = [r for r in rows if r["config"] == config]
        models = [r["model_ms"] for r in series]
        label = f"contact node {config} (model {model})"
        linear.plot(models, [r["rtt_median_ms"] for r in series], marker, color=colour, label=label)
        excess.plot(models, [r["excess_ms"] for r in series], marker, color=colour, label=label)
        name = "Y" if config == "remote" else "X"
        excess.axhline(seeds, linestyle="--", color=colour, label=f"seeds' {name} = {seeds} ms")
    linear.set_xlabel("model latency (ms)")
    linear.set_ylabel("UDP echo round trip, median (ms)")
    linear.set_title("round trip through the contact address")
    excess.set_xlabel("model latency (ms)")
    excess.set_ylabel("round trip - model (ms): X or Y")
    excess.set_title("intercepts, ours and the seeds'")
    excess.set_ylim(bottom=min(0.0, *(r["excess_ms"] for r in rows)) - 0.5)
    for axes in (linear, excess):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")


EXPERIMENT = Experiment(
    name=NAME,
    title="server access latency (004 6.1): UDP echo to the contact address, X and Y",
    run=run,
    default_runs=100,
    runs_mean="echoes per latency pair and configuration",
    default_wall_time="about 2 s",
    report_runs=20,
    backends=("sim", "netns"),
    netns_runs=10,
    netns_wall_time="about 1 min",
)
