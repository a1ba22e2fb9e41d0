"""Load shedding: a worker past its capacity refuses new work at once (503 +
``Retry-After``) instead of letting every request's latency grow without bound.

Two signs of a worker past its capacity, each off at 0:

* ``shed_max_inflight``: HTTP requests of the MCP endpoints this worker is serving now
  (``GET`` streams excepted: they are open for minutes and cost nothing while idle);
* ``shed_loop_lag_s``: how late this worker's event loop runs a task that asked to wake
  up; measured every ``_TICK_S`` by a task that sleeps, as the worst of the last
  ``_WINDOW`` ticks, so one late tick sheds for a moment, not longer.

A shed request is refused before its body is read or any header rule is checked: what it
costs is Hypercorn's parse and one canned answer. Health, readiness and /metrics are
never shed (a load balancer must still see the worker alive). Refusals are counted in
``scalemcp_shed_total{reason}``; the measured lag is ``scalemcp_event_loop_lag_seconds``.
"""

from __future__ import annotations

from collections import deque

import trio

from ..errors import Overloaded
from ..observability.metrics import EVENT_LOOP_LAG, SHED

__all__ = ["Shedder"]

_TICK_S = 0.05
_WINDOW = 4  # ticks: the lag of the last 0.2 s


class Shedder:
    """Counts this worker's requests in flight and watches its event loop."""

    def __init__(self, max_inflight: int, max_lag_s: float, retry_after_s: int) -> None:
        self.max_inflight = max_inflight
        self.max_lag_s = max_lag_s
        self.retry_after_s = retry_after_s
        self.inflight = 0
        #: Set when the serving loop screens HTTP/1.1 requests (``serving.admission``):
        #: it counts and sheds those; this only HTTP/2 streams.
        self.screened = False
        self.lag_s = 0.0
        self._lags: deque[float] = deque(maxlen=_WINDOW)
        self._inflight_error = Overloaded(
            "this worker is past its capacity (requests in flight); retry shortly",
            retry_after_s)
        self._lag_error = Overloaded(
            "this worker is past its capacity (event loop lag); retry shortly", retry_after_s)
        self._shed_inflight = SHED.labels("inflight")
        self._shed_lag = SHED.labels("loop_lag")

    @property
    def enabled(self) -> bool:
        return self.max_inflight > 0 or self.max_lag_s > 0

    def overloaded(self) -> bool:
        """Past capacity now (counts nothing: :meth:`refusal` counts a refusal)."""
        return 0 < self.max_inflight <= self.inflight or 0 < self.max_lag_s < self.lag_s

    def refusal(self) -> Overloaded | None:
        """Why a new request must be refused now, or None to serve it."""
        if 0 < self.max_inflight <= self.inflight:
            self._shed_inflight.inc()
            return self._inflight_error
        if 0 < self.max_lag_s < self.lag_s:
            self._shed_lag.inc()
            return self._lag_error
        return None

    async def watch_loop(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                         ) -> None:
        """Measure the event loop's lag until cancelled (a no-op when lag is not used)."""
        task_status.started()
        if self.max_lag_s <= 0:
            return
        while True:
            due = trio.current_time() + _TICK_S
            await trio.sleep_until(due)
            self._lags.append(max(0.0, trio.current_time() - due))
            self.lag_s = max(self._lags)
            EVENT_LOOP_LAG.set(self.lag_s)
