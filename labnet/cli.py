"""The ``labnet`` command.

``labnet bench wire [--json] [--seconds S]``
    Wire-layer throughput, ours against scapy in the same run (see :mod:`labnet.bench.wire`).

``labnet demo [roaming|dserver] [--seed N] [--backend sim|netns] [--chart FILE]``
    The roaming scenario with a narrated timeline: on the ``sim`` backend (virtual time, the
    default) or the ``netns`` backend (real kernels and ``ping``, root; see
    :mod:`labnet.demo_netns`). ``dserver``: a client handed from member to member of the
    distributed server, every packet explained (``sim`` only; see :mod:`labnet.demo_dserver`).
    ``--chart FILE``: also the run's message sequence chart (from the simulated packets, or the
    netns hub's captures), SVG when FILE ends in ``.svg``, else text (see :mod:`labnet.chart`).

``labnet chart [CAPTURE|DIR ...] [--topology T] [--name LAB] [--out FILE] [--group-key-file F]``
    A message sequence chart of captures (a directory: its pcaps; a netns lab's directory, kept
    after ``down``: its hub's captures and, from a member's configuration, its group key),
    lifelines named after the topology's nodes (a file named ``NODE.pcap`` is that node's link).
    With no capture, a running netns lab's captures, topology and group key. Text on stdout, or
    FILE (SVG if ``.svg``).

``labnet bench core [--json] [--seconds S]``
    The MIPv6 engines' hot operations (see :mod:`labnet.bench.core`).

``labnet bench hub [--json] [--seconds S]``
    The hub against a bare Python relay, in the same run: TUN links between kernels (RTT, TCP,
    packet rate; root) and UDP links (see :mod:`labnet.bench.hub`).

``labnet bench esp [--json] [--seconds S]``
    ESP protect + verify of 1,400-byte packets, AES-GCM and AES-CBC/HMAC-SHA1-96
    (see :mod:`labnet.bench.esp`).

``labnet up TOPOLOGY [--backend netns|sim] [--name LAB] [--esp] [--no-fast-path]``
    Start a topology (a file, or a built-in name: ``roaming``, ``testbed``, ``dserver``,
    ``dserver-farm``, ``dserver-proxy``, ``dserver-udp``).
    ``netns`` (the default, root): a hub process, one namespace and ``mip6 run`` daemon per
    node, running until ``labnet down`` (see :mod:`labnet.netns`); prints the lab's status as
    JSON. ``sim``: the engines on virtual time for ``--seconds``, then a summary (nothing keeps
    running).

``labnet status [--json] [--name LAB]``, ``labnet exec NODE -- COMMAND...``,
``labnet move NODE NETWORK``, ``labnet pcap LINK``, ``labnet down``
    A running netns lab: its nodes, addresses and hub links; a command in a node's namespace
    (exit status passed on); move a mobile node to another network; the path of a link's
    capture (a link per node, named after it); stop everything and delete the namespaces
    (idempotent, also after a crash). ``--name`` may be left out when one lab runs.

``labnet bench tcp [--json] [--seconds S]``
    tcp_migrate against the kernel through a TUN hop, snapshot sizes and costs, Linux
    TCP_REPAIR for comparison (needs root; see :mod:`labnet.bench.tcp`).

``labnet bench dserver [--json] [--seconds S]``
    The distributed server: one local handoff against Linux TCP_REPAIR checkpoint + restore
    (root), handoffs and contact-node distributions per CPU second, and the client-observed
    handoff gap on virtual time (see :mod:`labnet.bench.dserver`).

``labnet bench failover [--json]``
    A distributed server losing members: the contact node's death to a new client served by
    its successor, a serving member's death to its client's data flowing again from the
    buddy that held its replica, and what replication costs (see :mod:`labnet.bench.failover`).

``labnet bench proxy [--json]``
    A 10 kB fetch, a large body and keep-alive requests through a member's proxy in front of a
    stock http.server, against the same server reached directly, same run (root; see
    :mod:`labnet.bench.proxy`).

``labnet bench chart [--json] [--seconds S]``
    A sequence chart drawn from the dserver demo's captures against the plain decode of the
    same files, same run (see :mod:`labnet.bench.chart`).

``labnet bench udp [--json]``
    The distributed server's UDP lookup service with clients handed on every 20 datagrams
    against the same simulation without those handoffs: request times, retries, drops, CPU
    (see :mod:`labnet.bench.udp`).

``labnet bench tunnel [--json]``
    A client without Mobile IPv6 against a Mobile IPv6 client, same run, on virtual time:
    first byte, handoff gaps, what the contact node forwards (see :mod:`labnet.bench.tunnel`).

``labnet bench tunnel-netns [--json]``
    The same two clients on the netns backend (root): a stock curl's 50 MB download handed
    between members, through the tunnel and through route optimization, and the contact
    node's CPU time for each (see :mod:`labnet.bench.tunnel`).

``labnet bench tcp-lossy [--json] [--bytes N]``
    tcp_migrate's download and upload against the kernel through 40 ms one-way delay and 1%
    loss each way, sha256-checked, with kernel-to-kernel CUBIC and Reno baselines over the
    same path; N bytes each (default 100 MB: minutes; see :mod:`labnet.bench.tcp_lossy`).

``labnet experiment list``, ``labnet experiment NAME [--backend sim|netns] [--runs N]
[--out DIR] [--json] [--seed N] [--every N] [--lab-prefix P]``
    The seeds' experiments (see :mod:`labnet.experiments`): list them with their defaults and
    wall times on each backend, or run one, a line per point on stderr, and write
    ``DIR/NAME.json``, ``.csv``, ``.md`` and ``.png`` (the plot needs the ``plots`` extra; DIR
    defaults to ``labnet-results``). ``--json`` prints the JSON on stdout; ``--every N``
    measures every Nth point of each sweep (the last always). On ``netns`` (root) each run
    brings up its own labs, named ``P`` + this process's id + a tag, and takes them down.

``labnet report [--backend sim|netns] [--out DIR] [--runs N] [--every N] [--seed N]
[--lab-prefix P]``
    Every experiment with its short defaults (``--runs`` and ``--every`` for all of them), each
    one's files and ``DIR/report.md`` with every summary and plot (DIR defaults to
    ``labnet-report``; the repository's examples: ``docs/report``, ``docs/report-netns``). An
    experiment that cannot run on the backend, or fails, is listed with the reason.

``labnet hub DESCRIPTION``
    Run a hub from a YAML or JSON description (see :mod:`labnet.hub.config`) until SIGTERM or
    SIGINT; prints one JSON line with its addresses once its sockets are bound.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from mip6.chart.names import Names
from mip6.runtime.config import ConfigError

_LAB_PREFIX_HELP = (
    "netns: the labs' names (and their namespaces') start with it, then this process's id "
    "(default xp)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labnet", description="the mip6 network lab")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument(
        "suite",
        choices=[
            "wire",
            "core",
            "hub",
            "esp",
            "tcp",
            "tcp-lossy",
            "dserver",
            "failover",
            "proxy",
            "udp",
            "chart",
            "tunnel",
            "tunnel-netns",
        ],
        help="what to measure",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--seconds", type=float, default=4.0, help="total measuring time")
    bench.add_argument("--bytes", type=int, default=100_000_000, help="tcp-lossy: per transfer")
    demo = commands.add_parser("demo", help="a scenario, narrated packet by packet")
    demo.add_argument(
        "scenario",
        nargs="?",
        choices=["roaming", "dserver"],
        default="roaming",
        help="roaming: a mobile node moving (default); dserver: the distributed server",
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed of the simulation")
    demo.add_argument(
        "--backend",
        choices=["sim", "netns"],
        default="sim",
        help="sim: one process, virtual time (default); netns: real kernels (root)",
    )
    demo.add_argument(
        "--chart", metavar="FILE", help="write the run's sequence chart (SVG if .svg)"
    )
    chart = commands.add_parser("chart", help="a message sequence chart of captures")
    chart.add_argument(
        "captures", nargs="*", help="pcap files, directories of them, or a netns lab's directory"
    )
    chart.add_argument("--topology", help="a topology file or built-in name: the lifelines' names")
    chart.add_argument("--out", help="write the chart to FILE (SVG if it ends in .svg)")
    chart.add_argument(
        "--group-key-file", metavar="CONFIG", help="a member's configuration: its group_key"
    )
    experiment = commands.add_parser("experiment", help="the seeds' experiments: list or run")
    experiment.add_argument("name", help="list, or the experiment to run")
    experiment.add_argument(
        "--backend",
        choices=["sim", "netns"],
        default="sim",
        help="sim: one process, virtual time (default); netns: real kernels (root)",
    )
    experiment.add_argument("--runs", type=int, help="samples per point (see list)")
    experiment.add_argument("--out", default="labnet-results", help="where the files go")
    experiment.add_argument("--json", action="store_true", help="print the JSON on stdout")
    experiment.add_argument("--seed", type=int, default=1, help="random seed of the lab")
    experiment.add_argument(
        "--every", type=int, default=1, help="measure every Nth point of each sweep (default 1)"
    )
    experiment.add_argument("--lab-prefix", default="xp", help=_LAB_PREFIX_HELP)
    report = commands.add_parser(
        "report", help="every experiment with short defaults, one Markdown report"
    )
    report.add_argument(
        "--backend",
        choices=["sim", "netns"],
        default="sim",
        help="sim: one process, virtual time (default); netns: real kernels (root)",
    )
    report.add_argument("--out", default="labnet-report", help="where the files go")
    report.add_argument("--runs", type=int, help="samples per point, every experiment's")
    report.add_argument(
        "--every", type=int, default=1, help="measure every Nth point of each sweep (default 1)"
    )
    report.add_argument("--seed", type=int, default=1, help="random seed of the labs")
    report.add_argument("--lab-prefix", default="xp", help=_LAB_PREFIX_HELP)
    hub = commands.add_parser("hub", help="run a hub (link emulation, routing, pcaps)")
    hub.add_argument("description", help="the hub's YAML or JSON description")
    up = commands.add_parser("up", help="start a topology")
    up.add_argument(
        "topology",
        help="a topology file or a built-in name (roaming, testbed, dserver, dserver-farm, "
        "dserver-proxy, dserver-udp, dserver-plain)",
    )
    up.add_argument("--backend", choices=["netns", "sim"], default="netns")
    up.add_argument("--name", help="the lab's name (default: the topology's)")
    up.add_argument("--seconds", type=float, default=5.0, help="sim: virtual seconds to run")
    up.add_argument(
        "--esp", action="store_true", help="netns: home registrations under ESP, random keys"
    )
    up.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        default=None,
        help="netns: the daemons without their C fast path (the engines see every packet)",
    )
    status = commands.add_parser("status", help="a running lab's nodes, links and routes")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    execute = commands.add_parser("exec", help="run a command in a node's namespace")
    execute.add_argument("node")
    execute.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    move = commands.add_parser("move", help="move a mobile node to another network")
    move.add_argument("node")
    move.add_argument("network")
    pcap = commands.add_parser("pcap", help="print the path of a hub link's capture")
    pcap.add_argument("link", help="a link: the name of the node it attaches")
    commands.add_parser("down", help="stop a lab and delete its namespaces")
    for command in (status, execute, move, pcap, commands.choices["down"], chart):
        command.add_argument("--name", help="the lab (default: the only one running)")
    return parser


def lab_command(args: argparse.Namespace) -> int:
    """``up``, ``status``, ``exec``, ``move``, ``pcap``, ``down``."""
    from labnet.netns import LabError, NetnsLab, down

    try:
        if args.command == "up":
            if args.backend == "sim":
                return sim_up(args)
            lab = NetnsLab.up(args.topology, args.name, esp=args.esp, fast_path=args.fast_path)
            print(json.dumps(lab.status(), indent=1))
        elif args.command == "down":
            name = down(args.name)
            print(f"lab {name} is down" if name else "no lab to take down")
        elif args.command == "exec":
            argv = args.argv
            if not argv:
                raise LabError("exec NODE -- COMMAND...: no command")
            command = NetnsLab.open(args.name).exec_argv(args.node, argv)
            sys.stdout.flush()
            return subprocess.run(command).returncode
        elif args.command == "move":
            care_of = NetnsLab.open(args.name).move(args.node, args.network)
            print(f"{args.node}: {'home' if care_of is None else f'care-of address {care_of}'}")
        elif args.command == "pcap":
            print(NetnsLab.open(args.name).pcap(args.link))
        else:
            report = NetnsLab.open(args.name).status()
            if args.json:
                print(json.dumps(report, indent=1))
            else:
                print(format_status(report))
    except (LabError, ConfigError, OSError, TimeoutError) as error:
        print(f"labnet {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


def format_status(report: dict[str, Any]) -> str:
    hub = report["hub"]
    lines = [
        f"lab {report['name']} ({report['topology']}, netns backend) in {report['directory']}",
        f"hub pid {hub['pid']} {'running' if hub['running'] else 'NOT RUNNING'}"
        f" control {hub['control']}",
    ]
    for name, node in report["nodes"].items():
        if node["kind"] == "engine":
            state = "running" if node["running"] else "NOT RUNNING"
            lines.append(
                f"  {name:10} {node['role']:14} on {node['network']:14} {node['address']:24}"
                f" netns {node['netns']} pid {node['pid']} {state}"
            )
        elif node["kind"] == "kernel":
            lines.append(
                f"  {name:10} {'kernel':14} on {node['network']:14}"
                f" {', '.join(node['addresses']):24} netns {node['netns']} (hub TUN link)"
            )
        else:
            host, port = node["endpoint"]
            lines.append(
                f"  {name:10} {'external':14} on {node['network']:14}"
                f" {', '.join(node['addresses']):24} hub endpoint {host}:{port}"
            )
    for prefix, link in (hub["routes"] or {}).items():
        lines.append(f"  route {prefix} -> {link}")
    return "\n".join(lines)


def sim_up(args: argparse.Namespace) -> int:
    """The topology on the sim backend for ``--seconds`` of virtual time: who registered."""
    from labnet.netns import load_topology
    from labnet.nodes import mobile
    from labnet.sim import SimLab
    from mip6.runtime.state import describe

    lab = SimLab(load_topology(args.topology))
    lab.start()
    lab.run_until(args.seconds)
    report: dict[str, Any] = {
        "name": args.name or lab.topology.name,
        "backend": "sim",
        "virtual_seconds": args.seconds,
        "nodes": {
            name: {"network": lab.attached[name], "address": str(lab.addresses[name])}
            for name in lab.topology.nodes
        },
    }
    for name, node in report["nodes"].items():
        engine = lab.net.nodes[name].engine
        if mobile(lab.topology.nodes[name]):
            rows = describe(engine, "bul", lab.net.now)["rows"]
            node["bindings"] = {row["destination"]: row["state"] for row in rows}
    print(json.dumps(report, indent=1))
    return 0


def experiment_command(args: argparse.Namespace) -> int:
    """``experiment list`` and ``experiment NAME``."""
    from pathlib import Path

    from labnet import experiments
    from labnet.experiments import report

    if args.name == "list":
        for experiment in experiments.EXPERIMENTS.values():
            print(f"{experiment.name:20} {experiment.title}")
            timings = [
                f"{experiment.default_runs}, {experiment.default_wall_time} on sim"
                if "sim" in experiment.backends
                else "",
                f"{experiment.netns_runs or experiment.default_runs}, "
                f"{experiment.netns_wall_time} on netns"
                + (f" (--runs: {meaning})" if (meaning := experiment.netns_runs_mean) else "")
                if "netns" in experiment.backends
                else "",
            ]
            print(
                f"{'':20} --runs: {experiment.runs_mean} (default "
                f"{'; '.join(t for t in timings if t)}); backends: "
                f"{', '.join(experiment.backends)}"
            )
        return 0
    if args.name not in experiments.EXPERIMENTS:
        known = ", ".join(experiments.EXPERIMENTS)
        print(f"labnet experiment: no experiment {args.name!r} (list, {known})", file=sys.stderr)
        return 2
    if not _counts_valid("labnet experiment", args):
        return 2
    settings = experiments.Settings(
        backend=args.backend,
        runs=args.runs,
        seed=args.seed,
        progress=_progress,
        every=args.every,
        lab_prefix=args.lab_prefix,
    )
    try:
        outcome = experiments.run(args.name, settings)
    except experiments.BackendUnavailable as error:
        print(f"labnet experiment: {error}", file=sys.stderr)
        return 2
    # the lab would not come up (LabError), a run failed, or a program in a lab overran
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"labnet experiment: {args.name} on {args.backend}: {error}", file=sys.stderr)
        return 1
    command = _experiment_command(args.name, args.backend, args.runs, args.every, args.seed)
    written = report.write(outcome, Path(args.out), command)
    if args.json:
        print(written.json.read_text(), end="")
    else:
        print(outcome.summary)
        print()
        for path in written.paths():
            print(f"wrote {path}")
    if written.plot_note is not None:
        print(f"labnet experiment: {written.plot_note}", file=sys.stderr)
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _counts_valid(command: str, args: argparse.Namespace) -> bool:
    if args.runs is not None and args.runs < 1:
        print(f"{command}: --runs must be at least 1", file=sys.stderr)
        return False
    if args.every < 1:
        print(f"{command}: --every must be at least 1", file=sys.stderr)
        return False
    return True


def _experiment_command(name: str, backend: str, runs: int | None, every: int, seed: int) -> str:
    """The ``labnet experiment`` command line that repeats a run."""
    command = f"labnet experiment {name} --backend {backend}"
    command += f" --runs {runs}" if runs is not None else ""
    command += f" --every {every}" if every != 1 else ""
    command += f" --seed {seed}" if seed != 1 else ""
    return command


def report_command(args: argparse.Namespace) -> int:
    """``report``: every experiment with its short defaults (``Experiment.report_runs``, or
    ``--runs``), its files and one ``report.md`` in ``--out``."""
    from pathlib import Path

    from labnet import experiments
    from labnet.experiments import report

    if not _counts_valid("labnet report", args):
        return 2
    directory = Path(args.out)
    entries: list[report.Entry] = []
    for number, (name, experiment) in enumerate(experiments.EXPERIMENTS.items(), 1):
        _progress(f"labnet report: {name} ({number} of {len(experiments.EXPERIMENTS)})")
        runs = args.runs if args.runs is not None else experiment.short_runs(args.backend)
        every = args.every if experiment.sweeps else 1
        command = _experiment_command(name, args.backend, runs, every, args.seed)
        settings = experiments.Settings(
            backend=args.backend,
            runs=runs,
            seed=args.seed,
            progress=_progress,
            every=every,
            lab_prefix=args.lab_prefix,
        )
        try:
            outcome = experiments.run(name, settings)
        except experiments.BackendUnavailable as error:
            print(f"labnet report: {error}", file=sys.stderr)
            entries.append(report.Entry(name, command, skipped=str(error)))
            continue
        # a lab or a run failed, or a program in a lab overran: the report goes on
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"labnet report: {name}: {error}", file=sys.stderr)
            entries.append(report.Entry(name, command, skipped=f"failed: {error}"))
            continue
        written = report.write(outcome, directory, command)
        entries.append(report.Entry(name, command, outcome, written))
    if not any(entry.outcome is not None for entry in entries):
        print(f"labnet report: no experiment runs on the {args.backend} backend", file=sys.stderr)
        return 2
    command = f"labnet report --backend {args.backend} --out {args.out}"
    command += f" --runs {args.runs}" if args.runs is not None else ""
    command += f" --every {args.every}" if args.every != 1 else ""
    command += f" --seed {args.seed}" if args.seed != 1 else ""
    path = report.write_report(entries, directory, command, args.backend)
    print(f"wrote {path}")
    if any(entry.written is not None and entry.written.png is None for entry in entries):
        print(f"labnet report: {report.PLOTS_HINT}", file=sys.stderr)
    return 0


def chart_command(args: argparse.Namespace) -> int:
    """``chart``: the captures named, or a running (or stopped) netns lab's."""
    from pathlib import Path

    from labnet.chart import captures_in, group_key_in, lab_inputs, render, topology_names
    from labnet.netns import LabError, load_topology
    from mip6.chart.read import chart_captures, group_key_of
    from mip6.wire.pcap import CaptureError

    try:
        if args.captures:
            given = [Path(p) for p in args.captures]
            paths = captures_in(given)
            topology = load_topology(args.topology) if args.topology else None
            if args.group_key_file:
                key: bytes | None = group_key_of(args.group_key_file)
            else:
                key = group_key_in(given)
        else:
            paths, topology, key = lab_inputs(args.name)
        names = topology_names(topology) if topology is not None else None
        if not paths:
            raise LabError("no capture to chart")
        drawn = chart_captures(paths, names or Names(), key)
        out = Path(args.out) if args.out else None
        sys.stdout.write(render(drawn, out))
    except (LabError, ConfigError, CaptureError, OSError) as error:
        print(f"labnet chart: {error}", file=sys.stderr)
        return 1
    return 0


def _demo_chart(lab: Any, where: str | None) -> None:
    """``demo --chart FILE``: the simulated run's chart written to FILE."""
    if where is None:
        return
    from pathlib import Path

    from labnet.chart import render, simulated

    sys.stdout.write(render(simulated(lab), Path(where)))


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command: list[str] | None = None
    if words[:1] == ["exec"] and "--" in words:  # options may come before the "--"
        split = words.index("--")
        words, command = words[:split], words[split + 1 :]
    args = build_parser().parse_args(words)
    if command is not None:
        args.argv = command
    if args.command in ("up", "status", "exec", "move", "pcap", "down"):
        return lab_command(args)
    if args.command == "experiment":
        return experiment_command(args)
    if args.command == "report":
        return report_command(args)
    if args.command == "chart":
        return chart_command(args)
    if args.command == "demo":
        if args.scenario == "dserver":
            if args.backend == "netns":
                print(
                    "labnet demo dserver: not available on the netns backend yet "
                    "(run it on the sim backend: labnet demo dserver)",
                    file=sys.stderr,
                )
                return 2
            from labnet import demo_dserver

            played = demo_dserver.run(sys.stdout, seed=args.seed)
            _demo_chart(played.lab, args.chart)
            return 0 if played.ok else 1
        if args.backend == "netns":
            from pathlib import Path

            from labnet import demo_netns
            from labnet.netns import LabError

            try:
                chart = Path(args.chart) if args.chart else None
                return 0 if demo_netns.run(sys.stdout, chart=chart) == 4 else 1
            except (LabError, OSError) as error:
                print(f"labnet demo: {error}", file=sys.stderr)
                return 1
        from labnet import demo

        _demo_chart(demo.run(sys.stdout, seed=args.seed), args.chart)
        return 0
    if args.command == "hub":
        from labnet.hub import ConfigError, load_config, serve

        try:
            config = load_config(args.description)
        except (ConfigError, OSError) as error:
            print(f"labnet hub: {error}", file=sys.stderr)
            return 2
        try:
            serve(config, lambda described: print(json.dumps(described), flush=True))
        except OSError as error:  # an address in use, a TUN device that cannot be made
            print(f"labnet hub: {error}", file=sys.stderr)
            return 1
    elif args.command == "bench":
        from labnet.bench import (
            chart,
            core,
            dserver,
            esp,
            failover,
            hub,
            proxy,
            tcp,
            tcp_lossy,
            tunnel,
            udp,
            wire,
        )

        if args.suite == "tcp-lossy":
            results = tcp_lossy.run(args.bytes)
        elif args.suite == "tunnel-netns":
            results = tunnel.run_netns(args.seconds)
        else:
            suites = {
                "wire": wire,
                "core": core,
                "hub": hub,
                "esp": esp,
                "tcp": tcp,
                "dserver": dserver,
                "failover": failover,
                "proxy": proxy,
                "udp": udp,
                "chart": chart,
                "tunnel": tunnel,
            }
            results = suites[args.suite].run(args.seconds)
        if args.json:
            print(json.dumps(results))
        else:
            for key, value in results.items():
                print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
