"""Host mode for real (root): a host-mode correspondent daemon whose network link is a TUN
device in one namespace (whose kernel routes between it and a veth), serving HTTP from
tcp_migrate; a stock curl and ping in a second namespace."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mip6.apps.http import generated_body
from mip6.runtime.control import control_request
from tests.conftest import require

from .netns import namespace, require_root, sh

SERVER = "2001:db8:2::1"  # the daemon's address
ROUTER, CLIENT = "fd00:6d37::1", "fd00:6d37::2"  # the veth between the two namespaces
SIZE = 8 * 1024 * 1024
SEED = 11

pytestmark = pytest.mark.netns


@pytest.fixture
def host_daemon(tmp_path: Path) -> Iterator[tuple[str, str]]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    pid = os.getpid()
    server_ns, client_ns = f"m6hs{pid}", f"m6hc{pid}"
    device, veth_name = f"m6h{pid % 100000}", f"m6v{pid % 100000}"
    control = str(tmp_path / "host.sock")
    config = tmp_path / "host.yaml"
    config.write_text(
        f"""node: server
role: correspondent
mode: host
netns: {server_ns}
control: {control}
links:
  network: {{type: tun, name: {device}}}
correspondent: {{address: "{SERVER}"}}
apps:
  - {{type: http, port: 80, size: {SIZE}, seed: {SEED}}}
  - {{type: echo}}
"""
    )
    with namespace(server_ns), namespace(client_ns):
        sh("ip", "-n", server_ns, "link", "add", veth_name, "type", "veth", "peer", "name",
           "eth0", "netns", client_ns)  # fmt: skip
        sh("ip", "netns", "exec", server_ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        for ns, name, address in ((server_ns, veth_name, ROUTER), (client_ns, "eth0", CLIENT)):
            sh("ip", "-n", ns, "addr", "add", f"{address}/64", "dev", name, "nodad")
            sh("ip", "-n", ns, "link", "set", name, "up")
        sh("ip", "-n", client_ns, "-6", "route", "add", f"{SERVER}/128", "via", ROUTER)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mip6.cli", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for _ in range(200):
                if (
                    os.path.exists(control)
                    and sh("ip", "-n", server_ns, "link", "show", device, check=False).returncode
                    == 0
                ):
                    break
                if daemon.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("daemon did not come up")
            assert daemon.poll() is None, daemon.stdout.read()  # type: ignore[union-attr]
            sh("ip", "-n", server_ns, "-6", "route", "add", f"{SERVER}/128", "dev", device)
            yield client_ns, control
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            # the TUN device goes with the daemon's descriptor, the veth with the namespaces
    left = sh("ip", "netns", "list").stdout.split()
    assert server_ns not in left and client_ns not in left


def test_host_mode_daemon_serves_curl_from_tcp_migrate(host_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client_ns, control = host_daemon
    got = tmp_path / "got"
    curl = subprocess.run(
        ["ip", "netns", "exec", client_ns, "curl", "--silent", "--show-error", "--fail",
         "--globoff", "--max-time", "60", "--output", str(got),
         "--write-out", "%{http_code} %{size_download}", f"http://[{SERVER}]/file"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout.split() == ["200", str(SIZE)]
    expected = hashlib.sha256(b"".join(generated_body(SIZE, SEED))).hexdigest()
    assert hashlib.sha256(got.read_bytes()).hexdigest() == expected

    # a closed TCP port: the host stack's RST, so curl is refused (exit 7) at once
    refused = subprocess.run(
        ["ip", "netns", "exec", client_ns, "curl", "--silent", "--max-time", "10",
         f"http://[{SERVER}]:81/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 7

    # ICMPv6 Echo answered by the host
    ping = subprocess.run(
        ["ip", "netns", "exec", client_ns, "ping", "-6", "-c", "1", "-W", "5", SERVER],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout

    stats = control_request(control, {"show": "stats"})["counters"]
    assert stats["host.echo_answered"] == 1
    assert stats["host.tcp.rst_sent"] == 1
    assert stats["host.tcp_in"] > SIZE // 65536  # at least one ACK per 64 KiB sent


# The client's side of the UDP exchange: one 60,000-byte datagram to the daemon's echo port
# (the kernel sends it in fragments), the same bytes back (the daemon sends them in fragments).
UDP_CLIENT = """
import socket, sys
payload = bytes(range(256)) * 234 + bytes(96)  # 60,000 bytes
with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
    s.settimeout(10)
    s.sendto(payload, (sys.argv[1], 7))
    data, sender = s.recvfrom(65535)
    assert data == payload, (len(data), sender)
print("udp", len(data))
"""


def test_host_mode_daemon_60000_byte_ping_and_udp_in_fragments_with_a_kernel_peer(
    host_daemon: tuple[str, str],
) -> None:
    """Issue #13's must-show: the kernel's 60,000-byte Echo Requests and UDP datagram reach
    the daemon in fragments and are reassembled there; its 60,000-byte answers leave in
    fragments that the kernel reassembles (RFC 8200 4.5)."""
    client_ns, control = host_daemon
    ping = subprocess.run(
        ["ip", "netns", "exec", client_ns, "ping", "-6", "-c", "3", "-s", "60000", "-W", "5",
         SERVER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "3 received" in ping.stdout, ping.stdout
    udp = subprocess.run(
        ["ip", "netns", "exec", client_ns, sys.executable, "-c", UDP_CLIENT, SERVER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert udp.returncode == 0, udp.stdout + udp.stderr
    assert udp.stdout.split() == ["udp", "60000"]
    stats = control_request(control, {"show": "stats"})["counters"]
    # three Echo Requests and one datagram reassembled, their four answers fragmented
    assert stats["host.reassembled"] == 4
    assert stats["host.echo_answered"] == 3 and stats["host.udp_in"] == 1
    assert stats["host.fragmented_out"] == 4
    assert stats["host.fragments_out"] == 4 * 42  # 60,008 bytes, 1,448 a fragment
    assert stats["host.fragments_in"] == 4 * 42  # the kernel's, at the same link MTU
    assert not [name for name in stats if name.startswith("host.fragment_")]  # no drop
