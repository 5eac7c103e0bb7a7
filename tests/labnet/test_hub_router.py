"""The hub's forwarding decision: longest prefix match, Hop Limit, no echo, what a router must not
forward (RFC 8200 3, RFC 4291 2.5 and 2.7)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from labnet.hub.router import Drop, Router
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

A, B, C = 0, 1, 2


def router(hairpin: tuple[str, ...] = ()) -> Router:
    r = Router(["a", "b", "c"], hairpin=hairpin)
    r.add_route("2001:db8:1::/48", "a")
    r.add_route("2001:db8:1:5::/64", "b")  # inside a's /48: more specific wins
    r.add_route("::/0", "c")
    return r


def packet(destination: str, source: str = "2001:db8:9::1", hop_limit: int = 64) -> bytearray:
    return bytearray(
        Ipv6Packet(
            source=IPv6Address(source),
            destination=IPv6Address(destination),
            hop_limit=hop_limit,
            payload=UdpDatagram(source_port=1, destination_port=2, payload=b"x"),
        ).emit()
    )


# -- longest prefix match -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("2001:db8:1::1", A),  # in the /48 only
        ("2001:db8:1:4:ffff::1", A),
        ("2001:db8:1:5::1", B),  # in the /64 too
        ("2001:db8:1:5:ffff:ffff:ffff:ffff", B),
        ("2001:db8:2::1", C),  # default route
    ],
)
def test_lookup_longest_prefix_wins(destination: str, expected: int) -> None:
    r = router()
    assert r.lookup(IPv6Address(destination)) == expected
    assert r.forward(C if expected != C else A, packet(destination)) == expected


def test_lookup_without_default_route_is_none_and_forward_drops_no_route() -> None:
    r = router()
    r.remove_route("::/0")
    assert r.lookup(IPv6Address("2001:db8:2::1")) is None
    assert r.forward(A, packet("2001:db8:2::1")) is Drop.NO_ROUTE
    assert r.drop_counts()["a"]["no_route"] == 1


def test_host_route_beats_everything() -> None:
    r = router()
    r.add_route("2001:db8:1:5::77/128", "c")
    assert r.forward(A, packet("2001:db8:1:5::77")) == C
    assert r.forward(A, packet("2001:db8:1:5::78")) == B


def test_route_change_replaces_and_clears_cached_decisions() -> None:
    r = router()
    assert r.forward(C, packet("2001:db8:1::1")) == A  # now cached
    r.add_route("2001:db8:1::/48", "b")
    assert r.forward(C, packet("2001:db8:1::1")) == B
    r.remove_route("2001:db8:1::/48")
    assert r.forward(A, packet("2001:db8:1::1")) == C


def test_routes_listed_longest_first_by_name() -> None:
    assert list(router().routes.items()) == [
        (IPv6Network("2001:db8:1:5::/64"), "b"),
        (IPv6Network("2001:db8:1::/48"), "a"),
        (IPv6Network("::/0"), "c"),
    ]


def test_add_route_unknown_link_or_host_bits_raises() -> None:
    r = router()
    with pytest.raises(ValueError, match="no link named 'z'"):
        r.add_route("2001:db8::/32", "z")
    with pytest.raises(ValueError, match="host bits"):
        r.add_route("2001:db8::1/32", "a")


def test_router_duplicate_or_unknown_names_raise() -> None:
    with pytest.raises(ValueError, match="unique"):
        Router(["a", "a"])
    with pytest.raises(ValueError, match="hairpin"):
        Router(["a"], hairpin=["b"])


# -- hop limit ------------------------------------------------------------------------------------


def test_forward_decrements_hop_limit_in_place() -> None:
    data = packet("2001:db8:1:5::1", hop_limit=64)
    before = bytes(data)
    assert router().forward(A, data) == B
    assert data[7] == 63
    assert data[:7] == before[:7] and data[8:] == before[8:]  # nothing else changes


def test_forward_hop_limit_two_leaves_with_one() -> None:
    data = packet("2001:db8:1:5::1", hop_limit=2)
    assert router().forward(A, data) == B
    assert data[7] == 1


@pytest.mark.parametrize("hop_limit", [0, 1])
def test_forward_hop_limit_exhausted_drops(hop_limit: int) -> None:
    r = router()
    data = packet("2001:db8:1:5::1", hop_limit=hop_limit)
    assert r.forward(A, data) is Drop.HOP_LIMIT
    assert data[7] == hop_limit  # untouched
    assert r.drop_counts()["a"]["hop_limit"] == 1


def test_forward_memoryview_of_receive_buffer_works() -> None:
    data = packet("2001:db8:1:5::1")
    buffer = bytearray(2048)
    buffer[: len(data)] = data
    view = memoryview(buffer)[: len(data)]
    assert router().forward(A, view) == B
    assert buffer[7] == 63


# -- never back out the arrival link --------------------------------------------------------------


def test_forward_back_to_arrival_link_drops_same_link() -> None:
    r = router()
    data = packet("2001:db8:1::1")
    assert r.forward(A, data) is Drop.SAME_LINK
    assert data[7] == 64
    assert r.drop_counts()["a"]["same_link"] == 1


def test_forward_hairpin_link_may_send_back() -> None:
    r = router(hairpin=("a",))
    assert r.forward(A, packet("2001:db8:1::1")) == A
    assert r.forward(B, packet("2001:db8:1:5::1")) is Drop.SAME_LINK  # b does not hairpin


def test_pinned_link_sends_everything_to_its_target_others_still_route() -> None:
    r = Router(["a", "b", "c"], pinned={"c": "b"})
    r.add_route("2001:db8:1::/48", "a")
    r.add_route("2001:db8:9::/48", "c")
    data = packet("2001:db8:1::1")  # routed to a, but c is pinned to b
    assert r.forward(C, data) == B
    assert data[7] == 63
    # the same addresses from b are routed (no decision cached for the pinned link's packet)
    assert r.forward(B, packet("2001:db8:1::1")) == A
    assert r.forward(C, packet("2001:db8:1::1")) == B
    # what b sends back towards c's prefix is routed to c as usual
    assert r.forward(B, packet("2001:db8:9::5", source="2001:db8:1::1")) == C
    # pinned packets still obey the scope and Hop Limit rules
    assert r.forward(C, packet("fe80::1")) is Drop.SCOPE
    assert r.forward(C, packet("2001:db8:1::1", hop_limit=1)) is Drop.HOP_LIMIT


# -- not forwardable ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        ("fe80::1", "2001:db8:1::1"),  # link-local source (RFC 4291 2.5.6)
        ("febf:ffff::1", "2001:db8:1::1"),  # still fe80::/10
        ("::", "2001:db8:1::1"),  # unspecified source (2.5.2)
        ("::1", "2001:db8:1::1"),  # loopback source (2.5.3)
        ("2001:db8:9::1", "fe80::1"),
        ("2001:db8:9::1", "ff02::1"),  # link-scope multicast
        ("2001:db8:9::1", "ff01::1"),  # interface-local multicast
        ("2001:db8:9::1", "::1"),
        ("2001:db8:9::1", "::"),
    ],
)
def test_forward_scoped_addresses_drops_scope(source: str, destination: str) -> None:
    r = router()
    assert r.forward(A, packet(destination, source=source)) is Drop.SCOPE
    assert r.drop_counts()["a"]["scope"] == 1


def test_forward_global_multicast_follows_routes() -> None:
    r = router()
    assert r.forward(A, packet("ff0e::1")) == C  # default route
    assert r.forward(A, packet("fec0::1")) == C  # fec0::/10 is not link-local


@pytest.mark.parametrize(
    "data",
    [
        bytearray(39),  # shorter than the IPv6 header
        bytearray(b"\x45" + bytes(59)),  # IPv4
        bytearray(),
    ],
)
def test_forward_not_ipv6_drops_malformed(data: bytearray) -> None:
    r = router()
    assert r.forward(B, data) is Drop.MALFORMED
    assert r.drop_counts()["b"]["malformed"] == 1


def test_drop_values_are_negative_and_labelled() -> None:
    assert all(reason < 0 for reason in Drop)
    assert Drop.NO_ROUTE.label == "no_route"


def test_cached_destination_link_local_source_still_dropped_scope() -> None:
    r = router()
    assert r.forward(A, packet("2001:db8:2::1")) == C  # the pair's decision is now cached
    assert r.forward(A, packet("2001:db8:2::1", source="fe80::1")) is Drop.SCOPE
    assert r.forward(A, packet("2001:db8:2::1", source="::1")) is Drop.SCOPE
    assert r.forward(A, packet("2001:db8:2::1")) == C
    assert r.drop_counts()["a"]["scope"] == 2


def test_forward_memoryview_decrements_hop_limit_in_underlying_buffer() -> None:
    data = packet("2001:db8:2::1") + bytes(100)  # a buffer longer than the packet, as the hub's
    view = memoryview(data)[: len(data) - 100]
    assert router().forward(A, view) == C
    assert data[7] == 63
