"""``python -m conformance``: run the RFC 3775 conformance suite, or the mutation run.

``python -m conformance run --role cn|ha|mn|all --target sim|lab|interface [--cases PATTERN]
[--junit FILE] [--report FILE.md] [--json] [--jobs N]``
    Run the cases of a role against a target. ``sim``: this project's own engines in labnet's
    sim backend (virtual time). ``lab`` (root): this project's ``mip6 run`` daemons in labnet
    netns labs, one per case, the tester on the hub's link of an external node (see
    :mod:`conformance.lab`). ``interface`` (root): any implementation on a LAN, the tester
    sending and receiving Ethernet frames on ``--interface IFNAME`` (repeat it for several
    instances of the IUT, one per interface, cases run on them at once); ``--iut-reset CMD``
    restarts the IUT before each case, ``--iut-control SOCKET`` (a ``mip6 run`` daemon) or
    ``--iut-action ACTION=CMD`` makes it act, ``--stale-wait S`` is the IUT's nonce lifetime
    (see :mod:`conformance.cable`). ``--cases`` takes comma-separated glob patterns or
    substrings of case ids (``CN-BU-13*,WRAP``). Exit status 1 unless every selected case
    passed.

``python -m conformance mutate [--json]``
    Start our roles with injected faults and show which case catches each. Exit status 1 if
    a fault goes uncaught or a case fails against the correct engines.

``python -m conformance list [--role ROLE]``
    The cases: id, section, level, title.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from conformance import ALL_CASES
from conformance.report import summary, to_json, to_junit, to_markdown
from conformance.runner import PASS, SimTarget, Target, run_cases, select

TARGETS = ("sim", "lab", "interface")
ACTIONS = ("move", "route_optimize", "register")


def _interface_target(args: argparse.Namespace) -> Target:
    from conformance.cable import InterfaceTarget

    if os.geteuid() != 0:
        raise SystemExit("conformance: --target interface needs root (raw Ethernet frames)")
    if not args.interface:
        raise SystemExit("conformance: --target interface needs --interface IFNAME")
    actions: dict[str, str] = {}
    for item in args.iut_action or ():
        action, _, command = item.partition("=")
        if action not in ACTIONS or not command:
            raise SystemExit(f"conformance: --iut-action {item!r}: ACTION=COMMAND, ACTION in "
                             f"{', '.join(ACTIONS)}")  # fmt: skip
        actions[action] = command
    target = InterfaceTarget(
        args.interface,
        reset=args.iut_reset,
        control=args.iut_control,
        actions=actions,
        stale_wait=args.stale_wait,
    )
    for interface in args.interface:
        print(f"conformance: {target.describe(interface)}", file=sys.stderr)
    if args.jobs is not None:
        target.jobs = min(args.jobs, target.jobs)  # one case per interface at a time
    return target


def _target(spec: str, jobs: int | None) -> Target:
    target: Target
    if spec == "sim":
        target = SimTarget()
    elif spec == "lab":
        from conformance.lab import LabTarget

        if os.geteuid() != 0:
            raise SystemExit("conformance: --target lab needs root (network namespaces, TUN)")
        target = LabTarget()
    else:
        raise SystemExit(
            f"conformance: unknown target {spec!r}: this build has {', '.join(TARGETS)}"
        )
    if jobs is not None:
        target.jobs = jobs
    return target


def run(args: argparse.Namespace) -> int:
    if args.target == "interface":
        target = _interface_target(args)
    else:
        target = _target(args.target, args.jobs)
    cases = select(ALL_CASES, args.role, args.cases)
    if not cases:
        print("conformance: no case matches", file=sys.stderr)
        return 2
    results = run_cases(cases, target)
    roles = list(dict.fromkeys(c.role for c in cases))
    if args.report:
        notes = {role: target.notes(role) for role in roles}
        with open(args.report, "w", encoding="utf-8") as out:
            out.write(to_markdown(results, target.name, notes))
    if args.junit:
        with open(args.junit, "w", encoding="utf-8") as out:
            out.write(to_junit(results, target.name))
    if args.json:
        print(to_json(results))
    else:
        for r in results:
            print(f"{r.verdict.upper():<13} {r.case.id:<20} {r.case.title}")
            if r.verdict != PASS:
                for finding in r.findings:
                    print(f"{'':14}{finding}")
        s = summary(results)
        per_role = ", ".join(f"{k}: {v['passed']}/{v['cases']}" for k, v in s["roles"].items())
        print(f"{s['passed']}/{s['cases']} passed ({per_role})")
    return 0 if all(r.verdict == PASS for r in results) else 1


def mutate(args: argparse.Namespace) -> int:
    from conformance.mutate import mutate as run_mutation

    by_role: dict[str, list] = {}
    for case in ALL_CASES:
        by_role.setdefault(case.role, []).append(case)
    baseline, results = run_mutation(by_role)
    caught = sum(r.caught for r in results)
    if args.json:
        print(
            json.dumps(
                {
                    "faults": [
                        {
                            "name": r.fault.name,
                            "role": r.fault.role,
                            "description": r.fault.description,
                            "caught": r.caught,
                            "caught_by": r.caught_by,
                        }
                        for r in results
                    ],
                    "caught": caught,
                    "total": len(results),
                    "baseline_failures": baseline,
                },
                indent=2,
            )
        )
    else:
        for r in results:
            verdict = "CAUGHT " if r.caught else "MISSED "
            print(f"{verdict} {r.fault.name:<42} by {', '.join(r.caught_by) or '-'}")
        print(f"{caught}/{len(results)} faults caught")
        if baseline:
            print(f"cases failing against the correct engines: {', '.join(baseline)}")
    return 0 if caught == len(results) and not baseline else 1


def list_cases(args: argparse.Namespace) -> int:
    for c in select(ALL_CASES, args.role, None):
        print(f"{c.id:<20} {c.rfc_section:<18} {c.level:<6} {c.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("run", help="run cases against a target")
    r.add_argument("--role", choices=["cn", "ha", "mn", "all"], required=True)
    r.add_argument("--target", required=True, choices=TARGETS, help="sim, lab or interface")
    r.add_argument(
        "--jobs",
        type=int,
        help="cases run at once (default: 1 on sim, 8 on lab, one per interface on interface)",
    )
    cable = r.add_argument_group("--target interface (any implementation on a LAN)")
    cable.add_argument(
        "--interface",
        action="append",
        metavar="IFNAME",
        help="the tester's interface, on the IUT's LAN segment (repeat: one IUT per interface)",
    )
    cable.add_argument(
        "--iut-reset",
        metavar="CMD",
        help="run before each case to start a fresh IUT; {interface}, {role}, {config} (the "
        "case's IUT configuration as JSON) are replaced",
    )
    cable.add_argument(
        "--iut-control",
        metavar="SOCKET",
        help="a mip6 daemon's control socket ({interface} replaced) for the IUT's actions",
    )
    cable.add_argument(
        "--iut-action",
        action="append",
        metavar="ACTION=CMD",
        help="a command for an IUT action (move, route_optimize, register); {address} and "
        "{interface} replaced. Without one (and no --iut-control) the tester asks on the terminal",
    )
    cable.add_argument(
        "--stale-wait",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds until the IUT has expired a nonce: its MAX_NONCE_LIFETIME plus a nonce "
        "interval (default 300, RFC 3775 section 12)",
    )
    r.add_argument("--cases", help="comma-separated glob patterns or substrings of case ids")
    r.add_argument("--junit", metavar="FILE")
    r.add_argument("--report", metavar="FILE.md")
    r.add_argument("--json", action="store_true")
    m = commands.add_parser("mutate", help="show each injected fault is caught by a case")
    m.add_argument("--json", action="store_true")
    ls = commands.add_parser("list", help="list the cases")
    ls.add_argument("--role", choices=["cn", "ha", "mn", "all"], default="all")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "mutate":
        return mutate(args)
    return list_cases(args)


if __name__ == "__main__":
    sys.exit(main())
