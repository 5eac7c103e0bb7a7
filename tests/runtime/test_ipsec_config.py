"""The daemon's ``ipsec`` block: validated at load time with the line of the key at fault,
turned into the engines' security policy databases."""

from __future__ import annotations

import random

import pytest

from mip6.roles.home_agent import HomeAgent
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.config import ConfigError, parse
from mip6.runtime.daemon import build_engine

KEY = '"0x' + "11" * 20 + '"'
IPSEC = f"""ipsec:
  pairs:
    - home_address: 2001:db8:1::5
      home_agent: 2001:db8:1::1
      binding_update: {{spi: 0x1001, encryption_key: {KEY}}}
      binding_acknowledgement: {{spi: 0x1002, encryption_key: {KEY}}}
      home_test_init: {{spi: 0x1003, encryption_key: {KEY}}}
      home_test: {{spi: 0x1004, encryption_key: {KEY}}}
"""
MOBILE = """node: mn
role: mobile_node
links:
  kernel: {type: tun, name: t0}
  network: {type: udp, remote: "[::1]:9"}
mobile_node: {home_address: 2001:db8:1::5, home_agent: 2001:db8:1::1}
"""
HOME_AGENT = """node: ha
role: home_agent
links:
  network: {type: udp, remote: "[::1]:9"}
home_agent: {address: 2001:db8:1::1, home_prefixes: [2001:db8:1::/64]}
"""


@pytest.mark.parametrize("text,kind", [(MOBILE, MobileNode), (HOME_AGENT, HomeAgent)])
def test_ipsec_block_gives_the_engine_a_policy_database(text: str, kind: type) -> None:
    config = parse(text + IPSEC, "node.yaml")
    built = build_engine(config, random.Random(1))
    engine = built[0] if isinstance(built, tuple) else built
    assert isinstance(engine, kind) and engine.security is not None
    assert len(engine.security.security_associations()) == 4


def test_ipsec_error_names_the_line_and_key_never_the_key_value() -> None:
    bad = (MOBILE + IPSEC).replace(
        "binding_update: {spi: 0x1001, encryption_key: " + KEY,
        'binding_update: {spi: 0x1001, encryption_key: "0x11"',
    )
    with pytest.raises(ConfigError) as info:
        parse(bad, "node.yaml")
    message = str(info.value)
    assert message.startswith("node.yaml:9: ipsec.pairs[0]: SA 0x00001001: AES-GCM key material")
    assert "0x11" not in message


def test_ipsec_not_for_a_correspondent() -> None:
    text = (
        "node: cn\nrole: correspondent\nlinks:\n  kernel: {type: tun, name: t0}\n"
        '  network: {type: udp, remote: "[::1]:9"}\ncorrespondent: {}\n'
    )
    with pytest.raises(ConfigError) as info:
        parse(text + IPSEC, "cn.yaml")
    assert str(info.value).startswith("cn.yaml:7: ipsec:")
