"""The daemons' C fast path against their engines in a real lab (root): the built-in roaming
topology runs twice, with the fast path on and off, and the same UDP exchange between the
correspondent's kernel and the mobile node's kernel (route-optimized: the correspondent inserts
the type 2 routing header and removes the Home Address option) gives the same packets on the hub's
links, byte for byte, in the same order; with the fast path on, the correspondent's and the mobile
node's counters show that they carried them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet.netns import NetnsLab, control_request
from labnet.topology import builtin
from mip6.wire.pcap import read_capture_file
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

TOPOLOGY = builtin("roaming")
HOME = str(TOPOLOGY.nodes["mn"].home_address)
CORRESPONDENT = str(TOPOLOGY.nodes["cn"].addresses[0])
SERVER_PORT, CLIENT_PORT = 7007, 7008
DATAGRAMS = 30
FLOW_LABEL_MASK = bytes((0xFF, 0xF0, 0, 0))  # first word: version, traffic class, flow label

# The mobile node's kernel echoes DATAGRAMS datagrams back to their sender.
_SERVER = f"""
import socket
server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
server.bind(("{HOME}", {SERVER_PORT}))
server.settimeout(30)
print("ready", flush=True)
for _ in range({DATAGRAMS}):
    data, peer = server.recvfrom(65535)
    server.sendto(data, peer)
"""

# The correspondent's kernel sends them one at a time, each after the last one's echo.
_CLIENT = f"""
import socket
client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
client.bind(("{CORRESPONDENT}", {CLIENT_PORT}))
client.settimeout(5)
for i in range({DATAGRAMS}):
    data = bytes([i]) * (100 + 40 * i)
    client.sendto(data, ("{HOME}", {SERVER_PORT}))
    assert client.recv(65535) == data, i
print("echoed", flush=True)
"""


def exchange(lab: NetnsLab) -> None:
    """Route optimization first (pings through the home agent start it), then the UDP echoes."""
    deadline = time.monotonic() + 20
    while not control_request(lab.state["nodes"]["cn"]["control"], {"show": "bcache"})["rows"]:
        assert time.monotonic() < deadline, "the correspondent never got a binding"
        subprocess.run(
            lab.exec_argv("cn", ["ping", "-6", "-n", "-c", "1", "-W", "1", HOME]),
            capture_output=True,
            timeout=10,
        )
    server = subprocess.Popen(
        lab.exec_argv("mn", [sys.executable, "-c", _SERVER]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            lab.exec_argv("cn", [sys.executable, "-c", _CLIENT]),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.stdout.strip() == "echoed", client.stderr
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def exchanged_packets(path: str) -> list[bytes]:
    """The UDP packets of the exchange in a capture (the kernel's flow labels masked: the
    senders choose them), in capture order."""
    packets = []
    for frame in read_capture_file(path):
        data = frame.data
        if len(data) < 48 or data[0] >> 4 != 6:
            continue
        ports = {SERVER_PORT.to_bytes(2, "big"), CLIENT_PORT.to_bytes(2, "big")}
        # the UDP header follows the IPv6 header and at most one 24-byte mobility header
        for offset in (40, 64):
            if data[offset : offset + 2] in ports and data[offset + 2 : offset + 4] in ports:
                masked = bytes(a & b for a, b in zip(data[:4], FLOW_LABEL_MASK, strict=True))
                packets.append(masked + data[4:])
                break
    return packets


def run_lab(tmp: Path, fast_path: bool) -> tuple[dict[str, list[bytes]], dict[str, dict[str, int]]]:
    """The exchange in a roaming lab: the packets on the correspondent's and the mobile node's
    hub links, and their daemons' counters."""
    previous = os.environ.get("LABNET_FAST_PATH")
    os.environ["LABNET_FAST_PATH"] = "on" if fast_path else "off"
    try:
        with netns_lab(tmp, "roaming", "fp") as lab:
            exchange(lab)
            time.sleep(1.2)  # the hub flushes its captures every second
            captures = {link: exchanged_packets(lab.pcap(link)) for link in ("cn", "mn")}
            stats = {
                node: control_request(lab.state["nodes"][node]["control"], {"show": "stats"})[
                    "counters"
                ]
                for node in ("cn", "mn")
            }
            return captures, stats
    finally:
        if previous is None:
            os.environ.pop("LABNET_FAST_PATH", None)
        else:
            os.environ["LABNET_FAST_PATH"] = previous


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, tuple]]:
    require_root()
    yield {
        fast_path: run_lab(tmp_path_factory.mktemp(f"fast{fast_path}"), fast_path)
        for fast_path in (True, False)
    }


def test_fast_path_on_and_off_same_packets_on_every_link(runs: dict[bool, tuple]) -> None:
    (on, _), (off, _) = runs[True], runs[False]
    for link in ("cn", "mn"):
        assert len(on[link]) == 2 * DATAGRAMS, link  # every datagram and its echo, once
        assert on[link] == off[link], link


def test_fast_path_on_binding_traffic_carried(runs: dict[bool, tuple]) -> None:
    (_, on), (_, off) = runs[True], runs[False]
    # the correspondent: RH2 out, HAO in, all but the first each way (the engine took it and
    # then gave its decision); the mobile node: HAO out, RH2 in
    assert on["cn"][f"fast.binding.{HOME}.packets"] >= 2 * DATAGRAMS - 2
    assert on["mn"][f"fast.binding.{CORRESPONDENT}.packets"] >= DATAGRAMS - 1
    assert on["mn"]["fast.network.in_packets"] >= DATAGRAMS - 1
    for node in ("cn", "mn"):
        assert not [name for name in off[node] if name.startswith("fast.")]
