"""The simulator's packets as per-link captures, the files the netns backend's hub writes
(``pcap/NODE.pcap``, raw IPv6): a packet is recorded on its sender's link when it is sent and
on its receiver's link when it arrives, so ``labnet chart`` reads a simulated run and a real one
alike. Virtual time 0 is written as :data:`EPOCH_NS` (pcap times are wall-clock times).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from mip6.runtime.memory import Sent
from mip6.wire.pcap import PcapWriter

EPOCH_NS: Final = 1_700_000_000 * 1_000_000_000
NANOSECONDS: Final = 1_000_000_000


def _ns(seconds: float) -> int:
    return EPOCH_NS + round(seconds * NANOSECONDS)


def write_link_captures(trace: Iterable[Sent], directory: Path) -> dict[str, Path]:
    """One nanosecond pcap per node that sent or received a packet, in ``directory``; returns
    each node's file. A packet lost on the way is on its sender's link only."""
    records: dict[str, list[tuple[int, bytes]]] = {}
    for sent in trace:
        records.setdefault(sent.sender, []).append((_ns(sent.time), sent.data))
        if sent.receiver is not None and sent.arrives is not None:
            records.setdefault(sent.receiver, []).append((_ns(sent.arrives), sent.data))
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for node, packets in records.items():
        paths[node] = path = directory / f"{node}.pcap"
        packets.sort(key=lambda record: record[0])  # arrivals interleave by latency; stable
        with PcapWriter.create(path, nanosecond=True) as writer:
            for timestamp_ns, data in packets:
                writer.write(data, timestamp_ns)
    return paths
