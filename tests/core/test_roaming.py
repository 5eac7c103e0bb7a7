"""Mobile node, home agent and correspondent together on virtual time: registration,
tunnelling, route optimization, movement, return home, loss, determinism."""

from __future__ import annotations

import itertools

import pytest

from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

from .scenario import CN, HA, HOME, VISITED, Roaming


def delivered_to_mn(lab: Roaming) -> list[bytes]:
    return [data for _, data in lab.net.nodes["mn"].delivered]


def test_registration_then_tunnel_then_route_optimization() -> None:
    lab = Roaming()
    lab.attach("visited1")
    lab.net.run_for(1)
    assert [s[2] for s in lab.signalling()] == ["BindingUpdate", "BindingAcknowledgement"]
    assert lab.ha.home_registrations()[0].care_of_address == VISITED["visited1"][1]

    lab.ping_from_correspondent(b"first")
    lab.net.run_for(1)
    # the first packet went through the home agent's tunnel and was delivered at home address
    first = Ipv6Packet.parse(delivered_to_mn(lab)[0])
    assert (first.source, first.destination, first.payload.payload) == (CN, HOME, b"first")
    # ... and made the mobile node start route optimization (RFC 3775 11.7.2)
    assert [s[:3] for s in lab.signalling()][2:] == [
        ("mn", "ha", "HomeTestInit"),  # reverse-tunnelled from the home address
        ("mn", "cn", "CareOfTestInit"),  # directly from the care-of address
        ("ha", "cn", "HomeTestInit"),
        ("cn", "mn", "CareOfTest"),
        ("cn", "ha", "HomeTest"),  # to the home address: intercepted
        ("ha", "mn", "HomeTest"),  # and tunnelled
        ("mn", "cn", "BindingUpdate"),
        ("cn", "mn", "BindingAcknowledgement"),
    ]
    assert lab.cn.binding_cache.get(HOME).care_of_address == VISITED["visited1"][1]

    lab.ping_from_correspondent(b"second")
    lab.net.run_for(1)
    last = lab.net.trace[-1]
    assert (last.sender, last.receiver) == ("cn", "mn")  # direct, with a type 2 routing header
    assert Ipv6Packet.parse(delivered_to_mn(lab)[-1]).payload.payload == b"second"


def test_moving_twice_and_returning_home() -> None:
    lab = Roaming()
    lab.attach("visited1")
    lab.net.run_for(1)
    lab.ping_from_correspondent()
    lab.net.run_for(1)
    lab.attach("visited2")
    lab.net.run_for(2)
    care_of = VISITED["visited2"][1]
    assert lab.ha.home_registrations()[0].care_of_address == care_of
    assert lab.cn.binding_cache.get(HOME).care_of_address == care_of
    lab.attach(None)
    lab.net.run_for(2)
    assert lab.ha.home_registrations() == []
    assert lab.cn.binding_cache.get(HOME) is None
    assert lab.mn.bul.get(HA) is None and lab.mn.bul.get(CN) is None
    lab.ping_from_correspondent(b"home")
    lab.net.run_for(1)
    assert Ipv6Packet.parse(delivered_to_mn(lab)[-1]).payload.payload == b"home"
    last = lab.net.trace[-1]
    assert (last.sender, last.receiver) == ("cn", "mn")  # plain routing to the home link
    assert Ipv6Packet.parse(last.data).extension_headers == ()


def test_data_from_mobile_node_reverse_tunnelled_then_route_optimized() -> None:
    lab = Roaming()
    lab.attach("visited1")
    lab.net.run_for(1)
    data = Ipv6Packet(
        source=HOME,
        destination=CN,
        payload=UdpDatagram(source_port=1, destination_port=2, payload=b"up"),
    ).emit()
    lab.net.call("mn", "send", data)
    lab.net.run_for(1)
    assert [d for _, d in lab.net.nodes["cn"].delivered] == [data]
    assert [s.sender for s in lab.net.trace[-2:]] == ["mn", "ha"]
    lab.net.call("mn", "start_route_optimization", CN)
    lab.net.run_for(1)
    lab.net.call("mn", "send", data)
    lab.net.run_for(1)
    assert lab.net.nodes["cn"].delivered[-1][1] == data
    assert lab.net.trace[-1].sender == "mn" and lab.net.trace[-1].receiver == "cn"


@pytest.mark.parametrize("seed", range(20))
def test_registration_and_route_optimization_complete_with_30_percent_loss(seed: int) -> None:
    """Every signalling packet on every path is lost with probability 0.3: a HoTI/HoT round
    trip crosses four such hops (mobile node, home agent, correspondent, home agent, mobile
    node), so it succeeds one time in four; the retransmissions (RFC 3775 11.8: doubling to
    MAX_BINDACK_TIMEOUT, then at that interval) still get through within ten minutes of
    virtual time for every seed."""
    lab = Roaming(seed, loss=0.3)
    lab.attach("visited1")
    lab.net.run_for(300)
    assert lab.ha.home_registrations(), "home registration did not complete"
    lab.net.call("mn", "start_route_optimization", CN)
    lab.net.run_for(600)
    entry = lab.cn.binding_cache.get(HOME)
    assert entry is not None and entry.care_of_address == VISITED["visited1"][1]
    # the home registration's retransmissions followed RFC 3775 11.8: 1.5 s, then doubling
    events = lab.net.nodes["mn"].events
    registered = next(t for t, e in events if e.name == "home_registered")
    times = [
        t
        for t, e in events
        if e.name == "binding_update_sent" and e.fields["destination"] == HA and t <= registered
    ]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [1.5 * 2**k for k in range(len(gaps))]


def test_same_seed_same_bytes_on_the_wire() -> None:
    def run() -> list[tuple[float, str, str | None, bytes, bool]]:
        lab = Roaming(42, loss=0.1)
        lab.attach("visited1")
        lab.net.run_for(5)
        lab.ping_from_correspondent()
        lab.net.run_for(5)
        lab.attach("visited2")
        lab.net.run_for(50)
        return [(s.time, s.sender, s.receiver, s.data, s.lost) for s in lab.net.trace]

    assert run() == run()
