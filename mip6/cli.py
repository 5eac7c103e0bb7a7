"""The ``mip6`` command. Subcommands:

``mip6 decode [CAPTURE] [--hex HEX ...] [--json] [--count N]``
    Decode a pcap or pcapng capture (link types Ethernet, raw IP, raw IPv6, Linux cooked) or
    hex bytes, one line per packet in the spirit of tcpdump, or one JSON object per packet with
    the whole header chain. With no capture and no ``--hex`` it decodes the sample capture that
    ships with the package: a Mobile IPv6 story from home registration to route optimization.

``mip6 decode --chart [CAPTURE...] [--svg FILE] [--name ADDRESS=NAME ...] [--group-key-file F]``
    A message sequence chart of the captures merged (:mod:`mip6.chart`), as text, and as SVG in
    FILE with ``--svg``: a lifeline per address (or per ``--name``), every Mobile IPv6 message
    labelled, data collapsed into runs. A capture named ``NAME.pcap`` after a ``--name`` is that
    node's link (the lab hub's per-link captures). ``--group-key-file``: a distributed-server
    member's configuration, whose ``group_key`` opens the member channel's frames.

``mip6 run CONFIG.yaml [-v]``
    Run a node (correspondent, home agent, mobile node or distributed-server member) on TUN
    devices or UDP links to a labnet hub, as :mod:`mip6.runtime.config` describes; invalid
    configuration is refused with the file, line and key at fault.

``mip6 show bcache|bul|rr|nonce|stats|tcp|clients|members|handoffs|relay|udp [--json] --control S``
    Print a running node's binding cache, binding update list, return routability state,
    nonce table, counters, or (host mode) the TCP connections of its host stack; a
    distributed-server member's clients (who holds which, binding sequence, frozen
    connections), members (channels), handoffs (each one's phases, with times), the contact
    node's HoTI/HoT relay table and its UDP services (per service: flows, requests, answers,
    datagrams dropped as not its own or during a handoff).

``mip6 ctl --control SOCKET move ADDRESS|home`` / ``route-optimize ADDRESS`` / ``register``
    Tell a running mobile node it moved, to start route optimization, or to register again.

``mip6 ctl --control SOCKET handoff CLIENT [MEMBER]`` / ``leave`` / ``drain``
    Have a distributed-server member hand a client (all its connections) to MEMBER, or to
    another member its policy chooses; or (dynamic membership) leave the group gracefully,
    its clients handed to other members first. ``drain``: a client farm starts no more
    fetches, and those under way finish.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from ipaddress import IPv6Address
from pathlib import Path
from typing import TextIO

from mip6.chart.names import Names
from mip6.core.show import WHATS
from mip6.dissect import dissect, dissection_json, summary_line
from mip6.runtime.control import control_request
from mip6.wire.pcap import CaptureError, Ipv6Frame, extract_ipv6, read_capture


def _hex_packets(values: Sequence[str]) -> Iterator[tuple[int | None, bytes | str]]:
    for value in values:
        cleaned = "".join(value.replace(":", " ").split())
        try:
            yield None, bytes.fromhex(cleaned)
        except ValueError:
            yield None, f"not hex: {value[:40]!r}"


def _capture_packets(stream: object) -> Iterator[tuple[int | None, bytes | str]]:
    for frame in read_capture(stream):  # type: ignore[arg-type]
        extracted = extract_ipv6(frame.link_type, frame.data)
        if isinstance(extracted, Ipv6Frame):
            yield frame.timestamp_ns, extracted.packet
        else:
            yield frame.timestamp_ns, extracted.reason


def _timestamp(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return f"{moment:%H:%M:%S}.{ns % 1_000_000_000 // 1000:06d} "


def decode(args: argparse.Namespace, out: TextIO) -> int:
    if args.hex:
        packets: Iterator[tuple[int | None, bytes | str]] = _hex_packets(args.hex)
        source = None
    elif args.capture:
        source = open(args.capture[0], "rb")
        packets = _capture_packets(source)
    else:
        source = resources.files("mip6").joinpath("data/sample.pcap").open("rb")
        packets = _capture_packets(source)
    malformed = 0
    try:
        for number, (timestamp, item) in enumerate(packets, 1):
            if args.count and number > args.count:
                break
            if isinstance(item, str):
                record: dict[str, object] = {"frame": number, "not_ipv6": item}
                line = f"[not decoded: {item}]"
            else:
                dissection = dissect(item)
                malformed += dissection.error is not None
                record = {"frame": number, **dissection_json(dissection)}
                line = summary_line(dissection)
            if timestamp is not None:
                record["timestamp_ns"] = timestamp
                line = _timestamp(timestamp) + line
            out.write((json.dumps(record) if args.json else line) + "\n")
    except CaptureError as error:
        print(f"mip6 decode: {error}", file=sys.stderr)
        return 1
    finally:
        if source is not None:
            source.close()
    return 0


def _names(values: Sequence[str]) -> Names | str:
    """``--name ADDRESS=NAME`` values as lifeline names, or what is wrong with one."""
    known: dict[IPv6Address, str] = {}
    for value in values:
        address, sep, name = value.partition("=")
        try:
            known[IPv6Address(address)] = name
        except ValueError:
            return f"--name {value!r}: not ADDRESS=NAME with an IPv6 address"
        if not sep or not name:
            return f"--name {value!r}: not ADDRESS=NAME"
    return Names(known, list(dict.fromkeys(known.values())))


def chart(args: argparse.Namespace, out: TextIO) -> int:
    from mip6.chart import svg, text
    from mip6.chart.read import chart_captures, group_key_of
    from mip6.runtime.config import ConfigError

    if args.hex or args.json or args.count:
        print(
            "mip6 decode: --chart draws whole captures (no --hex, --json or --count)",
            file=sys.stderr,
        )
        return 2
    names = _names(args.name or [])
    if isinstance(names, str):
        print(f"mip6 decode: {names}", file=sys.stderr)
        return 2
    try:
        key = group_key_of(args.group_key_file) if args.group_key_file else None
        if args.capture:
            drawn = chart_captures([Path(p) for p in args.capture], names, key)
        else:
            with resources.as_file(resources.files("mip6").joinpath("data/sample.pcap")) as sample:
                drawn = chart_captures([sample], names, key)
    except (CaptureError, ConfigError, OSError) as error:
        print(f"mip6 decode: {error}", file=sys.stderr)
        return 1
    out.write(text.render(drawn))
    if args.svg:
        Path(args.svg).write_text(svg.render(drawn))
    return 0


def _quiet_pyroute2(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.INFO or not record.name.startswith("pyroute2")


def run(args: argparse.Namespace) -> int:
    from mip6.runtime.config import ConfigError, load
    from mip6.runtime.daemon import run_daemon

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # -v is for our decisions; pyroute2's debug log is every netlink message, raw. A filter on
    # the handler, since importing pyroute2 resets its loggers' levels
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_pyroute2)
    try:
        config = load(args.config)
    except (ConfigError, OSError) as error:
        print(f"mip6: {error}", file=sys.stderr)
        return 2
    run_daemon(config)
    return 0


def show(args: argparse.Namespace, out: TextIO) -> int:
    from mip6.runtime.state import format_rows

    try:
        reply = control_request(args.control, {"show": args.what})
    except OSError as error:
        print(f"mip6 show: cannot reach {args.control}: {error}", file=sys.stderr)
        return 1
    if "error" in reply:
        print(f"mip6 show: {reply['error']}", file=sys.stderr)
        return 1
    out.write((json.dumps(reply) if args.json else format_rows(reply)) + "\n")
    return 0


def ctl(args: argparse.Namespace) -> int:
    if args.action == "move":
        request: dict[str, object] = {"move": None if args.argument == "home" else args.argument}
    elif args.action == "route-optimize":
        request = {"route_optimize": args.argument}
    elif args.action == "handoff":
        if args.argument is None:
            print("mip6 ctl handoff: which client?", file=sys.stderr)
            return 2
        request = {"handoff": [args.argument, args.member]}
    elif args.action == "leave":
        request = {"leave": True}
    elif args.action == "drain":
        request = {"drain": True}
    else:
        request = {"register": True}
    try:
        reply = control_request(args.control, request)
    except OSError as error:
        print(f"mip6 ctl: cannot reach {args.control}: {error}", file=sys.stderr)
        return 1
    if "error" in reply:
        print(f"mip6 ctl: {reply['error']}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mip6", description="Userspace Mobile IPv6 (RFC 3775)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("decode", help="decode IPv6/MIPv6 packets from a capture or hex")
    p.add_argument(
        "capture", nargs="*", help="pcap or pcapng file (default: the sample); --chart: several"
    )
    p.add_argument("--hex", action="append", metavar="HEX", help="one packet as hex (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per packet")
    p.add_argument("--count", "-c", type=int, default=0, help="stop after N packets")
    p.add_argument("--chart", action="store_true", help="a message sequence chart of the captures")
    p.add_argument("--svg", metavar="FILE", help="--chart: also write it as SVG to FILE")
    p.add_argument(
        "--name", action="append", metavar="ADDRESS=NAME", help="--chart: a lifeline's name"
    )
    p.add_argument(
        "--group-key-file",
        metavar="CONFIG",
        help="--chart: a member's configuration, to open the member channel with its group_key",
    )
    r = commands.add_parser("run", help="run a node from its YAML configuration")
    r.add_argument("config", help="the node's YAML configuration")
    r.add_argument("-v", "--verbose", action="store_true", help="log every decision")
    sh = commands.add_parser("show", help="print a running node's tables")
    sh.add_argument("what", choices=WHATS)
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--control", required=True, help="the node's control socket")
    c = commands.add_parser("ctl", help="tell a running node what happened or what to do")
    c.add_argument("--control", required=True, help="the node's control socket")
    c.add_argument(
        "action", choices=["move", "route-optimize", "register", "handoff", "leave", "drain"]
    )
    c.add_argument("argument", nargs="?", help="care-of address (or 'home'), correspondent, client")
    c.add_argument("member", nargs="?", help="handoff: the member to take the client")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decode":
        if args.chart or args.svg:
            return chart(args, sys.stdout)
        if len(args.capture) > 1:
            print("mip6 decode: one capture at a time (several only with --chart)", file=sys.stderr)
            return 2
        try:
            return decode(args, sys.stdout)
        except BrokenPipeError:  # `mip6 decode | head` is normal use
            return 0
    if args.command == "run":
        return run(args)
    if args.command == "show":
        return show(args, sys.stdout)
    if args.command == "ctl":
        return ctl(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
