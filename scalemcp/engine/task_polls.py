"""Backpressure on ``tasks/get``: a client polling faster than asked is held, not served.

The extension (2026-07-28) says clients SHOULD poll no faster than the task's
``pollIntervalMs`` and servers MAY rate-limit those that poll faster; 2025-11-25's
``pollInterval`` is the same suggestion. Without a limit, polls feed back: a slower server
keeps tasks alive longer, and each live task is polled as often as the client likes.

Here (per worker) each live task read by ``tasks/get`` has a token bucket: one read per
``interval = min(task_poll_min_interval_ms, pollIntervalMs)``, a burst of two (so a client
that asks twice in a row, as the conformance suite does, is answered at once). A poll
that finds no token is *held* until the task changes (any worker's task event for it wakes
the hold, and a changed task is read at once) or a token comes, whichever is first, and
then answered with the record as it is then. So a fast poller costs about one store read
per interval and task, and sees a change no later than a client polling at the interval
would: usually within milliseconds of it, from the event; at worst (events late or lost)
one interval after it. A client polling at ``pollIntervalMs`` is never held, nor is any
poll after a read found the task terminal (or gone).
"""

from __future__ import annotations

from typing import Final

import trio

from ..observability.metrics import TASK_POLLS_HELD
from ..state.tasks import TaskEvent, TaskRecord

__all__ = ["PollPacer"]

#: Most tasks remembered per worker; past it the oldest is forgotten (its next poll is
#: answered at once).
_CAPACITY: Final = 100_000
#: Reads a task's bucket holds: polls answered at once before the pacing starts.
_BURST: Final = 2.0


class _Seen:
    """This worker's last read of one task."""

    __slots__ = ("at", "changed", "interval_s", "principal", "tokens", "wake")

    def __init__(self, principal: str | None, at: float, interval_s: float) -> None:
        self.principal = principal
        #: The last read; ``tokens`` were left after it.
        self.at = at
        self.tokens = _BURST
        self.interval_s = interval_s
        #: A task event came since ``at``: the next poll reads at once.
        self.changed = False
        #: Set by the task's next event; held polls wait on it.
        self.wake = trio.Event()


class PollPacer:
    """When a ``tasks/get`` may read the store: :meth:`pace`, then :meth:`reading` and
    :meth:`read` around the read. :meth:`on_event` hears every task event of the fleet."""

    def __init__(self, min_interval_s: float, *, capacity: int = _CAPACITY) -> None:
        #: 0 turns the pacing off.
        self.min_interval_s = max(0.0, min_interval_s)
        self._capacity = capacity
        #: Ordered by the last read (oldest first), so full buckets leave from the front.
        self._seen: dict[str, _Seen] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def on_event(self, event: TaskEvent) -> None:
        seen = self._seen.get(event.task_id)
        if seen is not None:
            seen.changed = True
            seen.wake.set()

    async def pace(self, principal: str | None, task_id: str) -> None:
        """Return when this poll may read: at once, or after holding it (see module)."""
        seen = self._seen.get(task_id)
        if seen is None or seen.changed or seen.principal != principal:
            return
        tokens = _refilled(seen, trio.current_time())
        if tokens >= 1:
            return
        delay = (1 - tokens) * seen.interval_s
        TASK_POLLS_HELD.inc()
        with trio.move_on_after(delay):
            await seen.wake.wait()

    def reading(self, principal: str | None, task_id: str) -> _Seen | None:
        """Note a read starting now (before it, so an event during it counts as a change)."""
        if self.min_interval_s <= 0:
            return None
        now = trio.current_time()
        seen = self._seen.pop(task_id, None)
        if seen is None or seen.principal != principal:
            seen = _Seen(principal, now, self.min_interval_s)
        else:
            seen.tokens = _refilled(seen, now)
            seen.changed = False
            if seen.wake.is_set():  # (everyone it woke is awake: a fresh one for the next)
                seen.wake = trio.Event()
        seen.tokens = max(0.0, seen.tokens - 1)
        seen.at = now
        self._seen[task_id] = seen
        self._forget_old(now)
        return seen

    def read(self, seen: _Seen | None, task_id: str, record: TaskRecord | None) -> None:
        """The read's outcome: a live task is paced from now on, any other forgotten."""
        if seen is None:
            return
        if record is None or record.terminal or record.principal != seen.principal:
            if self._seen.get(task_id) is seen:
                del self._seen[task_id]
            return
        seen.interval_s = min(self.min_interval_s, max(0, record.poll_interval_ms) / 1000)

    def _forget_old(self, now: float) -> None:
        """Drop full buckets (as good as none) and, past the capacity, the oldest."""
        seen = self._seen
        full_s = _BURST * self.min_interval_s
        while seen:
            task_id = next(iter(seen))
            if len(seen) <= self._capacity and seen[task_id].at + full_s > now:
                return
            del seen[task_id]


def _refilled(seen: _Seen, now: float) -> float:
    if seen.interval_s <= 0:
        return _BURST
    return min(_BURST, seen.tokens + (now - seen.at) / seen.interval_s)
