"""Token buckets in one process: the memory backend's ``take_tokens``.

Theory of operation
-------------------
A bucket is stored as (tokens, time of the last take). Its level at time ``now`` is
``min(capacity, tokens + (now - then) * rate)``; a take of ``cost`` succeeds when every
bucket of the take holds at least its cost, and then lowers each of them. A bucket that
has refilled completely is equivalent to no bucket, so it can be forgotten: that bounds
the table without changing any answer. The Redis backend runs the same arithmetic in one
Lua script (:mod:`scalemcp.state.redis_buckets`) on Redis' clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .base import Throttled, TokenBucket

__all__ = ["MemoryBuckets", "level"]

#: Past this many buckets, a take first forgets the ones that have refilled.
_SWEEP_AT = 10_000


def level(tokens: float, elapsed_s: float, bucket: TokenBucket) -> float:
    """The tokens in ``bucket`` ``elapsed_s`` after it held ``tokens``."""
    return min(bucket.capacity, tokens + max(0.0, elapsed_s) * bucket.rate_per_s)


class MemoryBuckets:
    """Buckets keyed by (owner, name), timed by ``trio.current_time()`` (mock clocks work)."""

    def __init__(self) -> None:
        #: (owner, name) -> (tokens, time, seconds until full again)
        self._buckets: dict[tuple[str, str], tuple[float, float, float]] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, owner: str, buckets: Sequence[TokenBucket]) -> Throttled | None:
        now = trio.current_time()
        if len(self._buckets) >= _SWEEP_AT and now >= self._next_sweep:
            self._next_sweep = now + 1.0  # amortised: at most once a second
            self._sweep(now)
        levels: list[float] = []
        short: Throttled | None = None
        for bucket in buckets:
            stored = self._buckets.get((owner, bucket.name))
            tokens = bucket.capacity if stored is None else level(
                stored[0], now - stored[1], bucket)
            levels.append(tokens)
            if tokens < bucket.cost:
                wait = (bucket.cost - tokens) / bucket.rate_per_s
                if short is None or wait > short.retry_after_s:
                    short = Throttled(bucket.name, wait)
        if short is not None:
            return short
        for bucket, tokens in zip(buckets, levels, strict=True):
            left = tokens - bucket.cost
            full_in = (bucket.capacity - left) / bucket.rate_per_s
            self._buckets[(owner, bucket.name)] = (left, now, full_in)
        return None

    def _sweep(self, now: float) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < v[2]}
