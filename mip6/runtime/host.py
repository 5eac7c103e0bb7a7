"""Host mode (ARCHITECTURE 4): the IPv6 host that lives inside the daemon.

The engine hands :meth:`Host.deliver` what it delivers, after Mobile IPv6 processing (for a
mobile node: packets to its home address, the care-of address, type 2 routing header and Home
Address option already gone). TCP goes to a tcp_migrate :class:`~tcp_migrate.stack.Stack` bound
to the node's addresses, which answers a segment for no connection and no listener with a RST
(RFC 9293 3.10.7.1); UDP goes to the port bound with :meth:`Host.udp_bind`, and a datagram for
a port nobody bound gets an ICMPv6 Destination Unreachable, code 4 (RFC 4443 3.1: "if the
transport protocol [...] has no listener"), through the node's own ICMPv6 error path, which
applies RFC 4443 2.4 and the node's rate limit; ICMPv6 Echo Requests are answered
(:func:`mip6.apps.echo.echo`). Everything the host sends goes to ``send``: the engine's send
path (binding cache translation, Home Address option, reverse tunnelling), as packets from the
kernel's TUN device do in shim mode.

A :class:`Host` is a :class:`tcp_migrate.tun.StackTimers`, as tcp_migrate's TUN driver is: the
stack's deadlines run on the asyncio loop's clock, and :meth:`open_connection` /
:meth:`start_server` give tcp_migrate's asyncio streams.

Not here: fragment reassembly (fragments are dropped and counted, as the stack does), a
Parameter Problem for an unknown Next Header (dropped and counted), multicast groups.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Iterable
from ipaddress import IPv6Address
from typing import Any

from mip6.apps.echo import echo
from mip6.wire import protocols
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram
from mip6.wire.walk import walk
from tcp_migrate.stack import Stack
from tcp_migrate.tun import (
    ClientConnected,
    Server,
    StackTimers,
    StreamWriter,
    open_connection,
    start_server,
)

log = logging.getLogger(__name__)

EPHEMERAL_PORTS = (49152, 65535)  # RFC 6335 6: the dynamic range
Address = tuple[str, int]
# payload, the sender's (address, port), the (address, port) it was sent to
DatagramReceiver = Callable[[bytes, Address, Address], None]


class UdpEndpoint:
    """One bound UDP port of a :class:`Host` (:meth:`Host.udp_bind`)."""

    def __init__(self, host: Host, port: int, receive: DatagramReceiver) -> None:
        self.host = host
        self.port = port
        self.receive = receive
        self.closed = False

    def sendto(self, data: bytes, remote: Address, source: str | None = None) -> None:
        """One datagram to ``remote`` from this port, from ``source`` (default the host's
        first address: a mobile node's home address)."""
        if self.closed:
            raise OSError(errno.EBADF, "UDP endpoint closed")
        self.host.send_udp(data, self.port, remote, source)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.host._udp.pop(self.port, None)


class Host(StackTimers):
    """The host-mode upper layers over one engine (see the module docstring). ``addresses``
    are the node's own (the first is the default source); ``send`` takes one whole IPv6 packet
    towards the engine; ``port_unreachable(invoking)`` answers the packet ``invoking`` with an
    ICMPv6 Port Unreachable (the node's error path decides whether it may); ``secret`` keys
    the stack's ISS and port hashes."""

    def __init__(
        self,
        *,
        addresses: Iterable[IPv6Address],
        send: Callable[[bytes], None],
        port_unreachable: Callable[[bytes], None],
        loop: asyncio.AbstractEventLoop,
        secret: bytes,
    ) -> None:
        self.addresses = tuple(addresses)
        if not self.addresses:
            raise ValueError("a host needs at least one address")
        self._packed = frozenset(a.packed for a in self.addresses)
        self._send = send
        self._port_unreachable = port_unreachable
        super().__init__(loop, Stack(transmit=send, local_addresses=self.addresses, secret=secret))
        self._udp: dict[int, UdpEndpoint] = {}
        self._next_port = 0
        self._servers: list[Server] = []
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- from the engine -------------------------------------------------------------------------

    def deliver(self, data: bytes) -> None:
        """One packet the engine delivered."""
        try:
            chain = walk(data)
        except WireError:
            self._count("malformed")
            return
        if chain.fragmented:
            self._count("fragment_dropped")
            return
        protocol = chain.upper_protocol
        if protocol == protocols.TCP:
            self._count("tcp_in")
            self.stack.receive(self.now_ms(), data)
            self.kick()
        elif protocol == protocols.UDP:
            self._udp_in(data, chain.upper_offset, chain.source, chain.destination)
        elif protocol == protocols.ICMPV6:
            answers = echo(self.loop.time(), data)
            self._count("echo_answered" if answers else "icmp_ignored")
            for answer in answers:
                self._send(answer)
        else:
            self._count("protocol_dropped")

    def _udp_in(self, data: bytes, offset: int, source: bytes, destination: bytes) -> None:
        if destination not in self._packed:
            self._count("udp_not_ours")
            return
        end = 40 + ((data[4] << 8) | data[5])
        try:
            datagram = UdpDatagram.parse(data[offset:end], source=source, destination=destination)
        except WireError:
            self._count("udp_malformed")
            return
        endpoint = self._udp.get(datagram.destination_port)
        if endpoint is None:
            self._count("udp_port_unreachable")
            self._port_unreachable(data)
            return
        self._count("udp_in")
        endpoint.receive(
            datagram.payload,
            (str(IPv6Address(source)), datagram.source_port),
            (str(IPv6Address(destination)), datagram.destination_port),
        )

    # -- UDP -------------------------------------------------------------------------------------

    def udp_bind(self, port: int, receive: DatagramReceiver) -> UdpEndpoint:
        """Datagrams to ``port`` (any of the host's addresses) go to ``receive``; port 0 picks a
        free one from the dynamic range. OSError EADDRINUSE if the port is taken."""
        if port == 0:
            port = self._free_port()
        if not 0 < port <= 0xFFFF:
            raise ValueError(f"UDP port {port} is out of range")
        if port in self._udp:
            raise OSError(errno.EADDRINUSE, f"UDP port {port} is in use")
        endpoint = UdpEndpoint(self, port, receive)
        self._udp[port] = endpoint
        return endpoint

    def _free_port(self) -> int:
        low, high = EPHEMERAL_PORTS
        count = high - low + 1
        for _ in range(count):
            port = low + self._next_port % count
            self._next_port += 1
            if port not in self._udp:
                return port
        raise OSError(errno.EADDRINUSE, "no free UDP port")

    def send_udp(self, data: bytes, port: int, remote: Address, source: str | None) -> None:
        address = IPv6Address(source) if source is not None else self.addresses[0]
        if address.packed not in self._packed:
            raise OSError(errno.EADDRNOTAVAIL, f"{address} is not this host's")
        packet = Ipv6Packet(
            source=address,
            destination=IPv6Address(remote[0]),
            payload=UdpDatagram(source_port=port, destination_port=remote[1], payload=data),
        )
        self._count("udp_out")
        self._send(packet.emit())

    # -- TCP: tcp_migrate's streams on the host's stack --------------------------------------------

    async def open_connection(
        self, host: str, port: int, *, limit: int = 2**16
    ) -> tuple[asyncio.StreamReader, StreamWriter]:
        """A TCP connection from the host's stack (tcp_migrate's streams)."""
        return await open_connection(self, host, port, limit=limit)

    async def start_server(
        self, client_connected: ClientConnected, host: str = "::", port: int = 0, **kwargs: Any
    ) -> Server:
        """Listen on (host, port) of the host's stack; ``client_connected(reader, writer)``
        for each connection (a coroutine becomes a task). Closed with the host."""
        server = await start_server(self, client_connected, host, port, **kwargs)
        self._servers.append(server)
        return server

    # -- state -----------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """For ``mip6 show``: counters (``tcp.*`` from the stack) and the TCP connections."""
        counters = dict(self.counters) | {f"tcp.{k}": v for k, v in self.stack.counters.items()}
        connections = [
            {
                "local": f"[{sock.local[0]}]:{sock.local[1]}",
                "remote": f"[{sock.remote[0]}]:{sock.remote[1]}",
                "state": sock.state.name,
                "send_buffered": sock.send_buffered,
                "readable": sock.readable,
            }
            for sock in self.stack.connections
        ]
        counters["tcp.connections"] = len(connections)
        counters["udp.bound"] = len(self._udp)
        return {"counters": counters, "connections": connections}

    def close(self) -> None:
        """Stop listening and polling; connections still open are aborted (a RST each)."""
        for server in self._servers:
            server.close()
        self._servers.clear()
        for sock in self.stack.connections:
            sock.abort()
        self.stack.poll(self.now_ms())
        for endpoint in list(self._udp.values()):
            endpoint.close()
        self.cancel_timer()
