"""The hub's description: units, addresses, per-direction profiles, strict errors."""

from __future__ import annotations

import textwrap
from ipaddress import IPv6Network
from pathlib import Path

import pytest
import yaml

from labnet.hub.config import (
    ConfigError,
    load_config,
    parse_address,
    parse_config,
    parse_duration,
    parse_probability,
    parse_rate,
    parse_size,
)
from labnet.hub.emulation import GilbertElliott, Jitter, LinkProfile

EXAMPLE = """
bind: 127.0.0.1
control: "[::1]:0"
pcap_dir: captures
seed: 4
defaults: {queue_packets: 50}
links:
  mn:
    port: 7001
    endpoint: 127.0.0.1:6001
    prefixes: [2001:db8:3::/64]
    latency: 10ms
    bandwidth: 10Mbit
    up: {loss: 1%, jitter: 2ms, jitter_distribution: normal}
    down: {burst_loss: {p: 0.01, r: 0.25}}
  ha:
    bind: "[::1]:0"
    hairpin: true
    prefixes: 2001:db8:1::/64
routes:
  "::/0": ha
"""


def test_load_config_full_example(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    mn, ha = config.links
    assert (mn.name, mn.bind, mn.endpoint, mn.hairpin) == (
        "mn",
        ("127.0.0.1", 7001),
        ("127.0.0.1", 6001),
        False,
    )
    assert mn.up == LinkProfile(
        latency=0.010,
        bandwidth_bits_per_s=10e6,
        queue_packets=50,
        loss=0.01,
        jitter=0.002,
        jitter_distribution=Jitter.NORMAL,
    )
    assert mn.down == LinkProfile(
        latency=0.010,
        bandwidth_bits_per_s=10e6,
        queue_packets=50,
        burst_loss=GilbertElliott(p=0.01, r=0.25),
    )
    assert (ha.bind, ha.endpoint, ha.hairpin) == (("::1", 0), None, True)
    assert ha.up == ha.down == LinkProfile(queue_packets=50)
    assert config.routes == (
        (IPv6Network("2001:db8:3::/64"), "mn"),
        (IPv6Network("2001:db8:1::/64"), "ha"),
        (IPv6Network("::/0"), "ha"),
    )
    assert config.control == ("::1", 0)
    assert config.pcap_dir == tmp_path / "captures"  # relative to the description
    assert config.seed == 4


def test_docstring_example_parses() -> None:
    from labnet.hub import config as module

    assert module.__doc__ is not None
    example = module.__doc__.split("::\n\n", 1)[1].split("\n\nProfile keys", 1)[0]
    config = parse_config(yaml.safe_load(textwrap.dedent(example)))
    assert [link.name for link in config.links] == ["mn", "ha", "host"]
    assert [link.kind for link in config.links] == ["udp", "udp", "tun"]
    mn = config.links[0]
    assert mn.up.loss == 0.01 and mn.down.jitter == 0.002 and mn.up.queue_packets == 100
    assert config.routes[-1] == (IPv6Network("::/0"), "ha")


def test_load_config_json_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hub.json"
    path.write_text('{"links": {"a": {"latency": 0.005}}, "control": null}')
    config = load_config(path)
    assert config.links[0].up.latency == 0.005
    assert config.links[0].bind == ("127.0.0.1", 0)
    assert config.control is None and config.pcap_dir is None and not config.realtime


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (0.25, 0.25),
        (3, 3.0),
        ("10ms", 0.010),
        ("10 ms", 0.010),
        ("1.5s", 1.5),
        ("250us", 250e-6),
        ("250µs", 250e-6),
    ],
)
def test_parse_duration_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        (1e6, 1e6),
        ("10Mbit", 10e6),
        ("10 Mbit/s", 10e6),
        ("512kbit", 512e3),
        ("1Gbit", 1e9),
        ("300bit/s", 300),
    ],
)
def test_parse_rate_units(text: object, bits: float) -> None:
    assert parse_rate(text) == pytest.approx(bits)


def test_parse_rate_bytes_per_second_refused_as_ambiguous() -> None:
    with pytest.raises(ConfigError, match="unknown unit 'mbps'"):
        parse_rate("10mbps")


@pytest.mark.parametrize(
    ("text", "size"), [(1500, 1500), ("64KB", 64000), ("64KiB", 65536), ("1MiB", 1048576)]
)
def test_parse_size_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "probability"), [(0.1, 0.1), ("10%", 0.1), ("0.5%", 0.005), (0, 0.0)]
)
def test_parse_probability(text: object, probability: float) -> None:
    assert parse_probability(text) == pytest.approx(probability)


@pytest.mark.parametrize("text", [1.5, "150%", "-1", "ten", True])
def test_parse_probability_invalid_raises(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_probability(text, "x")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:7000", ("::1", 7000)),
        ("[0:0::1]:7000", ("::1", 7000)),  # normalized, so it compares with recvfrom's
        ("localhost:1", ("localhost", 1)),
        (["::", 0], ("::", 0)),
    ],
)
def test_parse_address_forms(text: object, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["::1:7000", "127.0.0.1", "host:99999", "host:x", 7])
def test_parse_address_invalid_raises(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_address(text, "endpoint")


@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        ({"links": {}}, "links", "at least one link"),
        ({"links": {"a": {"latncy": "1ms"}}}, "links.a", "unknown keys ['latncy']"),
        ({"links": {"a": {"up": {"bandwith": 1}}}}, "links.a.up", "unknown keys"),
        ({"links": {"a": {"latency": "1 fortnight"}}}, "links.a.latency", "unknown unit"),
        ({"links": {"a": {"latency": -1}}}, "links.a", "latency=-1.0"),
        ({"links": {"a/b": {}}}, "links.a/b", "link name"),
        ({"links": {"a": {"port": 1, "bind": "[::1]:2"}}}, "links.a", "either bind"),
        ({"links": {"a": {}}, "routes": {"::/0": "b"}}, "routes.::/0", "no link named 'b'"),
        ({"links": {"a": {"prefixes": ["2001:db8::1/32"]}}}, "links.a.prefixes", "not an IPv6"),
        (
            {"links": {"a": {"prefixes": ["::/0"]}, "b": {}}, "routes": {"::/0": "b"}},
            "routes.::/0",
            "already routed",
        ),
        ({"links": {"a": {"burst_loss": {"p": 0.1}}}}, "links.a.burst_loss", "p and r"),
        (
            {"links": {"a": {"jitter_distribution": "pareto"}}},
            "links.a.jitter_distribution",
            "not one of",
        ),
        ({"links": {"a": {}}, "seed": "x"}, "seed", "not an integer"),
        ({"links": {"a": {}}, "realtime": "yes"}, "realtime", "not true or false"),
        ({"links": {"a": {}}, "colour": 1}, "", "unknown keys ['colour']"),
        ({"links": {"a": {"to": "a"}}}, "links.a.to", "not the name of another link"),
        ({"links": {"a": {"to": "b"}}}, "links.a.to", "no link named 'b'"),
        ({"links": {"a": {"to": 3}, "b": {}}}, "links.a.to", "not the name of another"),
    ],
)
def test_parse_config_fault_names_where_and_why(data: object, where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.where == where
    assert reason in caught.value.reason


def test_load_config_bad_yaml_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("links: {a: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
