"""What a role registry entry holds (:class:`Role`), and what its two functions are given."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from mip6.core.actions import Action
from mip6.core.engine import Engine
from mip6.core.ipsec.policy import SecurityPolicyDatabase
from tcp_migrate.core import Config

if TYPE_CHECKING:
    from mip6.runtime.kernel import DriverContext, NetworkDriver

MODES = ("shim", "router", "host")


class OptionError(ValueError):
    """A role's block is wrong as a whole (two keys that do not fit together): ``key`` names
    the option to point at, ``reason`` says why. Raised by a :class:`Role`'s ``check``; the
    configuration reader reports it at that key's line."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What building an engine needs besides its options: the node's randomness (seeded in the
    simulator, the operating system's in the daemon), its RFC 3776 policy database (None
    without an ``ipsec`` block), the names of its links (an engine sends on no other) and its
    source of random bytes, and its ``tcp`` block's settings (None: the host's defaults)."""

    rng: random.Random
    security: SecurityPolicyDatabase | None = None
    links: tuple[str, ...] = ("network",)  # the names of the node's links
    random_bytes: Callable[[int], bytes] = os.urandom  # keys and nonces (seeded in the sim)
    tcp: Config | None = None  # the host TCP's settings (the ``tcp`` block), if given


@dataclass(frozen=True, slots=True)
class AppContext:
    """What a role's applications may run on besides its engine, in the daemon: the asyncio
    loop, and ``apply``, which performs the engine's actions (the daemon's
    :class:`~mip6.runtime.node.NodeRuntime`'s), for applications written on the asyncio API
    (:mod:`mip6.runtime.dserver_api`). labnet's simulator has none (virtual time, no asyncio
    loop): it passes None."""

    loop: asyncio.AbstractEventLoop
    apply: Callable[[list[Action]], None]


@dataclass(frozen=True, slots=True)
class LabNode:
    """A lab node as a role sees it when labnet writes its configuration: its addresses (the
    first is its own), the home address and home agent of a node that moves (or of a
    distributed server's contact address), its care-of address when it starts away from home,
    the prefixes of the networks it is on, its group and a secret of the lab's."""

    addresses: tuple[IPv6Address, ...]
    home_address: IPv6Address | None = None
    home_agent: IPv6Address | None = None
    care_of_address: IPv6Address | None = None
    prefixes: tuple[IPv6Network, ...] = ()
    # the own addresses of the lab's nodes of the same role and home address, in topology
    # order (this node's among them): a distributed server's members
    group: tuple[IPv6Address, ...] = ()
    lab_secret: bytes = field(default=b"", repr=False)  # made for this lab run, never shown


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
    node of this role; ``apps``, the application types it runs in host mode;
    ``start_apps``, set for a role whose engine holds its own host; ``modes``, the modes it
    runs in; ``check(options)``, what the typed options must satisfy together (raises
    :class:`OptionError`)."""

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
    homed: bool = False  # a lab node has a home address and home agent though it never moves
    apps: tuple[str, ...] = ("echo", "http")  # the ``apps`` types it runs in host mode
    # The engine holds its own host (a distributed-server member: its handoffs freeze and
    # import the host's connections); ``start_apps(engine, apps, context)`` starts the
    # applications on it (``context``: the daemon's AppContext, None in the simulator) and
    # returns what stops each. Otherwise the runtime makes the host.
    start_apps: (
        Callable[[Engine, tuple[Any, ...], AppContext | None], list[Callable[[], None]]] | None
    ) = None
    modes: tuple[str, ...] = MODES
    check: Callable[[Mapping[str, Any]], None] | None = None
    # keys of the ``tcp`` block the role sets itself, each with the reason a configuration
    # that sets it is refused
    tcp_fixed: Mapping[str, str] = field(default_factory=dict)
    # On a real network (a link of type ``interface``, mip6.runtime.kernel): the kernel state
    # the role keeps beside its engine (proxy entries, routes, the addresses it moves with)
    network_driver: Callable[[DriverContext], NetworkDriver] | None = None
    # the modes it runs in on an interface link: behind a shim or as a router (the kernel is
    # the box's host), or host mode where its driver gives the daemon addresses of its own
    interface_modes: tuple[str, ...] = ("shim", "router")

    @property
    def owns_host(self) -> bool:
        return self.start_apps is not None
