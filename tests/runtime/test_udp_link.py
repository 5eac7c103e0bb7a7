"""The daemon's UDP link to a labnet hub: packets both ways, and socket buffers large enough
that a busy daemon does not lose what the hub delivered (the kernel's default receive buffer,
about 150 full-size packets, dropped about one datagram in eight for a farm of 200 clients in a
chaos run)."""

from __future__ import annotations

import asyncio
import os
import socket

from mip6.runtime.links import LINK_SOCKET_BUFFER_BYTES, UdpLink


def test_udp_link_carries_packets_and_has_large_buffers() -> None:
    async def run() -> tuple[list[bytes], int, bytes]:
        hub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        hub.bind(("127.0.0.1", 0))
        hub.settimeout(2.0)
        received: list[bytes] = []
        link = UdpLink("network", hub.getsockname(), ("::", 0))
        await link.open(asyncio.get_running_loop(), received.append)
        try:
            local = link.local_address
            assert local is not None
            hub.sendto(b"\x60" + bytes(39), local[:2])
            link.send(b"\x60" + bytes(47))
            answer, _ = hub.recvfrom(2048)
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)
            assert link._sock is not None
            size = link._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            return received, size, answer
        finally:
            link.close()
            hub.close()

    received, size, answer = asyncio.run(run())
    assert received == [b"\x60" + bytes(39)] and answer == b"\x60" + bytes(47)
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    # Linux reports twice what was set; without root, rmem_max caps it
    expected = (
        LINK_SOCKET_BUFFER_BYTES if os.geteuid() == 0 else min(rmem_max, LINK_SOCKET_BUFFER_BYTES)
    )
    assert size >= expected
