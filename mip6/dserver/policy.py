"""Distribution policies: which member a client goes to (DSERVER.md section 7; the seeds'
``GeckoPolicy``, SPEC-dserver 3.4-3.5).

A policy answers :meth:`Policy.select_target` with a member's own address: this member's to
keep the client, another's to hand it off, or None when no member is suitable (the seeds'
``GECKO_NOTARGET``: the caller keeps the client if it can, or closes it). When a handoff to the
chosen member fails, the donor calls :meth:`Policy.notify_failure` before it asks again; as the
seeds require ("the distribution policy must make sure the same target is not selected again for
a failed handover", T 4.2.5), the :class:`Selection` names the members already tried for this
handoff, and a failed member is also avoided for every client for ``quarantine`` seconds.

The policies (the seeds implemented only random):

- :class:`LocalPolicy`: keep every client here.
- :class:`RandomPolicy`: a member at random (the seeds' ``GeckoRandomPolicy``; ``local=False`` is
  its ``DoNotDistributeLocally``: this member only when no other is suitable).
- :class:`RoundRobinPolicy`: the members in turn, in address order.
- :class:`LeastLoadedPolicy`: the member reporting the fewest clients (members report load in
  heartbeats, :meth:`GroupView.set_load`); ties go to the lowest address.
- :class:`LowestLatencyPolicy`: the member with the lowest measured latency to the client's /64
  (:meth:`GroupView.set_latency`); members with no measurement come after every measured one.
- :class:`ContentAwarePolicy`: a callable over the first bytes of the client's request picks the
  member; when it declines, another policy does.

A user-written policy derives from :class:`BasePolicy` and implements ``_choose``. Policies run
on the member engine's thread of control and are given ``now``: no clock, no locks. Randomness is
injected (a seeded ``random.Random`` in the simulator).
"""

from __future__ import annotations

import abc
import enum
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Protocol

DEFAULT_QUARANTINE = 5.0  # seconds a member that failed a handoff is not chosen again
MAX_LATENCIES = 4096  # (member, client /64) measurements a view keeps, oldest dropped first
CLIENT_PREFIX = 64  # latency is per client /64: one measurement serves a client's neighbours


class TargetFailure(enum.Enum):
    """Why a handoff to a member failed (the seeds' ``gecko_replica_exception``)."""

    NO_REASON = "no_reason"
    TIMED_OUT = "timed_out"  # GECKO_REASON_ETIMEDOUT
    REFUSED = "refused"  # GECKO_REASON_ECONNREFUSED
    UNREACHABLE = "unreachable"  # GECKO_REASON_ENETUNREACH


@dataclass(frozen=True, slots=True)
class Selection:
    """What a policy is asked about: the client, this member, the time, the members already
    tried for this handoff (never chosen again), and the first bytes of the client's request
    (for content-aware policies; empty when none arrived yet)."""

    client: IPv6Address
    local: IPv6Address
    now: float
    tried: frozenset[IPv6Address] = frozenset()
    first_bytes: bytes = b""


@dataclass(slots=True)
class GroupView:
    """The members a policy may choose from, with what they report: load (clients served)
    and latency to client networks. Membership (``mip6.dserver.membership``) keeps it current."""

    members: set[IPv6Address] = field(default_factory=set)
    load: dict[IPv6Address, int] = field(default_factory=dict)
    _latency: OrderedDict[tuple[IPv6Address, IPv6Network], float] = field(
        default_factory=OrderedDict
    )
    # the members as packets carry them: the contact node asks of every packet whether its
    # source is a member (an address's own hash is slow: it prints the address)
    packed: set[bytes] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.packed = {member.packed for member in self.members}

    def add(self, member: IPv6Address) -> None:
        self.members.add(member)
        self.packed.add(member.packed)

    def remove(self, member: IPv6Address) -> None:
        self.members.discard(member)
        self.packed.discard(member.packed)
        self.load.pop(member, None)
        for key in [key for key in self._latency if key[0] == member]:
            del self._latency[key]

    def set_load(self, member: IPv6Address, clients: int) -> None:
        if member in self.members:
            self.load[member] = clients

    def set_latency(self, member: IPv6Address, client: IPv6Address, seconds: float) -> None:
        """A measured round trip (e.g. CoTI to CoT) from ``member`` to ``client``'s /64."""
        if member not in self.members:
            return
        key = (member, _network(client))
        self._latency.pop(key, None)
        self._latency[key] = seconds
        while len(self._latency) > MAX_LATENCIES:
            self._latency.popitem(last=False)

    def latency(self, member: IPv6Address, client: IPv6Address) -> float | None:
        return self._latency.get((member, _network(client)))


def _network(address: IPv6Address) -> IPv6Network:
    return IPv6Network((address, CLIENT_PREFIX), strict=False)


class Policy(Protocol):
    def select_target(self, selection: Selection) -> IPv6Address | None: ...

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None: ...


class BasePolicy(abc.ABC):
    """The bookkeeping every policy shares: members tried for this handoff and members in
    quarantine after a failure are never offered to ``_choose``; with ``local=False`` this
    member is offered only when no other is left."""

    def __init__(
        self, view: GroupView, *, local: bool = True, quarantine: float = DEFAULT_QUARANTINE
    ) -> None:
        self.view = view
        self.local = local
        self.quarantine = quarantine
        self._failed: dict[IPv6Address, float] = {}  # member -> until when it is avoided
        self.failures: dict[TargetFailure, int] = {}

    def select_target(self, selection: Selection) -> IPv6Address | None:
        candidates = self.candidates(selection)
        if not self.local:
            others = [m for m in candidates if m != selection.local]
            candidates = others or candidates
        return self._choose(selection, candidates) if candidates else None

    def candidates(self, selection: Selection) -> list[IPv6Address]:
        """The members that may be chosen, in address order (deterministic for a seed)."""
        now = selection.now
        self._failed = {m: until for m, until in self._failed.items() if until > now}
        members = self.view.members | {selection.local}
        return sorted(m for m in members if m not in selection.tried and m not in self._failed)

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1
        self._failed[member] = now + self.quarantine

    @abc.abstractmethod
    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address | None:
        """One of ``candidates`` (never empty), or None for no suitable target."""


class LocalPolicy:
    """Every client stays where it is: no handoff is ever proposed."""

    def select_target(self, selection: Selection) -> IPv6Address | None:
        return selection.local

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        return None  # it never chooses another member, so nothing can fail


class RandomPolicy(BasePolicy):
    def __init__(self, view: GroupView, rng: random.Random, **options: float | bool) -> None:
        super().__init__(view, **options)  # type: ignore[arg-type]
        self.rng = rng

    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address:
        return self.rng.choice(candidates)


class RoundRobinPolicy(BasePolicy):
    def __init__(self, view: GroupView, **options: float | bool) -> None:
        super().__init__(view, **options)  # type: ignore[arg-type]
        self._last: IPv6Address | None = None

    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address:
        after = [m for m in candidates if self._last is None or m > self._last]
        self._last = (after or candidates)[0]
        return self._last


class LeastLoadedPolicy(BasePolicy):
    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address:
        return min(candidates, key=lambda m: (self.view.load.get(m, 0), m))


class LowestLatencyPolicy(BasePolicy):
    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address:
        def key(member: IPv6Address) -> tuple[bool, float, IPv6Address]:
            latency = self.view.latency(member, selection.client)
            return (latency is None, latency or 0.0, member)

        return min(candidates, key=key)


Chooser = Callable[[bytes, Iterable[IPv6Address]], IPv6Address | None]


class ContentAwarePolicy(BasePolicy):
    """``choose(first_bytes, candidates)`` picks a member for a request (e.g. by path); None,
    or a member that is not a candidate, leaves the choice to ``fallback``."""

    def __init__(
        self, view: GroupView, choose: Chooser, fallback: BasePolicy, **options: float | bool
    ) -> None:
        super().__init__(view, **options)  # type: ignore[arg-type]
        self.choose = choose
        self.fallback = fallback

    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address | None:
        chosen = self.choose(selection.first_bytes, tuple(candidates))
        if chosen in candidates:
            return chosen
        return self.fallback._choose(selection, candidates)

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        super().notify_failure(member, reason, now)
        self.fallback.notify_failure(member, reason, now)
