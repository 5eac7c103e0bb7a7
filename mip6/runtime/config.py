"""The ``mip6`` daemon's YAML configuration, validated with the file, line and key of every
fault ("node.yaml:12: mobile_node.home_address: 'x' is not an IPv6 address").

One file per node::

    node: cn1                       # a name for logs and the control socket
    role: correspondent             # a role of the registry (mip6.runtime.roles): correspondent,
                                    # home_agent, mobile_node, member (a distributed server's,
                                    # mip6.runtime.roles.member shows its block), farm (many
                                    # clients for load, mip6.runtime.roles.farm)
    mode: shim                      # shim: the MIPv6 layer for the kernel's own applications;
                                    # host: the daemon is the IPv6 host (no kernel link), its
                                    # applications run inside it (``apps``); router: a home agent
    control: /run/mip6/cn1.sock     # UNIX socket for `mip6 show` (optional)
    netns: lab-cn1                  # optional: TUN devices in this network namespace (a name
                                    # from `ip netns`, or a path such as /proc/PID/ns/net); UDP
                                    # links stay where the daemon started
    links:
      kernel:  {type: tun, name: mip6k0}                        # shim mode: the kernel's side
      network: {type: udp, remote: "[::1]:4000", local: "[::1]:0"}   # or {type: tun, name: ...}
                                    # or {type: interface, name: eth0}: the box's own
                                    # interface on a real network (mip6.runtime.kernel);
                                    # a mobile node's may name several uplinks, most
                                    # preferred first: {type: interface, name: [eth0, wlan0]}
    pcap: {network: /tmp/cn1.pcap}  # optional, per link (a daemon with one has no fast path)
    fast_path: true                 # optional: established traffic through the C fast path
                                    # (mip6.runtime.fast) where it is built; false: the
                                    # engine sees every packet
    offload: true                   # optional, with the fast path: the shim's kernel TUN device
                                    # hands the daemon the kernel's TCP segments of up to 64 kB
                                    # to cut (mip6.runtime.offload); false: 1 packet per read
    home_agent: {address: ..., home_prefixes: [...], allow_unprotected_registration: false}
    mobile_node: {home_address: ..., home_agent: ..., care_of_address: ...}
    correspondent: {binding_cache_size: 4096, nonce_interval: 30}
    tcp: {rto_min_ms: 200}          # mode host only: the host's TCP (TCP_KEYS, over
                                    # mip6.runtime.host.TCP_DEFAULTS; times in milliseconds)
    apps:                           # mode host only: built-in applications on the host stack
      - {type: echo}                            # UDP echo (RFC 862), port 7 unless given
      - {type: http, port: 80, size: 5000000, seed: 1}   # or path: FILE instead of size/seed
                                    # (FILE relative to this file's directory)
                                    # a member's: echo (UDP on every address), download
                                    # (as http, plus handoff_every, regenerable,
                                    # handoff_wait or handoff_drained), handoff_echo,
                                    # and proxy (server, server_port, http,
                                    # handoff_every, route_requests, spares:
                                    # mip6.apps.proxy); UDP on the contact address:
                                    # lookup (port 53, a DNS-like service: mip6.apps.lookup),
                                    # udp_echo (port 7) and stream (port 5004, size: each
                                    # stream's bytes; mip6.apps.udp_stream), each with
                                    # handoff_every

The role's block (its keys and their types, which other blocks it reads, its default mode,
whether it may have an ``ipsec`` block) is described by its entry in the role registry
(:mod:`mip6.runtime.roles`). In host mode the node's address is the one its entry names: a
mobile node's ``home_address``, a home agent's or correspondent's ``address`` (required then).

A link of ``type: memory`` is a link of labnet's simulator (:mod:`mip6.runtime.memory`): the
simulator builds its nodes from the same configuration; a daemon refuses to open one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from ipaddress import AddressValueError, IPv6Address, IPv6Network, NetmaskValueError, ip_address
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mip6.core.config import ProtocolConstants
from mip6.dserver.member import POLICIES
from mip6.dserver.membership import MembershipConfig
from mip6.runtime.host import TCP_DEFAULTS
from mip6.runtime.roles import ROLES, role
from mip6.runtime.roles.base import MODES, OptionError
from tcp_migrate.core import Config

LINK_TYPES = ("tun", "udp", "memory", "interface")
LINK_KEYS = ("type", "name", "remote", "local")
KERNEL_LINK = "kernel"  # shim mode: the TUN device of the kernel behind the daemon
APP_TYPES = (
    "echo",
    "http",
    "download",
    "handoff_echo",
    "proxy",
    "lookup",
    "udp_echo",
    "stream",
)
BODY_APPS = ("http", "download")  # apps serving a file or a generated body
DEFAULT_APP_PORTS = {
    "echo": 7,
    "http": 80,
    "download": 80,
    "handoff_echo": 7,
    "proxy": 80,
    "lookup": 53,
    "udp_echo": 7,
    "stream": 5004,
}
UDP_APPS = ("echo", "lookup", "udp_echo", "stream")
HANDOFF_UDP_APPS = ("lookup", "udp_echo", "stream")  # a member's UDP services (mip6.dserver.udp)
MIN_SECRET = 32  # bytes of a ``secret`` option (a member channel's group key)
# The ``tcp`` block's keys: fields of tcp_migrate.core.Config, whole numbers (milliseconds,
# bytes, counts) or booleans; the core's own check (tcp_config_check) bounds each.
TCP_KEYS = {
    "rto_min_ms": "whole",
    "rto_initial_ms": "whole",
    "rto_max_ms": "whole",
    "delack_ms": "whole",
    "time_wait_ms": "whole",
    "keepalive_idle_ms": "whole",
    "keepalive_intvl_ms": "whole",
    "keepalive_count": "whole",
    "max_retries": "whole",
    "syn_retries": "whole",
    "mss": "whole",
    "sack": "boolean",
    "timestamps": "boolean",
    "window_scaling": "boolean",
    "nodelay": "boolean",
    "initial_window": "whole",
}


class ConfigError(ValueError):
    """A configuration fault, located: ``file:line: key: reason``."""

    def __init__(self, path: str, line: int | None, key: str, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")
        self.path, self.line, self.key, self.reason = path, line, key, reason


@dataclass(frozen=True, slots=True)
class LinkConfig:
    name: str  # the role of the link: "kernel", "network", "home"
    type: str  # tun | udp | memory | interface
    device: str | None = None  # tun, interface: the device's name (an interface's first)
    # tun, interface: every device named, most preferred first (more than one: a mobile node's
    # uplinks, mip6.runtime.kernel.Uplinks)
    devices: tuple[str, ...] = ()
    remote: tuple[str, int] | None = None  # udp: the hub's address
    local: tuple[str, int] = ("::", 0)  # udp: where to bind


@dataclass(frozen=True, slots=True)
class AppConfig:
    """A built-in application of a host-mode daemon (:mod:`mip6.apps.builtin`)."""

    # echo | http | download | handoff_echo | proxy | lookup | udp_echo | stream (all but the
    # first two: a member's)
    type: str
    port: int
    path: str | None = None  # http, download: the file to serve
    size: int = 0  # http, download without path: bytes generated from ``seed``; stream: its bytes
    seed: int = 0
    # download: hand the client on after this many bytes; proxy: after this many requests;
    # lookup, udp_echo: after this many datagrams of a flow (0: never)
    handoff_every: int = 0
    regenerable: bool = True  # download: handoffs carry the short snapshot
    # download: the seeds' modified server (004 6.3): each member writes its handoff_every
    # bytes, stops, and hands the client on this many seconds after the last write returned
    # (None: it writes on and hands on once the client acknowledged its share)
    handoff_wait: float | None = None
    # download: the seeds' Fig. 12 server (004 6.4): each member writes its handoff_every
    # bytes, stops, and hands the client on once it has acknowledged all of them
    handoff_drained: bool = False
    # proxy (mip6.apps.proxy): the unmodified server it relays to, and how clients move
    server: str = "::1"
    server_port: int = 0
    http: bool = True
    route_requests: bool = False
    spares: int = 1  # connections to the server opened ahead for new clients

    def as_dict(self) -> dict[str, Any]:
        """This application as :func:`read_apps` reads it."""
        out: dict[str, Any] = {"type": self.type, "port": self.port}
        if self.path is not None:
            out["path"] = self.path
        elif self.type in BODY_APPS:
            out |= {"size": self.size, "seed": self.seed}
        if self.type == "download":
            out |= {"handoff_every": self.handoff_every, "regenerable": self.regenerable}
            if self.handoff_wait is not None:
                out["handoff_wait"] = self.handoff_wait
            if self.handoff_drained:
                out["handoff_drained"] = True
        if self.type in HANDOFF_UDP_APPS:
            out["handoff_every"] = self.handoff_every
        if self.type == "stream":
            out["size"] = self.size
        if self.type == "proxy":
            out |= {
                "server": self.server,
                "server_port": self.server_port,
                "http": self.http,
                "handoff_every": self.handoff_every,
                "route_requests": self.route_requests,
                "spares": self.spares,
            }
        return out


@dataclass(frozen=True, slots=True)
class NodeConfig:
    path: str
    node: str
    role: str
    mode: str
    links: dict[str, LinkConfig]
    control: str | None = None
    pcap: dict[str, str] = field(default_factory=dict)
    role_options: dict[str, Any] = field(default_factory=dict)  # typed per role, see below
    netns: str | None = None  # network namespace of the TUN devices
    ipsec: dict[str, Any] | None = None  # RFC 3776 SAs (mip6.core.ipsec.config), validated
    apps: tuple[AppConfig, ...] = ()  # host mode: applications inside the daemon
    tcp: Config | None = None  # host mode: the ``tcp`` block over TCP_DEFAULTS, if given
    fast_path: bool = True  # the C fast path where built (mip6.runtime.fast)
    offload: bool = True  # with the fast path: TCP segmentation offload (mip6.runtime.offload)

    @property
    def network_links(self) -> tuple[str, ...]:
        """The links that face the network (every link but the shim's ``kernel``)."""
        return tuple(name for name in self.links if name != KERNEL_LINK)

    @property
    def host_addresses(self) -> tuple[IPv6Address, ...]:
        """The node's own addresses in host mode (see the module docstring)."""
        address = self.role_options.get(role(self.role).host_address)
        return (address,) if address is not None else ()


class YamlReader:
    """Walks the composed YAML tree so every value keeps its line number; every fault becomes
    a :class:`ConfigError` naming the file, line and dotted key. Also used by labnet's
    topology files."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Node | None, key: str, reason: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(self.path, line, key, reason)

    def mapping(self, node: Node, key: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, key, "must be a mapping")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.fail(key_node, key, "keys must be plain names")
            name = key_node.value
            if name in out:
                raise self.fail(key_node, join(key, name), "given twice")
            out[name] = (key_node, value_node)
        return out

    def scalar(self, node: Node, key: str) -> str:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, key, "must be a single value")
        return str(node.value)

    def choice(self, node: Node, key: str, choices: tuple[str, ...]) -> str:
        value = self.scalar(node, key)
        if value not in choices:
            raise self.fail(node, key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def address(self, node: Node, key: str) -> IPv6Address:
        value = self.scalar(node, key)
        try:
            return IPv6Address(value)
        except AddressValueError:
            raise self.fail(node, key, f"{value!r} is not an IPv6 address") from None

    def network(self, node: Node, key: str) -> IPv6Network:
        value = self.scalar(node, key)
        try:
            return IPv6Network(value)
        except (AddressValueError, NetmaskValueError, ValueError):
            raise self.fail(node, key, f"{value!r} is not an IPv6 prefix") from None

    def number(self, node: Node, key: str, *, minimum: float = 0) -> float:
        value = self.scalar(node, key)
        try:
            number = float(value)
        except ValueError:
            raise self.fail(node, key, f"{value!r} is not a number") from None
        if number < minimum:
            raise self.fail(node, key, f"{value} is below the minimum {minimum}")
        return number

    def boolean(self, node: Node, key: str) -> bool:
        value = self.scalar(node, key).lower()
        if value in ("true", "yes", "on"):
            return True
        if value in ("false", "no", "off"):
            return False
        raise self.fail(node, key, f"{value!r} is not true or false")

    def sequence(self, node: Node, key: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, key, "must be a list")
        return list(node.value)

    def endpoint(self, node: Node, key: str) -> tuple[str, int]:
        """``[addr]:port``, ``addr:port`` (IPv4) or ``host:port``."""
        value = self.scalar(node, key)
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise self.fail(node, key, f"{value!r} is not host:port")
        return host.strip("[]") or "::", int(port)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def load(path: str | Path) -> NodeConfig:
    text = Path(path).read_text(encoding="utf-8")
    return parse(text, str(path))


def compose(text: str, path: str) -> Node:
    """The YAML document as a node tree (line numbers kept), or a located ConfigError."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            path, line, "", f"not valid YAML: {getattr(error, 'problem', error)}"
        ) from None
    if root is None:
        raise ConfigError(path, None, "", "empty configuration")
    return root


def parse(text: str, path: str = "<config>") -> NodeConfig:
    reader = YamlReader(path)
    root = compose(text, path)
    top = reader.mapping(root, "")
    sections = {name for entry in ROLES.values() for name in entry.sections}
    allowed = {"node", "role", "mode", "control", "links", "pcap", "netns", "ipsec", "apps"}
    allowed |= {"tcp", "fast_path", "offload"}
    allowed |= {*ROLES, *sections}
    for name, (key_node, _) in top.items():
        if name not in allowed:
            raise reader.fail(
                key_node, name, f"unknown key (expected one of {', '.join(sorted(allowed))})"
            )
    for required in ("node", "role", "links"):
        if required not in top:
            raise ConfigError(path, root.start_mark.line + 1, required, "missing")
    node = reader.scalar(top["node"][1], "node")
    role_name = reader.choice(top["role"][1], "role", tuple(ROLES))
    entry = role(role_name)
    mode = reader.choice(top["mode"][1], "mode", MODES) if "mode" in top else entry.default_mode
    if mode not in entry.modes:
        raise reader.fail(
            top["mode"][1], "mode", f"role {role_name} runs in mode {', '.join(entry.modes)} only"
        )
    links = _links(reader, top["links"][1], several=entry.mobile)
    needed = {"network"} | ({"kernel"} if mode == "shim" else set())
    for name in sorted(needed - set(links)):
        raise reader.fail(top["links"][1], f"links.{name}", f"missing (mode {mode} needs it)")
    for name, link in links.items():
        if link.type != "interface":
            continue
        where = top["links"][1]
        if entry.network_driver is None:
            raise reader.fail(
                where, f"links.{name}", f"role {role_name} does not run on a real interface yet"
            )
        if mode not in entry.interface_modes:
            raise reader.fail(
                where,
                f"links.{name}",
                f"role {role_name} runs on an interface link in mode "
                f"{' or '.join(entry.interface_modes)}, not {mode}",
            )
    if mode == "host" and "kernel" in links:
        raise reader.fail(
            top["links"][1], "links.kernel", "mode host has no kernel link (the daemon is the host)"
        )
    apps: tuple[AppConfig, ...] = ()
    if "apps" in top:
        if mode != "host":
            raise reader.fail(top["apps"][0], "apps", f"applications need mode host, not {mode}")
        apps = read_apps(reader, top["apps"][1], "apps", entry.apps)
    tcp = None
    if "tcp" in top:
        if mode != "host":
            raise reader.fail(
                top["tcp"][0], "tcp", f"applies to mode host only (in mode {mode} the kernel's TCP)"
            )
        tcp = _tcp(reader, top["tcp"][1], entry.tcp_fixed)
    control = reader.scalar(top["control"][1], "control") if "control" in top else None
    netns = _netns(reader, top["netns"][1]) if "netns" in top else None
    pcap: dict[str, str] = {}
    if "pcap" in top:
        for name, (key_node, value_node) in reader.mapping(top["pcap"][1], "pcap").items():
            if name not in links:
                raise reader.fail(key_node, f"pcap.{name}", "no such link")
            pcap[name] = reader.scalar(value_node, f"pcap.{name}")
    if role_name not in top:
        raise ConfigError(
            path, root.start_mark.line + 1, role_name, f"missing (role {role_name} needs it)"
        )
    for other in (*ROLES, *sections):
        if other != role_name and other in top and other not in entry.sections:
            raise reader.fail(top[other][0], other, f"does not apply to role {role_name}")
    options = read_options(reader, top[role_name][1], role_name, entry.options)
    for required in entry.required:
        if required not in options:
            raise reader.fail(top[role_name][1], f"{role_name}.{required}", "missing")
    check_options(reader, top[role_name][1], role_name, options)
    for section, spec in entry.sections.items():
        if section in top:
            options[section] = read_options(reader, top[section][1], section, spec)
    if mode == "host" and entry.host_address not in options:
        raise reader.fail(
            top[role_name][1],
            f"{role_name}.{entry.host_address}",
            "missing (mode host needs the node's address)",
        )
    ipsec = _ipsec(reader, text, top["ipsec"], role_name) if "ipsec" in top else None
    fast_path = reader.boolean(top["fast_path"][1], "fast_path") if "fast_path" in top else True
    offload = reader.boolean(top["offload"][1], "offload") if "offload" in top else True
    return NodeConfig(
        path, node, role_name, mode, links, control, pcap, options, netns, ipsec, apps, tcp,
        fast_path, offload,
    )  # fmt: skip


def read_apps(
    reader: YamlReader, node: Node, key: str, types: tuple[str, ...] = APP_TYPES
) -> tuple[AppConfig, ...]:
    """An ``apps`` list (see the module docstring) of the given ``types`` (a role's); also
    used by labnet's topology files."""
    apps: list[AppConfig] = []
    ports: set[tuple[str, int]] = set()
    for index, item in enumerate(reader.sequence(node, key)):
        where = f"{key}[{index}]"
        fields = reader.mapping(item, where)
        if "type" not in fields:
            raise reader.fail(item, f"{where}.type", "missing")
        kind = reader.choice(fields["type"][1], f"{where}.type", types)
        allowed = {"type", "port"} | ({"path", "size", "seed"} if kind in BODY_APPS else set())
        if kind == "download":
            allowed |= {"handoff_every", "regenerable", "handoff_wait", "handoff_drained"}
        if kind in HANDOFF_UDP_APPS:
            allowed |= {"handoff_every"}
        if kind == "stream":
            allowed |= {"size"}
        if kind == "proxy":
            allowed |= {
                "server",
                "server_port",
                "http",
                "handoff_every",
                "route_requests",
                "spares",
            }
        for name, (key_node, _) in fields.items():
            if name not in allowed:
                raise reader.fail(
                    key_node,
                    f"{where}.{name}",
                    f"unknown key for an app of type {kind} "
                    f"(expected {', '.join(sorted(allowed))})",
                )
        values: dict[str, Any] = {}
        for name in ("port", "size", "seed", "handoff_every", "server_port", "spares"):
            if name in fields:
                values[name] = _whole(reader, fields[name][1], f"{where}.{name}")
        for name in ("regenerable", "http", "route_requests", "handoff_drained"):
            if name in fields:
                values[name] = reader.boolean(fields[name][1], f"{where}.{name}")
        if "handoff_wait" in fields:
            wait = fields["handoff_wait"][1]
            values["handoff_wait"] = reader.number(wait, f"{where}.handoff_wait")
            if values.get("handoff_drained"):
                raise reader.fail(
                    fields["handoff_drained"][0],
                    f"{where}.handoff_drained",
                    "the seeds' two servers are one or the other: handoff_wait hands on after "
                    "a time, handoff_drained once the share is acknowledged",
                )
        if kind == "proxy":
            _proxy(reader, item, fields, where, values)
        port = values.pop("port", DEFAULT_APP_PORTS[kind])
        if not 0 < port <= 0xFFFF:
            raise reader.fail(fields["port"][1], f"{where}.port", f"{port} is not a port (1-65535)")
        protocol = "udp" if kind in UDP_APPS else "tcp"
        if (protocol, port) in ports:
            raise reader.fail(item, f"{where}.port", f"{protocol} port {port} is used twice")
        ports.add((protocol, port))
        if kind == "stream" and values.get("size", 0) == 0:
            raise reader.fail(item, f"{where}.size", "a stream app needs a size above 0")
        if kind in BODY_APPS:
            if ("path" in fields) == ("size" in fields):
                article = "an" if kind[0] in "aeiouh" else "a"  # an http, a download
                raise reader.fail(item, where, f"{article} {kind} app needs either path or size")
            if "path" in fields:
                if "seed" in fields:
                    raise reader.fail(fields["seed"][0], f"{where}.seed", "only with size")
                path = reader.scalar(fields["path"][1], f"{where}.path")
                # relative to the configuration file, wherever the daemon was started
                path = os.path.join(os.path.dirname(reader.path), path)
                if not os.path.isfile(path):
                    raise reader.fail(fields["path"][1], f"{where}.path", f"no file {path}")
                values["path"] = path
        apps.append(AppConfig(kind, port, **values))
    return tuple(apps)


def _proxy(
    reader: YamlReader,
    item: Node,
    fields: dict[str, tuple[Node, Node]],
    where: str,
    values: dict[str, Any],
) -> None:
    """A proxy's server (the seeds' ``-s`` and ``-a``) and how its clients move."""
    if "server_port" not in fields:
        raise reader.fail(item, f"{where}.server_port", "missing (the server's port)")
    if not 0 < values["server_port"] <= 0xFFFF:
        raise reader.fail(
            fields["server_port"][1],
            f"{where}.server_port",
            f"{values['server_port']} is not a port (1-65535)",
        )
    if "server" in fields:
        text = reader.scalar(fields["server"][1], f"{where}.server")
        try:
            values["server"] = str(ip_address(text))
        except ValueError:
            raise reader.fail(
                fields["server"][1], f"{where}.server", f"{text!r} is not an IP address"
            ) from None
    if not values.get("http", True):
        for name in ("handoff_every", "route_requests"):
            if name in fields:
                raise reader.fail(
                    fields[name][0], f"{where}.{name}", "only with http (plain TCP moves once)"
                )


def _whole(reader: YamlReader, node: Node, key: str) -> int:
    number = reader.number(node, key)
    if number != int(number):
        raise reader.fail(node, key, f"{number} is not a whole number")
    return int(number)


def _tcp(reader: YamlReader, node: Node, fixed: Mapping[str, str]) -> Config:
    """The ``tcp`` block over :data:`~mip6.runtime.host.TCP_DEFAULTS`; ``fixed``: the keys
    the role sets itself, and why."""
    values: dict[str, int | bool] = {}
    for name, (key_node, value_node) in reader.mapping(node, "tcp").items():
        key = f"tcp.{name}"
        kind = TCP_KEYS.get(name)
        if kind is None:
            raise reader.fail(
                key_node, key, f"unknown key (expected one of {', '.join(sorted(TCP_KEYS))})"
            )
        if name in fixed:
            raise reader.fail(key_node, key, fixed[name])
        value: int | bool = (
            reader.boolean(value_node, key)
            if kind == "boolean"
            else _whole(reader, value_node, key)
        )
        try:
            replace(TCP_DEFAULTS, **{name: value}).to_c()
        except (ValueError, OverflowError):
            raise reader.fail(value_node, key, f"{value} is out of the TCP core's range") from None
        values[name] = value
    config = replace(TCP_DEFAULTS, **values)
    try:
        config.to_c()
    except ValueError:
        raise reader.fail(
            node, "tcp", f"settings that do not go together ({', '.join(sorted(values))})"
        ) from None
    return config


def _ipsec(reader: YamlReader, text: str, entry: tuple[Node, Node], name: str) -> dict[str, Any]:
    """The ``ipsec`` block (see :mod:`mip6.core.ipsec.config`), checked by building the policy
    database once; a fault is reported at the line of the key it names."""
    from mip6.core.ipsec.config import IpsecConfigError, database_from_config

    key_node, value_node = entry
    side = role(name).security
    if side is None:
        raise reader.fail(
            key_node, "ipsec", f"ESP is between mobile node and home agent, not for {name}"
        )
    block = yaml.safe_load(text)["ipsec"]
    try:
        database_from_config(block, role=side, random_bytes=os.urandom)
    except IpsecConfigError as error:
        raise reader.fail(_locate(value_node, error.key), error.key, error.reason) from None
    return dict(block)


def _locate(node: Node, dotted: str) -> Node:
    """The deepest node of ``node`` along a dotted key such as ``ipsec.pairs[0].home_test.spi``
    (the first segment names ``node`` itself), for error line numbers."""
    for segment in re.findall(r"[^.\[\]]+|\[\d+\]", dotted)[1:]:
        if segment.startswith("[") and isinstance(node, SequenceNode):
            index = int(segment[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
        elif isinstance(node, MappingNode):
            found = [v for k, v in node.value if isinstance(k, ScalarNode) and k.value == segment]
            if not found:
                break
            node = found[0]
        else:
            break
    return node


def _netns(reader: YamlReader, node: Node) -> str:
    """A namespace name as `ip netns` accepts it, or an absolute path to a namespace file."""
    name = reader.scalar(node, "netns")
    if name.startswith("/"):
        if not os.path.exists(name):
            raise reader.fail(node, "netns", f"{name} does not exist")
        return name
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name in (".", ".."):
        raise reader.fail(
            node, "netns", f"{name!r} is not a namespace name (letters, digits, '_', '-', '.')"
        )
    if not os.path.exists(os.path.join("/run/netns", name)):
        raise reader.fail(node, "netns", f"no network namespace {name!r} (ip netns add {name})")
    return name


def _links(reader: YamlReader, node: Node, *, several: bool) -> dict[str, LinkConfig]:
    """The ``links`` block; ``several``: an interface link may name several devices (a mobile
    node's uplinks)."""
    out = {}
    for name, (_, value) in reader.mapping(node, "links").items():
        key = f"links.{name}"
        fields = reader.mapping(value, key)
        for field_name, (key_node, _) in fields.items():
            if field_name not in LINK_KEYS:
                raise reader.fail(
                    key_node,
                    f"{key}.{field_name}",
                    f"unknown key (expected one of {', '.join(LINK_KEYS)})",
                )
        if "type" not in fields:
            raise reader.fail(value, f"{key}.type", "missing")
        kind = reader.choice(fields["type"][1], f"{key}.type", LINK_TYPES)
        if kind in ("tun", "interface"):
            if "name" not in fields:
                article = "an" if kind == "interface" else "a"
                raise reader.fail(
                    value, f"{key}.name", f"missing ({article} {kind} link needs a device name)"
                )
            devices = _device_names(reader, fields["name"][1], f"{key}.name", kind, several)
            out[name] = LinkConfig(name, kind, device=devices[0], devices=devices)
        elif kind == "memory":
            out[name] = LinkConfig(name, kind)
        else:
            if "remote" not in fields:
                raise reader.fail(
                    value, f"{key}.remote", "missing (a udp link needs the hub's host:port)"
                )
            remote = reader.endpoint(fields["remote"][1], f"{key}.remote")
            local = (
                reader.endpoint(fields["local"][1], f"{key}.local")
                if "local" in fields
                else ("::", 0)
            )
            out[name] = LinkConfig(name, kind, remote=remote, local=local)
    return out


def _device_names(
    reader: YamlReader, node: Node, key: str, kind: str, several: bool
) -> tuple[str, ...]:
    """A link's ``name``: one device, or for a mobile node's interface link a list of them,
    most preferred first (its uplinks, mip6.runtime.kernel.Uplinks)."""
    if isinstance(node, SequenceNode):
        if kind != "interface":
            raise reader.fail(node, key, f"a {kind} link has one device name")
        if not several:
            raise reader.fail(
                node, key, "only a mobile node's interface link names several uplinks"
            )
        items = reader.sequence(node, key)
        if not items:
            raise reader.fail(node, key, "names no device")
    else:
        items = [node]
    # an interface link's TAP device is named m6<device> (mip6.runtime.kernel)
    longest = 15 if kind == "tun" else 13
    devices: list[str] = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]" if isinstance(node, SequenceNode) else key
        device = reader.scalar(item, where)
        if not 0 < len(device) <= longest:
            raise reader.fail(item, where, f"{kind} device names are 1-{longest} characters")
        if device in devices:
            raise reader.fail(item, where, f"{device} is named twice")
        devices.append(device)
    return tuple(devices)


def check_options(reader: YamlReader, node: Node, name: str, options: dict[str, Any]) -> None:
    """Role ``name``'s ``check`` over its typed block ``options`` (read from ``node``): a
    fault is reported at the line of the key it names (the block's, if that key is not in
    it). Also used by labnet's topology files."""
    found = role(name)
    if found.check is None:
        return
    try:
        found.check(options)
    except OptionError as error:
        fields = reader.mapping(node, name) if isinstance(node, MappingNode) else {}
        at = fields[error.key][1] if error.key in fields else node
        raise reader.fail(at, join(name, error.key), error.reason) from None


def read_options(
    reader: YamlReader, node: Node, key: str, spec: Mapping[str, str]
) -> dict[str, Any]:
    """Read a mapping whose keys are typed by ``spec`` (address, addresses, network,
    networks, number, duration (seconds, more than 0), integer (1 or more), count (0 or
    more), port, boolean, text,
    constants, membership, policy, secret). Also used by labnet's topology files."""
    out: dict[str, Any] = {}
    fields = reader.mapping(node, key)
    for name, (key_node, value) in fields.items():
        kind = spec.get(name)
        full = join(key, name)
        if kind is None:
            raise reader.fail(
                key_node, full, f"unknown key (expected one of {', '.join(sorted(spec))})"
            )
        if kind == "address":
            out[name] = reader.address(value, full)
        elif kind == "network":
            out[name] = reader.network(value, full)
        elif kind == "networks":
            out[name] = tuple(reader.network(v, full) for v in reader.sequence(value, full))
        elif kind == "addresses":
            out[name] = tuple(reader.address(v, full) for v in reader.sequence(value, full))
        elif kind == "number":
            out[name] = reader.number(value, full)
        elif kind == "duration":
            seconds = reader.number(value, full)
            if not seconds > 0:
                raise reader.fail(value, full, f"{seconds} seconds: must be more than 0")
            out[name] = seconds
        elif kind in ("integer", "count"):
            number = reader.number(value, full, minimum=1 if kind == "integer" else 0)
            if number != int(number):
                raise reader.fail(value, full, f"{number} is not a whole number")
            out[name] = int(number)
        elif kind == "text":
            out[name] = reader.scalar(value, full)
        elif kind == "boolean":
            out[name] = reader.boolean(value, full)
        elif kind == "constants":
            out[name] = _constants(reader, value, full)
        elif kind == "membership":
            out[name] = _membership(reader, value, full)
        elif kind == "port":
            port = _whole(reader, value, full)
            if not 0 < port <= 0xFFFF:
                raise reader.fail(value, full, f"{port} is not a port (1-65535)")
            out[name] = port
        elif kind == "policy":
            out[name] = reader.choice(value, full, POLICIES)
        elif kind == "secret":
            out[name] = _secret(reader, value, full)
    return out


def _secret(reader: YamlReader, node: Node, key: str) -> bytes:
    """A key in hex digits, at least :data:`MIN_SECRET` bytes. Faults never quote it."""
    if not isinstance(node, ScalarNode):
        raise reader.fail(node, key, "must be hex digits")
    text = str(node.value).strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise reader.fail(node, key, "must be hex digits (its value is not shown)") from None
    if len(secret) < MIN_SECRET:
        raise reader.fail(
            node, key, f"{len(secret)} bytes; at least {MIN_SECRET} (64 hex digits) are needed"
        )
    return secret


def _membership(reader: YamlReader, node: Node, key: str) -> MembershipConfig:
    """A distributed server's dynamic membership (:mod:`mip6.dserver.membership`): its timers
    in seconds and its sizes, each over the default (``{}``: every default)."""
    defaults = MembershipConfig()
    values: dict[str, float | int] = {}
    for name, (key_node, value) in reader.mapping(node, key).items():
        full = join(key, name)
        default = getattr(defaults, name, None)
        if default is None:
            names = ", ".join(f.name for f in fields(MembershipConfig))
            raise reader.fail(key_node, full, f"unknown key (expected one of {names})")
        number = reader.number(value, full)
        if isinstance(default, int):
            if number != int(number) or number < 1:
                raise reader.fail(value, full, f"{number} is not a whole number of 1 or more")
            number = int(number)
        elif number <= 0:
            raise reader.fail(value, full, f"{number} seconds: must be more than 0")
        values[name] = number
    try:
        return MembershipConfig(**values)  # type: ignore[arg-type]
    except ValueError as error:
        raise reader.fail(node, key, str(error)) from None


def _constants(reader: YamlReader, node: Node, key: str) -> ProtocolConstants:
    """RFC 3775 section 12's protocol constants, each overridable ("configurable" in the RFC
    for most; a conformance lab shortens MAX_NONCE_LIFETIME so expiry cases run in seconds)."""
    values: dict[str, float | int] = {}
    for name, (key_node, value) in reader.mapping(node, key).items():
        full = join(key, name)
        default = getattr(ProtocolConstants(), name, None)
        if name.startswith("_") or default is None:
            names = ", ".join(f.name for f in fields(ProtocolConstants))
            raise reader.fail(key_node, full, f"unknown constant (expected one of {names})")
        number = reader.number(value, full)
        if isinstance(default, int):
            if number != int(number):
                raise reader.fail(value, full, f"{number} is not a whole number")
            number = int(number)
        values[name] = number
    return ProtocolConstants(**values)  # type: ignore[arg-type]
