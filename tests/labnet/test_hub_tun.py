"""Hub links of kind ``tun``: the description, and (as root) plain kernels in two namespaces
talking through the hub's TUN devices: ping, emulated latency, captures, and no device left
behind however the hub ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from labnet.hub.config import ConfigError, LinkConfig, TunConfig, parse_config
from mip6.wire.icmpv6 import EchoRequest
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.pcap import read_capture_file
from tests.labnet.test_hub_server import HubProcess, udp_socket
from tests.runtime.netns import namespace, require_root, sh

A_ADDRESS = "2001:db8:a::1"
B_ADDRESS = "2001:db8:b::1"
_RTT = re.compile(r"ttl=(\d+) time=([\d.]+) ms")

# -- the description ------------------------------------------------------------------------------


def test_parse_config_tun_link_all_keys() -> None:
    config = parse_config(
        {
            "links": {
                "host": {
                    "kind": "tun",
                    "device": "hubhost0",
                    "netns": "host-ns",
                    "addresses": ["2001:db8:4::1/64"],
                    "kernel_routes": "::/0",
                    "mtu": 9000,
                    "prefixes": ["2001:db8:4::/64"],
                    "down": {"latency": "5ms"},
                },
                "mn": {"port": 7001},
            }
        }
    )
    host, mn = config.links
    assert (host.kind, host.bind, host.endpoint) == ("tun", None, None)
    assert host.tun == TunConfig(
        device="hubhost0",
        netns="host-ns",
        addresses=(IPv6Interface("2001:db8:4::1/64"),),
        routes=(IPv6Network("::/0"),),
        mtu=9000,
    )
    assert host.down.latency == 0.005
    assert (mn.kind, mn.tun, mn.bind) == ("udp", None, ("127.0.0.1", 7001))
    assert config.routes == ((IPv6Network("2001:db8:4::/64"), "host"),)


def test_parse_config_tun_link_defaults() -> None:
    (link,) = parse_config({"links": {"a": {"kind": "tun"}}}).links
    assert link == LinkConfig(name="a", tun=TunConfig())
    assert link.tun is not None and link.tun.mtu == 1500


@pytest.mark.parametrize(
    ("spec", "where", "reason"),
    [
        ({"kind": "tap"}, "links.a.kind", "not one of ['udp', 'tun']"),
        ({"kind": "tun", "port": 7001}, "links.a.port", "not a key of a tun link"),
        ({"kind": "tun", "endpoint": "127.0.0.1:1"}, "links.a.endpoint", "not a key of a tun"),
        ({"device": "hub0"}, "links.a.device", "not a key of a udp link"),
        ({"kind": "udp", "netns": "x"}, "links.a.netns", "not a key of a udp link"),
        ({"kind": "tun", "device": "a-name-much-too-long"}, "links.a.device", "1-15"),
        ({"kind": "tun", "device": "a/b"}, "links.a.device", "device name"),
        ({"kind": "tun", "netns": "../etc"}, "links.a.netns", "namespace name"),
        ({"kind": "tun", "addresses": ["10.0.0.1/8"]}, "links.a.addresses", "not an IPv6"),
        ({"kind": "tun", "addresses": {"a": 1}}, "links.a.addresses", "expected a list"),
        ({"kind": "tun", "kernel_routes": ["nowhere"]}, "links.a.kernel_routes", "not an IPv6"),
        ({"kind": "tun", "mtu": 1000}, "links.a.mtu", "1280..65535"),
        ({"kind": "tun", "mtu": "big"}, "links.a.mtu", "not an MTU"),
        ({"kind": "tun", "colour": 1}, "links.a", "unknown keys ['colour']"),
    ],
)
def test_parse_config_tun_fault_names_key(spec: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"links": {"a": spec}})
    assert caught.value.where == where
    assert reason in caught.value.reason


# -- kernels through the hub (root) --------------------------------------------------------------


@dataclass
class Pair:
    """Two namespaces, ``a`` (2001:db8:a::1/64) and ``b`` (2001:db8:b::1/64), and the hub
    description that attaches each through a TUN link (devices named with this pid)."""

    a: str
    b: str
    tag: str

    def device(self, side: str) -> str:
        return f"{self.tag}{side}"

    def description(self, **link_extra: dict[str, Any]) -> dict[str, Any]:
        links = {}
        for side, netns, address, other in (
            ("a", self.a, A_ADDRESS, "b"),
            ("b", self.b, B_ADDRESS, "a"),
        ):
            links[side] = {
                "kind": "tun",
                "device": self.device(side),
                "netns": netns,
                "addresses": [f"{address}/64"],
                "kernel_routes": [f"2001:db8:{other}::/64"],
                "prefixes": [f"2001:db8:{side}::/64"],
                **link_extra.get(side, {}),
            }
        return {"links": links}


@pytest.fixture
def pair() -> Iterator[Pair]:
    require_root()
    tag = f"ht{os.getpid()}"
    with namespace(f"{tag}-a") as a, namespace(f"{tag}-b") as b:
        yield Pair(a, b, tag)


def ping(netns: str, address: str, count: int = 5) -> list[tuple[int, float]]:
    """(Hop Limit, RTT in seconds) of each echo reply."""
    result = sh("ip", "netns", "exec", netns, "ping", "-6", "-n", "-c", str(count), "-i", "0.05",
                "-W", "2", address, check=False)  # fmt: skip
    return [(int(ttl), float(ms) / 1000) for ttl, ms in _RTT.findall(result.stdout)]


def devices(netns: str | None) -> str:
    """``ip -o link`` of a namespace (None: this one)."""
    command = ["ip", "-o", "link"] if netns is None else ["ip", "-n", netns, "-o", "link"]
    return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout


def test_ping6_between_namespaces_through_tun_links(pair: Pair, tmp_path: Path) -> None:
    hub = HubProcess(pair.description(), tmp_path)
    try:
        links = hub.described["links"]
        assert links["a"]["kind"] == "tun" and links["a"]["device"] == pair.device("a")
        assert links["a"]["netns"] == pair.a and links["a"]["address"] is None
        replies = ping(pair.a, B_ADDRESS)
        assert len(replies) == 5
        assert {ttl for ttl, _ in replies} == {63}  # the hub is one router hop
        stats = hub.stats()["links"]
        assert stats["a"]["up"]["packets_out"] >= 5 and stats["b"]["down"]["packets_out"] >= 5
        assert stats["b"]["up"]["packets_out"] >= 5 and stats["a"]["down"]["packets_out"] >= 5
        assert stats["a"]["send_errors"] == stats["b"]["send_errors"] == 0
    finally:
        assert hub.stop() == 0


def test_tun_link_down_latency_delays_each_round_trip(pair: Pair, tmp_path: Path) -> None:
    description = pair.description(b={"down": {"latency": "30ms"}}, a={"up": {"latency": "10ms"}})
    hub = HubProcess(description, tmp_path)
    try:
        replies = ping(pair.a, B_ADDRESS)
        assert len(replies) == 5
        assert min(rtt for _, rtt in replies) >= 0.040  # a's up plus b's down, never less
        down = hub.stats("b")["links"]["b"]["down"]
        assert (down["packets_in"], down["packets_out"]) == (5, 5)  # the requests, emulated
    finally:
        assert hub.stop() == 0


def test_tun_link_pcaps_hold_both_directions(pair: Pair, tmp_path: Path) -> None:
    description = {**pair.description(), "pcap_dir": "captures"}
    hub = HubProcess(description, tmp_path)
    try:
        assert len(ping(pair.a, B_ADDRESS, count=3)) == 3
    finally:
        assert hub.stop(signal.SIGTERM) == 0
    for side, request_hop_limit, reply_hop_limit in (("a", 64, 63), ("b", 63, 64)):
        frames = list(read_capture_file(tmp_path / "captures" / f"{side}.pcap"))
        # ICMPv6 (next header 58) echo request (128) and reply (129); the kernels may also
        # have sent router or multicast listener traffic, which the router drops
        echoes = [f.data for f in frames if f.data[6] == 58 and f.data[40] in (128, 129)]
        requests = [data for data in echoes if data[40] == 128]
        replies = [data for data in echoes if data[40] == 129]
        assert len(requests) == len(replies) == 3, side
        assert {data[7] for data in requests} == {request_hop_limit}, side
        assert {data[7] for data in replies} == {reply_hop_limit}, side


def test_tun_and_udp_links_mix(pair: Pair, tmp_path: Path) -> None:
    node = udp_socket()
    description = pair.description()
    description["links"]["probe"] = {
        "endpoint": f"127.0.0.1:{node.getsockname()[1]}",
        "prefixes": ["2001:db8:99::/64"],
    }
    hub = HubProcess(description, tmp_path)
    try:
        sh("ip", "-n", pair.b, "-6", "route", "add", "2001:db8:99::/64", "dev", pair.device("b"))
        request = Ipv6Packet(  # to the kernel in b, which answers back through the hub
            source=IPv6Address("2001:db8:99::1"),
            destination=IPv6Address(B_ADDRESS),
            hop_limit=64,
            payload=EchoRequest(identifier=7, sequence=1, data=b"through the hub"),
        ).emit()
        node.settimeout(2)
        node.sendto(request, hub.address("probe"))
        reply = node.recv(65535)
        assert reply[40] == 129 and reply[7] == 63 and reply.endswith(b"through the hub")
    finally:
        assert hub.stop() == 0
        node.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_tun_devices_gone_when_hub_stops_or_dies(pair: Pair, tmp_path: Path, sig: int) -> None:
    hub = HubProcess(pair.description(), tmp_path)
    try:
        assert pair.device("a") in devices(pair.a) and pair.device("b") in devices(pair.b)
    finally:
        hub.stop(sig)
    assert pair.device("a") not in devices(pair.a)
    assert pair.device("b") not in devices(pair.b)
    assert pair.tag not in devices(None)


def test_tun_setup_failure_exits_1_naming_link_and_leaves_no_device(
    pair: Pair, tmp_path: Path
) -> None:
    description = pair.description(b={"netns": f"{pair.tag}-nosuch"})
    with pytest.raises(RuntimeError, match=r"links\.b: .*netns") as caught:
        HubProcess(description, tmp_path)
    assert "labnet hub:" in str(caught.value)
    assert pair.tag not in devices(None) + devices(pair.a)
