"""One clock per worker for its connections' deadlines, instead of a timer task each.

(The ASGI app runs one too, for its SSE streams' send deadlines: ``transport.send_guard``.)

Theory of operation. A connection's deadline (:class:`Timer`) moves at every phase change
(a request begins: none; it ends: the keep-alive deadline), far more often than one
passes. A timer task per connection costs a task, a cancel scope and a registration in
Trio's deadline heap for each move; with 10,000 idle SSE streams open that is 10,000
tasks waiting for nothing. Here the worker has one task (:meth:`Clock.run`) and a heap of
``(deadline, timer)`` entries:

- moving a deadline later (the common case: the next keep-alive deadline) writes a field;
  the timer's entry stays where it is, and when the clock reaches it, it finds the
  deadline moved and pushes the timer again at its new deadline: about one heap push per
  timer per ``keep_alive_timeout``, however many requests it served meanwhile;
- moving it earlier pushes a new entry (the old one is skipped when reached);
- a deadline that passes calls the timer's callback, synchronously, in the clock's task:
  the callback must not block (a connection starts a task to close itself).

A cancelled timer drops its callback at once, so a stale entry keeps only the small
:class:`Timer` alive, never its connection.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Awaitable, Callable
from itertools import count

import trio

__all__ = ["Clock", "Timer"]


class Timer:
    """One deadline on a :class:`Clock`; ``callback`` runs when it passes (once: a move
    afterwards sets the next)."""

    __slots__ = ("_callback", "_clock", "_queued", "deadline")

    def __init__(self, clock: Clock, callback: Callable[[], object]) -> None:
        self._clock = clock
        self._callback: Callable[[], object] | None = callback
        #: The earliest deadline this timer has an entry at in the heap (inf: none).
        self._queued = math.inf
        self.deadline = math.inf

    def move(self, deadline: float) -> None:
        """Fire at ``deadline`` (Trio time; ``inf``: never, ``-inf``: at once)."""
        self.deadline = deadline
        if deadline < self._queued and self._callback is not None:
            self._queued = deadline
            self._clock._push(deadline, self)

    def cancel(self) -> None:
        """Never fire (the connection is closing)."""
        self._callback = None
        self.deadline = math.inf

    def _due(self, queued: float, now: float) -> None:
        if queued != self._queued or self._callback is None:
            return  # a stale entry: the timer was queued earlier, or cancelled
        self._queued = math.inf
        if self.deadline <= now:
            self._callback()
        elif self.deadline < math.inf:  # moved later meanwhile: queue it there
            self._queued = self.deadline
            self._clock._push(self.deadline, self)


class Clock:
    """The worker's clock: :meth:`run` in a task, :meth:`timer` per connection."""

    __slots__ = ("_heap", "_nursery", "_order", "_scope", "_wake_at", "running")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = count()  # ties in deadline are taken in the order pushed
        self._scope: trio.CancelScope | None = None
        self._wake_at = math.inf
        self._nursery: trio.Nursery | None = None
        #: :meth:`run` is running: timers fire (a caller may fall back to a task of its own).
        self.running = False

    def timer(self, callback: Callable[[], object]) -> Timer:
        return Timer(self, callback)

    def _push(self, deadline: float, timer: Timer) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), timer))
        if deadline < self._wake_at:
            self._wake_at = deadline
            if self._scope is not None:
                self._scope.deadline = deadline

    def spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``fn()`` in a task beside the clock's (while :meth:`run` runs): what a
        callback must await, for an owner that has no nursery of its own. ``fn`` must not
        raise: it would stop the clock."""
        assert self._nursery is not None, "the clock is not running"
        self._nursery.start_soon(fn)

    def statistics(self) -> int:
        """Entries in the heap (live timers and stale entries)."""
        return len(self._heap)

    async def run(self) -> None:
        """Fire the timers whose deadline has passed, until cancelled."""
        heap = self._heap
        try:
            async with trio.open_nursery() as self._nursery:
                self.running = True
                while True:
                    now = trio.current_time()
                    while heap and heap[0][0] <= now:
                        queued, _, timer = heapq.heappop(heap)
                        timer._due(queued, now)
                    self._wake_at = heap[0][0] if heap else math.inf
                    with trio.CancelScope(deadline=self._wake_at) as self._scope:
                        await trio.sleep_forever()
                    self._scope = None
        finally:
            self.running = False
            self._nursery = None
