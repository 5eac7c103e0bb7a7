"""The role registry: everything the runtime and the lab know about a role, in one entry per
role. The daemon (:mod:`mip6.runtime.daemon`), the configuration reader
(:mod:`mip6.runtime.config`), ``mip6 show``, labnet's simulator and its netns backend ask the
entry; none of them tests a role's name.

An entry (:class:`Role`) says which configuration block the role reads and how its keys are
typed, its default mode, which address is the node's own in host mode, which end of an RFC 3776
SA pair it is, whether it moves, and how to build its engine (anything that keeps the engine
contract, :mod:`mip6.core.engine`) and, for a lab node, its configuration block.

Adding a role is one module in this package and one line in :data:`ROLES`::

    # mip6/runtime/roles/relay.py
    from mip6.runtime.roles.base import Role, LabNode
    from mip6.relay import Relay, RelayConfig

    def build(options, context): return Relay(RelayConfig(**options), context.rng)
    def lab_options(node: LabNode): return {"address": str(node.addresses[0])}

    ROLE = Role(name="relay", options={"address": "address"}, required=("address",),
                host_address="address", build=build, lab_options=lab_options)

    # here
    ROLES = _registry(correspondent.ROLE, home_agent.ROLE, mobile_node.ROLE, relay.ROLE)
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mip6.core.engine import Engine
from mip6.core.ipsec.config import database_from_config
from mip6.core.ipsec.sa import RandomBytes
from mip6.runtime.roles import correspondent, farm, home_agent, member, mobile_node
from mip6.runtime.roles.base import BuildContext, LabNode, OptionError, Role

if TYPE_CHECKING:
    from mip6.runtime.config import NodeConfig


def _registry(*roles: Role) -> Mapping[str, Role]:
    return {role.name: role for role in roles}


ROLES: Mapping[str, Role] = _registry(
    correspondent.ROLE, home_agent.ROLE, mobile_node.ROLE, member.ROLE, farm.ROLE
)


def role(name: str) -> Role:
    """The entry for ``name``; KeyError naming the known roles if there is none."""
    try:
        return ROLES[name]
    except KeyError:
        raise KeyError(f"no role {name!r} (known: {', '.join(ROLES)})") from None


def build_engine(
    config: NodeConfig, rng: random.Random, random_bytes: RandomBytes = os.urandom
) -> Engine:
    """The engine of ``config``'s role, with its RFC 3776 policy database when the
    configuration has an ``ipsec`` block (``random_bytes`` for its IVs: RFC 3602 3 asks for
    unpredictable CBC IVs, so the daemon gives the operating system's; a member's channel keys
    and nonces come from it too)."""
    entry = role(config.role)
    security = None
    if config.ipsec is not None:
        assert entry.security is not None  # the configuration reader checked it
        security = database_from_config(
            config.ipsec, role=entry.security, random_bytes=random_bytes
        )
    context = BuildContext(
        rng=rng,
        security=security,
        links=tuple(config.links),
        random_bytes=random_bytes,
        tcp=config.tcp,
    )
    return entry.build(dict(config.role_options), context)


__all__ = ["ROLES", "BuildContext", "LabNode", "OptionError", "Role", "build_engine", "role"]
