"""In-flight limits: how many requests of one session (or principal) run at once.

Counted on each worker, in memory: the count bounds what one client can make a worker
hold (tasks, mailboxes, streams), which is what the limit is for, and costs no round
trip. A session whose requests land on W workers may so have up to W x limit in flight,
unless ``max_inflight_fleet_wide`` also counts them in the state backend (engine/session.py,
``StateBackend.acquire_inflight``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import RateLimited
from ..observability.metrics import RATE_LIMITED

__all__ = ["Slots"]


class Slots:
    """At most ``limit`` (0: any number) held at once per key; ``what`` names the key in
    refusals (``"session"``, ``"principal"``)."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._held: dict[str, int] = {}

    def acquire(self, key: str, n: int = 1) -> None:
        """Take ``n`` slots of ``key``, all or none; raises RateLimited (HTTP 429)."""
        if self.limit <= 0 or n <= 0:
            return
        held = self._held.get(key, 0)
        if held + n > self.limit:
            RATE_LIMITED.labels(f"inflight_{self.what}").inc()
            raise RateLimited(
                f"too many requests in flight for this {self.what} (at most {self.limit} "
                "at once); retry when one has finished",
                limit=f"inflight_{self.what}", retry_after_s=1)
        self._held[key] = held + n

    def release(self, key: str, n: int = 1) -> None:
        if self.limit <= 0 or n <= 0:
            return
        left = self._held.get(key, 0) - n
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)

    @contextmanager
    def hold(self, key: str, n: int = 1) -> Iterator[None]:
        self.acquire(key, n)
        try:
            yield
        finally:
            self.release(key, n)

    def held(self, key: str) -> int:
        return self._held.get(key, 0)
