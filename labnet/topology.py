"""Lab topologies in YAML: networks around a core router, nodes attached to networks.

Each network has a prefix and an uplink to the core with one-way latency, jitter, bandwidth,
loss and queue length; a packet between two networks crosses both uplinks (the seeds' testbed,
004 Fig. 9, is exactly this shape: Lss between members, Lcs between members and the client).
Nodes have a role (home_agent, correspondent, mobile_node, member, farm), a mode, the network
they sit on and their addresses; ``external`` nodes are endpoints the hub exposes to outside
tools; ``kernel`` nodes are plain network namespaces, no mip6 daemon, attached through a hub
TUN link (as Mininet hosts: run any program in them with ``labnet exec``)::

    name: roaming
    networks:
      home:          {prefix: 2001:db8:1::/64, latency: 10ms}
      visited1:      {prefix: 2001:db8:3::/64, latency: 15ms, loss: 0}
      correspondent: {prefix: 2001:db8:2::/64, latency: 5ms, bandwidth: 100Mbit}
    nodes:
      ha: {role: home_agent, network: home, address: 2001:db8:1::1}
      cn: {role: correspondent, network: correspondent, address: 2001:db8:2::1}
      mn: {role: mobile_node, network: visited1, address: 2001:db8:3::5,
           home_address: 2001:db8:1::5, home_agent: 2001:db8:1::1}
      probe: {kind: external, network: correspondent, addresses: [2001:db8:2::99]}
      web: {kind: kernel, network: correspondent, address: 2001:db8:2::80}

``mode: host`` runs a node's daemon as the IPv6 host itself (no kernel behind it), with the
built-in applications its ``apps`` list names, as in a daemon configuration
(:mod:`mip6.runtime.config`), e.g. ``apps: [{type: http, port: 80, size: 5000000, seed: 1}]``.

``options`` are keys of a daemon node's role block on top of those the lab derives from the
topology (its addresses, home agent, group...), typed and checked as the daemon checks them,
e.g. a client farm's (:mod:`mip6.runtime.roles.farm`; its prefix is its network's)::

      farm: {role: farm, network: farm, address: 2001:db8:3::1,
             options: {clients: 200, server: 2001:db8:1::80, port: 81, size: 200000, seed: 3}}

Every fault is reported with the file, line and key (see :class:`mip6.runtime.config.ConfigError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node

from mip6.runtime.config import (
    AppConfig,
    ConfigError,
    YamlReader,
    check_options,
    compose,
    join,
    read_apps,
    read_options,
)
from mip6.runtime.roles import ROLES, LabNode, role
from mip6.runtime.roles.base import MODES

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_RATES = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


@dataclass(frozen=True, slots=True)
class Uplink:
    """One network's link to the core, the same both ways."""

    latency: float = 0.0  # seconds, one way
    jitter: float = 0.0  # seconds
    bandwidth: float | None = None  # bits per second; None: unlimited
    loss: float = 0.0  # probability
    queue: int = 1000  # packets


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    prefix: IPv6Network
    uplink: Uplink


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    kind: str  # "engine", "external" or "kernel" (a plain kernel on a hub TUN link, no daemon)
    role: str | None
    network: str
    addresses: tuple[IPv6Address, ...]
    mode: str = "shim"
    home_address: IPv6Address | None = None
    home_agent: IPv6Address | None = None
    line: int | None = None
    apps: tuple[AppConfig, ...] = ()  # mode host: the daemon's built-in applications
    # keys of the role's block, as YAML gives them (text, numbers, lists): the daemon's
    # configuration carries them on top of what the lab derives
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    path: str
    networks: dict[str, Network]
    nodes: dict[str, NodeSpec] = field(default_factory=dict)

    def network_of(self, address: IPv6Address) -> Network | None:
        for network in self.networks.values():
            if address in network.prefix:
                return network
        return None


def _duration(reader: YamlReader, node: Node, key: str) -> float:
    text = reader.scalar(node, key).strip().lower()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(s|ms|us)?", text)
    if not match:
        raise reader.fail(node, key, f"{text!r} is not a duration (e.g. 10ms, 0.5s)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _rate(reader: YamlReader, node: Node, key: str) -> float:
    text = reader.scalar(node, key).strip().lower().replace("/s", "").replace("ps", "")
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(bit|kbit|mbit|gbit)?", text)
    if not match or float(match.group(1)) <= 0:
        raise reader.fail(node, key, f"{text!r} is not a bandwidth (e.g. 10Mbit)")
    return float(match.group(1)) * _RATES[match.group(2) or "bit"]


def parse(text: str, path: str = "<topology>") -> Topology:
    reader = YamlReader(path)
    root = compose(text, path)
    top = reader.mapping(root, "")
    for key, (key_node, _) in top.items():
        if key not in ("name", "networks", "nodes"):
            raise reader.fail(key_node, key, "unknown key (expected name, networks, nodes)")
    for required in ("networks", "nodes"):
        if required not in top:
            raise ConfigError(path, root.start_mark.line + 1, required, "missing")
    name = reader.scalar(top["name"][1], "name") if "name" in top else Path(path).stem
    networks: dict[str, Network] = {}
    for net_name, (_, value) in reader.mapping(top["networks"][1], "networks").items():
        key = f"networks.{net_name}"
        fields = reader.mapping(value, key)
        uplink: dict[str, float | int] = {}
        prefix: IPv6Network | None = None
        for field_name, (key_node, field_value) in fields.items():
            full = join(key, field_name)
            if field_name == "prefix":
                prefix = reader.network(field_value, full)
            elif field_name in ("latency", "jitter"):
                uplink[field_name] = _duration(reader, field_value, full)
            elif field_name == "bandwidth":
                uplink[field_name] = _rate(reader, field_value, full)
            elif field_name == "loss":
                loss = reader.number(field_value, full)
                if loss >= 1:
                    raise reader.fail(field_value, full, "loss is a probability below 1")
                uplink[field_name] = loss
            elif field_name == "queue":
                uplink[field_name] = int(reader.number(field_value, full, minimum=1))
            else:
                raise reader.fail(key_node, full, "unknown key")
        if prefix is None:
            raise reader.fail(value, f"{key}.prefix", "missing")
        for other in networks.values():
            if prefix.overlaps(other.prefix):
                raise reader.fail(fields["prefix"][1], f"{key}.prefix", f"overlaps {other.name}")
        networks[net_name] = Network(net_name, prefix, Uplink(**uplink))  # type: ignore[arg-type]
    nodes: dict[str, NodeSpec] = {}
    for node_name, (_, value) in reader.mapping(top["nodes"][1], "nodes").items():
        nodes[node_name] = _node(reader, node_name, value, networks)
    topology = Topology(name, path, networks, nodes)
    _check_addresses(topology)
    return topology


def _node(reader: YamlReader, name: str, value: Node, networks: dict[str, Network]) -> NodeSpec:
    key = f"nodes.{name}"
    fields = reader.mapping(value, key)
    allowed = {
        "kind",
        "role",
        "network",
        "address",
        "addresses",
        "mode",
        "home_address",
        "home_agent",
        "apps",
        "options",
    }
    for field_name, (key_node, _) in fields.items():
        if field_name not in allowed:
            raise reader.fail(key_node, join(key, field_name), "unknown key")
    kind = (
        reader.choice(fields["kind"][1], f"{key}.kind", ("engine", "external", "kernel"))
        if "kind" in fields
        else "engine"
    )
    if "network" not in fields:
        raise reader.fail(value, f"{key}.network", "missing")
    network = reader.scalar(fields["network"][1], f"{key}.network")
    if network not in networks:
        raise reader.fail(fields["network"][1], f"{key}.network", f"no network {network!r}")
    addresses: tuple[IPv6Address, ...] = ()
    if "address" in fields:
        addresses = (reader.address(fields["address"][1], f"{key}.address"),)
    if "addresses" in fields:
        addresses += tuple(
            reader.address(v, f"{key}.addresses")
            for v in reader.sequence(fields["addresses"][1], f"{key}.addresses")
        )
    if not addresses:
        raise reader.fail(value, f"{key}.address", "missing")
    role_name = None
    default_mode = "shim"
    mobile = False
    if kind == "engine":
        if "role" not in fields:
            raise reader.fail(value, f"{key}.role", "missing")
        role_name = reader.choice(fields["role"][1], f"{key}.role", tuple(ROLES))
        found = role(role_name)
        default_mode, mobile = found.default_mode, found.mobile or found.homed
    mode = (
        reader.choice(fields["mode"][1], f"{key}.mode", MODES) if "mode" in fields else default_mode
    )
    if role_name is not None and mode not in role(role_name).modes:
        modes = ", ".join(role(role_name).modes)
        raise reader.fail(fields["mode"][1], f"{key}.mode", f"a {role_name} runs in mode {modes}")
    home_address = (
        reader.address(fields["home_address"][1], f"{key}.home_address")
        if "home_address" in fields
        else None
    )
    home_agent = (
        reader.address(fields["home_agent"][1], f"{key}.home_agent")
        if "home_agent" in fields
        else None
    )
    apps: tuple[AppConfig, ...] = ()
    if "apps" in fields:
        if mode != "host":
            raise reader.fail(fields["apps"][0], f"{key}.apps", "applications need mode host")
        types = role(role_name).apps if role_name is not None else ()
        apps = read_apps(reader, fields["apps"][1], f"{key}.apps", types)
    if mobile and (home_address is None or home_agent is None):
        missing = "home_address" if home_address is None else "home_agent"
        needs = f"missing (a {role_name.replace('_', ' ')} needs it)"
        raise reader.fail(value, f"{key}.{missing}", needs)
    options: dict[str, Any] = {}
    if "options" in fields:
        if role_name is None:
            raise reader.fail(fields["options"][0], f"{key}.options", f"a {kind} node has no role")
        probe = LabNode(
            addresses=addresses,
            home_address=home_address,
            home_agent=home_agent,
            prefixes=(networks[network].prefix,),
            group=addresses[:1],
            lab_secret=bytes(32),
        )
        options = _role_options(reader, fields["options"][1], f"{key}.options", role_name, probe)
    return NodeSpec(
        name,
        kind,
        role_name,
        network,
        addresses,
        mode,
        home_address,
        home_agent,
        value.start_mark.line + 1,
        apps,
        options,
    )


def _role_options(
    reader: YamlReader, node: Node, key: str, role_name: str, probe: LabNode
) -> dict[str, Any]:
    """A node's ``options``: each key typed as the role's block types it, and the block the
    lab will write (what it derives for ``probe``, these on top) complete and consistent, every
    fault at its line here. Returned as YAML gives them, to be written into the daemon's
    configuration."""
    found = role(role_name)
    read_options(reader, node, key, found.options)  # each key's type, at its line
    given = yaml.safe_load(yaml.serialize(node))
    derived = found.lab_options(probe)
    block_text = yaml.safe_dump({role_name: derived | given}, sort_keys=False)
    # the whole block as the daemon will read it; a fault in a derived key is the topology's
    # too (the node's addresses), so it is reported at the options' line
    block_reader = YamlReader(reader.path)
    block = block_reader.mapping(compose(block_text, reader.path), "")[role_name][1]
    typed = read_options(block_reader, block, role_name, found.options)
    for required in found.required:
        if required not in typed:
            raise reader.fail(node, join(key, required), "missing")
    try:
        check_options(block_reader, block, role_name, typed)
    except ConfigError as error:
        name = error.key.removeprefix(f"{role_name}.")
        given_fields = reader.mapping(node, key)
        at = given_fields[name][1] if name in given_fields else node
        raise reader.fail(at, join(key, name), error.reason) from None
    return dict(given)


def _check_addresses(topology: Topology) -> None:
    """Every address inside its own network's prefix (an ``external`` node's in any network's:
    a tester may play a mobile node's home and care-of addresses at once), and no address used
    twice."""
    seen: dict[IPv6Address, str] = {}
    for spec in topology.nodes.values():
        prefix = topology.networks[spec.network].prefix
        for address in spec.addresses:
            if spec.kind == "external" and topology.network_of(address) is not None:
                pass
            elif address not in prefix:
                where = "any network" if spec.kind == "external" else f"network {spec.network}"
                raise ConfigError(
                    topology.path,
                    spec.line,
                    f"nodes.{spec.name}.address",
                    f"{address} is not in {where}"
                    + ("" if spec.kind == "external" else f" ({prefix})"),
                )
            if address in seen:
                raise ConfigError(
                    topology.path,
                    spec.line,
                    f"nodes.{spec.name}.address",
                    f"{address} is also {seen[address]}'s",
                )
            seen[address] = spec.name


def load(path: str | Path) -> Topology:
    return parse(Path(path).read_text(encoding="utf-8"), str(path))


def builtin(name: str) -> Topology:
    """A topology shipped with labnet (``roaming``, ``testbed``, ``dserver``,
    ``dserver-farm``: ``dserver`` with a client farm loading it, ``dserver-proxy``:
    ``dserver`` with a proxy in front of a web server on every member, ``dserver-udp``:
    ``dserver`` serving UDP, with a farm of UDP clients, and ``dserver-plain``: ``dserver``
    with a client that has no Mobile IPv6, a plain kernel namespace)."""
    resource = resources.files("labnet").joinpath(f"topologies/{name}.yaml")
    return parse(resource.read_text(encoding="utf-8"), f"labnet/topologies/{name}.yaml")


def _decimal(value: float) -> str:
    """The shortest decimal that reads back as ``value``, never in exponent notation (the
    duration and rate syntax has none)."""
    return format(Decimal(repr(value)), "f")


def dump(topology: Topology) -> str:
    """``topology`` as YAML that :func:`parse` reads back to an equal topology (but for
    ``path`` and line numbers): how a topology built in code becomes a lab's file."""
    networks: dict[str, Any] = {}
    for network in topology.networks.values():
        uplink = network.uplink
        fields: dict[str, Any] = {
            "prefix": str(network.prefix),
            "latency": f"{_decimal(uplink.latency)}s",
            "jitter": f"{_decimal(uplink.jitter)}s",
            "loss": _decimal(uplink.loss),
            "queue": uplink.queue,
        }
        if uplink.bandwidth is not None:
            fields["bandwidth"] = f"{_decimal(uplink.bandwidth)}bit"
        networks[network.name] = fields
    nodes: dict[str, Any] = {}
    for spec in topology.nodes.values():
        node: dict[str, Any] = {
            "kind": spec.kind,
            "network": spec.network,
            "addresses": [str(a) for a in spec.addresses],
        }
        if spec.kind == "engine":
            node |= {"role": spec.role, "mode": spec.mode}
        if spec.home_address is not None:
            node["home_address"] = str(spec.home_address)
        if spec.home_agent is not None:
            node["home_agent"] = str(spec.home_agent)
        if spec.apps:
            node["apps"] = [app.as_dict() for app in spec.apps]
        if spec.options:
            node["options"] = dict(spec.options)
        nodes[spec.name] = node
    document = {"name": topology.name, "networks": networks, "nodes": nodes}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None)
