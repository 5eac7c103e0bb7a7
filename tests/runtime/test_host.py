"""The host-mode host on its own: two :class:`Host`s wired back to back on one asyncio loop (no
Mobile IPv6: each node's engine passes packets straight through), driven by the node runtime and
used through the asyncio adapter, and the built-in HTTP server's answers."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import Awaitable, Callable
from ipaddress import IPv6Address

import pytest

from mip6.apps.echo import udp_echo
from mip6.apps.http import BLOCK, Body, HttpServer, generated_body
from mip6.core.actions import Deliver
from mip6.runtime.host import AsyncHost
from mip6.runtime.host import Host as SansIoHost
from mip6.runtime.node import NodeRuntime
from mip6.wire.ipv6 import Ipv6Packet, RawPayload
from tests.engines import PassThrough

A = IPv6Address("2001:db8::a")
B = IPv6Address("2001:db8::b")


class Host(AsyncHost):
    """The asyncio adapter, plus a ``deliver`` for the tests."""

    def __init__(self, address: IPv6Address, loop: asyncio.AbstractEventLoop) -> None:
        self.unreachable: list[bytes] = []
        self.runtime = NodeRuntime(
            str(address),
            PassThrough(self.unreachable),
            loop,
            {"network": self},
            host=SansIoHost(addresses=[address], secret=os.urandom(32)),
        )
        assert self.runtime.host is not None
        super().__init__(self.runtime.host, loop, self.runtime.flush_host)
        self.peer: Host | None = None

    def send(self, data: bytes) -> None:  # the link: the peer receives on the next loop turn
        assert self.peer is not None
        self.loop.call_soon(self.peer.runtime.from_network, data)

    def deliver(self, data: bytes) -> None:
        self.runtime.apply([Deliver(data)])

    def close(self) -> None:
        self.close_servers()
        self.runtime.apply_host(self.host.close(self.loop.time()))
        self.runtime.cancel_timers()


def pair(loop: asyncio.AbstractEventLoop) -> tuple[Host, Host, list[bytes]]:
    """Hosts A and B; what A sends reaches B on the next loop turn and back. The list collects
    the packets B was asked to answer with a Port Unreachable."""
    a, b = Host(A, loop), Host(B, loop)
    a.peer, b.peer = b, a
    return a, b, b.unreachable


def run(test: Callable[[Host, Host, list[bytes]], Awaitable[None]]) -> None:
    async def main() -> None:
        a, b, unreachable = pair(asyncio.get_running_loop())
        try:
            await asyncio.wait_for(test(a, b, unreachable), 10)
        finally:
            a.close()
            b.close()

    asyncio.run(main())


def test_generated_body_is_reproducible_and_exactly_sized() -> None:
    size = 2 * BLOCK + 123
    first = b"".join(generated_body(size, 5))
    assert len(first) == size and first == b"".join(generated_body(size, 5))
    assert first != b"".join(generated_body(size, 6))
    assert b"".join(generated_body(BLOCK, 5)) == first[:BLOCK]


async def fetch(a: Host, request: bytes) -> bytes:
    reader, writer = await a.open_connection(str(B), 80)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    return answer


def test_http_get_head_and_refusals() -> None:
    async def test(a: Host, b: Host, unreachable: list[bytes]) -> None:
        server = HttpServer(Body(size=BLOCK + 1, seed=1))
        await b.start_server(server.handle, "::", 80)
        got = await fetch(a, b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
        assert b"Content-Length: 65537" in head and b"Connection: close" in head
        assert (
            hashlib.sha256(body).digest()
            == hashlib.sha256(b"".join(generated_body(BLOCK + 1, 1))).digest()
        )
        got = await fetch(a, b"HEAD /x HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\n")
        got = await fetch(a, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n")
        got = await fetch(a, b"nonsense\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert server.served == 2
        with pytest.raises(ConnectionRefusedError):  # the stack's RST for a closed port
            await a.open_connection(str(B), 81)
        assert b.describe()["counters"]["tcp.rst_sent"] == 1

    run(test)


def test_udp_echo_closed_port_and_bind_errors() -> None:
    async def test(a: Host, b: Host, unreachable: list[bytes]) -> None:
        udp_echo(b)
        answers: asyncio.Queue[tuple[bytes, tuple[str, int], tuple[str, int]]] = asyncio.Queue()
        endpoint = a.udp_bind(0, lambda *got: answers.put_nowait(got))
        assert 49152 <= endpoint.port <= 65535
        endpoint.sendto(b"ping", (str(B), 7))
        assert await answers.get() == (b"ping", (str(B), 7), (str(A), endpoint.port))
        endpoint.sendto(b"closed", (str(B), 9))
        while not unreachable:
            await asyncio.sleep(0.01)
        (invoking,) = unreachable
        assert invoking[24:40] == B.packed and invoking.endswith(b"closed")
        assert b.counters["udp_port_unreachable"] == 1
        with pytest.raises(OSError) as caught:
            b.udp_bind(7, lambda *got: None)
        assert caught.value.errno == errno.EADDRINUSE
        with pytest.raises(OSError) as caught:
            endpoint.sendto(b"x", (str(B), 7), source="2001:db8::99")
        assert caught.value.errno == errno.EADDRNOTAVAIL
        endpoint.close()
        with pytest.raises(OSError):
            endpoint.sendto(b"x", (str(B), 7))

    run(test)


def test_unknown_protocol_and_malformed_packets_are_dropped_and_counted() -> None:
    async def test(a: Host, b: Host, unreachable: list[bytes]) -> None:
        b.deliver(
            Ipv6Packet(
                source=A, destination=B, payload=RawPayload(protocol=132, data=b"x" * 8)
            ).emit()
        )
        b.deliver(b"\x60" + bytes(10))
        assert b.counters == {"unrecognized_next_header": 1, "malformed": 1}

    run(test)
