"""IPv6 fragmentation and reassembly on their own (mip6.runtime.fragments): RFC 8200 4.5,
RFC 5722 overlaps, RFC 7112 header chains, the memory bound; scapy's ``fragment6`` and
``defragment6`` as the independent oracle both ways."""

from __future__ import annotations

import random
import struct
import tracemalloc
from ipaddress import IPv6Address

import pytest
from scapy.layers.inet6 import (
    UDP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrRouting,
    Raw,
    defragment6,
    fragment6,
)

from mip6.core.datapath import insert_home_address_option, insert_type2_routing
from mip6.core.node import NodePipeline
from mip6.core.ratelimit import TokenBucket
from mip6.runtime.fragments import (
    DATAGRAM_COST,
    Drop,
    Expired,
    Reassembler,
    Refused,
    find_fragment,
    fragment,
    strip_atomic,
)
from mip6.wire import icmpv6 as icmp
from mip6.wire import protocols
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, FragmentHeader, RoutingType2
from mip6.wire.udp import UdpDatagram

A = IPv6Address("2001:db8:1::a")
B = IPv6Address("2001:db8:2::b")
HOME = IPv6Address("2001:db8:1::100")
CARE_OF = IPv6Address("2001:db8:5::100")


def udp(size: int, source: IPv6Address = A, destination: IPv6Address = B) -> bytes:
    payload = bytes(random.Random(size).randbytes(size))
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=UdpDatagram(source_port=5000, destination_port=7, payload=payload),
    ).emit()


def scapy_fragments(packet: bytes, size: int, identification: int = 77) -> list[bytes]:
    """scapy's fragment6 of ``packet`` (which gets an empty Fragment header first, as
    fragment6 wants)."""
    parsed = IPv6(packet)
    with_header = (
        IPv6(src=parsed.src, dst=parsed.dst, hlim=parsed.hlim)
        / IPv6ExtHdrFragment(id=identification, nh=parsed.nh)
        / Raw(packet[40:])
    )
    return [bytes(f) for f in fragment6(with_header, size)]


class Collector:
    def __init__(self, **kwargs: int) -> None:
        self.drops: list[Drop] = []
        self.reassembler = Reassembler(on_drop=self.drops.append, **kwargs)

    def feed(self, now: float, packets: list[bytes]) -> list[bytes | Refused]:
        out: list[bytes | Refused] = []
        for packet in packets:
            found = find_fragment(packet)
            assert found is not None
            result = self.reassembler.receive(now, packet, found)
            if result is not None:
                out.append(result)
        return out


def raw_fragment(
    offset: int, data: bytes, *, more: bool, identification: int = 1, next_header: int = 17
) -> bytes:
    """A fragment of a datagram from A to B with ``data`` at byte ``offset``."""
    header = struct.pack("!BBHI", next_header, 0, offset | more, identification)
    return (
        struct.pack("!IHBB", 0x60000000, 8 + len(data), 44, 64)
        + A.packed
        + B.packed
        + (header + data)
    )


# -- fragmentation -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1500, 1280, 1313])
def test_fragment_sizes_multiples_of_8_and_scapy_reassembles(size: int) -> None:
    packet = udp(60_000)
    pieces = fragment(packet, size, 0xDEADBEEF)
    assert all(len(p) <= size for p in pieces)
    assert all((len(p) - 48) % 8 == 0 for p in pieces[:-1])
    headers = [find_fragment(p) for p in pieces]
    assert all(h is not None and h.identification == 0xDEADBEEF for h in headers)
    assert [h.more for h in headers if h] == [True] * (len(pieces) - 1) + [False]
    whole = defragment6([IPv6(p) for p in pieces])
    # scapy keeps the Fragment header's place in its result: the bytes after it are ours
    assert bytes(whole[UDP]) == packet[40:]


def test_fragment_per_fragment_headers_routing_and_home_address_option() -> None:
    """RFC 8200 4.5: the routing header stays in every fragment; RFC 3775 6.3: so does the
    Destination Options header with the Home Address option ("before the Fragment Header")."""
    routed = insert_type2_routing(udp(3000, source=A, destination=HOME), CARE_OF)
    for piece in fragment(routed, 1280, 5):
        parsed = Ipv6Packet.parse(piece)
        assert [type(h) for h in parsed.extension_headers] == [RoutingType2, FragmentHeader]
    with_hao = insert_home_address_option(udp(3000, source=HOME, destination=B), CARE_OF)
    for piece in fragment(with_hao, 1280, 5):
        kinds = [type(h) for h in Ipv6Packet.parse(piece).extension_headers]
        assert kinds == [DestinationOptions, FragmentHeader]
    # a destination options header without the option is fragmentable (after the Fragment one)
    plain = Ipv6Packet(
        source=A,
        destination=B,
        extension_headers=(DestinationOptions.aligned([]),),
        payload=UdpDatagram(source_port=1, destination_port=2, payload=bytes(3000)),
    ).emit()
    first = Ipv6Packet.parse(fragment(plain, 1280, 5)[0])
    assert [type(h) for h in first.extension_headers] == [FragmentHeader]


def test_host_fragments_then_engine_inserts_hao_scapy_reassembles_at_the_correspondent() -> None:
    """The order the node uses: the host fragments its packet, the mobile node's send path
    puts the Home Address option in each fragment; the correspondent's pipeline swaps the home
    address in per fragment and what it delivers reassembles."""
    packet = udp(5000, source=HOME, destination=B)
    sent = [insert_home_address_option(p, CARE_OF) for p in fragment(packet, 1280 - 24, 9)]
    assert all(len(p) <= 1280 for p in sent)
    for piece in sent:
        scapy = IPv6(piece)
        assert isinstance(scapy.payload, IPv6ExtHdrDestOpt)
        assert isinstance(scapy.payload.payload, IPv6ExtHdrFragment)
    pipeline = NodePipeline(
        binding_allows=lambda now, home, care_of: (home, care_of) == (HOME, CARE_OF),
        icmp_limiter=TokenBucket(10, 10),
        binding_error_limiter=TokenBucket(10, 10),
    )
    delivered = []
    for piece in sent:
        inbound, actions = pipeline.receive(0.0, piece)
        assert inbound is not None and actions == []
        delivered.append(inbound.delivered())
    (whole,) = Collector().feed(0.0, list(reversed(delivered)))
    assert whole == packet


def test_fragment_refuses_a_fragment_and_a_size_without_room() -> None:
    with pytest.raises(ValueError, match="fragment already"):
        fragment(fragment(udp(3000), 1280, 1)[0], 1280, 2)
    with pytest.raises(ValueError, match="no room"):
        fragment(udp(3000), 50, 1)


# -- reassembly ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["in_order", "reversed", "shuffled"])
def test_reassembly_scapy_fragments_any_order_gives_the_packet(order: str) -> None:
    packet = udp(60_000)
    pieces = scapy_fragments(packet, 1280)
    if order == "reversed":
        pieces.reverse()
    elif order == "shuffled":
        random.Random(4).shuffle(pieces)
    collector = Collector()
    results = collector.feed(3.0, pieces)
    assert results == [packet]
    assert collector.drops == [] and len(collector.reassembler) == 0
    assert collector.reassembler.buffered == 0


def test_reassembly_exact_duplicates_dropped_alone_packet_still_completes() -> None:
    packet = udp(4000)
    pieces = scapy_fragments(packet, 1280)
    collector = Collector()
    results = collector.feed(0.0, [pieces[0], pieces[0], pieces[1], pieces[1], *pieces[2:]])
    assert results == [Refused(Drop.DUPLICATE), Refused(Drop.DUPLICATE), packet]
    assert collector.drops == [Drop.DUPLICATE, Drop.DUPLICATE]


def test_reassembly_overlap_abandons_datagram_later_fragments_dropped_no_icmp() -> None:
    """RFC 5722: any overlap discards the datagram, with no ICMP error; its later fragments
    are discarded too (the entry stays until the datagram's 60 s are over)."""
    collector = Collector()
    results = collector.feed(
        0.0,
        [
            raw_fragment(0, bytes(8) + bytes(1000), more=True),  # UDP header + 1000 bytes
            raw_fragment(1000, bytes(16), more=True),  # bytes 1000..1016 overlap 1000..1008
            raw_fragment(1016, bytes(16), more=False),
        ],
    )
    assert results == [Refused(Drop.OVERLAP), Refused(Drop.ABANDONED)]
    assert collector.drops == [Drop.OVERLAP, Drop.ABANDONED]
    assert collector.reassembler.buffered == DATAGRAM_COST  # the empty entry only
    # at its timeout it goes silently (no Time Exceeded for an abandoned datagram)
    assert collector.reassembler.expire(60.0) == []
    assert len(collector.reassembler) == 0
    # the same identification later is a new datagram
    again = [raw_fragment(0, bytes(16), more=True), raw_fragment(16, bytes(8), more=False)]
    whole = collector.feed(61.0, again)
    assert len(whole) == 1 and isinstance(whole[0], bytes)


def test_reassembly_same_offset_different_bytes_is_an_overlap() -> None:
    collector = Collector()
    results = collector.feed(
        0.0, [raw_fragment(8, b"a" * 16, more=True), raw_fragment(8, b"b" * 16, more=True)]
    )
    assert results == [Refused(Drop.OVERLAP)]


def test_reassembly_two_last_fragments_different_ends_abandon() -> None:
    collector = Collector()
    results = collector.feed(
        0.0,
        [
            raw_fragment(16, bytes(16), more=False),
            raw_fragment(40, bytes(8), more=False),
            raw_fragment(0, bytes(16), more=True),
        ],
    )
    assert results == [Refused(Drop.INCONSISTENT), Refused(Drop.ABANDONED)]


def test_reassembly_fragment_beyond_the_last_ones_end_abandons() -> None:
    collector = Collector()
    results = collector.feed(
        0.0, [raw_fragment(16, bytes(16), more=False), raw_fragment(32, bytes(16), more=True)]
    )
    assert results == [Refused(Drop.INCONSISTENT)]


def test_reassembly_length_not_multiple_of_8_with_m_parameter_problem_at_payload_length() -> None:
    collector = Collector()
    (result,) = collector.feed(0.0, [raw_fragment(0, bytes(8) + bytes(13), more=True)])
    assert result == Refused(
        Drop.LENGTH_NOT_MULTIPLE_OF_8, icmp.ParameterProblem(code=0, pointer=4)
    )
    # the last fragment may have any length
    assert collector.feed(0.0, [raw_fragment(8, bytes(13), more=False)]) == []


def test_reassembly_beyond_65535_parameter_problem_at_fragment_offset() -> None:
    collector = Collector()
    # offset 65528 + 16 bytes: a Payload Length of 8 (Fragment header excluded) + 65544
    (result,) = collector.feed(0.0, [raw_fragment(65528, bytes(16), more=False)])
    assert result == Refused(Drop.TOO_BIG, icmp.ParameterProblem(code=0, pointer=42))
    assert collector.drops == [Drop.TOO_BIG]
    # ending at exactly 65535 - 0 bytes of Per-Fragment headers is allowed
    assert collector.feed(0.0, [raw_fragment(65528, bytes(7), more=False)]) == []


def test_reassembly_first_fragment_without_the_upper_header_parameter_problem_code_3() -> None:
    """RFC 8200 4.5 (RFC 7112): the first fragment must hold the whole header chain."""
    collector = Collector()
    # a UDP header is 8 bytes; this first fragment holds 0 of them (a Destination Options
    # header of 8 bytes says UDP follows, and nothing does)
    options = bytes((17, 0, 1, 4, 0, 0, 0, 0))
    (result,) = collector.feed(0.0, [raw_fragment(0, options, more=True, next_header=60)])
    assert result == Refused(Drop.INCOMPLETE_CHAIN, icmp.ParameterProblem(code=3, pointer=0))


def test_reassembly_timeout_reports_first_fragment_only_when_it_came() -> None:
    collector = Collector()
    first = raw_fragment(0, bytes(16), more=True, identification=1)
    later = raw_fragment(16, bytes(16), more=True, identification=2)
    assert collector.feed(10.0, [first]) == []
    assert collector.feed(20.0, [later]) == []
    assert collector.reassembler.next_deadline() == 70.0
    assert collector.reassembler.expire(69.9) == []
    assert collector.reassembler.expire(70.0) == [Expired(first)]
    assert collector.reassembler.next_deadline() == 80.0
    assert collector.reassembler.expire(80.0) == [Expired(None)]
    assert collector.drops == [Drop.TIMEOUT, Drop.TIMEOUT]
    assert collector.reassembler.next_deadline() is None
    assert collector.reassembler.buffered == 0


def test_reassembly_datagram_bound_evicts_the_oldest() -> None:
    collector = Collector(max_datagrams=2)
    collector.feed(0.0, [raw_fragment(0, bytes(16), more=True, identification=i) for i in (1, 2)])
    collector.feed(1.0, [raw_fragment(0, bytes(16), more=True, identification=3)])
    assert collector.drops == [Drop.EVICTED]
    assert len(collector.reassembler) == 2
    # datagram 1 is gone: its last fragment starts a new one that cannot complete
    assert collector.feed(1.0, [raw_fragment(16, bytes(8), more=False, identification=1)]) == []
    # datagram 3 completes
    (whole,) = collector.feed(1.0, [raw_fragment(16, bytes(8), more=False, identification=3)])
    assert isinstance(whole, bytes) and len(whole) == 40 + 24


def test_reassembly_one_datagram_bigger_than_the_bound_is_refused() -> None:
    collector = Collector(max_bytes=5000)
    assert collector.feed(0.0, [raw_fragment(0, bytes(2000), more=True)]) == []
    (result,) = collector.feed(0.0, [raw_fragment(2000, bytes(2000), more=True)])
    assert result == Refused(Drop.EVICTED)
    assert collector.reassembler.buffered == 0


def test_reassembly_flood_of_incomplete_fragments_memory_bounded() -> None:
    """A flood of first fragments that never complete (100,000 datagrams, 1,280-byte
    fragments: 128 MB sent): what stays allocated is within the configured bound, and a
    datagram sent whole in the middle of the flood still completes."""
    max_bytes = 1 << 20
    evicted = 0

    def dropped(drop: Drop) -> None:
        nonlocal evicted
        evicted += drop is Drop.EVICTED

    reassembler = Reassembler(on_drop=dropped, max_bytes=max_bytes, max_datagrams=10_000)
    payload = bytes(1232)
    packet = udp(3000)
    wanted = scapy_fragments(packet, 1280, identification=0xFFFFFFFF)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        completed = []
        for i in range(100_000):
            flood = raw_fragment(0, payload, more=True, identification=i)
            found = find_fragment(flood)
            assert found is not None
            reassembler.receive(i * 0.0001, flood, found)
            if i == 50_000:
                completed = [
                    reassembler.receive(i * 0.0001, piece, find_fragment(piece)) for piece in wanted
                ]
        held = sum(
            stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
    finally:
        tracemalloc.stop()
    assert completed[-1] == packet
    assert reassembler.buffered <= max_bytes
    assert held <= max_bytes * 1.05, held  # what the bound counts covers what Python holds
    print(f"flood: {held} bytes held for a {max_bytes}-byte bound, {len(reassembler)} datagrams")
    assert evicted > 99_000


def test_atomic_fragment_stripped_processed_alone() -> None:
    """RFC 6946: offset 0 and M clear: the packet without its Fragment header."""
    packet = udp(100)
    atomic = Ipv6Packet(
        source=A,
        destination=B,
        extension_headers=(FragmentHeader(identification=5),),
        payload=UdpDatagram(
            source_port=5000,
            destination_port=7,
            payload=UdpDatagram.parse(packet[40:], source=A.packed, destination=B.packed).payload,
        ),
    ).emit()
    found = find_fragment(atomic)
    assert found is not None and found.offset == 0 and not found.more
    assert found.next_header == protocols.UDP
    assert strip_atomic(atomic, found) == packet


def test_scapy_routing_header_fragments_reassemble_with_per_fragment_headers_of_the_first() -> None:
    packet = bytes(
        IPv6(src=str(A), dst=str(B))
        / IPv6ExtHdrRouting(addresses=[], segleft=0)
        / IPv6ExtHdrFragment(id=3)
        / UDP(sport=1, dport=2)
        / (b"x" * 3000)
    )
    pieces = [bytes(f) for f in fragment6(IPv6(packet), 1280)]
    (whole,) = Collector().feed(0.0, pieces)
    assert isinstance(whole, bytes)
    # the packet as sent, without its Fragment header: the routing header now names UDP
    assert whole[:40] == packet[:4] + (len(whole) - 40).to_bytes(2, "big") + packet[6:40]
    assert whole[40] == protocols.UDP and whole[41:48] == packet[41:48]
    assert whole[48:] == packet[56:]
