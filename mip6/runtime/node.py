"""One node at run time: its role engine, its host (host mode) or the kernel behind it (shim
mode), its links, and the one implementation of the actions they return (ARCHITECTURE 2).

The daemon (:mod:`mip6.runtime.daemon`) and the in-memory network (:mod:`mip6.runtime.memory`)
both run nodes through :class:`NodeRuntime`; they differ only in the :class:`Scheduler` they
give it (the asyncio loop, or the simulator's virtual clock) and in their links.

- ``Transmit`` leaves on the link it names (None: ``network``); a link the node does not have
  is an error (:class:`UnknownLink`), never a silent fallback.
- ``Deliver`` goes to the host, or to ``upper`` (the kernel's TUN device behind a shim, an
  application in the simulator).
- Timers are kept per layer (``engine``, ``host``): each layer's tokens are its own.
- The host's packets take the engine's send path (and the host sizes them by the engine's
  ``send_overhead``); its ICMPv6 errors take the engine's error path.
- ``Event``s go to ``observe``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.engine import Engine
from mip6.runtime.host import Host, HostAction, IcmpError

ENGINE = "engine"
HOST = "host"
NETWORK = "network"  # the link a Transmit without a link name leaves on


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A clock and timers: what an asyncio loop offers (``time``, ``call_at``), and what the
    simulator's virtual clock offers too."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Cancellable: ...


class Sender(Protocol):
    def send(self, data: bytes) -> None: ...


class UnknownLink(LookupError):
    """An engine asked to send on a link its node does not have (a configuration fault)."""

    def __init__(self, node: str, link: str, links: tuple[str, ...]) -> None:
        super().__init__(f"node {node}: no link {link!r} (links: {', '.join(links)})")
        self.node, self.link, self.links = node, link, links


class NodeRuntime:
    def __init__(
        self,
        name: str,
        engine: Engine,
        scheduler: Scheduler,
        links: Mapping[str, Sender],
        *,
        host: Host | None = None,
        upper: Callable[[bytes], None] | None = None,
        observe: Callable[[Event], None] | None = None,
    ) -> None:
        self.name = name
        self.engine = engine
        self.scheduler = scheduler
        self.links = dict(links)
        self.host = host
        if host is not None and host.send_overhead is None:
            host.send_overhead = engine.send_overhead
        self.upper = upper
        self.observe = observe
        self._timers: dict[tuple[str, Hashable], Cancellable] = {}
        # Called before each engine timer: the daemon's fast path tells the engine which
        # bindings it used (mip6.runtime.fast.FastPath.touch)
        self.before_timer: Callable[[], None] | None = None

    @property
    def now(self) -> float:
        return self.scheduler.time()

    # -- inputs ------------------------------------------------------------------------------------

    def start(self) -> None:
        self.apply(self.engine.start(self.now))

    def from_network(self, data: bytes) -> None:
        self.apply(self.engine.handle_packet(self.now, data))

    def from_upper_layer(self, data: bytes) -> None:
        """A packet from the kernel's TUN device (shim mode) or another upper layer."""
        self.apply(self.engine.send(self.now, data))

    def command(self, name: str, argument: Any) -> None:
        self.apply(self.engine.command(self.now, name, argument))

    def flush_host(self) -> None:
        """Perform what application calls on the host left due."""
        if self.host is not None:
            self.apply_host(self.host.poll(self.now))

    def pending_timers(self, layer: str = ENGINE) -> list[Hashable]:
        return [token for (owner, token) in self._timers if owner == layer]

    def cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # -- actions -----------------------------------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        """Perform the engine's actions."""
        for action in actions:
            if isinstance(action, Transmit):
                self._link(action.link).send(action.data)
            elif isinstance(action, Deliver):
                if self.host is not None:
                    self.apply_host(self.host.deliver(self.now, action.data))
                elif self.upper is not None:
                    self.upper(action.data)
            else:
                self._other(ENGINE, action)

    def apply_host(self, actions: list[HostAction]) -> None:
        """Perform the host's actions: its packets take the engine's send path."""
        for action in actions:
            if isinstance(action, Transmit):
                self.apply(self.engine.send(self.now, action.data))
            elif isinstance(action, IcmpError):
                self.apply(self.engine.upper_layer_error(self.now, action.invoking, action.message))
            else:
                self._other(HOST, action)

    def _link(self, name: str | None) -> Sender:
        link = self.links.get(name or NETWORK)
        if link is None:
            raise UnknownLink(self.name, name or NETWORK, tuple(self.links))
        return link

    def _other(self, layer: str, action: StartTimer | CancelTimer | Event) -> None:
        if isinstance(action, StartTimer):
            key = (layer, action.token)
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = self.scheduler.call_at(action.at, self._fire, layer, action.token)
        elif isinstance(action, CancelTimer):
            handle = self._timers.pop((layer, action.token), None)
            if handle is not None:
                handle.cancel()
        elif self.observe is not None:
            self.observe(action)

    def _fire(self, layer: str, token: Hashable) -> None:
        self._timers.pop((layer, token), None)
        if layer == HOST:
            assert self.host is not None
            self.apply_host(self.host.handle_timer(self.now, token))
        else:
            if self.before_timer is not None:
                self.before_timer()
            self.apply(self.engine.handle_timer(self.now, token))
