"""In-process fan-out of change notifications to a worker's local listeners.

Each change is decoded once, here, when the worker receives it; listeners get the
:class:`~scalemcp.protocol.changes.Change`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..protocol.changes import Change, decode_change

__all__ = ["ChangeHub"]


class ChangeHub:
    """Bounded per-listener queues; a slow listener loses hints rather than stall others."""

    def __init__(self, buffer: int = 256) -> None:
        self._buffer = buffer
        self._subscribers: set[trio.MemorySendChannel[Change]] = set()

    def publish(self, payload: bytes) -> None:
        if not self._subscribers:
            return
        change = decode_change(payload)
        if change is None:
            return
        for send in list(self._subscribers):
            try:
                send.send_nowait(change)
            except trio.WouldBlock:
                pass  # change notifications are hints; the listener re-lists
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(send)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[Change]]:
        send, receive = trio.open_memory_channel[Change](self._buffer)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
