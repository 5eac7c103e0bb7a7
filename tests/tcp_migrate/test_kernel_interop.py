"""tcp_migrate against the Linux kernel's TCP through a TUN device (root, network namespaces).

The kernel lives in a fresh namespace with a TUN device this process serves with a
:class:`~tcp_migrate.stack.Stack` (``tests/tcp_migrate/tunnet.py``). Stock tools are the peers:
curl downloads from our HTTP server, a kernel socket server hashes our upload. Both again, 3 MB
each, through 40 ms one-way delay and 1% loss each way (``labnet bench tcp-lossy`` at a CI
size; the benchmark moves 100 MB). Migration between two hosts: ``test_migration_twohost.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from labnet.bench import tcp_lossy
from tcp_migrate.tun import Driver, open_connection, start_server
from tests.runtime.netns import require_root
from tests.tcp_migrate.tunnet import (
    KERNEL_ADDRESS,
    OUR_ADDRESS,
    curl_sha256,
    http_response,
    kernel_namespace,
    make_stack,
    serve_bytes,
    start_sink,
)

pytestmark = pytest.mark.netns

DOWNLOAD_BYTES = 100_000_000  # about 1 s on the development machine
UPLOAD_BYTES = 100_000_000
LOSSY_BYTES = 3_000_000  # about 20 s at NewReno's rate through 40 ms and 1% loss
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


def test_established_download_and_upload_40ms_1pct_loss_sha256_match_no_reset():
    """Concurrently: curl downloads from us and we upload to a kernel server, each through its
    own 40 ms / 1% loss path; every byte arrives, nothing is reset, the connection never
    wedges (the acknowledged offset moves at least every few RTOs)."""
    results = tcp_lossy.run(LOSSY_BYTES, baseline=False)
    for name in ("tcp_migrate_download", "tcp_migrate_upload"):
        transfer = results[name]
        print(f"\n{name}: {transfer}")
        assert transfer["sha_ok"] and not transfer["reset"], transfer
        assert transfer["dropped"] > 0  # the path did lose packets
        assert transfer["retransmitted_segments"] > 0
        assert transfer["longest_stall_s"] < 5
