"""IPv6 node input processing shared by the roles (RFC 8200 4.2, 4.4; RFC 4443 2.4; RFC 3775
6.4, 9.2, 9.3.1), driven through NodePipeline directly."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.core.actions import Transmit
from mip6.core.node import NodePipeline
from mip6.core.ratelimit import TokenBucket
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import (
    DestinationOptions,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType0,
    RoutingType2,
    UnknownIpv6Option,
    UnknownRouting,
)
from mip6.wire.tcp import TcpSegment
from mip6.wire.udp import UdpDatagram

ME = IPv6Address("2001:db8:2::1")
PEER = IPv6Address("2001:db8:3::5")
HOME = IPv6Address("2001:db8:1::5")
GROUP = IPv6Address("ff02::1")


def pipeline(*, home: tuple[IPv6Address, ...] = (), icmp_burst: int = 10) -> NodePipeline:
    return NodePipeline(
        binding_allows=lambda now, home_address, care_of: False,
        own_home_addresses=lambda: home,
        icmp_limiter=TokenBucket(10.0, icmp_burst),
        binding_error_limiter=TokenBucket(1.0, 10),
        primary_address=ME,
    )


def udp(*headers: object, destination: IPv6Address = ME) -> bytes:
    return Ipv6Packet(
        source=PEER,
        destination=destination,
        extension_headers=headers,
        payload=UdpDatagram(source_port=1, destination_port=2, payload=b"x"),
    ).emit()


def replies(actions: list[object]) -> list[Ipv6Packet]:
    return [Ipv6Packet.parse(a.data) for a in actions if isinstance(a, Transmit)]


@pytest.mark.parametrize(
    "option_type,answered", [(0x05, None), (0x45, False), (0x85, True), (0xC5, True)]
)
def test_unrecognized_option_action_bits(option_type: int, answered: bool | None) -> None:
    """RFC 8200 4.2: 00 skip, 01 discard, 10 discard + Parameter Problem code 2, 11 likewise
    unless the destination is multicast."""
    data = udp(DestinationOptions.aligned([UnknownIpv6Option(option_type=option_type, data=b"ab")]))
    inbound, actions = pipeline().receive(0.0, data)
    if answered is None:
        assert inbound is not None and not replies(actions)
        return
    assert inbound is None
    if not answered:
        assert not replies(actions)
        return
    (reply,) = replies(actions)
    assert isinstance(reply.payload, icmp.ParameterProblem)
    assert (reply.payload.code, reply.payload.pointer) == (2, 42)  # the option's Type byte
    assert reply.destination == PEER and reply.source == ME


def test_option_action_11_silent_for_multicast_but_10_answered() -> None:
    for option_type, answered in ((0xC5, False), (0x85, True)):
        data = udp(
            HopByHopOptions.aligned([UnknownIpv6Option(option_type=option_type)]), destination=GROUP
        )
        _, actions = pipeline().receive(0.0, data)
        assert bool(replies(actions)) == answered
        if answered:
            assert replies(actions)[0].source == ME  # never the multicast group


@pytest.mark.parametrize(
    "header",
    [
        RoutingType0(addresses=(HOME,), segments_left=1),
        UnknownRouting(routing_type=9, segments_left=1),
    ],
)
def test_unrecognized_routing_type_with_segments_left(header: object) -> None:
    """RFC 8200 4.4 (and RFC 5095 for type 0): Parameter Problem code 0 at Routing Type."""
    inbound, actions = pipeline().receive(0.0, udp(header))
    (reply,) = replies(actions)
    assert inbound is None and (reply.payload.code, reply.payload.pointer) == (0, 42)


def test_unrecognized_routing_type_without_segments_left_ignored() -> None:
    inbound, actions = pipeline().receive(0.0, udp(UnknownRouting(routing_type=9, segments_left=0)))
    assert inbound is not None and not replies(actions)


def test_type2_routing_at_a_node_that_is_not_a_mobile_node() -> None:
    inbound, actions = pipeline().receive(0.0, udp(RoutingType2(home_address=HOME)))
    (reply,) = replies(actions)
    assert inbound is None and reply.payload.pointer == 42


def test_type2_routing_for_our_home_address_consumed() -> None:
    inbound, actions = pipeline(home=(HOME,)).receive(0.0, udp(RoutingType2(home_address=HOME)))
    assert inbound is not None and inbound.destination == HOME and not replies(actions)
    assert Ipv6Packet.parse(inbound.delivered()).destination == HOME


def test_type2_routing_for_another_address_silently_dropped() -> None:
    other = IPv6Address("2001:db8:1::77")
    inbound, actions = pipeline(home=(HOME,)).receive(0.0, udp(RoutingType2(home_address=other)))
    assert inbound is None and not replies(actions)


def test_no_icmp_error_about_an_icmp_error() -> None:
    error = Ipv6Packet(
        source=PEER,
        destination=ME,
        extension_headers=(DestinationOptions.aligned([UnknownIpv6Option(option_type=0x85)]),),
        payload=icmp.DestinationUnreachable(code=0, invoking_packet=b""),
    ).emit()
    _, actions = pipeline().receive(0.0, error)
    assert not replies(actions)


def test_icmp_errors_rate_limited_by_token_bucket() -> None:
    node = pipeline(icmp_burst=3)
    data = udp(DestinationOptions.aligned([UnknownIpv6Option(option_type=0x85)]))
    sent = sum(len(replies(node.receive(0.0, data)[1])) for _ in range(10))
    assert sent == 3
    assert len(replies(node.receive(0.1, data)[1])) == 1  # 10 per second refill
    assert node.counters["icmp_rate_limited"] == 7


def test_icmp_error_carries_as_much_of_the_invoker_as_fits_1280() -> None:
    big = Ipv6Packet(
        source=PEER,
        destination=ME,
        extension_headers=(DestinationOptions.aligned([UnknownIpv6Option(option_type=0x85)]),),
        payload=UdpDatagram(source_port=1, destination_port=2, payload=bytes(1400)),
    ).emit()
    (reply,) = replies(pipeline().receive(0.0, big)[1])
    assert len(reply.emit()) == 1280 and reply.payload.invoking_packet == big[: 1280 - 48]


def test_unknown_mh_type_binding_error_2_carries_hao_address() -> None:
    from mip6.wire.ipv6ext import HomeAddressOption

    packet = Ipv6Packet(
        source=PEER,
        destination=ME,
        extension_headers=(DestinationOptions.aligned([HomeAddressOption(home_address=HOME)]),),
        payload=mh.UnknownMobilityMessage(mh_type=99),
    )
    _, actions = pipeline().receive(0.0, packet.emit())
    (reply,) = replies(actions)
    # the Home Address option is checked first: no binding, so Binding Error status 1
    assert reply.payload == mh.BindingError(status=1, home_address=HOME).aligned()


@settings(max_examples=300, deadline=None)
@given(
    tcp=st.booleans(),
    routed=st.booleans(),
    payload=st.binary(max_size=200),
    ports=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    hop_limit=st.integers(0, 255),
    flow_label=st.integers(0, 0xFFFFF),
)
def test_data_fast_path_delivers_what_the_full_path_delivers(
    tcp: bool,
    routed: bool,
    payload: bytes,
    ports: tuple[int, int],
    hop_limit: int,
    flow_label: int,
) -> None:
    """TCP or UDP, direct or through a type 2 routing header naming our home address: the
    fast path's bytes are the full path's Inbound.delivered(), byte for byte."""
    upper: TcpSegment | UdpDatagram = (
        TcpSegment(source_port=ports[0], destination_port=ports[1], payload=payload)
        if tcp
        else UdpDatagram(source_port=ports[0], destination_port=ports[1], payload=payload)
    )
    data = Ipv6Packet(
        source=PEER,
        destination=ME,
        extension_headers=(RoutingType2(home_address=HOME),) if routed else (),
        payload=upper,
        hop_limit=hop_limit,
        flow_label=flow_label,
    ).emit()
    node = pipeline(home=(HOME,))
    inbound, actions = node.receive(0.0, data)
    assert inbound is not None and not actions
    assert node.data_fast_path(data) == inbound.delivered()


@pytest.mark.parametrize(
    "headers,why",
    [
        ((RoutingType2(home_address=PEER),), "a type 2 routing header not naming our home"),
        ((RoutingType2(home_address=HOME, segments_left=0),), "no segment left"),
        ((DestinationOptions.aligned([HomeAddressOption(home_address=HOME)]),), "an HAO"),
        ((HopByHopOptions.aligned([]),), "a Hop-by-Hop header"),
    ],
)
def test_data_fast_path_leaves_everything_else_to_the_full_path(
    headers: tuple[object, ...], why: str
) -> None:
    node = pipeline(home=(HOME,))
    assert node.data_fast_path(udp(*headers)) is None, why
    assert node.data_fast_path(udp()[:-1]) is None  # Payload Length overruns the buffer
    assert node.data_fast_path(udp() + b"\x00") is None  # bytes after it: the full path's
