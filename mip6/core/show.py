"""What ``mip6 show`` prints of an engine's tables, as plain data, the way ``ip`` lists routes.

Each role engine's ``describe(what, now)`` (:mod:`mip6.core.engine`) answers with
:func:`rows` or :func:`counters` built from the helpers here, so the binding cache looks the
same whether a correspondent or a home agent holds it. Secrets (Kcn, nonces, keygen tokens)
are never shown, only their indices and ages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mip6.core.binding_cache import BindingCache
from mip6.core.binding_update_list import BindingUpdateList
from mip6.core.nonces import NonceTable

# the last five are a distributed-server member's (mip6.dserver.member): empty elsewhere
WHATS = (
    "bcache",
    "bul",
    "rr",
    "nonce",
    "stats",
    "tcp",
    "clients",
    "members",
    "handoffs",
    "relay",
    "udp",
    "tunnel",
)


class UnknownWhat(ValueError):
    def __init__(self, what: str) -> None:
        super().__init__(f"show what? one of {', '.join(WHATS)}")
        self.what = what


def check(what: str) -> None:
    if what not in WHATS:
        raise UnknownWhat(what)


def rows(what: str, table: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"what": what, "rows": list(table)}


def counters(what: str, *groups: tuple[str, Mapping[str, int]]) -> dict[str, Any]:
    """Counters of several groups, each name under its group's prefix (``""`` for none)."""
    merged: dict[str, int] = {}
    for prefix, values in groups:
        merged |= {f"{prefix}{name}": value for name, value in values.items()}
    return {"what": what, "counters": dict(sorted(merged.items()))}


def binding_cache_rows(cache: BindingCache, now: float) -> list[dict[str, Any]]:
    return [
        {
            "home_address": str(entry.home_address),
            "care_of_address": str(entry.care_of_address),
            "sequence": entry.sequence,
            "lifetime": entry.lifetime,
            "expires_in": round(entry.expires - now, 1),
            "home_registration": entry.home_registration,
        }
        for entry in cache
    ]


def nonce_rows(nonces: NonceTable, now: float) -> list[dict[str, Any]]:
    return [
        {"index": entry.index, "age": round(now - entry.created, 1)} for entry in nonces._entries
    ]


def bul_rows(bul: BindingUpdateList, what: str, now: float) -> list[dict[str, Any]]:
    """``bul``: what was sent and granted per destination; ``rr``: the return routability
    state (nonce indices and token ages)."""
    out = []
    for entry in bul:
        tokens = entry.tokens
        row: dict[str, Any] = {
            "destination": str(entry.destination),
            "home_address": str(entry.home_address),
            "state": entry.state.value,
            "home_registration": entry.home_registration,
        }
        if what == "bul":
            row |= {
                "care_of_address": str(entry.care_of_address) if entry.care_of_address else None,
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
        out.append(row)
    return out
