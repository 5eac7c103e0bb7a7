"""Hops to a message sequence chart: a :class:`Message` per signalling packet, and the data
between two signalling packets collapsed into one :class:`Run` per pair of lifelines and kind
of data ("TCP route-optimized: 42 segments, 61.0 kB"). Sans-I/O: hops in, a value out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mip6.chart.channel import ChannelFollower
from mip6.chart.heartbeat import HeartbeatLabeler
from mip6.chart.label import Kind, Label, label, tcp_segment, udp_datagram
from mip6.chart.merge import Hop
from mip6.chart.names import Names
from mip6.dissect import dissect
from mip6.wire.tcp import TcpFlags

_CONTROL_FLAGS = TcpFlags.SYN | TcpFlags.FIN | TcpFlags.RST
CHANNEL_DATA = "member channel"  # a run of channel segments that complete no record
LOST = " (lost)"  # after a message that left its sender and never reached its receiver


@dataclass(frozen=True, slots=True)
class Message:
    """One signalling packet: an arrow from ``sender`` to ``receiver``."""

    start_ns: int
    end_ns: int
    sender: str
    receiver: str
    text: str
    kind: Kind
    via: tuple[str, ...] = ()


@dataclass(slots=True)
class Flow:
    packets: int = 0
    size: int = 0  # payload bytes
    lost: int = 0  # packets that never arrived (merge.Hop.lost)


@dataclass(slots=True)
class Run:
    """Data packets between ``first`` and ``second`` (``first`` sent the earliest one), from
    ``start_ns`` to ``end_ns``, with no signalling packet in between."""

    start_ns: int
    end_ns: int
    first: str
    second: str
    name: str
    unit: str
    only_text: str  # the label of the run's packet, when it has one packet
    flows: dict[str, Flow] = field(default_factory=dict)  # by sender

    @property
    def both_ways(self) -> bool:
        return len(self.flows) == 2

    @property
    def packets(self) -> int:
        return sum(flow.packets for flow in self.flows.values())

    def flow_text(self, sender: str) -> str:
        flow = self.flows[sender]
        unit = self.unit.removesuffix("s") if flow.packets == 1 else self.unit
        lost = f" ({flow.lost} lost)" if flow.lost else ""
        return f"{flow.packets} {unit}, {size_text(flow.size)}{lost}"

    @property
    def text(self) -> str:
        if self.packets == 1 and self.only_text:
            return self.only_text + (LOST if self.flows[self.first].lost else "")
        parts = [f"{self.name}: {self.flow_text(self.first)}"]
        if self.both_ways:
            parts.append(f"back {self.flow_text(self.second)}")
        return "; ".join(parts)


Item = Message | Run


@dataclass(frozen=True, slots=True)
class Chart:
    lifelines: tuple[str, ...]
    items: tuple[Item, ...]
    start_ns: int  # time 0 of the chart: its first packet
    notes: tuple[str, ...] = ()


def size_text(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.2f} MB"


def _labels(hop: Hop, channels: ChannelFollower, heartbeats: HeartbeatLabeler) -> tuple[Label, int]:
    """The hop's label, and how many member-channel frames in it were left unopened."""
    dissection = dissect(hop.data)
    datagram = udp_datagram(dissection)
    if datagram is not None:
        beat = heartbeats.datagram(datagram[0].source, datagram[1])
        if beat is not None:
            return beat, 0
    found = tcp_segment(dissection)
    if found is not None:
        labels = channels.segment(*found)
        if labels is not None and not found[1].flags & _CONTROL_FLAGS:
            signalling = [item for item in labels if item.kind is not Kind.DATA]
            if signalling:
                kind = (
                    Kind.CONTROL
                    if all(i.kind is Kind.CONTROL for i in signalling)
                    else Kind.CHANNEL
                )
                text = ", ".join(item.text for item in signalling)
                sealed = sum(item.sealed for item in signalling)
                return Label(kind, text, sealed=sealed > 0), sealed
            if labels:
                return labels[0], 0
            return Label(Kind.DATA, "", CHANNEL_DATA, len(found[1].payload), "segments"), 0
    return label(dissection), 0


def build(hops: Iterable[Hop], names: Names, group_key: bytes | None = None) -> Chart:
    channels = ChannelFollower(names, group_key)
    heartbeats = HeartbeatLabeler(group_key)
    items: list[Item] = []
    open_runs: dict[tuple[frozenset[str], str], Run] = {}
    seen: dict[str, None] = {}
    start_ns: int | None = None
    encrypted = 0

    def close_runs() -> None:
        items.extend(sorted(open_runs.values(), key=lambda run: run.start_ns))
        open_runs.clear()

    for hop in hops:
        start_ns = hop.start_ns if start_ns is None else start_ns
        for lifeline in (hop.sender, *hop.via, hop.receiver):
            seen.setdefault(lifeline)
        found, sealed = _labels(hop, channels, heartbeats)
        encrypted += sealed
        if found.kind is not Kind.DATA:
            close_runs()
            items.append(
                Message(
                    hop.start_ns,
                    hop.end_ns,
                    hop.sender,
                    hop.receiver,
                    found.text + (LOST if hop.lost else ""),
                    found.kind,
                    hop.via,
                )
            )
            continue
        key = (frozenset((hop.sender, hop.receiver)), found.run)
        run = open_runs.get(key)
        if run is None:
            run = open_runs[key] = Run(
                hop.start_ns,
                hop.end_ns,
                hop.sender,
                hop.receiver,
                found.run,
                found.unit,
                found.text,
            )
        flow = run.flows.setdefault(hop.sender, Flow())
        flow.packets += 1
        flow.size += found.size
        flow.lost += hop.lost
        run.end_ns = max(run.end_ns, hop.end_ns)
    close_runs()
    ordered = [name for name in names.order if name in seen]
    ordered += [name for name in seen if name not in ordered]
    notes = []
    if encrypted:
        notes.append(
            f"{encrypted} member-channel frames shown encrypted: the channel is AES-GCM; "
            "give the group key to name their messages"
        )
    return Chart(tuple(ordered), tuple(items), start_ns or 0, tuple(notes))
