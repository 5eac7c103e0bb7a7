"""A lab node's daemon configuration, written once for both backends: the netns backend dumps
it as the YAML file its ``mip6 run`` reads, the simulator reads the same mapping into the same
:class:`~mip6.runtime.config.NodeConfig` and builds the engine the daemon would. What a role
contributes comes from its registry entry (:mod:`mip6.runtime.roles`); nothing here tests a
role's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv6Address, IPv6Network
from typing import Any

import yaml

from labnet.topology import Network, NodeSpec, Topology
from mip6.runtime.config import NodeConfig, parse
from mip6.runtime.roles import LabNode, Role, role

# A lab started without ESP keys says so in its home agents' configuration: they accept
# unprotected home registrations (the option is off by default, RFC 3776 wants ESP).
UNPROTECTED = "allow_unprotected_registration"


def entry(spec: NodeSpec) -> Role | None:
    """The role registry's entry for a daemon node (None for external and kernel nodes)."""
    return role(spec.role) if spec.role is not None else None


def mobile(spec: NodeSpec) -> bool:
    found = entry(spec)
    return found is not None and found.mobile


def care_of_for(spec: NodeSpec, network: Network) -> IPv6Address | None:
    """None on the home network, else the node's interface identifier under the network's
    prefix (as stateless autoconfiguration would give it)."""
    assert spec.home_address is not None
    if spec.home_address in network.prefix:
        return None
    interface = int(spec.addresses[0]) & ((1 << 64) - 1)
    return IPv6Address(int(network.prefix.network_address) | interface)


def home_prefixes(topology: Topology, spec: NodeSpec) -> list[IPv6Network]:
    """The prefixes of the networks the node's own address lies in."""
    return [n.prefix for n in topology.networks.values() if spec.addresses[0] in n.prefix]


def current_address(spec: NodeSpec, network: Network) -> IPv6Address:
    """Where a node's packets go while it is on ``network``."""
    if mobile(spec):
        care_of = care_of_for(spec, network)
        assert spec.home_address is not None
        return spec.home_address if care_of is None else care_of
    return spec.addresses[0]


def group(topology: Topology, spec: NodeSpec) -> tuple[IPv6Address, ...]:
    """The own addresses of the daemon nodes of ``spec``'s role with its home address, in
    topology order (a distributed server's members; the first is its contact node)."""
    return tuple(
        other.addresses[0]
        for other in topology.nodes.values()
        if (other.role, other.home_address) == (spec.role, spec.home_address)
    )


def registers_home(topology: Topology, spec: NodeSpec) -> bool:
    """Whether ``spec`` holds a home registration at its home agent: a mobile node, or the
    first of a distributed server's members (its contact node)."""
    found = entry(spec)
    if found is None or spec.kind != "engine":
        return False
    if found.mobile:
        return True
    return found.homed and group(topology, spec)[0] == spec.addresses[0]


def plain(value: Any) -> Any:
    """``value`` with addresses, prefixes and tuples as YAML writes them (text and lists)."""
    if isinstance(value, IPv6Address | IPv6Network):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def daemon_config(
    topology: Topology,
    spec: NodeSpec,
    *,
    links: Mapping[str, Mapping[str, Any]],
    options: Mapping[str, Any] | None = None,
    ipsec_pairs: Sequence[Mapping[str, Any]] = (),
    esp: bool = False,
    extra: Mapping[str, Any] | None = None,
    lab_secret: bytes = b"",
) -> dict[str, Any]:
    """The configuration of daemon node ``spec`` on ``links``: its role's block (from the
    registry entry, where the node starts), the topology's ``options`` of the node on top, and
    ``options`` on top of those, an ``ipsec`` block with
    ``ipsec_pairs`` when the lab runs ``esp``, its applications, and ``extra`` top-level keys
    (``netns``, ``control``). ``lab_secret``: a secret made for this lab run (a distributed
    server's group key)."""
    found = entry(spec)
    if found is None:
        raise ValueError(f"node {spec.name} is a {spec.kind} node: no daemon")
    network = topology.networks[spec.network]
    node = LabNode(
        addresses=spec.addresses,
        home_address=spec.home_address,
        home_agent=spec.home_agent,
        care_of_address=care_of_for(spec, network) if found.mobile else None,
        prefixes=tuple(home_prefixes(topology, spec)),
        group=group(topology, spec),
        lab_secret=lab_secret,
    )
    block = found.lab_options(node) | plain(spec.options) | plain(options or {})
    if not esp and UNPROTECTED in found.options:
        block.setdefault(UNPROTECTED, True)
    config: dict[str, Any] = {
        "node": spec.name,
        "role": found.name,
        "mode": spec.mode,
        **plain(extra or {}),
        "links": plain(links),
        found.name: block,
    }
    if esp and ipsec_pairs:
        config["ipsec"] = {"algorithm": "aes-gcm-16", "pairs": [dict(p) for p in ipsec_pairs]}
    if spec.apps:
        config["apps"] = [app.as_dict() for app in spec.apps]
    return config


def dump(config: Mapping[str, Any], comment: str = "") -> str:
    """The configuration as YAML text (keys in the order given), with a comment line first."""
    text = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)
    return (f"# {comment}\n" if comment else "") + text


def read(config: Mapping[str, Any], where: str) -> NodeConfig:
    """The configuration as the daemon reads it: validated, every fault located in the YAML
    text :func:`dump` makes of it (``where`` names it in errors)."""
    return parse(dump(config), where)
