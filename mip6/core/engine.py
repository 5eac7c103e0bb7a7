"""The engine contract (ARCHITECTURE 2): what every role engine offers the driver that runs it.

The daemon (:mod:`mip6.runtime.daemon`) and the in-memory network (:mod:`mip6.runtime.memory`)
run any engine through this contract alone, with one implementation of the actions
(:class:`mip6.runtime.node.NodeRuntime`); which engine a node runs comes from the role registry
(:mod:`mip6.runtime.roles`), never from a test of the role's name.

- ``start(now)``: actions before the first input (a restored home agent's expiry timers, a
  mobile node's first registration from its configured care-of address).
- ``handle_packet(now, data)``: one whole IPv6 packet from the network.
- ``send(now, data)``: one whole IPv6 packet from the node's own upper layer (the kernel behind
  a shim, or the daemon's host): binding cache translation, Home Address option, tunnelling.
- ``handle_timer(now, token)``: a timer the engine started has fired. Tokens are the engine's
  own: drivers keep each engine's timers apart, so two engines in one node may use the same
  token.
- ``upper_layer_error(now, invoking, message)``: the upper layer refuses ``invoking`` with the
  ICMPv6 error ``message`` (Port Unreachable, a Parameter Problem, a reassembly's Time
  Exceeded; its invoking packet left empty); the engine answers through its own ICMPv6 error
  path (RFC 4443 2.4 and its rate limit), as much of ``invoking`` as fits, and sends the answer
  as it sends its upper layer's packets.
- ``send_overhead(now, source, destination)``: how many bytes ``send`` would add now to a
  packet of the upper layer from ``source`` to ``destination`` (16-byte addresses): 24 for a
  Home Address option or a type 2 routing header, 40 for an IPv6-in-IPv6 tunnel (RFC 3775 6.3,
  6.4; RFC 2473), so that the upper layer sizes its packets for the path (RFC 8201).
- ``command(now, name, argument)``: a command from above (``mip6 ctl``): ``move``,
  ``route_optimize``, ``register`` for a mobile node; :class:`UnknownCommand` for a command the
  role does not have.
- ``stop(now)`` and ``stopped()``: a graceful end (a mobile node deletes its bindings);
  ``stopped()`` is True once nothing more is awaited.
- ``describe(what, now)``: a table for ``mip6 show`` (:mod:`mip6.core.show`).

An engine may also offer the daemon's fast path its decisions (:class:`FastEngine`,
:class:`mip6.core.datapath.FastDecision`):

- ``fast_decision(now, ingress, source, destination)``: what it does now to every TCP, UDP and
  ICMPv6 data packet that enters by ``ingress`` with these addresses (16 bytes each), or None
  when it must see each such packet itself (``Ingress.TUNNEL``: the inner packets of its own
  DECAPSULATE decisions);
- ``fast_version()``: a value that changes whenever a decision it gave may no longer hold (a
  binding added, changed, deleted or expired).

Times are seconds on the driver's clock (float); every packet is bytes; every output is an
:data:`~mip6.core.actions.Action`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

from mip6.core.actions import Action
from mip6.core.datapath import FastDecision, Ingress
from mip6.core.node import UpperLayerError


class UnknownCommand(ValueError):
    """A command the engine's role does not have."""

    def __init__(self, name: str, role: str) -> None:
        super().__init__(f"unknown command {name!r} for role {role}")
        self.name = name
        self.role = role


@runtime_checkable
class Engine(Protocol):
    def start(self, now: float) -> list[Action]: ...

    def handle_packet(self, now: float, data: bytes) -> list[Action]: ...

    def send(self, now: float, data: bytes) -> list[Action]: ...

    def handle_timer(self, now: float, token: Hashable) -> list[Action]: ...

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]: ...

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int: ...

    def command(self, now: float, name: str, argument: Any) -> list[Action]: ...

    def stop(self, now: float) -> list[Action]: ...

    def stopped(self) -> bool: ...

    def describe(self, what: str, now: float) -> dict[str, Any]: ...


@runtime_checkable
class FastEngine(Protocol):
    def fast_decision(
        self, now: float, ingress: Ingress, source: bytes, destination: bytes
    ) -> FastDecision | None: ...

    def fast_version(self) -> Hashable: ...


@runtime_checkable
class HostedFastEngine(FastEngine, Protocol):
    """An engine that holds its node's host (a member: mip6.runtime.host.Host) and takes what
    the fast path's C did with the host's connections (mip6.runtime.fast.FastHost)."""

    @property
    def host(self) -> Any: ...

    def fast_delivered(self, now: float, delivered: list[Any]) -> list[Action]: ...

    def fast_opens(self) -> bool: ...

    def fast_path_wanted(self) -> bool: ...
