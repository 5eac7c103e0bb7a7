"""What a role registry entry holds (:class:`Role`), and what its two functions are given."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from mip6.core.engine import Engine
from mip6.core.ipsec.policy import SecurityPolicyDatabase

MODES = ("shim", "router", "host")


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What building an engine needs besides its options: the node's randomness (seeded in the
    simulator, the operating system's in the daemon), its RFC 3776 policy database (None
    without an ``ipsec`` block) and the names of its links (an engine sends on no other)."""

    rng: random.Random
    security: SecurityPolicyDatabase | None = None
    links: tuple[str, ...] = ("network",)  # the names of the node's links


@dataclass(frozen=True, slots=True)
class LabNode:
    """A lab node as a role sees it when labnet writes its configuration: its addresses (the
    first is its own), the home address and home agent of a node that moves, its care-of
    address when it starts away from home, and the prefixes of the networks it is on."""

    addresses: tuple[IPv6Address, ...]
    home_address: IPv6Address | None = None
    home_agent: IPv6Address | None = None
    care_of_address: IPv6Address | None = None
    prefixes: tuple[IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class Role:
    """One role. ``options`` types the keys of the role's configuration block (by the names
    :mod:`mip6.runtime.config` reads: address, addresses, network, networks, number,
    integer, boolean, constants); ``sections`` are further top-level blocks the role reads,
    typed the same way (a home agent's ``correspondent``); ``host_address`` is the option
    that holds the node's own address (its host-mode address, the kernel's address behind a
    shim); ``security`` the end of an RFC 3776 SA pair it is (None: no ``ipsec`` block);
    ``mobile``: it changes networks (``mip6 ctl move``, ``labnet move``) and has a home
    address; ``owns_prefixes``: a lab routes the prefixes of its networks to it (a home
    agent intercepts for its home addresses). ``build(options, context)`` makes the engine
    from the validated options; ``lab_options(node)`` is the block labnet writes for a lab
    node of this role."""

    name: str
    options: Mapping[str, str]
    required: tuple[str, ...]
    host_address: str
    build: Callable[[dict[str, Any], BuildContext], Engine]
    lab_options: Callable[[LabNode], dict[str, Any]]
    default_mode: str = "shim"
    sections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    security: str | None = None
    mobile: bool = False
    owns_prefixes: bool = False
