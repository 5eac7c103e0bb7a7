"""``kernel`` nodes in a topology: plain namespaces attached through hub TUN links, talking to
each other and to a daemon-backed correspondent (root for the lab itself)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from labnet.cli import main
from labnet.netns import NetnsLab
from labnet.topology import parse
from tests.runtime.netns import require_root, sh

TOPOLOGY = """\
name: kernels
networks:
  near: {prefix: "2001:db8:a::/64"}
  far: {prefix: "2001:db8:b::/64", latency: 10ms}
nodes:
  web: {kind: kernel, network: near, address: "2001:db8:a::80"}
  client: {kind: kernel, network: far, addresses: ["2001:db8:b::10", "2001:db8:b::11"]}
  cn: {role: correspondent, network: near, address: "2001:db8:a::1"}
"""
_RTT = re.compile(r"ttl=(\d+) time=([\d.]+) ms")


def test_topology_kernel_node_needs_no_role() -> None:
    topology = parse(TOPOLOGY, "kernels.yaml")
    web = topology.nodes["web"]
    assert (web.kind, web.role) == ("kernel", None)
    assert [str(a) for a in topology.nodes["client"].addresses] == [
        "2001:db8:b::10",
        "2001:db8:b::11",
    ]


def test_hub_description_attaches_kernel_node_by_tun_link() -> None:
    lab = NetnsLab("x", {"nodes": {name: {"netns": f"x-{name}"} for name in ("web", "client")}})
    described = lab._hub_description(parse(TOPOLOGY, "kernels.yaml"), {"cn": 7001})
    web = described["links"]["web"]
    assert (web["kind"], web["netns"]) == ("tun", "x-web")
    assert web["addresses"] == ["2001:db8:a::80/128"] and web["kernel_routes"] == ["::/0"]
    assert "endpoint" not in web
    assert described["routes"]["2001:db8:a::80/128"] == "web"


def ping(netns: str, address: str) -> list[tuple[int, float]]:
    result = sh("ip", "netns", "exec", netns, "ping", "-6", "-n", "-c", "3", "-i", "0.05",
                "-W", "2", address, check=False)  # fmt: skip
    return [(int(ttl), float(ms) / 1000) for ttl, ms in _RTT.findall(result.stdout)]


def test_kernel_nodes_ping_each_other_and_a_correspondent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "kernels.yaml"
    path.write_text(TOPOLOGY)
    name = f"kn{os.getpid()}"
    try:
        assert main(["up", str(path), "--name", name]) == 0
        status = json.loads(capsys.readouterr().out)
        web, client = status["nodes"]["web"], status["nodes"]["client"]
        assert (web["kind"], web["netns"]) == ("kernel", f"{name}-web")
        # far's uplink: 10 ms each way on client's link, both directions of the round trip
        replies = ping(client["netns"], "2001:db8:a::80")
        assert len(replies) == 3 and min(rtt for _, rtt in replies) >= 0.020
        assert {ttl for ttl, _ in replies} == {63}
        assert len(ping(web["netns"], "2001:db8:b::11")) == 3  # a second address, routed too
        assert len(ping(web["netns"], "2001:db8:a::1")) == 3  # through cn's shim daemon
        assert main(["status", "--name", name]) == 0
        assert f"netns {name}-web (hub TUN link)" in capsys.readouterr().out
    finally:
        assert main(["down", "--name", name]) == 0
    listed = sh("ip", "netns", "list").stdout
    assert not [line for line in listed.splitlines() if line.startswith(f"{name}-")]
