"""labnet's topology files and sim backend."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from labnet import demo
from labnet.sim import SimLab
from labnet.topology import builtin, load, parse
from mip6.runtime.config import ConfigError


def test_demo_answers_every_ping_and_is_deterministic() -> None:
    first, second = io.StringIO(), io.StringIO()
    demo.run(first, seed=3)
    demo.run(second, seed=3)
    assert first.getvalue() == second.getvalue()
    assert "4 of 4 pings answered" in first.getvalue()


def test_same_seed_same_bytes_different_seed_different_nonces() -> None:
    def trace(seed: int) -> list[bytes]:
        lab = demo.run(io.StringIO(), seed=seed)
        return [sent.data for sent in lab.net.trace]

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_sixty_second_scenario_runs_on_virtual_time() -> None:
    lab = SimLab(builtin("roaming"), seed=1)
    lab.start()
    for second in range(60):
        lab.ping("cn", builtin("roaming").nodes["mn"].home_address, second)
        lab.run_until(second + 1.0)
    assert lab.net.now == 60.0
    replies = lab.net.nodes["cn"].delivered
    assert len(replies) == 60


def test_builtin_roaming_topology() -> None:
    topology = builtin("roaming")
    assert set(topology.networks) == {"home", "correspondent", "visited1", "visited2"}
    assert topology.nodes["probe"].kind == "external"
    assert topology.networks["visited2"].uplink.latency == pytest.approx(0.025)


@pytest.mark.parametrize(
    "text,message",
    [
        ("networks: {}\n", "<topology>:1: nodes: missing"),
        (
            "networks:\n  a: {prefix: 2001:db8::/64, latency: fast}\nnodes: {}\n",
            "<topology>:2: networks.a.latency: 'fast' is not a duration (e.g. 10ms, 0.5s)",
        ),
        (
            "networks:\n  a: {prefix: 2001:db8::/64}\nnodes:\n"
            "  x: {role: correspondent, network: b, address: 2001:db8::1}\n",
            "<topology>:4: nodes.x.network: no network 'b'",
        ),
        (
            "networks:\n  a: {prefix: 2001:db8::/64}\nnodes:\n"
            "  x: {role: correspondent, network: a, address: 2001:db9::1}\n",
            "<topology>:4: nodes.x.address: 2001:db9::1 is not in network a (2001:db8::/64)",
        ),
        (
            "networks:\n  a: {prefix: 2001:db8::/64}\n  b: {prefix: 2001:db8::/48}\nnodes: {}\n",
            "<topology>:3: networks.b.prefix: overlaps a",
        ),
    ],
)
def test_topology_errors_name_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value) == message


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("networks:\n  a: {prefix: '2001:db8::/64', loss: 0.5}\nnodes: {}\n")
    topology = load(path)
    assert topology.name == "t" and topology.networks["a"].uplink.loss == 0.5


def test_builtin_testbed_topology_matches_the_seeds_latencies() -> None:
    topology = builtin("testbed")
    up = {name: network.uplink.latency for name, network in topology.networks.items()}
    assert up["site1"] + up["site2"] == pytest.approx(0.010)  # Lss
    assert up["site1"] + up["client"] == pytest.approx(0.040)  # Lcs1
    assert topology.nodes["node1"].home_address == topology.nodes["node2"].home_address
