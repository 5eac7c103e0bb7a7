"""Byte-level data-path rewrites equal what the codec builds, and keep checksums valid."""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from mip6.core.datapath import encapsulate, insert_home_address_option, insert_type2_routing
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import (
    DestinationOptions,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType2,
    UnknownIpv6Option,
)
from mip6.wire.tcp import TcpFlags, TcpSegment

HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")
CN = IPv6Address("2001:db8:2::1")
HA = IPv6Address("2001:db8:1::1")


def segment(data: bytes) -> TcpSegment:
    return TcpSegment(
        source_port=80,
        destination_port=40000,
        sequence_number=7,
        acknowledgment_number=9,
        flags=TcpFlags.ACK,
        window=100,
        payload=data,
    )


hop_by_hop = HopByHopOptions.aligned([UnknownIpv6Option(option_type=5, data=b"\0\0")])


@given(st.binary(max_size=1400), st.booleans())
def test_type2_insertion_matches_codec(data: bytes, with_hbh: bool) -> None:
    first = (hop_by_hop,) if with_hbh else ()
    plain = Ipv6Packet(source=CN, destination=HOME, extension_headers=first, payload=segment(data))
    expected = Ipv6Packet(
        source=CN,
        destination=CARE_OF,
        payload=segment(data),
        extension_headers=(*first, RoutingType2(home_address=HOME)),
    )
    rewritten = insert_type2_routing(plain.emit(), CARE_OF)
    assert rewritten == expected.emit()
    assert Ipv6Packet.parse(rewritten) == expected  # parse verifies the TCP checksum


@given(st.binary(max_size=1400), st.booleans())
def test_home_address_option_insertion_matches_codec(data: bytes, with_hbh: bool) -> None:
    first = (hop_by_hop,) if with_hbh else ()
    plain = Ipv6Packet(source=HOME, destination=CN, extension_headers=first, payload=segment(data))
    hao = DestinationOptions.aligned([HomeAddressOption(home_address=HOME)])
    expected = Ipv6Packet(
        source=CARE_OF, destination=CN, extension_headers=(*first, hao), payload=segment(data)
    )
    assert insert_home_address_option(plain.emit(), CARE_OF) == expected.emit()


def test_encapsulation_matches_codec() -> None:
    inner = Ipv6Packet(source=CN, destination=HOME, payload=segment(b"x" * 100))
    expected = Ipv6Packet(source=HA, destination=CARE_OF, payload=inner)
    assert encapsulate(inner.emit(), HA, CARE_OF) == expected.emit()
