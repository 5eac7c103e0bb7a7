"""tshark as a second, independent decoder: every kind of packet we emit is written to a pcap,
decoded by tshark, and compared field by field with the Repr it came from. No packet may raise
a malformed-packet or warning/error expert item, and tshark's own UDP, TCP and ICMPv6 checksum
verification (switched on) must find our checksums good. tshark 4.0 does not verify the
Mobility Header checksum; the independent computation in test_ipv6.py covers that."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from mip6 import samples
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.esp import EspPacket
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import (
    DestinationOptions,
    FragmentHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType2,
    UnknownIpv6Option,
)
from mip6.wire.pcap import PcapWriter
from mip6.wire.tcp import (
    EndOfOptionList,
    NoOperation,
    Sack,
    TcpFlags,
    TcpSegment,
    WindowScale,
    aligned_tcp_options,
)
from mip6.wire.tlv import Pad1, PadN
from mip6.wire.udp import UdpDatagram

A = IPv6Address("2001:db8:2::1")
B = IPv6Address("2001:db8:3::5")
HOME = IPv6Address("2001:db8:1::5")


def extras() -> list[Ipv6Packet]:
    """Kinds the sample story does not already hold."""
    invoking = Ipv6Packet(
        source=B, destination=A, payload=UdpDatagram(source_port=1, destination_port=2)
    ).emit()
    return [
        Ipv6Packet(
            source=A,
            destination=B,
            payload=icmp.DestinationUnreachable(code=4, invoking_packet=invoking),
        ),
        Ipv6Packet(
            source=A, destination=B, payload=icmp.PacketTooBig(mtu=1280, invoking_packet=invoking)
        ),
        Ipv6Packet(
            source=A, destination=B, payload=icmp.TimeExceeded(code=0, invoking_packet=invoking)
        ),
        Ipv6Packet(
            source=A,
            destination=B,
            payload=icmp.ParameterProblem(code=0, pointer=41, invoking_packet=invoking),
        ),
        Ipv6Packet(
            source=IPv6Address("fe80::5"),
            destination=IPv6Address("ff02::2"),
            hop_limit=255,
            payload=icmp.RouterSolicitation(
                options=(icmp.SourceLinkLayerAddress(link_layer_address=bytes(6)),)
            ),
        ),
        Ipv6Packet(
            source=B,
            destination=A,
            hop_limit=255,
            payload=icmp.NeighborAdvertisement(
                solicited=True,
                override=True,
                target_address=B,
                options=(
                    icmp.TargetLinkLayerAddress(link_layer_address=bytes.fromhex("020000000005")),
                ),
            ),
        ),
        Ipv6Packet(
            source=IPv6Address("fe80::1"),
            destination=IPv6Address("ff02::1"),
            hop_limit=255,
            payload=icmp.RouterAdvertisement(
                home_agent=True,
                router_lifetime=600,
                options=(
                    icmp.Mtu(mtu=1500),
                    icmp.HomeAgentInformation(home_agent_preference=-5, home_agent_lifetime=600),
                ),
            ),
        ),
        Ipv6Packet(
            source=A,
            destination=B,
            payload=mh.BindingAcknowledgement(
                status=mh.BindingAckStatus.EXPIRED_NONCES,
                sequence=65535,
                key_management_mobility_capability=True,
                options=(mh.BindingRefreshAdvice(refresh_interval_units_4s=30),),
            ).aligned(),
            extension_headers=(RoutingType2(home_address=HOME),),
        ),
        Ipv6Packet(
            source=B,
            destination=A,
            payload=mh.BindingUpdate(
                sequence=1,
                link_local_address_compatibility=True,
                key_management_mobility_capability=True,
                options=(
                    Pad1(),
                    Pad1(),
                    mh.NonceIndices(home_nonce_index=5, care_of_nonce_index=6),
                    PadN(data=b"\0\0"),
                ),
            ),
            extension_headers=(DestinationOptions.aligned([HomeAddressOption(home_address=HOME)]),),
        ),
        Ipv6Packet(
            source=A,
            destination=B,
            payload=TcpSegment(
                source_port=1,
                destination_port=2,
                sequence_number=3,
                acknowledgment_number=4,
                flags=TcpFlags.ACK,
                window=100,
                payload=b"data",
                options=aligned_tcp_options(
                    [
                        NoOperation(),
                        WindowScale(shift_count=7),
                        NoOperation(),
                        NoOperation(),
                        Sack(blocks=((10, 20),)),
                        EndOfOptionList(),
                    ]
                ),
            ),
        ),
        Ipv6Packet(
            source=A,
            destination=B,
            payload=EspPacket(spi=0x10203, sequence_number=99, data=bytes(32)),
            extension_headers=(
                HopByHopOptions.aligned([UnknownIpv6Option(option_type=5, data=b"\0\0")]),
            ),
        ),
        Ipv6Packet(
            source=A,
            destination=B,
            extension_headers=(FragmentHeader(identification=0xABCDEF),),
            payload=UdpDatagram(source_port=7, destination_port=9, payload=b"atomic fragment"),
        ),
    ]


def colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def expected_fields(packet: Ipv6Packet) -> dict[str, str]:
    """What tshark must show for ``packet``, derived from our Repr."""
    want: dict[str, str] = {}
    if packet.home_address is not None:
        want["ipv6.opt.mipv6.home_address"] = str(packet.home_address)
    for header in packet.extension_headers:
        if isinstance(header, RoutingType2):
            want["ipv6.routing.type"] = "2"
            want["ipv6.routing.mipv6.home_address"] = str(header.home_address)
        if isinstance(header, FragmentHeader):
            want["ipv6.fraghdr.ident"] = f"0x{header.identification:08x}"
    payload = packet.payload
    if isinstance(payload, Ipv6Packet):
        return want  # the inner packet is checked as its own entry in the story
    if isinstance(payload, mh._Message):
        want["mip6.mhtype"] = str(payload.mh_type)
        want["mip6.proto"] = "59"
    if isinstance(payload, mh.HomeTestInit):
        want["mip6.hoti.cookie"] = "0x" + payload.home_init_cookie.hex()
    if isinstance(payload, mh.CareOfTestInit):
        want["mip6.coti.cookie"] = "0x" + payload.care_of_init_cookie.hex()
    if isinstance(payload, mh.HomeTest):
        want["mip6.hot.nindex"] = str(payload.home_nonce_index)
        want["mip6.hot.token"] = "0x" + payload.home_keygen_token.hex()
    if isinstance(payload, mh.CareOfTest):
        want["mip6.cot.nindex"] = str(payload.care_of_nonce_index)
        want["mip6.cot.cookie"] = "0x" + payload.care_of_init_cookie.hex()
    if isinstance(payload, mh.BindingUpdate):
        want["mip6.bu.seqnr"] = str(payload.sequence)
        want["mip6.bu.a_flag"] = str(int(payload.acknowledge))
        want["mip6.bu.h_flag"] = str(int(payload.home_registration))
        want["mip6.bu.l_flag"] = str(int(payload.link_local_address_compatibility))
        want["mip6.bu.k_flag"] = str(int(payload.key_management_mobility_capability))
        want["mip6.bu.lifetime"] = str(payload.lifetime_units_4s)
    if isinstance(payload, mh.BindingAcknowledgement):
        want["mip6.ba.status"] = str(payload.status)
        want["mip6.ba.k_flag"] = str(int(payload.key_management_mobility_capability))
        want["mip6.ba.seqnr"] = str(payload.sequence)
        want["mip6.ba.lifetime"] = str(payload.lifetime_units_4s)
    if isinstance(payload, mh.BindingError):
        want["mip6.be.status"] = str(payload.status)
        want["mip6.be.haddr"] = str(payload.home_address)
    for option in getattr(payload, "options", ()) if isinstance(payload, mh._Message) else ():
        if isinstance(option, mh.NonceIndices):
            want["mip6.ni.hni"] = str(option.home_nonce_index)
            want["mip6.ni.cni"] = str(option.care_of_nonce_index)
        if isinstance(option, mh.BindingAuthorizationData):
            want["mip6.bad.auth"] = colon_hex(option.authenticator)
        if isinstance(option, mh.AlternateCareOfAddress):
            want["mip6.acoa.acoa"] = str(option.alternate_care_of_address)
        if isinstance(option, mh.BindingRefreshAdvice):
            want["mip6.bra.interval"] = str(option.refresh_interval_units_4s)
    if isinstance(payload, icmp.EchoRequest | icmp.EchoReply):
        want["icmpv6.echo.identifier"] = f"0x{payload.identifier:04x}"
        want["icmpv6.echo.sequence_number"] = str(payload.sequence)
    if isinstance(payload, icmp.HomeAgentAddressDiscoveryReply):
        want["icmpv6.mip6.identifier"] = str(payload.identifier)
        want["icmpv6.mip6.home_agent_address"] = str(payload.home_agent_addresses[0])
    if isinstance(payload, icmp.MobilePrefixAdvertisement | icmp.MobilePrefixSolicitation):
        want["icmpv6.mip6.identifier"] = str(payload.identifier)
    if isinstance(payload, icmp.RouterAdvertisement):
        want["icmpv6.nd.ra.flag.h"] = str(int(payload.home_agent))
        want["icmpv6.nd.ra.router_lifetime"] = str(payload.router_lifetime)
    if isinstance(payload, icmp.ParameterProblem):
        want["icmpv6.pointer"] = str(payload.pointer)
    if isinstance(payload, UdpDatagram):
        want["udp.srcport"] = str(payload.source_port)
        want["udp.dstport"] = str(payload.destination_port)
        want["udp.checksum.status"] = "1"
    if isinstance(payload, TcpSegment):
        want["tcp.srcport"] = str(payload.source_port)
        want["tcp.seq_raw"] = str(payload.sequence_number)
        want["tcp.checksum.status"] = "1"
    if isinstance(payload, EspPacket):
        want["esp.spi"] = f"0x{payload.spi:08x}"
        want["esp.sequence"] = str(payload.sequence_number)
    if hasattr(payload, "icmp_type") or type(payload).__module__ == icmp.__name__:
        want["icmpv6.checksum.status"] = "1"
    return want


def flatten(tree: object, into: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if isinstance(value, str):
                into.setdefault(key, []).append(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                into.setdefault(key, []).extend(value)
            else:
                flatten(value, into)
    elif isinstance(tree, list):
        for item in tree:
            flatten(item, into)
    return into


@pytest.fixture(scope="module")
def decoded(
    tshark: str, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Ipv6Packet, dict[str, list[str]]]]:
    packets = [p for p in samples.story() if isinstance(p, Ipv6Packet)] + extras()
    path = Path(tmp_path_factory.mktemp("tshark")) / "all.pcap"
    with path.open("wb") as stream, PcapWriter(stream, link_type=229) as writer:
        for i, packet in enumerate(packets):
            writer.write(packet.emit(), 1_000_000_000 + i)
    result = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-T",
            "json",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    frames = json.loads(result.stdout)
    assert len(frames) == len(packets)
    return [(p, flatten(f["_source"]["layers"], {})) for p, f in zip(packets, frames, strict=True)]


def test_tshark_shows_our_field_values(
    decoded: list[tuple[Ipv6Packet, dict[str, list[str]]]],
) -> None:
    checked = 0
    for number, (packet, fields) in enumerate(decoded, 1):
        for name, value in expected_fields(packet).items():
            assert value in fields.get(name, []), (number, name, value, fields.get(name))
            checked += 1
    assert checked > 120


def test_tshark_finds_nothing_malformed(
    decoded: list[tuple[Ipv6Packet, dict[str, list[str]]]],
) -> None:
    for number, (_packet, fields) in enumerate(decoded, 1):
        assert "_ws.malformed" not in fields, number
        severities = fields.get("_ws.expert.severity", [])
        # 2097152 chat, 4194304 warning, 8388608 error (epan/proto.h PI_* values)
        assert not [s for s in severities if int(s) >= 4194304], (
            number,
            fields.get("_ws.expert.message"),
        )


def test_every_message_kind_was_covered(
    decoded: list[tuple[Ipv6Packet, dict[str, list[str]]]],
) -> None:
    kinds = {type(p.payload) for p, _ in decoded}
    for payload in [p.payload for p, _ in decoded if isinstance(p.payload, Ipv6Packet)]:
        kinds.add(type(payload.payload))
    assert set(mh.MESSAGE_CLASSES.values()) <= kinds
    options = {
        type(o) for p, _ in decoded if isinstance(p.payload, mh._Message) for o in p.payload.options
    }
    assert {
        mh.NonceIndices,
        mh.BindingAuthorizationData,
        mh.AlternateCareOfAddress,
        mh.BindingRefreshAdvice,
        mh.Pad1,
        mh.PadN,
    } <= options
    icmp_kinds = {k for k in kinds if k.__module__ == icmp.__name__}
    assert len(icmp_kinds) >= 13
