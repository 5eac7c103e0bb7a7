"""A link of type ``interface`` (the daemon on a real network, mip6.runtime.kernel) in the
configuration: read, and refused with file, line and key where it cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from mip6.runtime.config import ConfigError, load, parse
from tests.runtime.test_member_config import CONFIG as MEMBER

HOME_AGENT = """\
node: ha
role: home_agent
links:
  network: {type: interface, name: eth0}
home_agent:
  address: 2001:db8:1::2
  home_prefixes: [2001:db8:1::/64]
  duplicate_address_detection: true
  dad_retrans_timer: 0.5
"""


def test_interface_link_and_dad_options_read() -> None:
    config = parse(HOME_AGENT, "ha.yaml")
    link = config.links["network"]
    assert (link.type, link.device) == ("interface", "eth0")
    assert config.role_options["duplicate_address_detection"] is True
    assert config.role_options["dad_retrans_timer"] == 0.5


MOBILE_NODE = """\
node: mn
role: mobile_node
links:
  kernel: {type: tun, name: m6k0}
  network:
    type: interface
    name: [eth0, wlan0]
mobile_node: {home_address: 2001:db8:1::5, home_agent: 2001:db8:1::2}
"""


def test_mobile_node_uplinks_read_in_preference_order() -> None:
    link = parse(MOBILE_NODE, "mn.yaml").links["network"]
    assert (link.type, link.device, link.devices) == ("interface", "eth0", ("eth0", "wlan0"))
    one = parse(MOBILE_NODE.replace("[eth0, wlan0]", "eth1"), "mn.yaml").links["network"]
    assert (one.device, one.devices) == ("eth1", ("eth1",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MOBILE_NODE.replace("[eth0, wlan0]", "[eth0, wlan0, eth0]"),
            "mn.yaml:7: links.network.name[2]: eth0 is named twice",
        ),
        (
            MOBILE_NODE.replace("[eth0, wlan0]", "[eth0, wlan01234567890]"),
            "mn.yaml:7: links.network.name[1]: interface device names are 1-13 characters",
        ),
        (
            MOBILE_NODE.replace("[eth0, wlan0]", "[]"),
            "mn.yaml:7: links.network.name: names no device",
        ),
        (
            MOBILE_NODE.replace("[eth0, wlan0]", "[eth0, [wlan0]]"),
            "mn.yaml:7: links.network.name[1]: must be a single value",
        ),
        (
            MOBILE_NODE.replace("    type: interface\n", "    type: interface\n    prefer: eth0\n"),
            "mn.yaml:7: links.network.prefer: unknown key (expected one of type, name, remote, "
            "local)",
        ),
        (
            MOBILE_NODE.replace("{type: tun, name: m6k0}", "{type: tun, name: [m6k0, m6k1]}"),
            "mn.yaml:4: links.kernel.name: a tun link has one device name",
        ),
        (
            HOME_AGENT.replace("name: eth0", "name: [eth0, eth1]"),
            "ha.yaml:4: links.network.name: only a mobile node's interface link names several "
            "uplinks",
        ),
        (
            HOME_AGENT.replace("dad_retrans_timer: 0.5", "dad_retrans_timer: 0"),
            "ha.yaml:9: home_agent.dad_retrans_timer: must be more than 0 seconds "
            "(RFC 4861 RetransTimer)",
        ),
        (
            HOME_AGENT.replace("name: eth0", "name: eth01234567890"),
            "ha.yaml:4: links.network.name: interface device names are 1-13 characters",
        ),
        (
            HOME_AGENT.replace("{type: interface, name: eth0}", "{type: interface}"),
            "ha.yaml:4: links.network.name: missing (an interface link needs a device name)",
        ),
        (
            "node: cn\nrole: correspondent\nmode: host\nlinks:\n"
            "  network: {type: interface, name: eth0}\ncorrespondent: {address: 2001:db8::1}\n",
            "cn.yaml:5: links.network: role correspondent runs on an interface link in mode "
            "shim or router, not host",
        ),
        (
            # a member is the host of its own address: the kernel is not behind it
            MEMBER.replace(
                '{type: udp, remote: "[::1]:4000"}',
                "{type: interface, name: eth0}\n  kernel: {type: tun, name: m6k0}",
            ).replace("role: member\n", "role: member\nmode: shim\n"),
            "m1.yaml:5: links.network: role member runs on an interface link in mode host, "
            "not shim",
        ),
    ],
)
def test_interface_link_faults_name_file_line_and_key(text: str, message: str) -> None:
    path = message.split(":")[0]
    with pytest.raises(ConfigError) as raised:
        parse(text, path)
    assert str(raised.value) == message


def test_member_reads_on_an_interface_link() -> None:
    text = MEMBER.replace('{type: udp, remote: "[::1]:4000"}', "{type: interface, name: eth0}")
    config = parse(text, "m1.yaml")
    assert (config.mode, config.links["network"].type) == ("host", "interface")


@pytest.mark.parametrize(
    ("example", "role", "uplinks"),
    [
        ("home_agent", "home_agent", 1),
        ("mobile_node", "mobile_node", 1),
        ("correspondent", "correspondent", 1),
        ("mobile_node_two_uplinks", "mobile_node", 2),
        ("member", "member", 1),
    ],
)
def test_real_network_examples_read(example: str, role: str, uplinks: int) -> None:
    path = Path(__file__).parents[2] / "examples" / "real-network" / f"{example}.yaml"
    config = load(path)
    assert config.role == role and config.links["network"].type == "interface"
    assert len(config.links["network"].devices) == uplinks
