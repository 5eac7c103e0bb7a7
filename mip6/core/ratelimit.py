"""A token bucket on the engine's clock (RFC 4443 2.4(f) suggests one for ICMPv6 errors; RFC
3775 9.3.1 and 11.8 ask for Binding Errors and Binding Updates to be rate limited too)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Starts full."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated: float | None = None

    def allow(self, now: float) -> bool:
        """Take a token if one is there; False means "over the limit, do not send"."""
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
