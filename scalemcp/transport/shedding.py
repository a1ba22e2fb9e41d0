"""Load shedding: a worker past its capacity refuses new work at once (503 +
``Retry-After``) instead of letting every request's latency grow without bound.

A worker is past its capacity when it has more HTTP requests of the MCP endpoints in
flight than its limit. In flight: from a request's first bytes until its answer begins;
``GET`` streams are not counted, and an answer that is a stream (a listen, a call
streaming progress) stops counting when it starts: streams are open for minutes and cost
nothing while idle. The limit:

* **adaptive** (``shed_target_lag_s``, opt-in; 0.025 is measured): every ``_TICK_S`` a task that
  sleeps measures how late the event loop wakes it (its *lag*: the time the tasks ahead of
  it in the run queue took). Over the target, the limit falls to the most requests in
  flight since the last tick, scaled by ``target / lag`` (at most halved per tick, never
  below ``shed_min_inflight``; with fewer than that in flight, they did not make the lag
  and it stays); under half the target, while the limit refused requests, it grows by an
  eighth. A CPU-bound worker settles where its run queue holds about ``target`` of work,
  so an admitted request waits about that long, whatever the offered load; requests that
  wait on I/O (Redis, a remote API) add no lag and the limit grows to let them in. Unlike
  a fixed lag threshold (below), the refusals are spread evenly rather than on/off for a
  window at a time (bench/results/overload-2026-12-03-adaptive-*.md, README).
* at most ``shed_max_inflight`` (0: no fixed ceiling);

and, separately, ``shed_loop_lag_s`` (off by default): while the worst lag of the last
0.2 s is over it, every new request is refused.

A shed request is refused before its body is read or any header rule is checked
(in the serving loop, :mod:`scalemcp.serving.admission`: an HTTP/1.1 request from its
first bytes, an HTTP/2 stream as h2 parses its HEADERS; here, in the app, on
``serving_loop=hypercorn``). Health, readiness and /metrics are never shed
(a load balancer must still see the worker alive). Refusals are counted in
``scalemcp_shed_total{reason}``; the measured lag is ``scalemcp_event_loop_lag_seconds``,
the adaptive limit ``scalemcp_shed_limit``.
"""

from __future__ import annotations

import math
from collections import deque

import trio

from ..errors import Overloaded
from ..observability.metrics import EVENT_LOOP_LAG, SHED, SHED_LIMIT

__all__ = ["Shedder"]

#: How often the event loop's lag is measured (and the adaptive limit moved)...
_TICK_S = 0.01
#: ... and while too few requests are in flight for the limit to move (and it refuses
#: nothing): a wake-up of an idle worker costs it about 0.2 ms of CPU (2.5 % at 10 ms).
_IDLE_TICK_S = 0.1
#: The binary rule (``shed_loop_lag_s``) looks at the worst lag of the last 0.2 s.
_WINDOW = 20
#: The adaptive limit's start, when there is no fixed ceiling: high, so a burst of
#: requests that wait on I/O is not refused before any lag was measured.
_START_LIMIT = 1024
#: Per tick, the adaptive limit falls at most to this share of what was in flight...
_MOST_CUT = 0.5
#: ... and grows by at least this share of itself (and at least 1).
_GROWTH = 0.125


class Shedder:
    """Counts this worker's requests in flight, watches its event loop and sets the limit."""

    def __init__(self, max_inflight: int, max_lag_s: float, retry_after_s: int, *,
                 target_lag_s: float = 0.0, min_inflight: int = 8) -> None:
        self.max_inflight = max_inflight
        self.max_lag_s = max_lag_s
        self.target_lag_s = target_lag_s
        self.min_inflight = max(1, min_inflight)
        self.retry_after_s = retry_after_s
        self.inflight = 0
        #: The most in flight since the last tick: what made that tick's lag (requests
        #: computed and answered within one scheduler batch are gone by the tick).
        self.peak = 0
        #: The in-flight limit now (0: none): the adaptive one, else ``max_inflight``.
        self.limit = max_inflight
        if target_lag_s > 0:
            self.limit = max_inflight or _START_LIMIT
        #: Set when the serving loop screens HTTP/1.1 requests (``serving.admission``):
        #: it counts and sheds those; this only HTTP/2 streams.
        self.screened = False
        self.lag_s = 0.0
        self._lags: deque[float] = deque(maxlen=_WINDOW)
        #: Requests refused over the limit since the last tick: the limit binds.
        self._refused = 0
        self._inflight_error = Overloaded(
            "this worker is past its capacity (requests in flight); retry shortly",
            retry_after_s)
        self._lag_error = Overloaded(
            "this worker is past its capacity (event loop lag); retry shortly", retry_after_s)
        self._shed_inflight = SHED.labels("inflight")
        self._shed_lag = SHED.labels("loop_lag")

    @property
    def enabled(self) -> bool:
        return self.limit > 0 or self.max_lag_s > 0

    @property
    def adaptive(self) -> bool:
        return self.target_lag_s > 0

    def overloaded(self) -> bool:
        """Past capacity now (counts nothing: :meth:`refusal` counts a refusal)."""
        return 0 < self.limit <= self.inflight or 0 < self.max_lag_s < self.lag_s

    def count_in(self) -> None:
        """One more request in flight (:attr:`inflight` goes down as it ends)."""
        self.inflight += 1
        if self.inflight > self.peak:
            self.peak = self.inflight

    def refusal(self) -> Overloaded | None:
        """Why a new request must be refused now, or None to serve it."""
        if 0 < self.limit <= self.inflight:
            self._refused += 1
            self._shed_inflight.inc()
            return self._inflight_error
        if 0 < self.max_lag_s < self.lag_s:
            self._shed_lag.inc()
            return self._lag_error
        return None

    def adapt(self, lag_s: float) -> None:
        """Move the adaptive limit after a tick that woke ``lag_s`` late."""
        target = self.target_lag_s
        limit = self.limit
        peak = max(self.peak, self.inflight)
        self.peak = self.inflight
        if lag_s > target and peak >= self.min_inflight:
            # What was in flight made the run queue this long: scale it to the target.
            # (From what was in flight, not the limit: a limit far above it means nothing.
            # Fewer in flight than the floor did not make the lag: startup, a collection,
            # one blocking call, other processes; the limit stays.)
            cut = max(_MOST_CUT, target / lag_s)
            limit = max(self.min_inflight, math.floor(min(limit, peak) * cut))
        elif self._refused and lag_s < target / 2:
            limit += max(1, math.floor(limit * _GROWTH))
        self._refused = 0
        self.limit = min(limit, self.max_inflight) if self.max_inflight else limit

    async def watch_loop(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                         ) -> None:
        """Measure the event loop's lag and move the adaptive limit until cancelled (a
        no-op when neither uses the lag)."""
        task_status.started()
        if self.max_lag_s <= 0 and not self.adaptive:
            return
        SHED_LIMIT.set(self.limit)
        idle_tick = _TICK_S if self.max_lag_s > 0 else _IDLE_TICK_S  # (the window: 0.2 s)
        while True:
            busy = self._refused or max(self.peak, self.inflight) >= self.min_inflight
            due = trio.current_time() + (_TICK_S if busy else idle_tick)
            await trio.sleep_until(due)
            lag = max(0.0, trio.current_time() - due)
            self._lags.append(lag)
            self.lag_s = max(self._lags)
            EVENT_LOOP_LAG.set(self.lag_s)
            if self.adaptive:
                limit = self.limit
                self.adapt(lag)
                if self.limit != limit:
                    SHED_LIMIT.set(self.limit)
