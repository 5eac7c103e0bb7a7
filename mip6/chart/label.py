"""What a packet is, in the few words an arrow of a sequence chart can carry.

Mobile IPv6 signalling is named as RFC 3775 names it (HoTI, CoTI, HoT, CoT, BU, BA, BE, BRR) with
what a reader follows it by: the cookie that ties a HoT to its HoTI (and a relayed HoTI to the
one the acceptor sent), the BU's sequence number and lifetime, the BA's status. A packet in an
IPv6-in-IPv6 tunnel (RFC 2473) is labelled by its inner packet, marked ``tunnel:``. Data is
labelled for collapsing: its :attr:`Label.run` says what a run of it is ("TCP", "TCP in tunnel",
"TCP route-optimized") and :attr:`Label.size` how many payload bytes it carries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mip6.dissect import Dissection
from mip6.wire import icmpv6, tcp, udp
from mip6.wire import mobility as mh
from mip6.wire.esp import EspPacket
from mip6.wire.ipv6 import Ipv6Packet, NoNextHeader, RawPayload
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption, RoutingType2
from mip6.wire.tcp import TcpFlags


class Kind(enum.Enum):
    MOBILITY = "mobility"  # RFC 3775 signalling: MH, ICMPv6 144-147, ESP (RFC 3776)
    CHANNEL = "channel"  # the member channel's handshake and messages
    CONTROL = "control"  # TCP SYN/FIN/RST, ICMPv6 errors, malformed packets: an arrow each
    DATA = "data"  # collapsed into runs


@dataclass(frozen=True, slots=True)
class Label:
    kind: Kind
    text: str
    run: str = ""  # DATA: what a run of such packets is called
    size: int = 0  # DATA: payload bytes
    unit: str = "packets"  # DATA: what the run counts
    sealed: bool = False  # a member-channel frame shown without being opened


_MOBILITY_ICMP = (
    icmpv6.HomeAgentAddressDiscoveryRequest,
    icmpv6.HomeAgentAddressDiscoveryReply,
    icmpv6.MobilePrefixSolicitation,
    icmpv6.MobilePrefixAdvertisement,
)
_NEIGHBOUR_DISCOVERY = (
    icmpv6.RouterSolicitation,
    icmpv6.RouterAdvertisement,
    icmpv6.NeighborSolicitation,
    icmpv6.NeighborAdvertisement,
)
_CONTROL_FLAGS = ((TcpFlags.SYN, "SYN"), (TcpFlags.FIN, "FIN"), (TcpFlags.RST, "RST"))
COOKIE_BYTES = 4  # of a cookie shown: enough to tell a chart's handful apart


def _cookie(cookie: bytes) -> str:
    return cookie[:COOKIE_BYTES].hex()


def _status(status: int, names: type[enum.IntEnum]) -> str:
    try:
        return f"{status} {names(status).name.lower().replace('_', ' ')}"
    except ValueError:
        return str(status)


def mobility_text(message: mh.MobilityMessage) -> str:
    """``BU seq 7 lifetime 420s A H``, ``HoTI cookie 01020304``, ``BA 0 accepted seq 7 ...``."""
    match message:
        case mh.HomeTestInit():
            return f"HoTI cookie {_cookie(message.home_init_cookie)}"
        case mh.CareOfTestInit():
            return f"CoTI cookie {_cookie(message.care_of_init_cookie)}"
        case mh.HomeTest():
            return (
                f"HoT cookie {_cookie(message.home_init_cookie)} index {message.home_nonce_index}"
            )
        case mh.CareOfTest():
            cookie = _cookie(message.care_of_init_cookie)
            return f"CoT cookie {cookie} index {message.care_of_nonce_index}"
        case mh.BindingUpdate():
            flags = "".join(
                f" {letter}"
                for letter, on in (
                    ("A", message.acknowledge),
                    ("H", message.home_registration),
                )
                if on
            )
            delete = " (delete)" if message.lifetime_s == 0 else ""
            return f"BU seq {message.sequence} lifetime {message.lifetime_s}s{delete}{flags}"
        case mh.BindingAcknowledgement():
            status = _status(message.status, mh.BindingAckStatus)
            return f"BA {status} seq {message.sequence} lifetime {message.lifetime_s}s"
        case mh.BindingError():
            return (
                f"BE {_status(message.status, mh.BindingErrorStatus)} home {message.home_address}"
            )
        case mh.BindingRefreshRequest():
            return "BRR"
        case mh.UnknownMobilityMessage():
            return f"MH type {message.mh_type}"
    raise TypeError(f"not a mobility message: {message!r}")


def _path(packet: Ipv6Packet) -> str:
    """How a packet travels: route-optimized (a type 2 routing header or a Home Address
    option, RFC 3775 6.3-6.4) or not."""
    for header in packet.extension_headers:
        if isinstance(header, RoutingType2):
            return " route-optimized"
        if isinstance(header, DestinationOptions) and any(
            isinstance(option, HomeAddressOption) for option in header.options
        ):
            return " route-optimized"
    return ""


def _payload_label(payload: object, path: str) -> Label:
    if isinstance(payload, mh.MobilityMessage):
        return Label(Kind.MOBILITY, mobility_text(payload))
    if isinstance(payload, EspPacket):
        text = f"ESP spi 0x{payload.spi:08x} seq {payload.sequence_number} (encrypted)"
        return Label(Kind.MOBILITY, text)
    if isinstance(payload, tcp.TcpSegment):
        flags = [name for flag, name in _CONTROL_FLAGS if payload.flags & flag]
        if flags:
            ports = f"{payload.source_port} > {payload.destination_port}"
            return Label(Kind.CONTROL, f"TCP {'+'.join(flags)} {ports}{path}")
        return Label(Kind.DATA, "", f"TCP{path}", len(payload.payload), "segments")
    if isinstance(payload, udp.UdpDatagram):
        return Label(Kind.DATA, "", f"UDP{path}", len(payload.payload), "datagrams")
    if isinstance(payload, _MOBILITY_ICMP):
        return Label(Kind.MOBILITY, icmpv6.describe(payload))
    if isinstance(payload, icmpv6.EchoRequest | icmpv6.EchoReply):
        text = f"ICMP6 {payload.name} seq {payload.sequence}"
        return Label(Kind.DATA, text, f"ICMP6 echo{path}", len(payload.data))
    if isinstance(payload, _NEIGHBOUR_DISCOVERY):
        return Label(Kind.DATA, icmpv6.describe(payload), "neighbour discovery")
    if isinstance(payload, NoNextHeader):
        return Label(Kind.DATA, "no next header", "no next header", len(payload.data))
    if isinstance(payload, RawPayload):
        return Label(Kind.DATA, f"protocol {payload.protocol}", f"protocol {payload.protocol}")
    return Label(Kind.CONTROL, icmpv6.describe(payload))  # type: ignore[arg-type]


def label(dissection: Dissection) -> Label:
    """The label of one IPv6 packet; a tunnelled one (RFC 2473, nested as deep as it goes) by
    its innermost packet, with a ``tunnel:`` per level."""
    packet = dissection.packet
    if packet is None:
        return Label(Kind.CONTROL, f"malformed: {dissection.error}")
    depth = 0
    while isinstance(packet.payload, Ipv6Packet):
        packet, depth = packet.payload, depth + 1
    inner = _payload_label(packet.payload, _path(packet))
    if not depth:
        return inner
    prefix = "tunnel: " * depth
    if inner.kind is Kind.DATA:
        levels = " in tunnel" * depth
        text = prefix + inner.text if inner.text else ""
        return Label(Kind.DATA, text, inner.run + levels, inner.size, inner.unit)
    return Label(inner.kind, prefix + inner.text)


def udp_datagram(dissection: Dissection) -> tuple[Ipv6Packet, udp.UdpDatagram] | None:
    """The packet and its UDP datagram, when it carries one outside any tunnel."""
    packet = dissection.packet
    if packet is not None and isinstance(packet.payload, udp.UdpDatagram):
        return packet, packet.payload
    return None


def tcp_segment(dissection: Dissection) -> tuple[Ipv6Packet, tcp.TcpSegment] | None:
    """The packet and its TCP segment, when it carries one outside any tunnel."""
    packet = dissection.packet
    if packet is not None and isinstance(packet.payload, tcp.TcpSegment):
        return packet, packet.payload
    return None
