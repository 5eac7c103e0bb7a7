"""Capture files to :class:`~mip6.chart.merge.Seen` packets: the I/O edge of the charts.

A file named after a node (``ha.pcap`` for node ``ha``, as the lab hub and the simulator name
their per-link captures) is that node's link; any other file is a vantage point (its packets are
placed by their addresses). Frames that are not IPv6 are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mip6.chart.merge import Seen
from mip6.chart.names import Names
from mip6.wire.pcap import Ipv6Frame, extract_ipv6, read_capture_file


@dataclass(slots=True)
class Skipped:
    """Frames of the captures that carried no IPv6 packet."""

    frames: int = 0


def link_of(path: Path, names: Names) -> str | None:
    """The node whose link ``path`` captured, when its name says so."""
    return path.stem if names.knows(path.stem) else None


def read_seen(path: Path, link: str | None, skipped: Skipped) -> Iterator[Seen]:
    """The IPv6 packets of one capture (pcap or pcapng); raises
    :class:`~mip6.wire.pcap.CaptureError` on a broken file and OSError on a missing one."""
    for frame in read_capture_file(path):
        extracted = extract_ipv6(frame.link_type, frame.data)
        if isinstance(extracted, Ipv6Frame):
            yield Seen(frame.timestamp_ns, link, extracted.packet)
        else:
            skipped.frames += 1
