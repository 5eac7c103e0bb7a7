"""A deterministic simulator for :mod:`mip6.dserver.membership`: N engines over a message bus
with latency and loss, on virtual time. Messages cross the bus as bytes (emit, then parse), in
order on each (sender, receiver) link as the member channel's TCP keeps them; a message is lost
with probability ``loss``. The contact address is the home agent's: a message sent to it reaches
the member that announced itself contact node last (its binding), if that member lives.

It records what the tests check: every view any member installed (a view number must always
come with the same core), the times two members acted as contact node at once, and a trace of
every action, equal for equal seeds."""

from __future__ import annotations

import heapq
import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from mip6.core.actions import CancelTimer, StartTimer
from mip6.dserver import membership as ms
from mip6.dserver import messages as msg


def address(n: int) -> IPv6Address:
    return IPv6Address(f"2001:db8:{n + 1:x}::1")


@dataclass(slots=True)
class Node:
    engine: ms.Membership
    incarnation: int
    timers: dict[Hashable, int] = field(default_factory=dict)  # token -> generation


class Bus:
    def __init__(
        self,
        seed: int,
        *,
        loss: float = 0.0,
        latency: tuple[float, float] = (0.001, 0.01),
        config: ms.MembershipConfig | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.loss = loss
        self.latency = latency
        self.config = config or ms.MembershipConfig()
        self.now = 0.0
        self.nodes: dict[IPv6Address, Node] = {}
        self._incarnations: dict[IPv6Address, int] = {}
        self._queue: list[tuple[float, int, tuple[object, ...]]] = []
        self._order = 0
        self._link_free: dict[tuple[IPv6Address, IPv6Address], float] = {}
        self.binding: IPv6Address | None = None  # the home agent's: who registered C last
        self.cut: set[tuple[IPv6Address, IPv6Address]] = set()  # (from, to): all lost
        self.trace: list[tuple[float, str, str]] = []
        self.cores: dict[int, tuple[msg.MemberEntry, ...]] = {}
        self.conflicts: list[tuple[int, tuple[object, ...], tuple[object, ...]]] = []
        self.acting: dict[IPv6Address, float] = {}
        self._overlaps: list[tuple[float, float]] = []  # (start, duration) of two acting
        self._overlap_start: float | None = None
        self.sent = 0
        self.left: list[IPv6Address] = []

    # -- driving ------------------------------------------------------------------------------

    def start(self, n: int, *, found: bool = False, backup: bool = True) -> ms.Membership:
        where = address(n)
        incarnation = self._incarnations.get(where, 0) + 1
        self._incarnations[where] = incarnation
        engine = ms.Membership(where, random.Random(f"{self.seed}-{n}-{incarnation}"), self.config)
        self.nodes[where] = Node(engine=engine, incarnation=incarnation)
        actions = engine.found(self.now) if found else engine.join(self.now, backup=backup)
        self._perform(where, actions)
        return engine

    def crash(self, n: int) -> None:
        where = address(n)
        del self.nodes[where]
        self._not_acting(where)
        self.trace.append((self.now, str(where), "crash"))

    def leave(self, n: int) -> None:
        where = address(n)
        self._perform(where, self.nodes[where].engine.leave(self.now))

    def isolate(self, n: int) -> None:
        """Cut every link to and from member ``n`` (a partition; the contact address too)."""
        where = address(n)
        for other in self.nodes:
            self.cut |= {(where, other), (other, where)}

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            at, _, event = heapq.heappop(self._queue)
            self.now = at
            self._dispatch(event)
        self.now = until

    def _push(self, at: float, event: tuple[object, ...]) -> None:
        self._order += 1
        heapq.heappush(self._queue, (at, self._order, event))

    def _dispatch(self, event: tuple[object, ...]) -> None:
        kind, where, incarnation = event[0], event[1], event[2]
        assert isinstance(where, IPv6Address)
        node = self.nodes.get(where)
        if node is None or node.incarnation != incarnation:
            return  # the member died (or restarted) since
        if kind == "timer":
            token, generation = event[3], event[4]
            if node.timers.get(token) != generation:
                return  # moved or cancelled
            del node.timers[token]
            self._perform(where, node.engine.handle_timer(self.now, token))
        else:
            sender, data = event[3], event[4]
            assert isinstance(sender, IPv6Address) and isinstance(data, bytes)
            message = msg.parse(data)
            assert not isinstance(message, msg.HandoffMessage)
            self._perform(where, node.engine.handle_message(self.now, sender, message))

    def _perform(self, where: IPv6Address, actions: list[ms.Action]) -> None:
        node = self.nodes.get(where)
        if node is None:
            return
        for action in actions:
            self.trace.append((self.now, str(where), repr(action)))
            match action:
                case ms.Send():
                    self._send(where, action.peer, action.message)
                case StartTimer():
                    generation = node.timers.get(action.token, 0) + 1
                    node.timers[action.token] = generation
                    event = ("timer", where, node.incarnation, action.token, generation)
                    self._push(max(action.at, self.now), event)
                case CancelTimer():
                    node.timers.pop(action.token, None)
                case ms.ViewChanged():
                    self._record(action.view)
                case ms.BecameContactNode():
                    self.binding = where
                    self.acting[where] = self.now
                    if len(self.acting) > 1 and self._overlap_start is None:
                        self._overlap_start = self.now
                case ms.SteppedDown():
                    self._not_acting(where)
                case ms.Left():
                    self.left.append(where)
        if any(isinstance(a, ms.Left) for a in actions):
            del self.nodes[where]  # the process exits once it has left

    def _not_acting(self, where: IPv6Address) -> None:
        self.acting.pop(where, None)
        if len(self.acting) <= 1 and self._overlap_start is not None:
            start = self._overlap_start
            self._overlaps.append((start, self.now - start))
            self._overlap_start = None

    def _record(self, view: msg.View) -> None:
        known = self.cores.setdefault(view.number, view.core)
        if known != view.core:
            self.conflicts.append((view.number, known, view.core))

    def _send(
        self, source: IPv6Address, peer: IPv6Address | ms.Destination, message: msg.Message
    ) -> None:
        self.sent += 1
        if isinstance(peer, ms.Destination):
            if self.binding is None:
                return
            peer = self.binding
        if (source, peer) in self.cut or self.rng.random() < self.loss:
            return
        target = self.nodes.get(peer)
        if target is None:
            return
        link = (source, peer)
        at = max(self.now + self.rng.uniform(*self.latency), self._link_free.get(link, 0.0))
        self._link_free[link] = at
        self._push(at, ("message", peer, target.incarnation, source, message.emit()))

    # -- what the tests look at ---------------------------------------------------------------

    @property
    def overlaps(self) -> list[tuple[float, float]]:
        """(start, duration) of every period in which two or more members acted as contact
        node, the one still going (if any) up to now."""
        if self._overlap_start is None:
            return list(self._overlaps)
        return [*self._overlaps, (self._overlap_start, self.now - self._overlap_start)]

    def members(self) -> dict[IPv6Address, ms.Membership]:
        """The engines admitted to the group (not joining, not gone)."""
        admitted = (ms.Role.CORE, ms.Role.SNODE)
        return {a: n.engine for a, n in self.nodes.items() if n.engine.role in admitted}

    def converged(self) -> bool:
        """Every admitted member holds the same view, which lists exactly them, and exactly
        one of them acts as contact node: the view's first."""
        members = self.members()
        views = {e.view for e in members.values()}
        if len(views) != 1 or len(members) != len(self.nodes):
            return False
        (view,) = views
        assert view is not None
        listed = {e.address for e in view.members()}
        acting = [a for a, e in members.items() if e.acting]
        return listed == set(members) and acting == [view.core[0].address]

    def settle(self, limit: float, step: float = 0.05) -> float | None:
        """Run until converged (the virtual seconds it took) or ``limit`` seconds passed."""
        start = self.now
        while self.now - start <= limit:
            if self.converged():
                return self.now - start
            self.run_until(self.now + step)
        return None
