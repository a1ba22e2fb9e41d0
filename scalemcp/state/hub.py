"""In-process fan-out of change notifications to a worker's local listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

__all__ = ["ChangeHub"]


class ChangeHub:
    """Bounded per-listener queues; a slow listener loses hints rather than stall others."""

    def __init__(self, buffer: int = 256) -> None:
        self._buffer = buffer
        self._subscribers: set[trio.MemorySendChannel[bytes]] = set()

    def publish(self, payload: bytes) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(payload)
            except trio.WouldBlock:
                pass  # change notifications are hints; the listener re-lists
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(send)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        send, receive = trio.open_memory_channel[bytes](self._buffer)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
