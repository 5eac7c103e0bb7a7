"""The ``labnet`` command.

``labnet bench wire [--json] [--seconds S]``
    Wire-layer throughput, ours against scapy in the same run (see :mod:`labnet.bench.wire`).

``labnet demo [--seed N]``
    The roaming scenario on the ``sim`` backend (virtual time), with a narrated timeline.

``labnet bench core [--json] [--seconds S]``
    The MIPv6 engines' hot operations (see :mod:`labnet.bench.core`).

``labnet bench hub [--json] [--seconds S]``
    The hub's forwarding rate against a bare Python relay (see :mod:`labnet.bench.hub`).

``labnet bench esp [--json] [--seconds S]``
    ESP protect + verify of 1,400-byte packets, AES-GCM and AES-CBC/HMAC-SHA1-96
    (see :mod:`labnet.bench.esp`).

``labnet hub DESCRIPTION``
    Run a hub from a YAML or JSON description (see :mod:`labnet.hub.config`) until SIGTERM or
    SIGINT; prints one JSON line with its addresses once its sockets are bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labnet", description="the mip6 network lab")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("suite", choices=["wire", "core", "hub", "esp"], help="what to measure")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--seconds", type=float, default=4.0, help="total measuring time")
    demo = commands.add_parser("demo", help="the roaming scenario, narrated (sim backend)")
    demo.add_argument("--seed", type=int, default=1, help="random seed of the simulation")
    hub = commands.add_parser("hub", help="run a hub (link emulation, routing, pcaps)")
    hub.add_argument("description", help="the hub's YAML or JSON description")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from labnet import demo

        demo.run(sys.stdout, seed=args.seed)
        return 0
    if args.command == "hub":
        from labnet.hub import ConfigError, load_config, serve

        try:
            config = load_config(args.description)
        except (ConfigError, OSError) as error:
            print(f"labnet hub: {error}", file=sys.stderr)
            return 2
        serve(config, lambda described: print(json.dumps(described), flush=True))
    elif args.command == "bench":
        from labnet.bench import core, esp, hub, wire

        results = {"wire": wire, "core": core, "hub": hub, "esp": esp}[args.suite].run(args.seconds)
        if args.json:
            print(json.dumps(results))
        else:
            for key, value in results.items():
                print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
