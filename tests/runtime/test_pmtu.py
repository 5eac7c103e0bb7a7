"""Path MTU estimates on their own (mip6.runtime.pmtu, RFC 8201 4): lowered, never raised,
never below 1280, aged back after 10 minutes, bounded; and whom a quoted packet concerns
through Mobile IPv6 headers and tunnels."""

from __future__ import annotations

from ipaddress import IPv6Address

from mip6.core.datapath import encapsulate, insert_home_address_option, insert_type2_routing
from mip6.runtime.pmtu import PMTU_AGING, Invoking, PathMtuCache, about
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

HOME = IPv6Address("2001:db8:1::100")
CARE_OF = IPv6Address("2001:db8:5::100")
HOME_AGENT = IPv6Address("2001:db8:1::1")
CN = IPv6Address("2001:db8:2::2")
D = CN.packed


def udp(source: IPv6Address, destination: IPv6Address) -> bytes:
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=UdpDatagram(source_port=1, destination_port=2, payload=bytes(1400)),
    ).emit()


def test_estimate_lowered_never_raised_never_below_minimum() -> None:
    cache = PathMtuCache(link_mtu=1500)
    assert cache.get(0.0, D) == 1500
    assert cache.lower(0.0, D, 1500) is None  # not less than the estimate: ignored
    assert cache.lower(0.0, D, 9000) is None
    assert cache.lower(0.0, D, 1279) is None  # RFC 8201 4: "it MUST discard it"
    assert cache.lower(0.0, D, 1400) == 1400
    assert cache.lower(1.0, D, 1450) is None  # never raised by a Packet Too Big
    assert cache.lower(2.0, D, 1280) == 1280
    assert cache.get(3.0, D) == 1280
    assert cache.get(3.0, HOME.packed) == 1500  # per destination


def test_estimate_ages_back_to_the_link_mtu_after_ten_minutes() -> None:
    cache = PathMtuCache(link_mtu=1500)
    cache.lower(100.0, D, 1400)
    assert PMTU_AGING == 600.0
    assert cache.get(699.9, D) == 1400
    assert cache.rows(699.9) == {D: 1400}
    assert cache.get(700.0, D) == 1500
    assert len(cache) == 0
    assert cache.lower(700.0, D, 1400) == 1400  # and a new Packet Too Big lowers it again


def test_estimates_bounded_oldest_forgotten() -> None:
    cache = PathMtuCache(max_destinations=2)
    for i in range(3):
        cache.lower(0.0, bytes([i]) * 16, 1400)
    assert len(cache) == 2
    assert cache.get(0.0, bytes(16)) == 1500


def test_about_reads_home_address_option_routing_header_and_tunnel() -> None:
    plain = udp(HOME, CN)
    assert about(plain) == Invoking(HOME.packed, CN.packed)
    # a mobile node's route-optimized packet: from the care-of address, home in the option
    hao = insert_home_address_option(plain, CARE_OF)
    assert about(hao[:200]) == Invoking(HOME.packed, CN.packed)
    # a correspondent's packet to the care-of address, the home address in the RH2
    routed = insert_type2_routing(udp(CN, HOME), CARE_OF)
    assert about(routed[:100]) == Invoking(CN.packed, HOME.packed)
    # the reverse tunnel: the outer packet quoted, truncated (RFC 4443 2.4 (c))
    tunnelled = encapsulate(plain, CARE_OF, HOME_AGENT)
    assert about(tunnelled[:1232]) == Invoking(HOME.packed, CN.packed)
    assert about(tunnelled[:60]) is None  # the inner header cut
    assert about(b"\x60" + bytes(20)) is None
