"""What ``mip6 show`` prints: an engine's tables as plain data, the way ``ip`` lists routes.
Secrets (Kcn, nonces, keygen tokens) are never shown, only their indices and ages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.roles.mobile_node import MobileNode

if TYPE_CHECKING:
    from mip6.runtime.host import Host

WHATS = ("bcache", "bul", "rr", "nonce", "stats", "tcp")


def _correspondent(engine: Any) -> CorrespondentNode | None:
    if isinstance(engine, CorrespondentNode):
        return engine
    if isinstance(engine, HomeAgent):
        return engine.correspondent
    return None


def describe(engine: Any, what: str, now: float, host: Host | None = None) -> dict[str, Any]:
    """``what`` of ``engine``; with a host-mode daemon's ``host``, ``stats`` also holds its
    counters (``host.*``, ``host.tcp.*`` from the TCP stack) and ``tcp`` lists its TCP
    connections (no rows without a host)."""
    if what not in WHATS:
        raise ValueError(f"show what? one of {', '.join(WHATS)}")
    rows: list[dict[str, Any]] = []
    if what == "bcache":
        cache = getattr(engine, "binding_cache", None)
        for entry in cache if cache is not None else ():
            rows.append(
                {
                    "home_address": str(entry.home_address),
                    "care_of_address": str(entry.care_of_address),
                    "sequence": entry.sequence,
                    "lifetime": entry.lifetime,
                    "expires_in": round(entry.expires - now, 1),
                    "home_registration": entry.home_registration,
                }
            )
    elif what in ("bul", "rr") and isinstance(engine, MobileNode):
        for entry in engine.bul:
            tokens = entry.tokens
            row: dict[str, Any] = {
                "destination": str(entry.destination),
                "home_address": str(entry.home_address),
                "state": entry.state.value,
                "home_registration": entry.home_registration,
            }
            if what == "bul":
                row |= {
                    "care_of_address": str(entry.care_of_address)
                    if entry.care_of_address
                    else None,
                    "sequence": entry.sequence,
                    "lifetime": entry.lifetime,
                    "expires_in": round(entry.expires - now, 1) if entry.expires else None,
                }
            else:
                row |= {
                    "home_nonce_index": tokens.home_nonce_index,
                    "home_token_age": round(now - tokens.home_received, 1)
                    if tokens.home_keygen_token
                    else None,
                    "care_of_nonce_index": tokens.care_of_nonce_index,
                    "care_of_token_age": round(now - tokens.care_of_received, 1)
                    if tokens.care_of_keygen_token
                    else None,
                }
            rows.append(row)
    elif what == "tcp":
        rows = host.describe()["connections"] if host is not None else []
    elif what == "nonce":
        correspondent = _correspondent(engine)
        if correspondent is not None:
            for entry in correspondent.nonces._entries:
                rows.append({"index": entry.index, "age": round(now - entry.created, 1)})
    else:
        counters: dict[str, int] = dict(getattr(engine, "counters", {}))
        correspondent = _correspondent(engine)
        if correspondent is not None and correspondent is not engine:
            counters |= {f"correspondent.{k}": v for k, v in correspondent.counters.items()}
        if host is not None:
            counters |= {f"host.{k}": v for k, v in host.describe()["counters"].items()}
        return {"what": what, "counters": dict(sorted(counters.items()))}
    return {"what": what, "rows": rows}


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
