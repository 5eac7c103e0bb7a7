"""Entries kept in expiry order: the contact node's relay table (:mod:`.relay`) and tunnel table
(:mod:`.tunnel`). Each entry lives a fixed time from when it was put (or last used, and moved
to the end), so insertion order is expiry order: what has expired is at the front, and
expiring costs what it removes, never a pass over the whole table."""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol, TypeVar


class Expiring(Protocol):
    @property
    def expires(self) -> float: ...


K = TypeVar("K")
V = TypeVar("V", bound=Expiring)


class ExpiryOrdered(OrderedDict[K, V]):
    """An ordered dict whose callers put each entry at the end with an ``expires`` no earlier
    than any before it."""

    def expire(self, now: float) -> int:
        """Remove the entries whose time is up at ``now``; how many."""
        removed = 0
        while self:
            key, entry = next(iter(self.items()))
            if entry.expires > now:
                break
            del self[key]
            removed += 1
        return removed

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has work (for the engine's timer), None when empty."""
        return next(iter(self.values())).expires if self else None
