"""The member role's configuration: the block read with every fault located, the group key
never shown, the applications a member runs (and only a member), the engine built from it."""

from __future__ import annotations

import random

import pytest

from mip6.dserver.member import Member
from mip6.runtime.config import ConfigError, parse
from mip6.runtime.roles import build_engine, role

KEY = "ab" * 32

CONFIG = f"""\
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
  group_key: {KEY}
  policy: round_robin
  attempt_timeout: 1.5
  time_wait: 30
apps:
  - {{type: download, port: 80, size: 1000, seed: 3, handoff_every: 500}}
  - {{type: handoff_echo}}
"""


def test_member_block_builds_a_member_in_host_mode() -> None:
    config = parse(CONFIG, "m1.yaml")
    assert config.mode == "host"  # the member role's default
    assert config.role_options["group_key"] == bytes.fromhex(KEY)
    assert [(a.type, a.port, a.handoff_every) for a in config.apps] == [
        ("download", 80, 500),
        ("handoff_echo", 7, 0),
    ]
    rng = random.Random(1)
    engine = build_engine(config, rng, rng.randbytes)
    assert isinstance(engine, Member)
    assert engine.config.is_contact_node
    assert engine.config.attempt_timeout == 1.5
    assert type(engine.policy).__name__ == "RoundRobinPolicy"
    assert engine.host.stack.config.time_wait_ms == 30_000
    assert engine.host.stack.max_connections == 16384
    assert KEY not in repr(engine.config)


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "reason"),
    [
        (f"group_key: {KEY}", "group_key: abcd", 11, "member.group_key", "2 bytes; at least 32"),
        (f"group_key: {KEY}", "group_key: zz" + KEY, 11, "member.group_key", "hex digits"),
        ("policy: round_robin", "policy: fastest", 12, "member.policy", "fastest"),
        ("  contact_node: 2001:db8:10::1\n", "", 6, "member.contact_node", "missing"),
        ("{type: handoff_echo}", "{type: http, size: 1}", 17, "apps[1].type", "http"),
        ("handoff_every: 500", "handoff_every: -1", 16, "apps[0].handoff_every", ""),
        ("time_wait: 30", "time_wait: 30\n  mipv6_timeout: 0", 15, "member.mipv6_timeout", "0"),
        ("time_wait: 30", "time_wait: 30\n  tunnel_lifetime: -2", 15, "member.tunnel_lifetime", ""),
        ("time_wait: 30", "time_wait: 30\n  tunnel_capacity: 0", 15, "member.tunnel_capacity", ""),
    ],
)
def test_faults_name_file_line_and_key_and_never_the_key(
    old: str, new: str, line: int, key: str, reason: str
) -> None:
    text = CONFIG.replace(old, new)
    with pytest.raises(ConfigError) as raised:
        parse(text, "m1.yaml")
    error = raised.value
    assert (error.path, error.line, error.key) == ("m1.yaml", line, key), str(error)
    assert reason in error.reason
    assert KEY not in str(error) and KEY[:16] not in str(error)


def test_membership_block_makes_membership_dynamic() -> None:
    rng = random.Random(1)
    static = build_engine(parse(CONFIG, "m1.yaml"), rng, rng.randbytes)
    assert isinstance(static, Member) and static.membership is None
    text = CONFIG.replace(
        "  time_wait: 30\n",
        "  time_wait: 30\n  membership: {heartbeat_interval: 0.05, max_core: 3}\n",
    )
    engine = build_engine(parse(text, "m1.yaml"), rng, rng.randbytes)
    assert isinstance(engine, Member) and engine.membership is not None
    assert engine.membership.config.heartbeat_interval == 0.05
    assert engine.membership.config.max_core == 3
    assert engine.membership.config.failure_timeout == 0.3  # the rest are the defaults
    # until the view comes, the policy knows only this member
    assert engine.view.members == {engine.own_address}


@pytest.mark.parametrize(
    ("block", "key", "reason"),
    [
        ("{heartbeat: 1}", "member.membership.heartbeat", "unknown key"),
        ("{failure_timeout: 0}", "member.membership.failure_timeout", "more than 0"),
        ("{max_core: 2.5}", "member.membership.max_core", "whole number"),
        ("{lease_margin: 0.5}", "member.membership", "lease_margin"),
    ],
)
def test_membership_faults_name_the_key(block: str, key: str, reason: str) -> None:
    text = CONFIG.replace("  time_wait: 30\n", f"  time_wait: 30\n  membership: {block}\n")
    with pytest.raises(ConfigError) as raised:
        parse(text, "m1.yaml")
    error = raised.value
    assert (error.path, error.line, error.key) == ("m1.yaml", 15, key), str(error)
    assert reason in error.reason


def test_member_applications_only_on_a_member() -> None:
    text = """\
node: cn
role: correspondent
mode: host
links: {network: {type: udp, remote: "[::1]:4000"}}
correspondent: {address: 2001:db8:2::1}
apps: [{type: download, size: 10}]
"""
    with pytest.raises(ConfigError) as raised:
        parse(text, "cn.yaml")
    assert raised.value.key == "apps[0].type"


PROXY = (
    "  - {type: proxy, port: 8080, server: 127.0.0.1, server_port: 8000, handoff_every: 3,"
    " spares: 2}\n"
)


def test_proxy_entry_reads_the_seeds_options() -> None:
    config = parse(CONFIG + PROXY, "m1.yaml")
    proxy = config.apps[2]
    assert (proxy.type, proxy.port, proxy.server, proxy.server_port) == (
        "proxy",
        8080,
        "127.0.0.1",
        8000,
    )
    assert (proxy.http, proxy.handoff_every, proxy.route_requests) == (True, 3, False)
    assert proxy.spares == 2 and proxy.as_dict()["spares"] == 2
    text = CONFIG.replace("port: 80, ", "port: 81, ") + "  - {type: proxy, server_port: 8000}\n"
    (default,) = [app for app in parse(text, "m1.yaml").apps if app.type == "proxy"]
    assert (default.server, default.http, default.handoff_every) == ("::1", True, 0)
    assert default.spares == 1
    assert default.as_dict()["server_port"] == 8000


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        ("{type: proxy, port: 81}", "apps[2].server_port", "missing"),
        ("{type: proxy, port: 81, server_port: 0}", "apps[2].server_port", "not a port"),
        ("{type: proxy, port: 81, server_port: 80, server: db}", "apps[2].server", "IP address"),
        ("{type: proxy, port: 81, server_port: 80, size: 3}", "apps[2].size", "unknown key"),
        (
            "{type: proxy, port: 81, server_port: 80, http: false, handoff_every: 2}",
            "apps[2].handoff_every",
            "only with http",
        ),
        ("{type: proxy, server_port: 8000}", "apps[2].port", "tcp port 80 is used twice"),
        ("{type: proxy, port: 81, server_port: 80, spares: -1}", "apps[2].spares", "minimum 0"),
    ],
)
def test_proxy_faults_name_file_line_and_key(entry: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(CONFIG + f"  - {entry}\n", "m1.yaml")
    error = raised.value
    assert (error.path, error.line, error.key) == ("m1.yaml", 18, key), str(error)
    assert reason in error.reason


def test_proxy_needs_the_daemon_not_the_simulator() -> None:
    """The proxy relays through the kernel: labnet's simulator (no asyncio loop, no kernel)
    refuses it by name rather than run a member without it."""
    config = parse(CONFIG + PROXY, "m1.yaml")
    rng = random.Random(1)
    engine = build_engine(config, rng, rng.randbytes)
    start_apps = role("member").start_apps
    assert start_apps is not None
    with pytest.raises(ValueError, match=r"port 8080\).* not in labnet's simulator"):
        start_apps(engine, config.apps, None)


def test_udp_services_are_member_apps_on_the_contact_address() -> None:
    text = CONFIG + (
        "  - {type: lookup, handoff_every: 4}\n  - {type: udp_echo}\n"
        "  - {type: stream, size: 5000, handoff_every: 9}\n"
    )
    config = parse(text, "m1.yaml")
    assert [(a.type, a.port, a.handoff_every) for a in config.apps][2:] == [
        ("lookup", 53, 4),
        ("udp_echo", 7, 0),  # UDP 7 beside handoff_echo's TCP 7
        ("stream", 5004, 9),
    ]
    assert config.apps[4].size == 5000
    rng = random.Random(1)
    engine = build_engine(config, rng, rng.randbytes)
    assert isinstance(engine, Member)
    stops = role("member").start_apps(engine, config.apps[2:], None)
    assert [row["service"] for row in engine.udp.rows()] == [
        "UdpEchoService",
        "LookupService",
        "StreamService",
    ]
    for stop in stops:
        stop()
    assert engine.udp.rows() == []


@pytest.mark.parametrize(
    ("app", "key", "reason"),
    [
        ("{type: lookup, size: 3}", "apps[2].size", "unknown key"),
        ("{type: stream}", "apps[2].size", "a size above 0"),
    ],
)
def test_udp_service_faults_name_the_line_and_key(app: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(CONFIG + f"  - {app}\n", "m1.yaml")
    assert (raised.value.line, raised.value.key) == (18, key)
    assert reason in raised.value.reason


def test_udp_limits_are_member_keys() -> None:
    text = CONFIG.replace(
        "  time_wait: 30\n",
        "  time_wait: 30\n  udp_flows: 100\n  udp_flow_idle: 30\n  udp_straggler_time: 0.5\n",
    )
    rng = random.Random(1)
    engine = build_engine(parse(text, "m1.yaml"), rng, rng.randbytes)
    assert isinstance(engine, Member)
    udp = engine.udp
    assert (udp.max_flows, udp.flow_idle, udp.straggler_time) == (100, 30.0, 0.5)


def test_udp_straggler_time_of_zero_is_refused_at_its_line() -> None:
    text = CONFIG.replace("  time_wait: 30\n", "  time_wait: 30\n  udp_straggler_time: 0\n")
    with pytest.raises(ConfigError) as raised:
        parse(text, "m1.yaml")
    assert (raised.value.line, raised.value.key) == (15, "member.udp_straggler_time")
    assert "more than 0" in raised.value.reason


def test_download_handoff_wait_echo_and_send_buffer_are_read() -> None:
    """The experiments' keys: the seeds' modified server (``handoff_wait``), a UDP echo on a
    member, the send ring a full snapshot can carry at most."""
    text = CONFIG.replace("handoff_every: 500}", "handoff_every: 500, handoff_wait: 0.25}")
    text = text.replace("  time_wait: 30\n", "  time_wait: 30\n  send_buffer: 90000\n")
    config = parse(text + "  - {type: echo}\n", "m1.yaml")
    download, _, echo = config.apps
    assert download.handoff_wait == 0.25
    assert parse(CONFIG, "m1.yaml").apps[0].handoff_wait is None  # hands on once acknowledged
    assert (echo.type, echo.port) == ("echo", 7)
    assert download.as_dict()["handoff_wait"] == 0.25
    rng = random.Random(1)
    engine = build_engine(config, rng, rng.randbytes)
    assert isinstance(engine, Member)
    assert engine.host.stack.send_capacity == 90_000


@pytest.mark.parametrize(
    ("entry", "reason"),
    [("handoff_wait: -1", "below the minimum 0"), ("handoff_wait: soon", "number")],
)
def test_handoff_wait_faults_name_file_line_and_key(entry: str, reason: str) -> None:
    text = CONFIG.replace("handoff_every: 500}", f"handoff_every: 500, {entry}}}")
    with pytest.raises(ConfigError) as raised:
        parse(text, "m1.yaml")
    error = raised.value
    assert (error.path, error.line, error.key) == ("m1.yaml", 16, "apps[0].handoff_wait")
    assert reason in error.reason


def test_download_handoff_drained_is_read_and_excludes_handoff_wait() -> None:
    text = CONFIG.replace("handoff_every: 500}", "handoff_every: 500, handoff_drained: true}")
    download = parse(text, "m1.yaml").apps[0]
    assert download.handoff_drained and download.as_dict()["handoff_drained"] is True
    assert "handoff_drained" not in parse(CONFIG, "m1.yaml").apps[0].as_dict()
    rng = random.Random(1)
    engine = build_engine(parse(text, "m1.yaml"), rng, rng.randbytes)
    assert isinstance(engine, Member)
    start_apps = role("member").start_apps
    assert start_apps is not None
    start_apps(engine, parse(text, "m1.yaml").apps, None)  # no clock needed: acks drive it
    assert engine.services[80].handoff_drained
    both = text.replace("handoff_drained: true}", "handoff_wait: 0.1, handoff_drained: true}")
    with pytest.raises(ConfigError) as raised:
        parse(both, "m1.yaml")
    error = raised.value
    assert (error.path, error.line, error.key) == ("m1.yaml", 16, "apps[0].handoff_drained")
    assert "one or the other" in error.reason


def test_handoff_wait_needs_the_daemon_not_the_simulator() -> None:
    text = CONFIG.replace("handoff_every: 500}", "handoff_every: 500, handoff_wait: 0}")
    config = parse(text, "m1.yaml")
    rng = random.Random(1)
    engine = build_engine(config, rng, rng.randbytes)
    start_apps = role("member").start_apps
    assert start_apps is not None
    with pytest.raises(ValueError, match=r"handoff_wait \(download on port 80\) needs the daemon"):
        start_apps(engine, config.apps, None)
