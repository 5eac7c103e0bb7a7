"""tcp_migrate against the Linux kernel's TCP through a TUN device (root, network namespaces).

The kernel lives in a fresh namespace with a TUN device this process serves with a
:class:`~tcp_migrate.stack.Stack` (``tests/tcp_migrate/tunnet.py``). Stock tools are the peers:
curl downloads from our HTTP server, a kernel socket server hashes our upload. The migration
tests hand a connection from stack A to stack B on the same device in the middle of a download
through 40 ms one-way delay and 1% loss each way, and check that curl gets every byte with no
reset (curl fails with status 56 on a reset).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from tcp_migrate.core import TcpState
from tcp_migrate.stack import Socket
from tcp_migrate.tun import Driver, open_connection, start_server, wrap_socket
from tests.runtime.netns import require_root
from tests.tcp_migrate.tunnet import (
    KERNEL_ADDRESS,
    OUR_ADDRESS,
    DelayLoss,
    curl_sha256,
    http_response,
    kernel_namespace,
    make_stack,
    read_request,
    serve_bytes,
    start_sink,
)

pytestmark = pytest.mark.netns

DOWNLOAD_BYTES = 100_000_000  # about 1 s on the development machine
UPLOAD_BYTES = 100_000_000
MIGRATION_BYTES = 1_000_000  # through 40 ms delay and 1% loss: 5-10 s each
MIGRATION_RING = 256 * 1024
URL = f"http://[{OUR_ADDRESS}]:8080/file"


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def test_established_kernel_curl_download_100mb_sha256_matches():
    body = os.urandom(DOWNLOAD_BYTES)

    async def main(ns, device):
        driver = Driver(device)
        stack = make_stack(driver)
        driver.attach(stack)
        server = await start_server(driver, serve_bytes(http_response(body)), OUR_ADDRESS, 8080)
        started = time.monotonic()
        status, digest, err = await curl_sha256(ns, URL)
        elapsed = time.monotonic() - started
        server.close()
        driver.close()
        print(
            f"\n100 MB download: {elapsed:.2f} s, {DOWNLOAD_BYTES * 8 / elapsed / 1e6:.0f} Mbit/s"
        )
        assert status == 0, err
        assert digest == hashlib.sha256(body).hexdigest()
        assert stack.counters["rst_sent"] == 0

    with kernel_namespace("dl") as (ns, device):
        asyncio.run(main(ns, device))


def test_established_upload_to_kernel_server_sha256_matches():
    body = os.urandom(UPLOAD_BYTES)

    async def main(ns, device):
        driver = Driver(device)
        stack = make_stack(driver)
        driver.attach(stack)
        sink = await start_sink(ns, 9000)
        try:
            reader, writer = await open_connection(driver, KERNEL_ADDRESS, 9000)
            writer.write(body)
            await writer.drain()
            writer.close()  # half-close: the sink answers after our FIN
            answer = await asyncio.wait_for(reader.readline(), 60)
            assert await reader.read() == b""
            await asyncio.wait_for(writer.wait_closed(), 10)
        finally:
            await asyncio.wait_for(sink.wait(), 10)
            driver.close()
        count, digest = answer.split()
        assert int(count) == UPLOAD_BYTES
        assert digest.decode() == hashlib.sha256(body).hexdigest()

    with kernel_namespace("ul") as (ns, device):
        asyncio.run(main(ns, device))


def test_closed_port_kernel_connect_gets_rst_refused():
    """RFC 9293 3.10.7.1: a SYN to a port with no listener gets <SEQ=0><ACK=ISN+1><RST,ACK>;
    curl reports "connection refused" (status 7) at once rather than timing out."""

    async def main(ns, device):
        driver = Driver(device)
        stack = make_stack(driver)
        driver.attach(stack)
        started = time.monotonic()
        status, _, err = await curl_sha256(ns, f"http://[{OUR_ADDRESS}]:8081/", timeout=10)
        driver.close()
        assert status == 7, err
        assert time.monotonic() - started < 5
        assert stack.counters["rst_sent"] >= 1

    with kernel_namespace("rst") as (ns, device):
        asyncio.run(main(ns, device))


async def _handoff_download(ns, device, *, include_unacked: bool, abandon: bool) -> dict:
    """curl downloads MIGRATION_BYTES from stack A; at about a third A freezes and exports;
    then either B imports, thaws and finishes (A detaches), or B imports but the handoff is
    abandoned and A thaws again."""
    body = os.urandom(MIGRATION_BYTES)
    stream = http_response(body)
    shim = DelayLoss(40, 0.01, seed=7)
    driver = Driver(device, shim=shim)
    # Rings smaller than the stream: the handoff happens while the application still writes.
    stack_a = make_stack(driver, send_capacity=MIGRATION_RING)
    driver.attach(stack_a)
    accepted: asyncio.Future[Socket] = asyncio.get_running_loop().create_future()

    async def serve_a(reader, writer):
        await read_request(reader)
        accepted.set_result(writer.socket)
        writer.write(stream)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await start_server(driver, serve_a, OUR_ADDRESS, 8080)
    curl = asyncio.create_task(curl_sha256(ns, URL, timeout=60))
    sock_a = await asyncio.wait_for(accepted, 20)
    while sock_a.conn.acked_offset < len(stream) // 3:
        assert not curl.done(), await curl
        await asyncio.sleep(0.005)

    sock_a.freeze(driver.now_ms())
    blob = sock_a.export(include_unacked=include_unacked)
    frozen_at = sock_a.conn.acked_offset
    await asyncio.sleep(0.1)  # frozen: segments arriving now are dropped silently
    stack_b = make_stack(driver, send_capacity=MIGRATION_RING)
    sock_b = stack_b.import_connection(blob)
    assert sock_b.frozen and sock_b.state == TcpState.ESTABLISHED
    b_task = None
    if abandon:
        sock_a.thaw(driver.now_ms())
        driver.kick()
    else:
        driver.attach(stack_b)
        stack_a.detach(sock_a)
        server.close()
        offset = sock_b.write_offset
        assert offset <= len(stream)
        if not include_unacked:
            assert sock_b.send_buffered == 0 and offset <= frozen_at + 1

        async def serve_b():
            _, writer = wrap_socket(driver, sock_b)
            writer.write(stream[offset:])
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        sock_b.thaw(driver.now_ms())
        b_task = asyncio.create_task(serve_b())
    status, digest, err = await curl
    if b_task is not None:
        await asyncio.wait_for(b_task, 20)
    driver.close()
    assert status == 0, err
    assert digest == hashlib.sha256(body).hexdigest()
    for stack in (stack_a, stack_b):
        assert stack.counters["rst_sent"] == 0
    return {"blob_bytes": len(blob), "dropped": shim.dropped}


@pytest.mark.parametrize("include_unacked", [True, False], ids=["full", "regenerable"])
def test_established_download_handoff_a_to_b_completes_without_reset(include_unacked):
    with kernel_namespace("mig") as (ns, device):
        result = asyncio.run(
            _handoff_download(ns, device, include_unacked=include_unacked, abandon=False)
        )
    if not include_unacked:
        assert result["blob_bytes"] < 200
    assert result["dropped"] > 0  # the loss shim did drop packets


def test_established_download_abandoned_handoff_donor_thaws_and_completes():
    with kernel_namespace("abn") as (ns, device):
        asyncio.run(_handoff_download(ns, device, include_unacked=True, abandon=True))
