"""The sample capture shipped with the package (``mip6/data/sample.pcap``), and how it is made.

A Mobile IPv6 story as it crosses the wire, every packet built with :mod:`mip6.wire` and every
return routability value computed with :mod:`mip6.core.rr`, so what ``mip6 decode`` shows with no
arguments is correct to the bit: neighbour discovery and home agent discovery, home registration
(shown unprotected, as in a lab run with ESP switched off, then an ESP-protected one), traffic
tunnelled by the home agent, return routability, route-optimized traffic in both directions,
binding refresh, binding error, and one packet with a corrupted checksum. Regenerate with
``python -m mip6.samples``; ``tests/test_samples.py`` checks the shipped file matches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from importlib import resources
from ipaddress import IPv6Address
from pathlib import Path

from mip6.core import rr
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.esp import EspPacket
from mip6.wire.ipv6 import Ipv6Packet, Payload
from mip6.wire.ipv6ext import DestinationOptions, ExtensionHeader, HomeAddressOption, RoutingType2
from mip6.wire.pcap import PcapWriter
from mip6.wire.tcp import (
    MaximumSegmentSize,
    SackPermitted,
    TcpFlags,
    TcpSegment,
    Timestamps,
    aligned_tcp_options,
)
from mip6.wire.udp import UdpDatagram

HOME_AGENT = IPv6Address("2001:db8:1::1")
HOME_ADDRESS = IPv6Address("2001:db8:1::5")
CARE_OF_ADDRESS = IPv6Address("2001:db8:3::5")
CORRESPONDENT = IPv6Address("2001:db8:2::1")
ROUTER_LINK_LOCAL = IPv6Address("fe80::1")
MN_LINK_LOCAL = IPv6Address("fe80::5")
ALL_NODES = IPv6Address("ff02::1")
HOME_AGENTS_ANYCAST = IPv6Address("2001:db8:1::fdff:ffff:ffff:fffe")  # RFC 2526 id 126

KCN = bytes(range(20))  # the correspondent's secret; fixed so the capture is reproducible
HOME_NONCE = bytes.fromhex("1122334455667788")
CARE_OF_NONCE = bytes.fromhex("8877665544332211")
HOME_INIT_COOKIE = bytes.fromhex("0102030405060708")
CARE_OF_INIT_COOKIE = bytes.fromhex("1112131415161718")
START_NS = 1_700_000_000 * 1_000_000_000


def _packet(
    source: IPv6Address,
    destination: IPv6Address,
    payload: Payload,
    *headers: ExtensionHeader,
    hop_limit: int = 64,
) -> Ipv6Packet:
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=payload,
        extension_headers=headers,
        hop_limit=hop_limit,
    )


def _hao() -> DestinationOptions:
    return DestinationOptions.aligned([HomeAddressOption(home_address=HOME_ADDRESS)])


def _rh2() -> RoutingType2:
    return RoutingType2(home_address=HOME_ADDRESS)


def _signed(message: mh.BindingUpdate | mh.BindingAcknowledgement, kbm: bytes) -> mh._Message:
    """The message with its Binding Authorization Data filled in (RFC 3775 6.2.7)."""
    unsigned = message.aligned()
    data = mh.mobility_data_for_authenticator(unsigned)
    authenticator = rr.authenticator(kbm, CARE_OF_ADDRESS, CORRESPONDENT, data)
    options = (*unsigned.options[:-1], mh.BindingAuthorizationData(authenticator=authenticator))
    return replace(unsigned, options=options)


def story() -> Iterator[Ipv6Packet | bytes]:
    """The packets in order; a ``bytes`` item is a deliberately corrupted packet."""
    ra = icmp.RouterAdvertisement(
        cur_hop_limit=64,
        home_agent=True,  # RFC 3775 7.1: the router is a home agent
        router_lifetime=1800,
        options=(
            icmp.SourceLinkLayerAddress(link_layer_address=bytes.fromhex("020000000001")),
            icmp.PrefixInformation(
                prefix_length=64,
                prefix=IPv6Address("2001:db8:3::"),
                on_link=True,
                autonomous=True,
                valid_lifetime=86400,
                preferred_lifetime=14400,
            ),
            icmp.AdvertisementInterval(advertisement_interval_ms=1000),
        ),
    )
    yield _packet(ROUTER_LINK_LOCAL, ALL_NODES, ra, hop_limit=255)
    ns = icmp.NeighborSolicitation(target_address=CARE_OF_ADDRESS)  # duplicate address detection
    yield _packet(IPv6Address("::"), IPv6Address("ff02::1:ff00:5"), ns, hop_limit=255)

    # Dynamic home agent address discovery (RFC 3775 10.5) and mobile prefix discovery.
    yield _packet(
        CARE_OF_ADDRESS,
        HOME_AGENTS_ANYCAST,
        icmp.HomeAgentAddressDiscoveryRequest(identifier=0x4D49),
    )
    yield _packet(
        HOME_AGENT,
        CARE_OF_ADDRESS,
        icmp.HomeAgentAddressDiscoveryReply(identifier=0x4D49, home_agent_addresses=(HOME_AGENT,)),
    )

    # Home registration (RFC 3775 11.7.1): BU with the Home Address option, BA with RH2.
    bu = mh.BindingUpdate(
        sequence=1000,
        acknowledge=True,
        home_registration=True,
        lifetime_units_4s=105,
        options=(mh.AlternateCareOfAddress(alternate_care_of_address=CARE_OF_ADDRESS),),
    ).aligned()
    yield _packet(CARE_OF_ADDRESS, HOME_AGENT, bu, _hao())
    ba = mh.BindingAcknowledgement(
        status=mh.BindingAckStatus.ACCEPTED, sequence=1000, lifetime_units_4s=105
    ).aligned()
    yield _packet(HOME_AGENT, CARE_OF_ADDRESS, ba, _rh2())
    # The same registration as RFC 3776 wants it: ESP in transport mode (payload opaque here).
    yield _packet(
        CARE_OF_ADDRESS,
        HOME_AGENT,
        EspPacket(spi=0x1000, sequence_number=1, data=bytes(range(48))),
        _hao(),
    )

    yield _packet(
        CARE_OF_ADDRESS,
        HOME_AGENT,
        icmp.MobilePrefixSolicitation(identifier=7),
        _hao(),
    )
    yield _packet(
        HOME_AGENT,
        CARE_OF_ADDRESS,
        icmp.MobilePrefixAdvertisement(
            identifier=7,
            options=(
                icmp.PrefixInformation(
                    prefix_length=64,
                    prefix=IPv6Address("2001:db8:1::"),
                    on_link=True,
                    autonomous=True,
                    valid_lifetime=86400,
                    preferred_lifetime=14400,
                ),
            ),
        ),
        _rh2(),
    )

    # The correspondent pings the home address; the home agent tunnels it (RFC 2473).
    echo = icmp.EchoRequest(identifier=1, sequence=1, data=b"mip6 sample " * 4)
    ping = _packet(CORRESPONDENT, HOME_ADDRESS, echo)
    yield ping
    yield _packet(HOME_AGENT, CARE_OF_ADDRESS, ping)
    reply = _packet(
        HOME_ADDRESS, CORRESPONDENT, icmp.EchoReply(identifier=1, sequence=1, data=echo.data)
    )
    yield _packet(CARE_OF_ADDRESS, HOME_AGENT, reply)  # reverse tunnel
    yield reply

    # Return routability (RFC 3775 5.2): HoTI through the home agent, CoTI directly.
    hoti = _packet(HOME_ADDRESS, CORRESPONDENT, mh.HomeTestInit(home_init_cookie=HOME_INIT_COOKIE))
    yield _packet(CARE_OF_ADDRESS, HOME_AGENT, hoti)
    yield hoti
    yield _packet(
        CARE_OF_ADDRESS, CORRESPONDENT, mh.CareOfTestInit(care_of_init_cookie=CARE_OF_INIT_COOKIE)
    )
    home_token = rr.home_keygen_token(KCN, HOME_ADDRESS, HOME_NONCE)
    care_of_token = rr.care_of_keygen_token(KCN, CARE_OF_ADDRESS, CARE_OF_NONCE)
    hot = _packet(
        CORRESPONDENT,
        HOME_ADDRESS,
        mh.HomeTest(
            home_nonce_index=1, home_init_cookie=HOME_INIT_COOKIE, home_keygen_token=home_token
        ),
    )
    yield hot
    yield _packet(HOME_AGENT, CARE_OF_ADDRESS, hot)
    yield _packet(
        CORRESPONDENT,
        CARE_OF_ADDRESS,
        mh.CareOfTest(
            care_of_nonce_index=2,
            care_of_init_cookie=CARE_OF_INIT_COOKIE,
            care_of_keygen_token=care_of_token,
        ),
    )

    # The correspondent registration, authorized with Kbm (RFC 3775 5.2.6).
    kbm = rr.binding_management_key(home_token, care_of_token)
    bu_cn = mh.BindingUpdate(
        sequence=2000,
        acknowledge=True,
        lifetime_units_4s=105,
        options=(
            mh.NonceIndices(home_nonce_index=1, care_of_nonce_index=2),
            mh.BindingAuthorizationData(),
        ),
    )
    yield _packet(CARE_OF_ADDRESS, CORRESPONDENT, _signed(bu_cn, kbm), _hao())
    ba_cn = mh.BindingAcknowledgement(
        status=mh.BindingAckStatus.ACCEPTED,
        sequence=2000,
        lifetime_units_4s=105,
        options=(mh.BindingAuthorizationData(),),
    )
    yield _packet(CORRESPONDENT, CARE_OF_ADDRESS, _signed(ba_cn, kbm), _rh2())

    # Route-optimized traffic: RH2 towards the mobile node, Home Address option from it.
    syn = TcpSegment(
        source_port=80,
        destination_port=40000,
        sequence_number=0x10000,
        acknowledgment_number=0x20001,
        flags=TcpFlags.SYN | TcpFlags.ACK,
        window=65535,
        options=aligned_tcp_options(
            [
                MaximumSegmentSize(maximum_segment_size=1400),
                SackPermitted(),
                Timestamps(tsval=100, tsecr=50),
            ]
        ),
    )
    yield _packet(CORRESPONDENT, CARE_OF_ADDRESS, syn, _rh2())
    query = UdpDatagram(
        source_port=5353, destination_port=7, payload=b"echo over route optimization"
    )
    yield _packet(CARE_OF_ADDRESS, CORRESPONDENT, query, _hao())

    # Binding refresh request before expiry (RFC 3775 9.5.5), and a Binding Error for a Home
    # Address option with no binding (RFC 3775 9.3.1).
    # RFC 3775 6.1: Mobility Header messages other than the BA never use the binding, so the
    # request goes to the home address and the home agent tunnels it.
    yield _packet(
        HOME_AGENT,
        CARE_OF_ADDRESS,
        _packet(CORRESPONDENT, HOME_ADDRESS, mh.BindingRefreshRequest()),
    )
    yield _packet(
        CORRESPONDENT,
        IPv6Address("2001:db8:4::9"),
        mh.BindingError(
            status=mh.BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION,
            home_address=IPv6Address("2001:db8:1::9"),
        ).aligned(),
    )

    # A Binding Update whose checksum was corrupted in flight: decoders must say so.
    corrupted = bytearray(
        _packet(CARE_OF_ADDRESS, CORRESPONDENT, _signed(bu_cn, kbm), _hao()).emit()
    )
    corrupted[64 + 4] ^= 0x5A
    yield bytes(corrupted)


def write(path: Path) -> int:
    """Write the story as a raw-IPv6 pcap (link type 229), 10 ms apart; returns the count."""
    with path.open("wb") as stream, PcapWriter(stream, link_type=229) as writer:
        count = 0
        for count, packet in enumerate(story(), 1):
            data = packet if isinstance(packet, bytes) else packet.emit()
            writer.write(data, START_NS + count * 10_000_000)
    return count


def shipped_path() -> Path:
    return Path(str(resources.files("mip6").joinpath("data/sample.pcap")))


if __name__ == "__main__":
    print(f"wrote {write(shipped_path())} packets to {shipped_path()}")
