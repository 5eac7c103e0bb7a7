"""Echo: answers ICMPv6 Echo Requests (RFC 4443 4.2, as any IPv6 node's kernel does) and UDP
datagrams to the echo port (RFC 862), from the address they were sent to."""

from __future__ import annotations

from mip6.wire import icmpv6 as icmp
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

ECHO_PORT = 7


def echo(now: float, data: bytes) -> list[bytes]:
    """The answer to one delivered packet, if it asks for one."""
    try:
        packet = Ipv6Packet.parse(data)
    except WireError:
        return []
    request = packet.payload
    if isinstance(request, icmp.EchoRequest):
        answer: icmp.EchoReply | UdpDatagram = icmp.EchoReply(
            identifier=request.identifier, sequence=request.sequence, data=request.data
        )
    elif isinstance(request, UdpDatagram) and request.destination_port == ECHO_PORT:
        answer = UdpDatagram(
            source_port=ECHO_PORT, destination_port=request.source_port, payload=request.payload
        )
    else:
        return []
    if packet.destination.is_multicast:
        return []
    reply = Ipv6Packet(source=packet.destination, destination=packet.source, payload=answer)
    return [reply.emit()]
