"""The interface target's neighbour discovery (conformance.neighbour), frames in and out, with
scapy as the independent reader and writer of the frames."""

from __future__ import annotations

from ipaddress import IPv6Address

from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from conformance.neighbour import (
    Neighbours,
    link_local,
    multicast_mac,
    parse_mac,
    read_nd,
    solicited_node,
)

TESTER_MAC = parse_mac("02:00:5e:10:00:01")
IUT_MAC = parse_mac("52:54:00:12:34:56")
IUT = IPv6Address("2001:db8:2::1")
HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")


def neighbours() -> Neighbours:
    return Neighbours.of(TESTER_MAC, (HOME, CARE_OF), IUT)


def solicitation(target: IPv6Address, source: str = str(IUT), *, lla: bool = True) -> bytes:
    group = str(solicited_node(target))
    ns = IPv6(src=source, dst=group, hlim=255) / ICMPv6ND_NS(tgt=str(target))
    if lla:
        ns = ns / ICMPv6NDOptSrcLLAddr(lladdr="52:54:00:12:34:56")
    return bytes(Ether(src="52:54:00:12:34:56", dst="33:33:ff:00:00:05") / ns)


def checksum_ok(packet: bytes) -> bool:
    parsed = IPv6(packet)
    carried = parsed[ICMPv6ND_NA if ICMPv6ND_NA in parsed else ICMPv6ND_NS].cksum
    for layer in (ICMPv6ND_NA, ICMPv6ND_NS):
        if layer in parsed:
            del parsed[layer].cksum
    rebuilt = IPv6(bytes(parsed))
    return carried == rebuilt[ICMPv6ND_NA if ICMPv6ND_NA in rebuilt else ICMPv6ND_NS].cksum


def test_link_local_is_the_modified_eui64_of_the_mac() -> None:
    assert link_local(IUT_MAC) == IPv6Address("fe80::5054:ff:fe12:3456")
    assert solicited_node(HOME) == IPv6Address("ff02::1:ff00:5")
    assert multicast_mac(IPv6Address("ff02::1:ff00:5")) == bytes.fromhex("3333ff000005")


def test_solicitation_for_tester_address_answered_with_solicited_override_advertisement() -> None:
    table = neighbours()
    reply, deliver = table.handle(solicitation(HOME))
    assert not deliver and reply is not None
    frame = Ether(reply)
    assert frame.dst == "52:54:00:12:34:56" and frame.src == "02:00:5e:10:00:01"
    ip = frame[IPv6]
    assert (ip.src, ip.dst, ip.hlim) == (str(HOME), str(IUT), 255)
    na = frame[ICMPv6ND_NA]
    assert (na.tgt, na.S, na.O, na.R) == (str(HOME), 1, 1, 0)
    assert frame[ICMPv6NDOptDstLLAddr].lladdr == "02:00:5e:10:00:01"
    assert checksum_ok(reply[14:])
    # and the IUT's link-layer address, from its solicitation's option (RFC 4861 7.2.3)
    assert table.iut_mac == IUT_MAC and table.answered == 1


def test_solicitation_for_tester_link_local_answered() -> None:
    reply, _ = neighbours().handle(solicitation(link_local(TESTER_MAC), "fe80::1", lla=False))
    assert reply is not None
    # no Source Link-Layer Address option: the answer goes to the frame's source
    assert Ether(reply).dst == "52:54:00:12:34:56"


def test_duplicate_address_detection_probe_not_answered() -> None:
    reply, deliver = neighbours().handle(solicitation(HOME, "::", lla=False))
    assert reply is None and not deliver


def test_solicitation_for_another_address_not_answered() -> None:
    reply, deliver = neighbours().handle(solicitation(IPv6Address("2001:db8:1::77")))
    assert reply is None and not deliver


def test_solicitation_with_hop_limit_below_255_discarded() -> None:
    frame = Ether(solicitation(HOME))
    frame[IPv6].hlim = 64
    assert neighbours().handle(bytes(frame)) == (None, False)


def test_solicit_is_a_solicitation_of_the_iut_from_the_tester_link_local() -> None:
    table = neighbours()
    frame = Ether(table.solicit())
    assert frame.dst == "33:33:ff:00:00:01"
    assert (frame[IPv6].src, frame[IPv6].dst) == (str(link_local(TESTER_MAC)), "ff02::1:ff00:1")
    assert frame[ICMPv6ND_NS].tgt == str(IUT)
    assert frame[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:5e:10:00:01"
    assert checksum_ok(bytes(frame[IPv6]))


def test_advertisement_of_the_iut_learns_its_link_layer_address() -> None:
    table = neighbours()
    na = IPv6(src=str(IUT), dst=str(link_local(TESTER_MAC)), hlim=255) / ICMPv6ND_NA(
        tgt=str(IUT), S=1
    )
    na = na / ICMPv6NDOptDstLLAddr(lladdr="52:54:00:12:34:56")
    frame = bytes(Ether(src="52:54:00:12:34:56", dst="02:00:5e:10:00:01") / na)
    assert table.handle(frame) == (None, False)
    assert table.iut_mac == IUT_MAC
    nd = read_nd(frame)
    assert nd is not None and nd.target == IUT


def test_packet_for_tester_address_on_tester_mac_delivered() -> None:
    echo = IPv6(src=str(IUT), dst=str(CARE_OF)) / ICMPv6EchoRequest()
    ours = bytes(Ether(src="52:54:00:12:34:56", dst="02:00:5e:10:00:01") / echo)
    assert neighbours().handle(ours) == (None, True)
    # another box's frame (a switch flooding it), another address: not the tester's
    theirs = bytes(Ether(src="52:54:00:12:34:56", dst="02:00:5e:10:00:02") / echo)
    assert neighbours().handle(theirs) == (None, False)
    other = IPv6(src=str(IUT), dst="2001:db8:9::9") / ICMPv6EchoRequest()
    elsewhere = bytes(Ether(src="52:54:00:12:34:56", dst="02:00:5e:10:00:01") / other)
    assert neighbours().handle(elsewhere) == (None, False)
