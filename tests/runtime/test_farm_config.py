"""The farm role's configuration, in a daemon's file and in a topology's ``options``: typed
keys, keys that must fit together, host mode only; every fault names its file, line and key."""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

import pytest

from labnet.nodes import daemon_config, read
from labnet.topology import dump
from labnet.topology import parse as parse_topology
from mip6.farm import Farm
from mip6.runtime.config import ConfigError, parse
from mip6.runtime.roles import build_engine

CONFIG = """\
node: farm
role: farm
links:
  network: {type: udp, remote: "[::1]:4000"}
farm:
  prefix: 2001:db8:3::/64
  address: 2001:db8:3::1
  clients: 20
  server: 2001:db8:1::80
  port: 81
  path: /big
  size: 600000
  seed: 3
  think: 0.5
  fetches: 0
  concurrency: 2
  timeout: 10
  binding_cache_size: 4
  constants: {max_nonce_lifetime: 60}
"""


def test_farm_block_builds_a_farm_in_host_mode() -> None:
    config = parse(CONFIG, "farm.yaml")
    assert config.mode == "host"
    assert config.host_addresses == (IPv6Address("2001:db8:3::1"),)
    rng = random.Random(1)
    farm = build_engine(config, rng, rng.randbytes)
    assert isinstance(farm, Farm)
    assert len(farm.clients) == 20 and farm.clients[-1].address == IPv6Address("2001:db8:3::14")
    assert farm.config.prefix == IPv6Network("2001:db8:3::/64")
    assert (farm.config.port, farm.config.path, farm.config.concurrency) == (81, "/big", 2)
    assert farm.config.fetches == 0  # a count: 0 is forever
    assert farm.config.correspondent.binding_cache_size == 4
    assert farm.config.correspondent.constants.max_nonce_lifetime == 60
    assert farm.clients[0].correspondent.binding_cache.capacity == 4


@pytest.mark.parametrize(
    ("old", "new", "line", "key"),
    [
        ("  clients: 20\n", "  clients: 0\n", 8, "farm.clients"),
        ("  clients: 20\n", "  clients: 2.5\n", 8, "farm.clients"),
        ("  address: 2001:db8:3::1\n", "  address: 2001:db8:4::1\n", 7, "farm.address"),
        (
            "  address: 2001:db8:3::1\n",
            "  address: 2001:db8:3::ffff:ffff:ffff:fff0\n",
            8,
            "farm.clients",
        ),
        ("  path: /big\n", "  path: big\n", 11, "farm.path"),
        ("  path: /big\n", '  path: "/a b"\n', 11, "farm.path"),
        ("  size: 600000\n", "  size: -1\n", 12, "farm.size"),
        ("  timeout: 10\n", "  timeout: 0\n", 17, "farm.timeout"),
        ("  server: 2001:db8:1::80\n", "  server: 2001:db8:3::2\n", 9, "farm.server"),
        ("  server: 2001:db8:1::80\n", "", 6, "farm.server"),  # the block's first line
        ("  port: 81\n", "  port: 70000\n", 10, "farm.port"),
        ("  seed: 3\n", "  sed: 3\n", 13, "farm.sed"),
        ("role: farm\n", "role: farm\nmode: shim\n", 3, "mode"),
        ("  concurrency: 2\n", "  concurrency: 2\n  workload: dns\n", 17, "farm.workload"),
        ("  concurrency: 2\n", "  concurrency: 2\n  retransmit: 0\n", 17, "farm.retransmit"),
        ("  concurrency: 2\n", "  concurrency: 2\n  retries: -1\n", 17, "farm.retries"),
    ],
)
def test_bad_farm_block_is_refused_at_its_line(old: str, new: str, line: int, key: str) -> None:
    assert old in CONFIG
    with pytest.raises(ConfigError) as raised:
        parse(CONFIG.replace(old, new), "farm.yaml")
    assert (raised.value.path, raised.value.line, raised.value.key) == ("farm.yaml", line, key)


def test_udp_farm_needs_no_body() -> None:
    text = CONFIG.replace("  size: 600000\n", "").replace(
        "  port: 81\n", "  port: 53\n  workload: lookup\n  retransmit: 0.25\n  retries: 3\n"
    )
    rng = random.Random(1)
    farm = build_engine(parse(text, "farm.yaml"), rng, rng.randbytes)
    assert isinstance(farm, Farm)
    assert (farm.config.workload, farm.config.retransmit, farm.config.retries) == (
        "lookup",
        0.25,
        3,
    )
    assert all(client.udp is not None and client.requester for client in farm.clients)


def test_farm_runs_no_applications() -> None:
    with pytest.raises(ConfigError) as raised:
        parse(CONFIG + "apps:\n  - {type: echo}\n", "farm.yaml")
    assert raised.value.key == "apps[0].type"


TOPOLOGY = """\
name: t
networks:
  home: {prefix: "2001:db8:1::/64", latency: 5ms}
  farm: {prefix: "2001:db8:3::/64", latency: 20ms}
nodes:
  ha: {role: home_agent, network: home, address: "2001:db8:1::1"}
  farm:
    role: farm
    network: farm
    address: "2001:db8:3::10"
    options:
      clients: 5
      server: "2001:db8:1::80"
      size: 1000
      think: 2
"""


def test_topology_options_reach_the_daemons_block_over_what_the_lab_derives() -> None:
    topology = parse_topology(TOPOLOGY, "t.yaml")
    spec = topology.nodes["farm"]
    assert spec.mode == "host"
    config = read(daemon_config(topology, spec, links={"network": {"type": "memory"}}), "<farm>")
    assert config.role_options["prefix"] == IPv6Network("2001:db8:3::/64")  # its network's
    assert config.role_options["address"] == IPv6Address("2001:db8:3::10")  # its address
    assert config.role_options["clients"] == 5 and config.role_options["think"] == 2.0
    again = parse_topology(dump(topology), "t.yaml")
    assert again.nodes["farm"].options == spec.options


@pytest.mark.parametrize(
    ("replacements", "line", "key"),
    [
        ({"      clients: 5\n": "      clients: many\n"}, 12, "nodes.farm.options.clients"),
        ({"      clients: 5\n": "      clients: 70000\n"}, 12, "nodes.farm.options.clients"),
        (
            {'"2001:db8:3::10"': '"2001:db8:3::ffff:ffff:ffff:fff0"', "clients: 5": "clients: 50"},
            12,
            "nodes.farm.options.clients",
        ),
        ({'      server: "2001:db8:1::80"\n': ""}, 12, "nodes.farm.options.server"),
        ({"      think: 2\n": "      thinking: 2\n"}, 15, "nodes.farm.options.thinking"),
        ({"    network: farm\n": "    network: farm\n    mode: shim\n"}, 10, "nodes.farm.mode"),
    ],
)
def test_bad_topology_options_are_refused_at_their_line(
    replacements: dict[str, str], line: int, key: str
) -> None:
    text = TOPOLOGY
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(ConfigError) as raised:
        parse_topology(text, "t.yaml")
    assert (raised.value.path, raised.value.line, raised.value.key) == ("t.yaml", line, key)


def test_options_of_an_external_node_are_refused() -> None:
    text = TOPOLOGY + '  probe: {kind: external, network: home, addresses: ["2001:db8:1::99"],\n'
    text += "          options: {x: 1}}\n"
    with pytest.raises(ConfigError) as raised:
        parse_topology(text, "t.yaml")
    assert raised.value.key == "nodes.probe.options"
