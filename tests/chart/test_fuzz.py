"""Whatever a capture holds, a chart is drawn: no packet, however cut or garbled, and no TCP
stream, however shaped, makes the merge, the labels, the member-channel follower or the
renderings raise."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.chart import svg, text
from mip6.chart.merge import Seen, merge
from mip6.chart.model import build
from mip6.chart.names import Names
from mip6.wire import mobility as mh
from mip6.wire.esp import EspPacket
from mip6.wire.icmpv6 import EchoRequest
from mip6.wire.ipv6 import Ipv6Packet, NoNextHeader, Payload
from mip6.wire.tcp import TcpFlags, TcpSegment
from mip6.wire.udp import UdpDatagram
from tests.chart.packets import M1, M2, binding_update, packet, segment

TEMPLATES = [
    packet(M1, M2, binding_update(1)),
    packet(M1, M2, Ipv6Packet(source=M2, destination=M1, payload=binding_update(2))),
    segment(M1, M2, (40000, 7171), 0, flags=TcpFlags.SYN),
    segment(M1, M2, (40000, 7171), 1, b"\x01\x01\x00\x00" + M1.packed + bytes(64)),
]


PAYLOADS = [
    binding_update(3),
    mh.BindingAcknowledgement(status=136, sequence=3).aligned(),
    mh.HomeTestInit(home_init_cookie=bytes(8)).aligned(),
    mh.BindingError(status=1, home_address=M1).aligned(),
    mh.BindingRefreshRequest().aligned(),
    EchoRequest(identifier=1, sequence=1),
    EspPacket(spi=0x100, sequence_number=1, data=bytes(24)),
    UdpDatagram(source_port=1, destination_port=7, payload=b"x"),
    TcpSegment(source_port=1, destination_port=7171, flags=TcpFlags.RST),
    NoNextHeader(),
]


@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    """A valid packet of any kind, in up to three tunnels."""
    inner: Payload = draw(st.sampled_from(PAYLOADS))
    for _ in range(draw(st.integers(0, 3))):
        inner = Ipv6Packet(source=M2, destination=M1, payload=inner)
    return packet(M1, M2, inner)


@st.composite
def garbled(draw: st.DrawFn) -> bytes:
    """A template packet with bytes flipped, cut or extended, or random bytes."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=120))
    if choice == 1:
        return draw(well_formed())
    data = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]) + draw(st.binary(max_size=8))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**10),
            st.integers(0, 2),
            st.sampled_from(["m1", "m2", None]),
            garbled(),
        ),
        max_size=30,
    )
)
def test_any_packets_chart_without_raising(
    records: list[tuple[int, int, str | None, bytes]],
) -> None:
    captures: list[list[Seen]] = [[], [], []]
    for time_ns, capture, link, data in sorted(records, key=lambda r: r[0]):
        captures[capture].append(Seen(time_ns, capture, link, data))
    names = Names({M1: "m1", M2: "m2"}, ["m1", "m2"])
    chart = build(merge(captures, names), names, group_key=bytes(32))
    text.render(chart)
    ET.fromstring(svg.render(chart).split("\n", 1)[1])
