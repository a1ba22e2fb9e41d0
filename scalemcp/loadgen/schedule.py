"""When each operation is meant to start: closed loop or open loop (fixed arrival rate).

Closed loop: a client starts its next operation as soon as the last one ends;
the intended start is "now", so latency is plain service time.

Open loop: slot ``k`` is due at ``start + k / rate``, for the whole run,
whatever the server does. Whichever client is free takes the oldest due slot.
When every client is busy, slots pile up, and when one is finally taken its
latency is measured from the slot's due time, not from when it was sent; so a
stalled server shows up as latency instead of hiding as fewer samples
("coordinated omission").

Either way the pacer hands out at most ``budget`` slots due at or after
``measure_from`` (the end of the warmup), and none due at or after ``end``.
"""

from __future__ import annotations

import math

import trio

__all__ = ["Pacer"]


class Pacer:
    """Hands out intended start times; shared by every client of one process."""

    def __init__(
        self,
        *,
        start: float,
        measure_from: float,
        end: float | None,
        rate: float | None = None,
        budget: int | None = None,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if end is None and budget is None:
            raise ValueError("a pacer needs an end time or a budget")
        self.start = start
        self.measure_from = measure_from
        self.end = end
        self.rate = rate
        self.budget = budget
        self.measured = 0
        """Slots handed out that are due inside the measured window."""
        self._next_slot = 0
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def stop(self) -> None:
        """Hand out no more slots (the run is being cut short)."""
        self._exhausted = True

    def due(self, slot: int) -> float:
        """When open-loop slot ``slot`` is due."""
        assert self.rate is not None
        return self.start + slot / self.rate

    def _take(self, due: float) -> float | None:
        if self._exhausted:
            return None
        if self.end is not None and due >= self.end:
            self._exhausted = True
            return None
        if due >= self.measure_from:
            if self.budget is not None and self.measured >= self.budget:
                self._exhausted = True
                return None
            self.measured += 1
        return due

    def next_nowait(self) -> float | None:
        """The next slot's due time without waiting for it; ``None`` once exhausted."""
        if self.rate is None:
            return self._take(trio.current_time())
        due = self.due(self._next_slot)
        taken = self._take(due)
        if taken is not None:
            self._next_slot += 1
        return taken

    async def next(self) -> float | None:
        """Wait until the next slot is due and return its due time, or ``None`` at the end."""
        due = self.next_nowait()
        if due is not None and self.rate is not None:
            await trio.sleep_until(due)
        return due

    def slots_due_by(self, t: float) -> int:
        """How many open-loop slots are due at or before ``t`` (for lag reports)."""
        assert self.rate is not None
        return max(0, math.floor((t - self.start) * self.rate) + 1)
