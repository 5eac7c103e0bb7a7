"""Captures merged into hops: one hop per packet whatever the number of captures that saw it."""

from __future__ import annotations

from mip6.chart.merge import WINDOW_NS, Seen, merge
from mip6.chart.names import MAX_LIFELINES, OTHERS, Names
from mip6.wire.icmpv6 import EchoRequest
from tests.chart.packets import CLIENT, HA, M1, M2, binding_update, packet

NAMES = {HA: "ha", M1: "m1", M2: "m2", CLIENT: "client"}


def names() -> Names:
    return Names(NAMES, ["ha", "m1", "m2", "client"])


def test_hub_records_same_time_one_hop_from_higher_hop_limit() -> None:
    """The hub stamps both records of a forwarded packet alike; the one with the higher Hop
    Limit is where it came in, whichever capture is read first."""
    sent = packet(M1, HA, binding_update(1), hop_limit=64)
    forwarded = packet(M1, HA, binding_update(1), hop_limit=63)
    ha_link = [Seen(1000, 0, "ha", forwarded)]
    m1_link = [Seen(1000, 1, "m1", sent)]
    (hop,) = merge([ha_link, m1_link], names())
    assert (hop.sender, hop.receiver, hop.via) == ("m1", "ha", ())


def test_sim_records_send_then_arrival_one_hop_spanning_latency() -> None:
    data = packet(HA, M1, binding_update(2))
    (hop,) = merge([[Seen(5_000, 0, "m1", data)], [Seen(1_000, 1, "ha", data)]], names())
    assert (hop.sender, hop.receiver, hop.start_ns, hop.end_ns) == ("ha", "m1", 1_000, 5_000)


def test_three_links_middle_is_via() -> None:
    data = packet(CLIENT, M1, binding_update(3))
    captures = [[Seen(1, 0, "client", data)], [Seen(2, 1, "ha", data)], [Seen(3, 2, "m1", data)]]
    (hop,) = merge(captures, names())
    assert (hop.sender, hop.receiver, hop.via) == ("client", "m1", ("ha",))


def test_identical_packets_twice_on_each_link_two_hops_paired_in_order() -> None:
    data = packet(M1, M2, EchoRequest(identifier=1, sequence=1))
    sender = [Seen(10, 0, "m1", data), Seen(20, 0, "m1", data)]
    receiver = [Seen(15, 1, "m2", data), Seen(25, 1, "m2", data)]
    hops = list(merge([sender, receiver], names()))
    assert [(h.start_ns, h.end_ns) for h in hops] == [(10, 15), (20, 25)]


def test_seen_once_on_link_other_end_from_address() -> None:
    outgoing = packet(M1, CLIENT, EchoRequest(identifier=1, sequence=1))
    incoming = packet(CLIENT, M1, EchoRequest(identifier=1, sequence=2))
    hops = list(merge([[Seen(1, 0, "m1", outgoing), Seen(2, 0, "m1", incoming)]], names()))
    assert [(h.sender, h.receiver) for h in hops] == [("m1", "client"), ("client", "m1")]


def test_vantage_capture_repeated_bytes_are_separate_packets() -> None:
    data = packet(M1, M2, EchoRequest(identifier=1, sequence=1))
    hops = list(merge([[Seen(1, 0, None, data), Seen(2, 0, None, data)]], names()))
    assert [(h.sender, h.receiver) for h in hops] == [("m1", "m2"), ("m1", "m2")]


def test_two_vantage_captures_of_one_packet_one_hop() -> None:
    data = packet(M1, M2, EchoRequest(identifier=1, sequence=1))
    hops = list(merge([[Seen(1, 0, None, data)], [Seen(3, 1, None, data)]], names()))
    assert len(hops) == 1


def test_sightings_further_apart_than_window_not_merged() -> None:
    data = packet(M1, M2, EchoRequest(identifier=1, sequence=1))
    later = WINDOW_NS + 10
    hops = list(merge([[Seen(1, 0, "m1", data)], [Seen(later, 1, "m2", data)]], names()))
    assert [(h.sender, h.receiver) for h in hops] == [("m1", "m2"), ("m1", "m2")]


def test_truncated_packet_is_a_hop_not_a_crash() -> None:
    (hop,) = merge([[Seen(1, 0, "m1", b"\x60\x00")]], names())
    assert (hop.sender, hop.receiver) == ("m1", "m1")


def test_names_unknown_addresses_bounded() -> None:
    table = Names()
    got = {table.of(CLIENT.__class__(int(CLIENT) + n)) for n in range(3 * MAX_LIFELINES)}
    assert len(got) == MAX_LIFELINES + 1
    assert OTHERS in got


def test_seen_leaving_never_arriving_at_captured_link_is_lost() -> None:
    data = packet(M1, M2, binding_update(4))
    (lost,) = merge([[Seen(1, 0, "m1", data)], []], names(), frozenset({"m1", "m2"}))
    (unknown,) = merge([[Seen(1, 0, "m1", data)]], names(), frozenset({"m1"}))
    assert (lost.sender, lost.receiver, lost.lost) == ("m1", "m2", True)
    assert (unknown.receiver, unknown.lost) == ("m2", False)  # m2's link was not captured
