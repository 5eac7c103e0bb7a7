"""The daemon for real: a shim-mode correspondent in a network namespace, a stock ping from
that namespace, the network side played by this test over the daemon's UDP link."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from mip6.cli import control_request
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import RoutingType2
from tests.core.harness import Tokens, hao, signed_bu

from .netns import namespace, require_root, sh, veth

CN = IPv6Address("2001:db8:2::1")
HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")
ROOT, INNER = "fd00:6d36::1", "fd00:6d36::2"

pytestmark = pytest.mark.netns


@pytest.fixture
def correspondent(tmp_path: Path):  # type: ignore[no-untyped-def]
    require_root()
    suffix = str(os.getpid())[-5:]
    ns = f"m6cn{suffix}"
    with namespace(ns), veth(f"m6v{suffix}", ns, "m6net0", ROOT, INNER):
        network = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        network.bind((ROOT, 0))
        network.settimeout(5)
        port = network.getsockname()[1]
        control = str(tmp_path / "cn.sock")
        pcap = tmp_path / "network.pcap"
        config = tmp_path / "cn.yaml"
        config.write_text(
            f"""node: cn
role: correspondent
mode: shim
control: {control}
links:
  kernel: {{type: tun, name: m6k0}}
  network: {{type: udp, remote: "[{ROOT}]:{port}", local: "[{INNER}]:0"}}
pcap: {{network: {pcap}}}
correspondent: {{binding_cache_size: 16}}
"""
        )
        daemon = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "mip6.cli", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for _ in range(100):
                if (
                    os.path.exists(control)
                    and sh("ip", "-n", ns, "link", "show", "m6k0", check=False).returncode == 0
                ):
                    break
                time.sleep(0.05)
            else:
                pytest.fail(
                    "daemon did not come up: "
                    + (daemon.stdout.read() if daemon.poll() is not None else "")
                )
            sh("ip", "-n", ns, "-6", "addr", "add", f"{CN}/128", "dev", "m6k0", "nodad")
            sh("ip", "-n", ns, "-6", "route", "add", "2001:db8::/32", "dev", "m6k0")
            yield ns, network, control, pcap
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
            network.close()


def receive(network: socket.socket) -> tuple[Ipv6Packet, tuple[str, int]]:
    data, peer = network.recvfrom(70000)
    return Ipv6Packet.parse(data), peer


def test_ping_from_stock_namespace_through_shim_then_route_optimized(correspondent) -> None:  # type: ignore[no-untyped-def]
    ns, network, control, pcap = correspondent
    ping = subprocess.Popen(
        ["ip", "netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "5", str(HOME)],
        stdout=subprocess.PIPE,
        text=True,
    )
    request, peer = receive(network)
    assert isinstance(request.payload, icmp.EchoRequest) and request.destination == HOME
    assert request.extension_headers == ()  # no binding yet: straight to the home address
    reply = Ipv6Packet(
        source=HOME,
        destination=CN,
        payload=icmp.EchoReply(
            identifier=request.payload.identifier,
            sequence=request.payload.sequence,
            data=request.payload.data,
        ),
    )
    network.sendto(reply.emit(), peer)
    assert ping.wait(timeout=10) == 0, ping.stdout.read()

    # Return routability and a Binding Update, played by this test as the mobile node.
    network.sendto(
        Ipv6Packet(
            source=HOME, destination=CN, payload=mh.HomeTestInit(home_init_cookie=b"h" * 8)
        ).emit(),
        peer,
    )
    hot, _ = receive(network)
    network.sendto(
        Ipv6Packet(
            source=CARE_OF, destination=CN, payload=mh.CareOfTestInit(care_of_init_cookie=b"c" * 8)
        ).emit(),
        peer,
    )
    cot, _ = receive(network)
    tokens = Tokens(
        hot.payload.home_nonce_index,
        hot.payload.home_keygen_token,
        cot.payload.care_of_nonce_index,
        cot.payload.care_of_keygen_token,
    )
    network.sendto(
        signed_bu(home=HOME, care_of=CARE_OF, correspondent=CN, tokens=tokens, sequence=5), peer
    )
    ba, _ = receive(network)
    assert isinstance(ba.payload, mh.BindingAcknowledgement) and ba.payload.status == 0

    reply_show = control_request(control, {"show": "bcache"})
    (row,) = reply_show["rows"]
    assert row["home_address"] == str(HOME) and row["care_of_address"] == str(CARE_OF)
    shown = subprocess.run(
        [sys.executable, "-m", "mip6.cli", "show", "bcache", "--control", control],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.startswith(f"{HOME} care-of-address {CARE_OF} sequence 5")

    ping = subprocess.Popen(
        ["ip", "netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "5", str(HOME)],
        stdout=subprocess.PIPE,
        text=True,
    )
    request, peer = receive(network)
    assert request.destination == CARE_OF  # route optimized by the shim
    assert request.extension_headers == (RoutingType2(home_address=HOME),)
    reply = Ipv6Packet(
        source=CARE_OF,
        destination=CN,
        payload=icmp.EchoReply(
            identifier=request.payload.identifier,
            sequence=request.payload.sequence,
            data=request.payload.data,
        ),
        extension_headers=(hao(HOME),),
    )
    network.sendto(reply.emit(), peer)
    assert ping.wait(timeout=10) == 0  # the Home Address option was swapped back for the kernel

    stats = json.loads(
        subprocess.run(
            [sys.executable, "-m", "mip6.cli", "show", "stats", "--json", "--control", control],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert stats["counters"]["home_test_sent"] == 1
    assert pcap.exists()


def test_bad_config_names_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        """node: x
role: mobile_node
links:
  network: {type: udp, remote: '[::1]:9'}
  kernel: {type: tun, name: t0}
mobile_node:
  home_address: not-an-address
  home_agent: 2001:db8::1
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "mip6.cli", "run", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"mip6: {config}:7: mobile_node.home_address: 'not-an-address' is not an IPv6 address"
    )
