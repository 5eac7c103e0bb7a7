"""The hub's description: a small YAML (or JSON, which YAML reads too) file, checked strictly.

Example, every key shown (all but ``links`` are optional)::

    bind: 127.0.0.1          # address the link sockets bind to by default ("::": all, both
                             # IPv4 and IPv6)
    control: 127.0.0.1:0     # the UDP control port (server.py); null: none
    pcap_dir: captures       # one <link>.pcap per link, relative to this file; absent: none
    seed: 1                  # the emulators' random generators derive from it
    realtime: false          # true: run the loop SCHED_FIFO (needs root; see server.py)
    defaults: {queue_packets: 100}   # profile keys for every link
    links:
      mn:                    # link name: letters, digits, "_", "-", "."
        port: 7001           # 0 (default): any free port, reported at start
        endpoint: 127.0.0.1:6001  # the attached node; absent: learned from its datagrams
        prefixes: [2001:db8:3::/64]   # routed to this link
        latency: 10ms        # profile keys here apply to both directions ...
        bandwidth: 10Mbit
        up: {loss: 1%}       # ... "up" (node to hub) and "down" (hub to node) override them
        down: {jitter: 2ms, jitter_distribution: normal}
      ha:
        bind: "[::1]:0"      # instead of port: a full address
        hairpin: true        # may a packet leave by the link it arrived on
        to: mn               # every packet arriving here leaves on link mn, whatever its
                             # destination (a tester cabled to the node under test)
        prefixes: [2001:db8:1::/64]
      host:
        kind: tun            # "udp" (the default) or "tun": a TUN device the hub creates
        device: hubhost0     # its name (default: hub0, hub1, ... as the kernel numbers them)
        netns: host          # move it into this network namespace (default: stay in the hub's)
        addresses: [2001:db8:4::1/64]  # the kernel's addresses on it (no DAD)
        kernel_routes: ["::/0"]  # the kernel's routes through it
        mtu: 1500            # the default
        prefixes: [2001:db8:4::/64]
    routes:                  # more routes: prefix -> link name
      "::/0": ha

Profile keys (:class:`labnet.hub.emulation.LinkProfile`): ``latency``, ``jitter`` (durations:
a number of seconds or "10ms", "250us", "1.5s"), ``jitter_distribution`` ("uniform" or
"normal"), ``reorder`` (bool), ``bandwidth`` (a number of bit/s or "10Mbit", "10 Mbit/s",
"512kbit", "1Gbit"; tc's "bps" means bytes and is refused as ambiguous), ``queue_packets``,
``queue_bytes`` (a number or "64KB", "64KiB"), ``loss`` (a probability or "10%"),
``burst_loss`` ({p, r, loss_good, loss_bad}, see :class:`labnet.hub.emulation.GilbertElliott`),
``in_flight_limit``. A top-level ``defaults`` mapping of profile keys applies to every link.

A ``tun`` link has none of ``port``, ``bind`` and ``endpoint``, a ``udp`` link none of the
``tun`` keys (``device``, ``netns``, ``addresses``, ``kernel_routes``, ``mtu``): see
:mod:`labnet.hub.tun` for what the hub does with them.

Unknown keys are errors: a typo in a lab description must not silently mean "no emulation".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Interface, IPv6Network, ip_address
from os import PathLike
from pathlib import Path
from typing import Any, Final

import yaml

from labnet.hub.emulation import GilbertElliott, Jitter, LinkProfile

Address = tuple[str, int]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DEVICE = re.compile(r"^[A-Za-z0-9_.%-]{1,15}$")  # IFNAMSIZ - 1 bytes; "%d": numbered by the kernel
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ/%]*)\s*$")

_DURATION_UNITS: Final = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_RATE_UNITS: Final = {"": 1.0, "bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
}
_PROFILE_KEYS: Final = frozenset(
    {
        "latency",
        "jitter",
        "jitter_distribution",
        "reorder",
        "bandwidth",
        "queue_packets",
        "queue_bytes",
        "loss",
        "burst_loss",
        "in_flight_limit",
    }
)
_UDP_KEYS: Final = frozenset({"port", "bind", "endpoint"})
_TUN_KEYS: Final = frozenset({"device", "netns", "addresses", "kernel_routes", "mtu"})
_LINK_KEYS: Final = (
    frozenset({"kind", "hairpin", "to", "prefixes", "up", "down"}) | _UDP_KEYS | _TUN_KEYS
)
LINK_KINDS: Final = ("udp", "tun")
MIN_MTU: Final = 1280  # RFC 8200 5: every IPv6 link carries 1280-byte packets
_TOP_KEYS: Final = frozenset(
    {"bind", "control", "pcap_dir", "seed", "realtime", "links", "routes", "defaults"}
)
_BURST_KEYS: Final = frozenset({"p", "r", "loss_good", "loss_bad"})
DEFAULT_CONTROL: Final = ("127.0.0.1", 0)


class ConfigError(ValueError):
    """A hub description that cannot be used. ``where`` is the key path (``links.mn.latency``)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, reason)
        self.where = where
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.where else self.reason


@dataclass(frozen=True, slots=True, kw_only=True)
class TunConfig:
    """A link of kind ``tun``: the TUN device the hub creates (:mod:`labnet.hub.tun`).
    ``device`` None: the kernel names it ``hub0``, ``hub1``, ...; ``netns`` None: it stays in
    the hub's namespace. ``addresses`` and ``routes`` are the kernel's, on and through it."""

    device: str | None = None
    netns: str | None = None
    addresses: tuple[IPv6Interface, ...] = ()
    routes: tuple[IPv6Network, ...] = ()
    mtu: int = 1500


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    """One link. Kind ``udp`` (``tun`` None): the hub's socket address ``bind`` (required) and
    the attached node's ``endpoint`` (None: learned). Kind ``tun``: the device, ``bind`` and
    ``endpoint`` unused. Both: what each direction does, ``up`` node to hub, ``down`` hub to node.
    """

    name: str
    bind: Address | None = None
    tun: TunConfig | None = None
    endpoint: Address | None = None
    hairpin: bool = False
    to: str | None = None  # pinned: every packet from this link leaves on that one
    up: LinkProfile = field(default_factory=LinkProfile)
    down: LinkProfile = field(default_factory=LinkProfile)
    prefixes: tuple[IPv6Network, ...] = ()

    @property
    def kind(self) -> str:
        """``udp`` or ``tun``."""
        return "udp" if self.tun is None else "tun"


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    """A whole hub. ``routes`` holds every route, the links' ``prefixes`` included."""

    links: tuple[LinkConfig, ...]
    routes: tuple[tuple[IPv6Network, str], ...] = ()
    control: Address | None = DEFAULT_CONTROL
    pcap_dir: Path | None = None
    seed: int = 0
    realtime: bool = False


def load_config(path: str | PathLike[str]) -> HubConfig:
    """Read and check the description in the YAML or JSON file at ``path``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError("", f"{path} is not valid YAML/JSON: {error}") from None
    return parse_config(data, base_dir=path.parent)


def parse_config(data: Any, base_dir: str | PathLike[str] = ".") -> HubConfig:
    """Check a description already loaded into dicts and lists; relative ``pcap_dir`` is taken
    from ``base_dir``."""
    top = _mapping(data, "", _TOP_KEYS)
    bind_host = str(top.get("bind", "127.0.0.1"))
    defaults = _mapping(top.get("defaults", {}), "defaults", _PROFILE_KEYS)
    links_data = _mapping(top.get("links"), "links", None)
    if not links_data:
        raise ConfigError("links", "at least one link is needed")
    links: list[LinkConfig] = []
    routes: dict[IPv6Network, str] = {}
    for name, spec in links_data.items():
        where = f"links.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(where, "a link name is 1-64 letters, digits, '_', '-' or '.'")
        link = _link(name, spec, bind_host, defaults, where)
        for prefix in link.prefixes:
            _add_route(routes, prefix, name, f"{where}.prefixes")
        links.append(link)
    for link in links:
        if link.to is not None and link.to not in links_data:
            raise ConfigError(f"links.{link.name}.to", f"no link named {link.to!r}")
    for prefix, name in _mapping(top.get("routes", {}), "routes", None).items():
        where = f"routes.{prefix}"
        if name not in links_data:
            raise ConfigError(where, f"no link named {name!r}")
        _add_route(routes, _prefix(prefix, where), name, where)
    control = top.get("control", f"{DEFAULT_CONTROL[0]}:{DEFAULT_CONTROL[1]}")
    pcap_dir = top.get("pcap_dir")
    seed = top.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("seed", f"{seed!r} is not an integer")
    realtime = top.get("realtime", False)
    if not isinstance(realtime, bool):
        raise ConfigError("realtime", f"{realtime!r} is not true or false")
    return HubConfig(
        links=tuple(links),
        routes=tuple(routes.items()),
        control=None if control is None else parse_address(control, "control"),
        pcap_dir=None if pcap_dir is None else Path(base_dir) / str(pcap_dir),
        seed=seed,
        realtime=realtime,
    )


# -- pieces --------------------------------------------------------------------------------------


def _link(
    name: str, spec: Any, bind_host: str, defaults: Mapping[str, Any], where: str
) -> LinkConfig:
    spec = _mapping(spec if spec is not None else {}, where, _LINK_KEYS | _PROFILE_KEYS)
    kind = spec.get("kind", "udp")
    if kind not in LINK_KINDS:
        raise ConfigError(f"{where}.kind", f"{kind!r} is not one of {list(LINK_KINDS)}")
    for key in sorted(_TUN_KEYS if kind == "udp" else _UDP_KEYS):
        if key in spec:
            raise ConfigError(f"{where}.{key}", f"not a key of a {kind} link")
    bind = endpoint = tun = None
    if kind == "tun":
        tun = _tun(spec, where)
    elif "bind" in spec and "port" in spec:
        raise ConfigError(where, "give either bind (a full address) or port, not both")
    elif "bind" in spec:
        bind = parse_address(spec["bind"], f"{where}.bind")
    else:
        port = spec.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"{where}.port", f"{port!r} is not a port number")
        bind = (_host(bind_host, f"{where}.bind"), port)
    if spec.get("endpoint") is not None:
        endpoint = parse_address(spec["endpoint"], f"{where}.endpoint")
    both = {**defaults, **{k: v for k, v in spec.items() if k in _PROFILE_KEYS}}
    up = _profile({**both, **_mapping(spec.get("up", {}), f"{where}.up", _PROFILE_KEYS)}, where)
    down = _profile(
        {**both, **_mapping(spec.get("down", {}), f"{where}.down", _PROFILE_KEYS)}, where
    )
    hairpin = spec.get("hairpin", False)
    if not isinstance(hairpin, bool):
        raise ConfigError(f"{where}.hairpin", f"{hairpin!r} is not true or false")
    to = spec.get("to")
    if to is not None and (not isinstance(to, str) or to == name):
        raise ConfigError(f"{where}.to", f"{to!r} is not the name of another link")
    return LinkConfig(
        name=name,
        bind=bind,
        tun=tun,
        endpoint=endpoint,
        hairpin=hairpin,
        to=to,
        up=up,
        down=down,
        prefixes=tuple(_prefix(p, f"{where}.prefixes") for p in _list(spec, "prefixes", where)),
    )


def _tun(spec: Mapping[str, Any], where: str) -> TunConfig:
    device = spec.get("device")
    if device is not None and (not isinstance(device, str) or not _DEVICE.match(device)):
        raise ConfigError(
            f"{where}.device", f"{device!r}: a device name is 1-15 letters, digits, '_-.%'"
        )
    netns = spec.get("netns")
    if netns is not None and (not isinstance(netns, str) or not _NAME.match(netns)):
        raise ConfigError(f"{where}.netns", f"{netns!r} is not a network namespace name")
    addresses = []
    for value in _list(spec, "addresses", where):
        try:
            addresses.append(IPv6Interface(str(value)))
        except ValueError as error:
            raise ConfigError(
                f"{where}.addresses", f"{value!r} is not an IPv6 address/length: {error}"
            ) from None
    mtu = spec.get("mtu", 1500)
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not MIN_MTU <= mtu <= 65535:
        raise ConfigError(f"{where}.mtu", f"{mtu!r} is not an MTU in {MIN_MTU}..65535")
    return TunConfig(
        device=device,
        netns=netns,
        addresses=tuple(addresses),
        routes=tuple(
            _prefix(p, f"{where}.kernel_routes") for p in _list(spec, "kernel_routes", where)
        ),
        mtu=mtu,
    )


def _list(spec: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A list-valued key; a single string stands for a list of one."""
    value = spec.get(key, [])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}", "expected a list")
    return value


def parse_link_profiles(spec: Any, where: str = "") -> tuple[LinkProfile, LinkProfile]:
    """A link's ``(up, down)`` profiles from profile keys for both directions plus optional
    ``up`` and ``down`` mappings, as in a link's description (the control request ``profile``
    uses it)."""
    spec = _mapping(spec if spec is not None else {}, where, _PROFILE_KEYS | {"up", "down"})
    both = {k: v for k, v in spec.items() if k in _PROFILE_KEYS}
    up = _profile({**both, **_mapping(spec.get("up", {}), f"{where}.up", _PROFILE_KEYS)}, where)
    down = _profile(
        {**both, **_mapping(spec.get("down", {}), f"{where}.down", _PROFILE_KEYS)}, where
    )
    return up, down


def _profile(spec: Mapping[str, Any], where: str) -> LinkProfile:
    values: dict[str, Any] = {}
    for key, value in spec.items():
        at = f"{where}.{key}"
        if key in ("latency", "jitter"):
            values[key] = parse_duration(value, at)
        elif key == "bandwidth":
            values["bandwidth_bits_per_s"] = None if value is None else parse_rate(value, at)
        elif key in ("queue_packets", "in_flight_limit"):
            values[key] = None if value is None else _integer(value, at)
        elif key == "queue_bytes":
            values[key] = None if value is None else parse_size(value, at)
        elif key == "loss":
            values[key] = parse_probability(value, at)
        elif key == "reorder":
            if not isinstance(value, bool):
                raise ConfigError(at, f"{value!r} is not true or false")
            values[key] = value
        elif key == "jitter_distribution":
            try:
                values[key] = Jitter(value)
            except ValueError:
                choices = [j.value for j in Jitter]
                raise ConfigError(at, f"{value!r} is not one of {choices}") from None
        elif key == "burst_loss":
            values[key] = None if value is None else _burst(value, at)
    try:
        return LinkProfile(**values)
    except ValueError as error:
        raise ConfigError(where, str(error)) from None


def _burst(value: Any, where: str) -> GilbertElliott:
    spec = _mapping(value, where, _BURST_KEYS)
    try:
        return GilbertElliott(
            **{key: parse_probability(v, f"{where}.{key}") for key, v in spec.items()}
        )
    except TypeError:
        raise ConfigError(where, "p and r are required") from None
    except ValueError as error:
        raise ConfigError(where, str(error)) from None


def _add_route(routes: dict[IPv6Network, str], prefix: IPv6Network, name: str, where: str) -> None:
    if routes.get(prefix, name) != name:
        raise ConfigError(where, f"{prefix} is already routed to link {routes[prefix]!r}")
    routes[prefix] = name


def _prefix(value: Any, where: str) -> IPv6Network:
    try:
        return IPv6Network(str(value))
    except ValueError as error:
        raise ConfigError(where, f"{value!r} is not an IPv6 prefix: {error}") from None


def _mapping(value: Any, where: str, allowed: frozenset[str] | None) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ConfigError(where, f"expected a mapping, got {type(value).__name__}")
    if allowed is not None:
        unknown = set(value) - allowed
        if unknown:
            raise ConfigError(where, f"unknown keys {sorted(map(str, unknown))}")
    return value


def _integer(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(where, f"{value!r} is not an integer")
    return value


def _number_unit(value: Any, where: str, what: str) -> tuple[float, str]:
    if isinstance(value, bool):
        raise ConfigError(where, f"{value!r} is not {what}")
    if isinstance(value, int | float):
        return float(value), ""
    match = _NUMBER_UNIT.match(str(value))
    if match is None:
        raise ConfigError(where, f"{value!r} is not {what}")
    return float(match.group(1)), match.group(2)


def parse_duration(value: Any, where: str = "") -> float:
    """Seconds from a number of seconds or a string with unit s, ms, us (or µs), ns."""
    number, unit = _number_unit(value, where, "a duration")
    if unit not in _DURATION_UNITS:
        raise ConfigError(where, f"{value!r}: unknown unit {unit!r} (s, ms, us, ns)")
    return number * _DURATION_UNITS[unit]


def parse_rate(value: Any, where: str = "") -> float:
    """Bits per second from a number or "10Mbit", "10 Mbit/s", "512kbit", "1Gbit"."""
    number, unit = _number_unit(value, where, "a bandwidth")
    key = unit.lower().removesuffix("/s")
    if key not in _RATE_UNITS:
        raise ConfigError(where, f"{value!r}: unknown unit {unit!r} (bit, kbit, Mbit, Gbit)")
    return number * _RATE_UNITS[key]


def parse_size(value: Any, where: str = "") -> int:
    """Bytes from a number or "1500B", "64KB" (1000), "64KiB" (1024), "1MB", "1MiB"."""
    number, unit = _number_unit(value, where, "a size")
    key = unit.lower()
    if key not in _SIZE_UNITS:
        raise ConfigError(where, f"{value!r}: unknown unit {unit!r} (B, KB, KiB, MB, MiB)")
    size = number * _SIZE_UNITS[key]
    if size != int(size):
        raise ConfigError(where, f"{value!r} is not a whole number of bytes")
    return int(size)


def parse_probability(value: Any, where: str = "") -> float:
    """A probability from a number in [0, 1] or a percentage ("10%")."""
    number, unit = _number_unit(value, where, "a probability")
    if unit == "%":
        number /= 100
    elif unit:
        raise ConfigError(where, f"{value!r}: a probability is a number or a percentage")
    if not 0 <= number <= 1:
        raise ConfigError(where, f"{value!r} is not a probability in [0, 1]")
    return number


def parse_address(value: Any, where: str = "") -> Address:
    """``(host, port)`` from "host:port", "[v6]:port" or a ``[host, port]`` list."""
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
        else:
            host, sep, port = text.rpartition(":")
            if ":" in host:
                raise ConfigError(where, f"{value!r}: write IPv6 addresses as [address]:port")
        if not sep:
            raise ConfigError(where, f"{value!r} is not host:port")
    else:
        raise ConfigError(where, f"{value!r} is not host:port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ConfigError(where, f"{value!r}: port {port!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(where, f"{value!r}: port {port} out of range")
    return _host(str(host), where), port


def _host(host: str, where: str) -> str:
    """A numeric address, normalized ("0:0::1" -> "::1"); names are kept for the resolver."""
    if not host:
        raise ConfigError(where, "empty host")
    try:
        return str(ip_address(host))
    except ValueError:
        return host
