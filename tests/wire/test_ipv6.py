"""The IPv6 chain: extension headers, pseudo-header rules, tunnelling, the fast walk; scapy and
an independent checksum as oracles."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BU,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    MIP6OptBindingAuthData,
    MIP6OptNonceIndices,
    PadN,
)

from mip6.wire import mobility as mh
from mip6.wire.errors import BadChecksum, Malformed, Truncated, WireError
from mip6.wire.icmpv6 import EchoRequest
from mip6.wire.ipv6 import Ipv6Packet, Layer, NoNextHeader, RawPayload
from mip6.wire.ipv6ext import (
    DestinationOptions,
    FragmentHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType0,
    RoutingType2,
    UnknownIpv6Option,
)
from mip6.wire.tcp import TcpFlags, TcpSegment
from mip6.wire.udp import UdpDatagram
from mip6.wire.walk import walk

from .independent import upper_layer_checksum_ok
from .strategies import addresses, extension_headers, mobility_messages

CN = IPv6Address("2001:db8:2::1")
COA = IPv6Address("2001:db8:3::5")
HOA = IPv6Address("2001:db8:1::5")
HA = IPv6Address("2001:db8:1::1")


def hao() -> DestinationOptions:
    return DestinationOptions.aligned([HomeAddressOption(home_address=HOA)])


payloads = st.one_of(
    mobility_messages(),
    st.builds(
        lambda sp, dp, data: UdpDatagram(source_port=sp, destination_port=dp, payload=data),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.binary(max_size=64),
    ),
    st.binary(max_size=40).map(lambda d: EchoRequest(identifier=1, sequence=2, data=d)),
    st.builds(
        lambda seq, data: TcpSegment(
            source_port=80,
            destination_port=4000,
            sequence_number=seq,
            acknowledgment_number=1,
            flags=TcpFlags.ACK,
            window=1000,
            payload=data,
        ),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=64),
    ),
    st.binary(max_size=20).map(lambda d: NoNextHeader(data=d)),
    st.binary(max_size=20).map(lambda d: RawPayload(protocol=253, data=d)),
)


@st.composite
def packets(draw: st.DrawFn, depth: int = 0) -> Ipv6Packet:
    headers = draw(st.lists(extension_headers, max_size=3))
    if draw(st.booleans()):
        headers.insert(0, HopByHopOptions.aligned([UnknownIpv6Option(option_type=5, data=b"\0\0")]))
    payload = draw(payloads) if depth or draw(st.integers(0, 4)) else draw(packets(depth=1))
    home_options = [
        o
        for h in headers
        if isinstance(h, DestinationOptions)
        for o in h.options
        if isinstance(o, HomeAddressOption)
    ]
    if len(home_options) > 1:  # a duplicate is malformed (tested on its own below)
        headers = [h for h in headers if not isinstance(h, DestinationOptions)]
    return Ipv6Packet(
        source=draw(addresses),
        destination=draw(addresses),
        hop_limit=draw(st.integers(0, 255)),
        traffic_class=draw(st.integers(0, 255)),
        flow_label=draw(st.integers(0, 0xFFFFF)),
        extension_headers=tuple(headers),
        payload=payload,
    )


@given(packets())
def test_any_packet_roundtrips_exactly(packet: Ipv6Packet) -> None:
    data = packet.emit()
    assert Ipv6Packet.parse(data) == packet
    assert Ipv6Packet.parse(data).emit() == data


@given(packets())
def test_checksums_agree_with_independent_computation(packet: Ipv6Packet) -> None:
    data = packet.emit()
    protocol, ok = upper_layer_checksum_ok(data)
    if protocol in (6, 17, 58, 135):
        assert ok


@given(packets())
def test_fast_walk_agrees_with_full_parser(packet: Ipv6Packet) -> None:
    data = packet.emit()
    result = walk(data)
    layers: list[Layer] = []
    parsed = Ipv6Packet.parse(data, layers=layers)
    assert result.source == parsed.source.packed
    assert result.destination == parsed.destination.packed
    assert result.home_address == (parsed.home_address.packed if parsed.home_address else None)
    rh2 = None
    for header in parsed.extension_headers:
        if isinstance(header, RoutingType2) and header.segments_left:
            rh2 = header.home_address.packed
    assert result.routing_home_address == rh2
    assert result.upper_protocol == parsed.payload.protocol
    assert result.upper_offset == 40 + sum(len(h.emit(0)) for h in parsed.extension_headers)


def test_hao_makes_home_address_the_pseudo_source() -> None:
    """RFC 3775 6.3: the checksum is computed with the home address as source."""
    bu = mh.BindingUpdate(sequence=1).aligned()
    data = Ipv6Packet(source=COA, destination=CN, extension_headers=(hao(),), payload=bu).emit()
    assert mh.parse_mobility_header(data[64:], source=HOA.packed, destination=CN.packed) == bu
    with pytest.raises(BadChecksum):
        mh.parse_mobility_header(data[64:], source=COA.packed, destination=CN.packed)


def test_rh2_makes_home_address_the_pseudo_destination() -> None:
    """RFC 8200 8.1: the final destination, i.e. the type 2 routing header's home address."""
    ba = mh.BindingAcknowledgement(status=0, sequence=1).aligned()
    packet = Ipv6Packet(
        source=CN, destination=COA, extension_headers=(RoutingType2(home_address=HOA),), payload=ba
    )
    data = packet.emit()
    assert packet.final_destination == HOA
    assert mh.parse_mobility_header(data[64:], source=CN.packed, destination=HOA.packed) == ba
    processed = Ipv6Packet(
        source=CN,
        destination=HOA,
        payload=ba,
        extension_headers=(RoutingType2(home_address=COA, segments_left=0),),
    )
    assert processed.final_destination == HOA  # segments left 0: the destination address


def test_tunnelled_packet_parses_inner_and_outer() -> None:
    inner = Ipv6Packet(
        source=CN, destination=HOA, payload=EchoRequest(identifier=7, sequence=1, data=b"x")
    )
    outer = Ipv6Packet(source=HA, destination=COA, payload=inner)
    data = outer.emit()
    assert data[6] == 41 and Ipv6Packet.parse(data) == outer


def test_fragment_not_first_keeps_raw_payload() -> None:
    packet = Ipv6Packet(
        source=CN,
        destination=HOA,
        extension_headers=(FragmentHeader(fragment_offset=10, identification=5),),
        payload=RawPayload(protocol=17, data=b"\xff" * 16),
    )
    data = packet.emit()
    assert Ipv6Packet.parse(data) == packet and walk(data).fragmented


def test_version_not_6_is_malformed() -> None:
    data = bytearray(Ipv6Packet(source=CN, destination=HOA, payload=NoNextHeader()).emit())
    data[0] = 0x45
    with pytest.raises(Malformed) as info:
        Ipv6Packet.parse(bytes(data))
    assert (info.value.field, info.value.offset) == ("version", 0)


def test_payload_length_mismatch_both_ways() -> None:
    data = Ipv6Packet(source=CN, destination=HOA, payload=NoNextHeader(data=b"abcd")).emit()
    with pytest.raises(Truncated):
        Ipv6Packet.parse(data[:-1])
    with pytest.raises(Malformed) as info:
        Ipv6Packet.parse(data + b"\0")
    assert info.value.field == "payload_length"


def test_hop_by_hop_not_first_is_malformed() -> None:
    hbh = HopByHopOptions.aligned([])
    data = Ipv6Packet(
        source=CN, destination=HOA, extension_headers=(hao(), hbh), payload=NoNextHeader()
    ).emit()
    with pytest.raises(Malformed) as info:
        Ipv6Packet.parse(data)
    assert info.value.offset == 64
    with pytest.raises(Malformed):
        walk(data)


def test_rh2_with_wrong_hdr_ext_len_is_malformed() -> None:
    data = bytearray(
        Ipv6Packet(
            source=CN,
            destination=COA,
            extension_headers=(RoutingType2(home_address=HOA),),
            payload=NoNextHeader(),
        ).emit()
    )
    data[41] = 4
    data[4:6] = (len(data) - 40 + 16).to_bytes(2, "big")
    data += bytes(16)
    with pytest.raises(Malformed) as info:
        Ipv6Packet.parse(bytes(data))
    assert (info.value.field, info.value.offset) == ("hdr_ext_len", 41)


def test_routing_type0_parsed_and_flagged_deprecated() -> None:
    rh0 = RoutingType0(addresses=(HA, HOA), segments_left=2)
    data = Ipv6Packet(
        source=CN, destination=COA, extension_headers=(rh0,), payload=NoNextHeader()
    ).emit()
    parsed = Ipv6Packet.parse(data).routing_header
    assert parsed == rh0 and parsed.deprecated


def test_upper_layer_error_offsets_are_absolute() -> None:
    bu = mh.BindingUpdate(sequence=1).aligned()
    data = bytearray(
        Ipv6Packet(source=COA, destination=CN, extension_headers=(hao(),), payload=bu).emit()
    )
    data[64 + 4] ^= 0xFF
    with pytest.raises(BadChecksum) as info:
        Ipv6Packet.parse(bytes(data))
    assert info.value.offset == 64 + 4


def test_every_truncation_raises_only_wire_errors() -> None:
    bu = mh.BindingUpdate(sequence=1, options=(mh.BindingAuthorizationData(),)).aligned()
    data = Ipv6Packet(source=COA, destination=CN, extension_headers=(hao(),), payload=bu).emit()
    for cut in range(len(data)):
        with pytest.raises(WireError):
            Ipv6Packet.parse(data[:cut])


def test_second_home_address_option_is_malformed() -> None:
    data = Ipv6Packet(
        source=COA, destination=CN, extension_headers=(hao(), hao()), payload=NoNextHeader()
    ).emit()
    with pytest.raises(Malformed) as info:
        Ipv6Packet.parse(data)
    assert info.value.field == "home_address_option"
    with pytest.raises(Malformed):
        walk(data)


def test_misaligned_home_address_option_is_malformed() -> None:
    """RFC 3775 6.3: the option requires 8n+6 alignment; a parsed Repr must stay emittable."""
    options = bytes([59, 2]) + b"\x01\x00" + b"\xc9\x10" + HOA.packed + b"\x01\x00"  # HAO at 4
    header = Ipv6Packet(source=COA, destination=CN, payload=NoNextHeader()).emit()
    raw = bytearray(header + options)
    raw[4:6] = len(options).to_bytes(2, "big")
    raw[6] = 60
    with pytest.raises(Malformed) as info:
        Ipv6Packet.parse(bytes(raw))
    assert (info.value.field, info.value.offset) == ("alignment", 44)
    with pytest.raises(Malformed):
        walk(bytes(raw))


def test_too_many_extension_headers_bounded() -> None:
    headers = tuple(DestinationOptions.aligned([]) for _ in range(40))
    data = Ipv6Packet(
        source=CN, destination=HOA, extension_headers=headers, payload=NoNextHeader()
    ).emit()
    with pytest.raises(Malformed):
        Ipv6Packet.parse(data)
    with pytest.raises(Malformed):
        walk(data)


# -- scapy as an oracle: HAO, RH2, IPv6-in-IPv6 ------------------------------------------------


def scapy_bu_with_hao() -> IPv6:
    return (
        IPv6(src=str(COA), dst=str(CN))
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))])
        / MIP6MH_BU(
            seq=9,
            flags="A",
            mhtime=10,
            options=[
                MIP6OptNonceIndices(olen=4, hni=1, coni=2),
                MIP6OptBindingAuthData(olen=12, authenticator=5),
            ],
        )
    )


def test_scapy_hao_bu_parses_with_same_fields() -> None:
    """scapy computes this checksum right: the Home Address option is the only option (its
    PadN is added by autopad after dissection, not present when it builds)."""
    wire = bytes(scapy_bu_with_hao())
    packet = Ipv6Packet.parse(wire)
    assert packet.home_address == HOA and packet.source == COA
    bu = packet.payload
    assert isinstance(bu, mh.BindingUpdate) and (
        bu.sequence,
        bu.acknowledge,
        bu.lifetime_units_4s,
    ) == (9, True, 10)
    assert packet.emit() == wire


def test_scapy_misses_hao_behind_padn_in_checksum() -> None:
    """Known scapy bug (STYLE.md): with a PadN before the Home Address option scapy's MH
    checksum uses the care-of address; ours, the RFC's and the independent computation agree on
    the home address. Pinned so a scapy fix shows up here."""
    ours = Ipv6Packet(
        source=COA,
        destination=CN,
        extension_headers=(hao(),),
        payload=mh.BindingUpdate(sequence=3).aligned(),
    ).emit()
    assert upper_layer_checksum_ok(ours) == (135, True)
    dissected = IPv6(ours)
    assert isinstance(dissected[IPv6ExtHdrDestOpt].options[0], PadN)
    dissected[MIP6MH_BU].cksum = None
    assert bytes(dissected) != ours  # scapy recomputes a wrong checksum here


def test_our_hao_rh2_dissected_by_scapy() -> None:
    ba = mh.BindingAcknowledgement(status=0, sequence=9, lifetime_units_4s=10).aligned()
    data = Ipv6Packet(
        source=CN, destination=COA, extension_headers=(RoutingType2(home_address=HOA),), payload=ba
    ).emit()
    dissected = IPv6(data)
    rh = dissected[IPv6ExtHdrRouting]
    assert (rh.type, rh.segleft, rh.len, rh.addresses) == (2, 1, 2, [str(HOA)])
    ours_hao = Ipv6Packet(
        source=COA, destination=CN, extension_headers=(hao(),), payload=NoNextHeader()
    ).emit()
    assert IPv6(ours_hao)[HAO].hoa == str(HOA)


def test_scapy_tunnel_and_fragment_parse() -> None:
    inner = IPv6(src=str(CN), dst=str(HOA)) / ICMPv6EchoRequest(id=3, seq=4, data=b"hi")
    tunnel = IPv6(src=str(HA), dst=str(COA)) / inner
    packet = Ipv6Packet.parse(bytes(tunnel))
    assert isinstance(packet.payload, Ipv6Packet)
    echo = packet.payload.payload
    assert (echo.identifier, echo.sequence, echo.data) == (3, 4, b"hi")
    assert packet.emit() == bytes(tunnel)
    ours = Ipv6Packet(source=HA, destination=COA, payload=Ipv6Packet.parse(bytes(inner))).emit()
    assert bytes(IPv6(ours)) == ours and IPv6(ours)[IPv6].payload.src == str(CN)
    fragment = (
        IPv6(src=str(CN), dst=str(HOA))
        / IPv6ExtHdrFragment(offset=0, m=0, id=99)
        / UDP(sport=1, dport=2)
    )
    parsed = Ipv6Packet.parse(bytes(fragment))
    assert parsed.extension_headers == (FragmentHeader(identification=99),)
    hbh = IPv6(src=str(CN), dst=str(HOA)) / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2)
    assert Ipv6Packet.parse(bytes(hbh)).emit() == bytes(hbh)
