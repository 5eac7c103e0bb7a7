"""The ``mip6`` command. Subcommands:

``mip6 decode [CAPTURE] [--hex HEX ...] [--json] [--count N]``
    Decode a pcap or pcapng capture (link types Ethernet, raw IP, raw IPv6, Linux cooked) or
    hex bytes, one line per packet in the spirit of tcpdump, or one JSON object per packet with
    the whole header chain. With no capture and no ``--hex`` it decodes the sample capture that
    ships with the package: a Mobile IPv6 story from home registration to route optimization.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import TextIO

from mip6.dissect import dissect, dissection_json, summary_line
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
        source = open(args.capture, "rb")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mip6", description="Userspace Mobile IPv6 (RFC 3775)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("decode", help="decode IPv6/MIPv6 packets from a capture or hex")
    p.add_argument("capture", nargs="?", help="pcap or pcapng file (default: the sample)")
    p.add_argument("--hex", action="append", metavar="HEX", help="one packet as hex (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per packet")
    p.add_argument("--count", "-c", type=int, default=0, help="stop after N packets")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decode":
        try:
            return decode(args, sys.stdout)
        except BrokenPipeError:  # `mip6 decode | head` is normal use
            return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
