"""Topologies built in code become lab files (``labnet.topology.dump``), and external nodes may
own addresses on several networks' prefixes."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv6Network

import pytest

from conformance.transport import topology_for
from labnet.topology import Network, Topology, Uplink, builtin, dump, parse
from mip6.runtime.config import ConfigError


def _without_lines(topology: Topology) -> dict[str, object]:
    return {name: dataclasses.replace(spec, line=None) for name, spec in topology.nodes.items()}


@pytest.mark.parametrize(
    "topology",
    [
        builtin("roaming"),
        builtin("testbed"),
        topology_for("cn"),
        topology_for("ha"),
        topology_for("mn"),
    ],
    ids=["roaming", "testbed", "conformance-cn", "conformance-ha", "conformance-mn"],
)
def test_dump_reads_back_to_the_same_topology(topology: Topology) -> None:
    back = parse(dump(topology), "<dumped>")
    assert back.name == topology.name
    assert back.networks == topology.networks
    assert _without_lines(back) == _without_lines(topology)


def test_dump_writes_tiny_and_huge_numbers_without_exponents() -> None:
    uplink = Uplink(latency=1e-5, jitter=3.3e-7, bandwidth=1.5e10, loss=1e-9, queue=7)
    topology = Topology("x", "<code>", {"a": Network("a", IPv6Network("2001:db8::/64"), uplink)})
    text = dump(topology)
    assert "e-" not in text and "e+" not in text
    assert parse(text).networks == topology.networks


NETWORKS = """
name: t
networks:
  home: {prefix: 2001:db8:1::/64}
  away: {prefix: 2001:db8:3::/64}
nodes:
"""


def test_external_node_may_own_addresses_on_several_networks() -> None:
    text = (
        NETWORKS
        + "  probe: {kind: external, network: away, addresses: [2001:db8:3::9, 2001:db8:1::9]}\n"
    )
    assert len(parse(text).nodes["probe"].addresses) == 2


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (
            "  cn: {role: correspondent, network: away, address: 2001:db8:1::9}",
            "not in network away",
        ),
        (
            "  probe: {kind: external, network: away, addresses: [2001:db8:9::9]}",
            "not in any network",
        ),
    ],
)
def test_address_outside_the_allowed_prefixes_names_node_and_line(node: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(NETWORKS + node + "\n", "t.yaml")
    assert reason in str(caught.value)
    assert "t.yaml:7" in str(caught.value) and "nodes." in str(caught.value)
