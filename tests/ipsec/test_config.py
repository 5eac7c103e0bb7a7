"""Manual keys from the node's YAML (RFC 3776 4.1): one block, copied to both ends."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
import yaml

from mip6.core.ipsec import Accepted, Algorithm, Direction, Mode, SecurityPolicyDatabase
from mip6.core.ipsec.config import IpsecConfigError, database_from_config

from .helpers import (
    CBC_KEY,
    GCM_KEY,
    HMAC_KEY,
    HOME,
    HOME_AGENT,
    binding_acknowledgement,
    binding_update,
    home_test_init,
    reverse_tunnelled,
)

GCM_BLOCK = f"""
ipsec:
  algorithm: aes-gcm-16
  pairs:
    - home_address: {HOME}
      home_agent: {HOME_AGENT}
      binding_update:          {{spi: 0x1001, encryption_key: "0x{GCM_KEY.hex()}"}}
      binding_acknowledgement: {{spi: 0x1002, encryption_key: "0x{GCM_KEY.hex()}"}}
      home_test_init:          {{spi: 0x1003, encryption_key: "{GCM_KEY.hex()}"}}
      home_test:               {{spi: 0x1004, encryption_key: "{GCM_KEY.hex()}"}}
"""


def cbc_block() -> dict[str, Any]:
    sa = {"encryption_key": "0x" + CBC_KEY.hex(), "authentication_key": "0x" + HMAC_KEY.hex()}
    return {
        "algorithm": "aes-cbc-hmac-sha1-96",
        "pairs": [
            {
                "home_address": str(HOME),
                "home_agent": str(HOME_AGENT),
                "tunnel_all": True,
                "binding_update": {"spi": 0x2001, **sa},
                "binding_acknowledgement": {"spi": 0x2002, **sa},
                "home_test_init": {"spi": 0x2003, **sa},
                "home_test": {"spi": 0x2004, **sa},
            }
        ],
    }


def load(block: dict[str, Any], role: str, seed: int = 1) -> SecurityPolicyDatabase:
    return database_from_config(block, role=role, random_bytes=random.Random(seed).randbytes)


def test_same_block_configures_both_ends() -> None:
    block = yaml.safe_load(GCM_BLOCK)["ipsec"]
    mobile, home_agent = load(block, "mobile_node"), load(block, "home_agent", 2)
    bu_out = mobile.sa(Direction.OUTBOUND, 0x1001)
    assert bu_out is not None and bu_out.parameters.algorithm is Algorithm.AES_GCM_16
    assert home_agent.sa(Direction.INBOUND, 0x1001) is not None
    assert home_agent.sa(Direction.OUTBOUND, 0x1002) is not None
    hoti = home_agent.sa(Direction.INBOUND, 0x1003)
    assert hoti is not None and hoti.mode is Mode.TUNNEL
    result = home_agent.input(mobile.output(binding_update()) or b"")
    assert isinstance(result, Accepted) and result.protected
    result = mobile.input(home_agent.output(binding_acknowledgement()) or b"")
    assert isinstance(result, Accepted) and result.protected
    # the home agent also guards its address against unprotected home registrations
    assert [e.name for e in home_agent.entries][-1] == "home_registration"
    assert "home_registration" not in [e.name for e in mobile.entries]


def test_cbc_with_tunnel_all() -> None:
    mobile, home_agent = load(cbc_block(), "mobile_node"), load(cbc_block(), "home_agent")
    sa = mobile.sa(Direction.OUTBOUND, 0x2003)
    assert sa is not None and sa.selector.protocol is None  # every tunnelled packet
    result = home_agent.input(mobile.output(reverse_tunnelled(home_test_init())) or b"")
    assert isinstance(result, Accepted) and result.protected


def _without(block: dict[str, Any], *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(block)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return changed


def _with(block: dict[str, Any], value: object, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(block)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("block", "key"),
    [
        (_with(cbc_block(), "des", "algorithm"), "ipsec.algorithm"),
        (_with(cbc_block(), [], "pairs"), "ipsec.pairs"),
        (_with(cbc_block(), "x", "pairs", 0, "home_address"), "ipsec.pairs[0].home_address"),
        (_without(cbc_block(), "pairs", 0, "home_agent"), "ipsec.pairs[0].home_agent"),
        (_without(cbc_block(), "pairs", 0, "home_test"), "ipsec.pairs[0].home_test"),
        (
            _with(cbc_block(), 0x0102, "pairs", 0, "home_test", "encryption_key"),
            "ipsec.pairs[0].home_test.encryption_key",
        ),
        (
            _with(cbc_block(), "0xzz", "pairs", 0, "home_test", "encryption_key"),
            "ipsec.pairs[0].home_test.encryption_key",
        ),
        (
            _without(cbc_block(), "pairs", 0, "home_test", "authentication_key"),
            "ipsec.pairs[0].home_test.authentication_key",
        ),
        (
            _with(cbc_block(), 0x2001, "pairs", 0, "home_test", "spi"),
            "ipsec.pairs[0].home_test.spi",
        ),
        (_with(cbc_block(), "1", "pairs", 0, "home_test", "spi"), "ipsec.pairs[0].home_test.spi"),
        (_with(cbc_block(), "yes", "pairs", 0, "tunnel_all"), "ipsec.pairs[0].tunnel_all"),
        (_with(cbc_block(), 1, "pairs", 0, "extra"), "ipsec.pairs[0]"),
        (_with(cbc_block(), 1, "extra"), "ipsec"),
        (_with(cbc_block(), 5, "pairs", 0, "home_test", "spi"), "ipsec.pairs[0]"),  # reserved
        (
            _with(cbc_block(), "0x00", "pairs", 0, "home_test", "encryption_key"),
            "ipsec.pairs[0]",
        ),
    ],
)
def test_config_errors_name_the_key_never_the_secret(block: dict[str, Any], key: str) -> None:
    with pytest.raises(IpsecConfigError) as caught:
        load(block, "home_agent")
    assert caught.value.key == key
    for secret in (CBC_KEY, HMAC_KEY):
        assert secret.hex() not in str(caught.value)


def test_gcm_with_authentication_key_refused() -> None:
    block = yaml.safe_load(GCM_BLOCK)["ipsec"]
    block["pairs"][0]["home_test"]["authentication_key"] = "0x" + HMAC_KEY.hex()
    with pytest.raises(IpsecConfigError, match="no authentication key"):
        load(block, "mobile_node")


def test_unquoted_yaml_key_is_caught() -> None:
    """YAML 1.1 turns an unquoted 0x... into an int (leading zeros gone): refused."""
    text = GCM_BLOCK.replace(f'"0x{GCM_KEY.hex()}"', f"0x{GCM_KEY.hex()}", 1)
    block = yaml.safe_load(text)["ipsec"]
    assert isinstance(block["pairs"][0]["binding_update"]["encryption_key"], int)
    with pytest.raises(IpsecConfigError, match="quoted"):
        load(block, "mobile_node")


def test_role_must_be_mobile_node_or_home_agent() -> None:
    with pytest.raises(IpsecConfigError):
        load(cbc_block(), "correspondent")
