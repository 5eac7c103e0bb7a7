"""Capture files to a chart: a file named after a node is its link, a pcapng file's interfaces
are captures of their own, frames without IPv6 are counted in a note."""

from __future__ import annotations

import struct
from pathlib import Path

from mip6.chart.model import Message
from mip6.chart.names import Names
from mip6.chart.read import chart_captures
from mip6.wire.pcap import LINKTYPE_IPV6, PcapWriter
from tests.chart.packets import HA, M1, M2, binding_update, packet

NAMES = {HA: "ha", M1: "m1", M2: "m2"}


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def pcapng(records: list[tuple[int, int, bytes]], interfaces: int) -> bytes:
    """A pcapng file: ``interfaces`` raw-IPv6 interfaces, ``records`` (interface, microseconds,
    packet) as Enhanced Packet Blocks."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for _ in range(interfaces):
        out += _block(1, struct.pack("<HHI", LINKTYPE_IPV6, 0, 65535))
    for interface, micros, data in records:
        padded = data + bytes(-len(data) % 4)
        header = struct.pack(
            "<IIIII", interface, micros >> 32, micros & 0xFFFFFFFF, len(data), len(data)
        )
        out += _block(6, header + padded)
    return out


def test_pcapng_router_interfaces_one_packet_one_arrow(tmp_path: Path) -> None:
    """A router's capture on both its interfaces sees a forwarded packet twice: one arrow."""
    sent = packet(M1, M2, binding_update(1), hop_limit=64)
    forwarded = packet(M1, M2, binding_update(1), hop_limit=63)
    path = tmp_path / "router.pcapng"
    path.write_bytes(pcapng([(0, 10, sent), (1, 12, forwarded)], interfaces=2))
    chart = chart_captures([path], Names(NAMES))
    (item,) = chart.items
    assert isinstance(item, Message)
    assert (item.sender, item.receiver, item.end_ns - item.start_ns) == ("m1", "m2", 2000)


def test_file_named_after_node_is_its_link(tmp_path: Path) -> None:
    """ha.pcap is ha's link: a packet from m1 to m2 seen there passed through ha."""
    path = tmp_path / "ha.pcap"
    with PcapWriter.create(path) as writer:
        writer.write(packet(M1, M2, binding_update(2)), 1_000)
    (item,) = chart_captures([path], Names(NAMES, ["ha", "m1", "m2"])).items
    assert isinstance(item, Message)
    assert (item.sender, item.receiver, item.via) == ("m1", "m2", ("ha",))


def test_frames_without_ipv6_counted_in_a_note(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcap"
    with PcapWriter.create(path, link_type=1) as writer:  # Ethernet
        writer.write(bytes(12) + b"\x08\x00" + bytes(20), 1_000)  # IPv4
        writer.write(bytes(12) + b"\x86\xdd" + packet(M1, M2, binding_update(3)), 2_000)
    chart = chart_captures([path], Names(NAMES))
    assert len(chart.items) == 1
    assert chart.notes == ("1 frames without an IPv6 packet left out",)
