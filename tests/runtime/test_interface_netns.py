"""The interface link (:class:`mip6.runtime.kernel.InterfaceLink`) on a veth between two
namespaces: what the roles must see reaches the daemon, the rest stays with the kernel, its
kernel state goes at close, and what a killed daemon left is removed by the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from mip6.runtime.kernel import nft_table, tap_name
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import RoutingType2
from mip6.wire.udp import UdpDatagram
from tests.core.harness import hao

from .netns import namespace, require_root, sh

pytestmark = pytest.mark.netns

PEER, BOX = "2001:db8:7::1", "2001:db8:7::2"
SERVED = "2001:db8:7::55"  # not the box's: a home address it serves
ROOT = str(Path(__file__).resolve().parents[2])

# Runs in the box's namespace: opens the link, serves SERVED, prints one JSON line per packet
# it reads (next header and destination), until SIGTERM; then closes the link.
READER = """
import asyncio, json, signal, sys
from ipaddress import IPv6Address
from mip6.runtime.kernel import InterfaceLink

async def main() -> None:
    link = InterfaceLink("network", "eth0")
    def receive(data: bytes) -> None:
        print(json.dumps([data[6], str(IPv6Address(data[24:40]))]), flush=True)
    await link.open(asyncio.get_running_loop(), receive)
    link.serve(IPv6Address(sys.argv[1]))
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    link.close()

asyncio.run(main())
"""

SENDER = """
import socket, sys
packets = [bytes.fromhex(h) for h in sys.argv[1:]]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for p in packets:
    s.sendto(p, (str(__import__("ipaddress").IPv6Address(p[24:40])), 0))
"""


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    require_root()
    suffix = str(os.getpid())[-5:]
    with namespace(f"m6pa{suffix}") as peer, namespace(f"m6pb{suffix}") as box:
        sh(
            "ip",
            "-n",
            peer,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            box,
        )
        for ns, address in ((peer, PEER), (box, BOX)):
            sh("ip", "-n", ns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", peer, "-6", "route", "add", f"{SERVED}/128", "dev", "eth0")
        # the box does not have SERVED: its neighbour entry stands in for proxy ND here
        sh("ip", "-n", peer, "-6", "neigh", "add", SERVED, "lladdr", _mac(box), "dev", "eth0")
        yield peer, box


def _mac(ns: str) -> str:
    out = sh("ip", "-n", ns, "-o", "link", "show", "eth0").stdout
    return out.split("link/ether ")[1].split()[0]


def start_reader(box: str) -> subprocess.Popen[str]:
    reader = subprocess.Popen(
        ["ip", "netns", "exec", box, sys.executable, "-c", READER, SERVED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert reader.stdout is not None
    line = reader.stdout.readline()
    assert line.strip() == "ready", line + (reader.stderr.read() if reader.stderr else "")
    return reader


def send(peer: str, *packets: bytes) -> None:
    sh("ip", "netns", "exec", peer, sys.executable, "-c", SENDER, *(p.hex() for p in packets))


def kernel_state(box: str) -> tuple[str, str]:
    return (
        sh("ip", "netns", "exec", box, "nft", "list", "tables").stdout,
        sh("ip", "-n", box, "-o", "link", "show").stdout,
    )


def read(ns: str, key: str) -> str:
    """A sysctl of eth0 in ``ns``."""
    return sh("ip", "netns", "exec", ns, "sysctl", "-n", f"net.ipv6.conf.eth0.{key}").stdout.strip()


def packets() -> list[bytes]:
    """What the box must take (each addressed to it, or to the address it serves), then what
    it must leave to its kernel."""
    p, b, s = IPv6Address(PEER), IPv6Address(BOX), IPv6Address(SERVED)
    brr = mh.BindingRefreshRequest().aligned()
    udp = UdpDatagram(source_port=9, destination_port=9, payload=b"x")
    echo = icmp.EchoRequest(identifier=1, sequence=1, data=b"y")
    return [
        Ipv6Packet(source=p, destination=b, payload=brr).emit(),  # Mobility Header
        Ipv6Packet(
            source=p,
            destination=b,
            payload=Ipv6Packet(  # IPv6-in-IPv6
                source=s, destination=p, payload=udp
            ),
        ).emit(),
        Ipv6Packet(  # type 2 routing header
            source=p,
            destination=b,
            extension_headers=(RoutingType2(home_address=s),),
            payload=echo,
        ).emit(),
        Ipv6Packet(  # Home Address option
            source=p, destination=b, extension_headers=(hao(s),), payload=udp
        ).emit(),
        Ipv6Packet(source=p, destination=s, payload=udp).emit(),  # a served address
        Ipv6Packet(source=p, destination=b, payload=udp).emit(),  # plain: the kernel's
        Ipv6Packet(  # a neighbour's reachability check of a served address: the kernel's
            source=p,
            destination=s,
            hop_limit=255,
            payload=icmp.NeighborSolicitation(target_address=s),
        ).emit(),
    ]


def test_interface_link_takes_mipv6_leaves_the_rest_and_cleans_up(pair) -> None:  # type: ignore[no-untyped-def]
    peer, box = pair
    reader = start_reader(box)
    try:
        send(peer, *packets())
        # the kernel still answers plain traffic while the link runs
        assert (
            sh(
                "ip",
                "netns",
                "exec",
                peer,
                "ping",
                "-6",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "2",
                BOX,
                check=False,
            ).returncode
            == 0
        )
        time.sleep(0.5)
    finally:
        reader.send_signal(signal.SIGTERM)
        out, err = reader.communicate(timeout=10)
    seen = [tuple(json.loads(line)) for line in out.splitlines()]
    assert seen == [
        (135, BOX),  # MH
        (41, BOX),  # IPv6-in-IPv6
        (43, BOX),  # routing header (type 2)
        (60, BOX),  # Destination Options (Home Address option)
        (17, SERVED),  # for the served address
    ], err  # no echo request, no plain UDP, no solicitation: those stayed with the kernel
    tables, links = kernel_state(box)
    assert nft_table("eth0") not in tables and tap_name("eth0") not in links


def test_interface_link_start_removes_what_a_killed_run_left(pair) -> None:  # type: ignore[no-untyped-def]
    peer, box = pair
    killed = start_reader(box)
    killed.kill()  # no close: the nftables table stays behind
    killed.wait()
    tables, _ = kernel_state(box)
    assert nft_table("eth0") in tables
    reader = start_reader(box)  # starts over what was left
    try:
        send(peer, packets()[0])
        time.sleep(0.5)
    finally:
        reader.send_signal(signal.SIGTERM)
        out, _ = reader.communicate(timeout=10)
    assert [tuple(json.loads(line)) for line in out.splitlines()] == [(135, BOX)]
    tables, links = kernel_state(box)
    assert nft_table("eth0") not in tables and tap_name("eth0") not in links


def test_home_agent_killed_then_restarted_puts_the_interface_back(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A home agent daemon turns proxy ND and forwarding on on its interface; killed, it cannot
    put them back, so the next start does when it stops, with the box's own values."""
    _, box = pair
    config = tmp_path / "ha.yaml"
    config.write_text(
        "node: ha\nrole: home_agent\nmode: router\n"
        "links: {network: {type: interface, name: eth0}}\n"
        f'home_agent: {{address: "{BOX}", home_prefixes: ["2001:db8:7::/64"]}}\n'
    )

    def sysctls() -> list[str]:
        return [read(box, key) for key in ("forwarding", "proxy_ndp", "accept_ra")]

    def start() -> subprocess.Popen[str]:
        daemon = subprocess.Popen(
            ["ip", "netns", "exec", box, sys.executable, "-m", "mip6.cli", "run", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": ROOT},
        )  # fmt: skip
        assert daemon.stderr is not None
        # up, its signal handlers in place, once it says it proxies on its home link
        for line in daemon.stderr:
            if "proxy ND for home addresses" in line:
                break
        assert daemon.poll() is None
        return daemon

    before = sysctls()
    assert before == ["0", "0", "1"]
    killed = start()
    killed.kill()
    killed.wait()
    assert sysctls() == ["1", "1", "2"]  # left as the killed run set them
    # a proxy entry the killed run could have left (its home prefix), and one not of its own
    for address in ("2001:db8:7::99", "2001:db8:8::99"):
        sh("ip", "-n", box, "-6", "neigh", "add", "proxy", address, "dev", "eth0")
    daemon = start()
    proxies = sh("ip", "-n", box, "-6", "neigh", "show", "proxy").stdout
    assert "2001:db8:7::99" not in proxies and "2001:db8:8::99" in proxies
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    assert sysctls() == before
    tables, links = kernel_state(box)
    assert nft_table("eth0") not in tables and tap_name("eth0") not in links


def test_mobile_node_uplink_missing_refused_and_nothing_left(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A mobile node naming two uplinks, the second not on the box: the daemon stops with the
    missing interface's name, and the first one's nftables table and TAP are gone again."""
    _, box = pair
    config = tmp_path / "mn.yaml"
    config.write_text(
        "node: mn\nrole: mobile_node\n"
        "links: {kernel: {type: tun, name: m6k0}, network: {type: interface, name: [eth0, wl9]}}\n"
        'mobile_node: {home_address: "2001:db8:1::5", home_agent: "2001:db8:1::2"}\n'
    )
    daemon = sh(
        "ip", "netns", "exec", box, "env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "mip6.cli",
        "run", str(config), check=False,
    )  # fmt: skip
    assert daemon.returncode != 0
    assert "link network: no interface wl9 on this box" in daemon.stderr
    tables, links = kernel_state(box)
    assert nft_table("eth0") not in tables and tap_name("eth0") not in links
    assert "m6k0" not in links
