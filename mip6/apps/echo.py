"""Echo: answers ICMPv6 Echo Requests (RFC 4443 4.2, as any IPv6 node's kernel does) and UDP
datagrams to the echo port (RFC 862), from the address they were sent to. :func:`echo` works on
whole packets (any driver); :func:`udp_echo` is the UDP service on a host-mode daemon's UDP
API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mip6.wire import icmpv6 as icmp
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

if TYPE_CHECKING:
    from mip6.runtime.host import AsyncHost, Host, UdpEndpoint

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


def udp_echo(host: Host | AsyncHost, port: int = ECHO_PORT) -> UdpEndpoint:
    """RFC 862 over ``host``'s UDP: every datagram to ``port`` goes back to its sender, from
    the address it was sent to."""

    def receive(data: bytes, remote: tuple[str, int], local: tuple[str, int]) -> None:
        endpoint.sendto(data, remote, source=local[0])

    endpoint = host.udp_bind(port, receive)
    return endpoint
