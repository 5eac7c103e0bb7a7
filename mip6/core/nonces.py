"""The correspondent's nonce table and Kcn (RFC 3775 5.2.3, 5.2.7).

A correspondent keeps no state per mobile node before a valid Binding Update: the tokens it
hands out in Home Test and Care-of Test are recomputed from (Kcn, nonce, address) when the
Binding Update names the nonce indices. This table is all the state there is, and its size is
bounded by ``max_nonce_lifetime / interval`` whatever the traffic.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from mip6.core.rr import KCN_LENGTH, NONCE_LENGTH


@dataclass(frozen=True, slots=True)
class NonceEntry:
    index: int  # 16-bit Nonce Index, as carried in HoT/CoT and the Nonce Indices option
    nonce: bytes
    kcn: bytes  # the key in force when this nonce was generated
    created: float


class NonceTable:
    """Nonces generated every ``interval`` seconds, each usable for ``lifetime`` seconds.

    RFC 3775 5.2.7: a node generates a fresh nonce periodically and may change Kcn at the same
    time; "nonces ... MUST NOT be accepted ... after MAX_NONCE_LIFETIME seconds". Here each
    nonce carries the Kcn it was made with, and a new Kcn is drawn every ``kcn_lifetime``.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        interval: float,
        lifetime: float,
        kcn_lifetime: float = 3600.0,
    ) -> None:
        if interval <= 0 or lifetime < interval:
            raise ValueError("need 0 < nonce interval <= nonce lifetime")
        self._rng = rng
        self.interval = interval
        self.lifetime = lifetime
        self.kcn_lifetime = kcn_lifetime
        self._entries: deque[NonceEntry] = deque(maxlen=math.ceil(lifetime / interval) + 1)
        self._next_index = rng.randrange(1 << 16)
        self._kcn = rng.randbytes(KCN_LENGTH)
        self._kcn_created: float | None = None

    def current(self, now: float) -> NonceEntry:
        """The nonce to hand out now, generating a new one when the newest is ``interval`` old."""
        if not self._entries or now - self._entries[-1].created >= self.interval:
            if self._kcn_created is None:
                self._kcn_created = now
            elif now - self._kcn_created >= self.kcn_lifetime:
                self._kcn = self._rng.randbytes(KCN_LENGTH)
                self._kcn_created = now
            entry = NonceEntry(self._next_index, self._rng.randbytes(NONCE_LENGTH), self._kcn, now)
            self._next_index = (self._next_index + 1) & 0xFFFF
            self._entries.append(entry)  # maxlen drops the oldest
        return self._entries[-1]

    def lookup(self, index: int, now: float) -> NonceEntry | None:
        """The nonce named ``index``, or None when unknown or older than ``lifetime``."""
        for entry in reversed(self._entries):
            if entry.index == index:
                return entry if now - entry.created <= self.lifetime else None
        return None

    def __len__(self) -> int:
        return len(self._entries)
