"""Capture files to :class:`~mip6.chart.merge.Seen` packets, and to a chart; a member's
configuration to its group key: the I/O edge of the charts.

A file named after a node (``ha.pcap`` for node ``ha``, as the lab hub and the simulator name
their per-link captures) is that node's link; any other file is a vantage point (its packets are
placed by their addresses). Frames that are not IPv6 are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mip6.chart.merge import Seen, merge
from mip6.chart.model import Chart, build
from mip6.chart.names import Names
from mip6.wire.pcap import Ipv6Frame, extract_ipv6, read_capture_file

GROUP_KEY = "group_key"  # the member channel's key in a member's configuration block
INTERFACES = 1 << 32  # more than a pcapng file can describe: capture numbers never collide


@dataclass(slots=True)
class Skipped:
    """Frames of the captures that carried no IPv6 packet."""

    frames: int = 0


def link_of(path: Path, names: Names) -> str | None:
    """The node whose link ``path`` captured, when its name says so."""
    return path.stem if names.knows(path.stem) else None


def read_seen(path: Path, number: int, link: str | None, skipped: Skipped) -> Iterator[Seen]:
    """The IPv6 packets of capture file ``number`` (pcap or pcapng); raises
    :class:`~mip6.wire.pcap.CaptureError` on a broken file and OSError on a missing one. Each
    interface of a pcapng file is a capture of its own (a packet a router forwards is on two),
    numbered ``number * INTERFACES + interface``."""
    for frame in read_capture_file(path):
        extracted = extract_ipv6(frame.link_type, frame.data)
        if isinstance(extracted, Ipv6Frame):
            capture = number * INTERFACES + frame.interface
            yield Seen(frame.timestamp_ns, capture, link, extracted.packet)
        else:
            skipped.frames += 1


def chart_captures(paths: Sequence[Path], names: Names, group_key: bytes | None = None) -> Chart:
    """The chart of ``paths`` merged (each a link's capture when named after a node, else a
    vantage point's); raises CaptureError or OSError as :func:`read_seen` does."""
    skipped = Skipped()
    links = [link_of(path, names) for path in paths]
    captures = [
        read_seen(path, number, link, skipped)
        for number, (path, link) in enumerate(zip(paths, links, strict=True))
    ]
    captured = frozenset(link for link in links if link is not None)
    chart = build(merge(captures, names, captured), names, group_key)
    if skipped.frames:
        note = f"{skipped.frames} frames without an IPv6 packet left out"
        chart = replace(chart, notes=(*chart.notes, note))
    return chart


def group_key_of(path: str) -> bytes:
    """The ``group_key`` of a member's configuration file, read by the daemon's own reader of
    the member's block (the rest of the file is not checked: the namespace and links it names
    may be gone, as after ``labnet down``); ConfigError (file, line, key) or OSError when it
    cannot be had."""
    from mip6.runtime.config import ConfigError, YamlReader, compose, join, read_options
    from mip6.runtime.roles import ROLES

    reader = YamlReader(path)
    top = reader.mapping(compose(Path(path).read_text(encoding="utf-8"), path), "")
    if "role" not in top:
        raise ConfigError(path, None, "role", "missing: not a node's configuration")
    role_node = top["role"][1]
    name = reader.choice(role_node, "role", tuple(ROLES))
    if GROUP_KEY not in ROLES[name].options or name not in top:
        raise reader.fail(role_node, "role", f"{name} is not a member: no {GROUP_KEY}")
    options = read_options(reader, top[name][1], name, ROLES[name].options)
    if GROUP_KEY not in options:
        raise reader.fail(top[name][0], join(name, GROUP_KEY), "missing")
    key: bytes = options[GROUP_KEY]
    return key
