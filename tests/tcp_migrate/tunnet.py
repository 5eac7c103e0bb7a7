"""Test helpers: a namespace whose kernel reaches our stack through a TUN device, a tiny HTTP
file server on tcp_migrate streams, and a hashing kernel sink.

Layout: the TUN device is created by this process and moved into a fresh namespace; there the
kernel has ``KERNEL_ADDRESS``/128 on it and a route to ``OUR_ADDRESS`` through it. This process
keeps the descriptor and runs the stack: the kernel's packets to ``OUR_ADDRESS`` are ours.
Everything is removed on exit (deleting the namespace deletes the device; closing the descriptor
too).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

from labnet.bench import tcp_lossy
from tcp_migrate.core import Config
from tcp_migrate.stack import Stack
from tcp_migrate.tun import Driver, TunDevice
from tests.runtime.netns import namespace

OUR_ADDRESS = "fd00:7c9::1"
KERNEL_ADDRESS = "fd00:7c9::2"
SECRET = b"tcp-migrate-test-secret-32-bytes"


@contextmanager
def kernel_namespace(tag: str, mtu: int = 1500) -> Iterator[tuple[str, TunDevice]]:
    """(namespace name, TUN device moved into it and configured)."""
    name = f"tcpm-{tag}-{os.getpid()}"
    with namespace(name) as ns:
        device = TunDevice(name="tcpm%d", mtu=mtu)
        try:
            device.move_to(ns)
            device.configure(KERNEL_ADDRESS, OUR_ADDRESS, netns=ns)
            yield ns, device
        finally:
            device.close()


def make_stack(driver: Driver, **kwargs) -> Stack:
    kwargs.setdefault("config", Config(mss=1440, rto_min_ms=200, delack_ms=40))
    kwargs.setdefault("send_capacity", 1 << 20)
    kwargs.setdefault("receive_capacity", 1 << 20)
    return Stack(transmit=driver.transmit, local_addresses=[OUR_ADDRESS], secret=SECRET, **kwargs)


def http_response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def serve_bytes(stream: bytes):
    """A client_connected callback writing ``stream`` (a whole HTTP response) then closing."""

    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(stream)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return handle


async def curl_sha256(ns: str, url: str, timeout: float = 120) -> tuple[int, str, str]:
    """(curl exit status, sha256 hex of the body, stderr) from a kernel client in ``ns``."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "bash", "-c",
        f"set -o pipefail; curl -sS -g --max-time {int(timeout)} '{url}' | sha256sum",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode, out.decode().split()[0] if out else "", err.decode()


async def start_sink(ns: str, port: int) -> asyncio.subprocess.Process:
    """A kernel TCP server in ``ns`` hashing what it receives; answers "<bytes> <sha256>"."""
    return await tcp_lossy.start_sink(ns, KERNEL_ADDRESS, port)
