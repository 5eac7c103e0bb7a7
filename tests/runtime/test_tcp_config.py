"""The ``tcp`` block: the host-mode TCP's settings over ``TCP_DEFAULTS`` (minimum RTO 200 ms, as
Linux), every fault located by file, line and key; the settings reach every host a node makes
(the runtime's, a member's, a farm's clients')."""

from __future__ import annotations

import random

import pytest

from mip6.dserver.member import Member
from mip6.farm import Farm
from mip6.runtime.config import ConfigError, parse
from mip6.runtime.host import TCP_DEFAULTS, Host
from mip6.runtime.roles import build_engine
from tcp_migrate.core import Config

HOST = """\
node: h1
role: correspondent
mode: host
links:
  network: {type: udp, remote: "[::1]:4000"}
correspondent:
  address: 2001:db8:2::1
tcp:
  rto_min_ms: 50
  delack_ms: 40
  sack: false
"""

MEMBER = f"""\
node: m1
role: member
links:
  network: {{type: udp, remote: "[::1]:4000"}}
member:
  contact_address: 2001:db8:1::80
  home_agent: 2001:db8:1::1
  address: 2001:db8:10::1
  contact_node: 2001:db8:10::1
  members: [2001:db8:10::1, 2001:db8:20::1]
  group_key: {"ab" * 32}
  time_wait: 30
tcp:
  rto_min_ms: 300
"""

FARM = """\
node: f1
role: farm
links:
  network: {type: udp, remote: "[::1]:4000"}
farm:
  prefix: 2001:db8:77::/64
  address: 2001:db8:77::100
  clients: 2
  server: 2001:db8:1::80
  size: 1000
tcp:
  rto_initial_ms: 500
"""


def test_the_host_default_is_linux_minimum_rto_and_initial_window() -> None:
    assert (TCP_DEFAULTS.rto_min_ms, TCP_DEFAULTS.initial_window) == (200, 10)
    host = Host(addresses=["2001:db8::1"], secret=bytes(32))
    assert (host.stack.config.rto_min_ms, host.stack.config.initial_window) == (200, 10)
    # everything else as the TCP core's defaults (whose initial window is RFC 5681's)
    assert TCP_DEFAULTS == Config(rto_min_ms=200, initial_window=10)
    assert Config().initial_window == 0


def test_the_block_is_read_over_the_defaults() -> None:
    config = parse(HOST, "h1.yaml")
    assert config.tcp == Config(rto_min_ms=50, delack_ms=40, sack=False, initial_window=10)
    assert parse(HOST.split("tcp:")[0], "h1.yaml").tcp is None


def test_a_member_takes_the_block_but_keeps_its_own_keys() -> None:
    config = parse(MEMBER, "m1.yaml")
    rng = random.Random(1)
    engine = build_engine(config, rng, rng.randbytes)
    assert isinstance(engine, Member)
    stack = engine.host.stack.config
    assert (stack.rto_min_ms, stack.nodelay, stack.time_wait_ms) == (300, True, 30_000)
    default = build_engine(parse(MEMBER.split("tcp:")[0], "m1.yaml"), rng, rng.randbytes)
    assert isinstance(default, Member)
    assert default.host.stack.config.rto_min_ms == 200


def test_a_farm_gives_the_block_to_every_client() -> None:
    rng = random.Random(1)
    engine = build_engine(parse(FARM, "f1.yaml"), rng, rng.randbytes)
    assert isinstance(engine, Farm)
    assert [c.host.stack.config.rto_initial_ms for c in engine.clients] == [500, 500]
    assert engine.clients[0].host.stack.config.rto_min_ms == 200


@pytest.mark.parametrize(
    ("text", "old", "new", "line", "key", "reason"),
    [
        (HOST, "delack_ms: 40", "delay: 40", 10, "tcp.delay", "unknown key"),
        (HOST, "delack_ms: 40", "delack_ms: 4.5", 10, "tcp.delack_ms", "whole number"),
        (HOST, "delack_ms: 40", "delack_ms: 900", 10, "tcp.delack_ms", "out of the TCP core"),
        (HOST, "sack: false", "sack: maybe", 11, "tcp.sack", "true or false"),
        (HOST, "rto_min_ms: 50", "mss: 10", 9, "tcp.mss", "out of the TCP core"),
        (HOST, "sack: false", "initial_window: 100", 11, "tcp.initial_window", "TCP core"),
        (HOST, "mode: host", "mode: shim", 9, "tcp", "mode host only"),
        (MEMBER, "rto_min_ms: 300", "nodelay: false", 14, "tcp.nodelay", "Nagle"),
        (MEMBER, "rto_min_ms: 300", "time_wait_ms: 5", 14, "tcp.time_wait_ms", "time_wait"),
    ],
)
def test_faults_name_file_line_and_key(
    text: str, old: str, new: str, line: int, key: str, reason: str
) -> None:
    changed = text.replace(old, new)
    if new == "mode: shim":
        changed = changed.replace("links:\n", "links:\n  kernel: {type: tun, name: k0}\n")
    with pytest.raises(ConfigError) as raised:
        parse(changed, "x.yaml")
    error = raised.value
    assert (error.path, error.line, error.key) == ("x.yaml", line, key), str(error)
    assert reason in error.reason, str(error)


def test_settings_that_do_not_go_together_are_refused() -> None:
    # each alone fits the defaults (maximum 60 s, minimum 200 ms); together the minimum
    # is above the maximum
    text = HOST.replace("rto_min_ms: 50", "rto_min_ms: 5000").replace(
        "delack_ms: 40", "rto_max_ms: 3000"
    )
    with pytest.raises(ConfigError) as raised:
        parse(text, "h1.yaml")
    assert raised.value.key == "tcp" and "rto_max_ms" in raised.value.reason
