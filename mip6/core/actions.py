"""What an engine asks its driver to do (ARCHITECTURE 2). Values only: the driver performs them.

Packets travel as wire bytes. Engines build signalling with :mod:`mip6.wire` and emit it; data
packets are rewritten in place (tunnel headers prepended, a Home Address option inserted) without
a full parse, so the data path stays cheap.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send ``data`` (a whole IPv6 packet) towards its destination address; ``link`` names the
    interface when a node has several (a home agent's home link), else None."""

    data: bytes
    link: str | None = None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand ``data`` to the local upper layer, after Mobile IPv6 processing: a Home Address
    option already swapped into the source, a type 2 routing header already consumed."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call ``handle_timer(now, token)`` at ``at`` (seconds on the engine's clock). Starting a
    timer whose token is already running moves it."""

    at: float
    token: Hashable


@dataclass(frozen=True, slots=True)
class CancelTimer:
    token: Hashable


@dataclass(frozen=True, slots=True)
class Event:
    """Something observers (traces, metrics, tests) may want: ``name`` plus fields. Field
    values are kept as they are (addresses as ``IPv6Address``): formatting them costs more
    than the event itself, so a driver formats only what it logs."""

    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)


Action = Transmit | Deliver | StartTimer | CancelTimer | Event
