"""Keyed token buckets in memory (per process); time is passed in."""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    """`rate_per_s` sustained with bursts of `burst`, per key. Keeps at most `max_keys` keys
    (least recently seen dropped), so a flood of distinct keys cannot exhaust memory."""

    def __init__(self, rate_per_s: float, burst: float, max_keys: int = 100_000) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str, now: float) -> float:
        """0.0 when allowed (and counted); else the seconds until a token is available."""
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
