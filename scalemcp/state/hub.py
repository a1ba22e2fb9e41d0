"""In-process fan-out of change notifications to a worker's local listeners.

Each change is decoded once, here, when the worker receives it; listeners get the
:class:`~scalemcp.protocol.changes.Change`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..protocol.changes import Change, decode_change

__all__ = ["ChangeFeed", "ChangeHub"]


class ChangeFeed:
    """One listener's changes, in order, at most ``limit`` waiting (later ones are dropped):
    ``await feed.receive()`` or ``async for change in feed``, one task at a time.

    What a memory channel does for a listener, in a tenth of its memory: each open
    ``subscriptions/listen`` stream holds one, for as long as it is open."""

    __slots__ = ("_buffer", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._buffer: list[Change] = []
        self._limit = limit
        self._waiter: trio.lowlevel.Task | None = None

    def put_nowait(self, change: Change) -> bool:
        """Queue ``change``; False if the listener is ``limit`` behind (it is dropped)."""
        if len(self._buffer) >= self._limit:
            return False
        self._buffer.append(change)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)
        return True

    async def receive(self) -> Change:
        """The next change, once there is one."""
        if self._buffer:
            await trio.lowlevel.checkpoint()
        else:
            if self._waiter is not None:
                raise trio.BusyResourceError("another task is receiving from this feed")
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        return self._buffer.pop(0)  # (a few at most: listeners keep up, or lose hints)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def __aiter__(self) -> ChangeFeed:
        return self

    async def __anext__(self) -> Change:
        return await self.receive()


class ChangeHub:
    """Bounded per-listener queues; a slow listener loses hints rather than stall others."""

    def __init__(self, buffer: int = 256) -> None:
        self._buffer = buffer
        self._subscribers: set[ChangeFeed] = set()

    def publish(self, payload: bytes) -> None:
        if not self._subscribers:
            return
        change = decode_change(payload)
        if change is None:
            return
        for feed in list(self._subscribers):
            feed.put_nowait(change)  # (full: change notifications are hints; it re-lists)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[ChangeFeed]:
        feed = ChangeFeed(self._buffer)
        self._subscribers.add(feed)
        try:
            yield feed
        finally:
            self._subscribers.discard(feed)
