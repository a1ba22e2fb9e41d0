"""What ``/readyz`` answers: ready, degraded (the backend fails, within the grace), unready.

A shared backend that blips (a Redis restart, a Sentinel failover) fails every worker's check
at the same moment. Were each worker to leave the load balancer at once, the whole fleet
would, and requests that need no backend (stateless 2026-07-28 ones) would be refused with
it. So a worker stays ready, saying ``degraded``, until its backend has failed every check
for ``ready_backend_grace_s``; draining or not yet started, it is unready at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Readiness"]

_READY = (200, b'{"status":"ready"}')
_DEGRADED = (200, b'{"status":"degraded","backend":"unreachable"}')
_UNREADY = (503, b'{"status":"unready"}')
_BACKEND_DOWN = (503, b'{"status":"unready","backend":"unreachable"}')


class Readiness:
    """One worker's readiness, from its backend checks over time."""

    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self._clock = clock
        #: When the current run of failed backend checks began (None: the last one passed).
        self._failing_since: float | None = None

    def judge(self, serving: bool, backend_ok: bool) -> tuple[int, bytes]:
        """The status and JSON body for ``/readyz``.

        ``serving``: the worker has started and is not draining; ``backend_ok``: the
        backend answered the check just made.
        """
        if backend_ok:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = self._clock()
        if not serving:
            return _UNREADY
        if self._failing_since is None:
            return _READY
        if self._clock() - self._failing_since < self.grace_s:
            return _DEGRADED
        return _BACKEND_DOWN
