"""What ``mip6 show`` prints: the engine's own tables (the engine contract's ``describe``,
:mod:`mip6.core.show`) and, for a host-mode node, its host's counters and TCP connections.
Secrets (Kcn, nonces, keygen tokens) are never shown, only their indices and ages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mip6.core import show
from mip6.core.engine import Engine

if TYPE_CHECKING:
    from mip6.runtime.host import Host

WHATS = show.WHATS


def describe(
    engine: Engine,
    what: str,
    now: float,
    host: Host | None = None,
    fast: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """``what`` of ``engine``; with a host-mode node's ``host``, ``stats`` also holds its
    counters (``host.*``, ``host.tcp.*`` from the TCP stack) and ``tcp`` lists its TCP
    connections (no rows without a host); with the counters of the daemon's ``fast`` path
    (:meth:`mip6.runtime.fast.FastPath.counters`), ``stats`` holds them as ``fast.*``."""
    reply = engine.describe(what, now)
    if what == "tcp" and host is not None:
        return show.rows(what, host.describe()["connections"])
    if what == "stats" and (host is not None or fast is not None):
        groups = [("", reply["counters"])]
        if host is not None:
            groups.append(("host.", host.describe()["counters"]))
        if fast is not None:
            groups.append(("fast.", fast))
        return show.counters(what, *groups)
    return reply


def format_rows(reply: dict[str, Any]) -> str:
    """One line per row, ``key value`` pairs after the first column, as ``ip`` does."""
    if "counters" in reply:
        return "\n".join(f"{name} {value}" for name, value in reply["counters"].items())
    lines = []
    for row in reply.get("rows", []):
        items = list(row.items())
        first = str(items[0][1])
        rest = " ".join(
            f"{key.replace('_', '-')} {_word(value)}"
            for key, value in items[1:]
            if value is not None
        )
        lines.append(f"{first} {rest}".rstrip())
    return "\n".join(lines)


def _word(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)
