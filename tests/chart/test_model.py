"""Hops to a chart: labels of Mobile IPv6 messages, runs of data collapsed between signalling,
and the two renderings."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mip6.chart import svg, text
from mip6.chart.label import Kind
from mip6.chart.merge import Hop
from mip6.chart.model import Message, Run, build
from mip6.chart.names import Names
from mip6.wire import mobility as mh
from mip6.wire.icmpv6 import EchoRequest
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.tcp import TcpFlags
from tests.chart.packets import CLIENT, CONTACT, HA, M1, binding_update, packet, segment

NS = "{http://www.w3.org/2000/svg}"
PORTS = (80, 50000)


def hop(at: int, sender: str, receiver: str, data: bytes) -> Hop:
    return Hop(at, at + 10_000_000, sender, receiver, data)


def data(at: int, size: int, sender: str = "m1", receiver: str = "client") -> Hop:
    source, destination = (M1, CLIENT) if sender == "m1" else (CLIENT, M1)
    ports = PORTS if sender == "m1" else PORTS[::-1]
    return hop(at, sender, receiver, segment(source, destination, ports, at, b"x" * size))


def names() -> Names:
    return Names({HA: "ha", M1: "m1", CLIENT: "client"}, ["ha", "m1", "client"])


def story() -> list[Hop]:
    home_test_init = mh.HomeTestInit(home_init_cookie=bytes.fromhex("0102030405060708"))
    tunnelled = Ipv6Packet(source=CONTACT, destination=CLIENT, payload=home_test_init.aligned())
    answer = mh.BindingAcknowledgement(status=0, sequence=7, lifetime_units_4s=105).aligned()
    return [
        hop(0, "m1", "ha", packet(M1, HA, binding_update(7))),
        hop(10, "ha", "m1", packet(HA, M1, answer)),
        data(20, 1000),
        data(30, 0, "client", "m1"),
        data(40, 1400),
        hop(50, "m1", "ha", packet(M1, HA, tunnelled)),
        data(60, 500),
        hop(70, "client", "m1", segment(CLIENT, M1, PORTS[::-1], 1, flags=TcpFlags.FIN)),
        hop(80, "client", "m1", packet(CLIENT, M1, EchoRequest(identifier=1, sequence=3))),
    ]


def test_story_messages_and_runs_in_order() -> None:
    chart = build(story(), names())
    assert chart.lifelines == ("ha", "m1", "client")
    shown = [
        (type(item).__name__, item.text, getattr(item, "kind", Kind.DATA)) for item in chart.items
    ]
    assert shown == [
        ("Message", "BU seq 7 lifetime 420s A H", Kind.MOBILITY),
        ("Message", "BA 0 accepted seq 7 lifetime 420s", Kind.MOBILITY),
        ("Run", "TCP: 2 segments, 2.4 kB; back 1 segment, 0 B", Kind.DATA),
        ("Message", "tunnel: HoTI cookie 01020304", Kind.MOBILITY),
        ("Run", "TCP: 1 segment, 500 B", Kind.DATA),
        ("Message", "TCP FIN 50000 > 80", Kind.CONTROL),
        ("Run", "ICMP6 echo request seq 3", Kind.DATA),
    ]


def test_run_spans_first_to_last_packet() -> None:
    run = build(story(), names()).items[2]
    assert isinstance(run, Run)
    assert (run.start_ns, run.end_ns, run.first, run.second) == (
        20,
        40 + 10_000_000,
        "m1",
        "client",
    )
    assert run.both_ways


def test_binding_update_delete_and_error_statuses_named() -> None:
    delete = packet(M1, HA, binding_update(8, lifetime_s=0))
    refused = mh.BindingAcknowledgement(status=135, sequence=8).aligned()
    chart = build(
        [hop(0, "m1", "ha", delete), hop(1, "ha", "m1", packet(HA, M1, refused))], names()
    )
    assert [item.text for item in chart.items] == [
        "BU seq 8 lifetime 0s (delete) A H",
        "BA 135 sequence number out of window seq 8 lifetime 0s",
    ]


def test_malformed_packet_is_an_arrow_saying_so() -> None:
    broken = bytearray(packet(M1, HA, binding_update(9)))
    broken[44] ^= 0xFF  # the Mobility Header checksum
    (item,) = build([hop(0, "m1", "ha", bytes(broken))], names()).items
    assert isinstance(item, Message) and item.kind is Kind.CONTROL
    assert item.text.startswith("malformed: ")


def test_text_rows_arrows_point_from_sender() -> None:
    rendered = text.render(build(story(), names()))
    lines = rendered.splitlines()
    assert lines[0].split() == ["ha", "m1", "client"]
    bu, ba = lines[1], lines[2]
    assert "|<----------|" in bu and bu.endswith("BU seq 7 lifetime 420s A H")
    assert "|---------->|" in ba
    assert "|<=========>|" in lines[3]  # data both ways


def test_text_names_too_long_for_a_column_listed_whole() -> None:
    bu = packet(M1, HA, binding_update(7))
    chart = build([hop(0, str(M1), str(HA), bu)], Names())  # no names: lifelines are addresses
    lines = text.render(chart).splitlines()
    assert lines[0] == "lifelines: 2001:db8:10::1 | 2001:db8:1::1"
    assert lines[1].split() == ["2001:db8:10", "2001:db8:1:"]


def test_svg_well_formed_lifelines_and_labels() -> None:
    chart = build(story(), names())
    root = ET.fromstring(svg.render(chart).split("\n", 1)[1])
    assert root.tag == f"{NS}svg"
    lifelines = root.find(f"{NS}g[@class='lifelines']")
    assert lifelines is not None
    assert [t.text for t in lifelines.iter(f"{NS}text")] == ["ha", "m1", "client"]
    items = root.findall(f"{NS}g[@class='items']/{NS}g")
    assert len(items) == len(chart.items)
    labels = [group.findall(f"{NS}text")[-1].text for group in items]
    assert labels == [item.text for item in chart.items]
    # an arrow leaves its sender's lifeline: the BU from m1 (x 355) to ha (x 185)
    line = items[0].find(f"{NS}line")
    assert line is not None and float(line.get("x1", 0)) > float(line.get("x2", 0))


def test_svg_time_runs_down() -> None:
    root = ET.fromstring(svg.render(build(story(), names())).split("\n", 1)[1])
    ys = [
        float(line.get("y1", 0))
        for line in root.iter(f"{NS}line")
        if line.get("marker-end", "").startswith("url(#head-")
    ]
    assert ys == sorted(ys) and ys[0] < ys[-1]


def test_svg_escapes_labels() -> None:
    chart = build([], Names())
    chart = type(chart)(
        ("a<b", "c&d"), (Message(0, 1, "a<b", "c&d", "x < y & z", Kind.CONTROL),), 0
    )
    root = ET.fromstring(svg.render(chart).split("\n", 1)[1])
    assert "x < y & z" in [t.text for t in root.iter(f"{NS}text")]


def test_lost_packets_said_in_messages_and_runs() -> None:
    bu = Hop(0, 0, "m1", "ha", packet(M1, HA, binding_update(7)), lost=True)
    segments = [data(10, 100), data(20, 100)]
    segments[1] = Hop(20, 20, "m1", "client", segments[1].data, lost=True)
    chart = build([bu, *segments], names())
    assert [item.text for item in chart.items] == [
        "BU seq 7 lifetime 420s A H (lost)",
        "TCP: 2 segments, 200 B (1 lost)",
    ]


def test_tunnel_in_tunnel_labelled_by_innermost() -> None:
    home_test_init = mh.HomeTestInit(home_init_cookie=bytes(8)).aligned()
    inner = Ipv6Packet(source=CONTACT, destination=CLIENT, payload=home_test_init)
    middle = Ipv6Packet(source=M1, destination=HA, payload=inner)
    (item,) = build([hop(0, "m1", "ha", packet(M1, HA, middle))], names()).items
    assert item.text == "tunnel: tunnel: HoTI cookie 00000000"
