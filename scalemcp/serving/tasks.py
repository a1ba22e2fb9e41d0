"""A connection's tasks: Hypercorn's ``TaskGroup`` with a lighter inbox per request.

Hypercorn's trio ``TaskGroup.spawn_app`` opens a memory channel for each request (two
channel objects and their shared state, statistics, a ``send`` that checkpoints twice);
here each request gets an :class:`Inbox`: a list with the same bound
(``max_app_queue_size``: a reader that gets ahead of the app waits, so a request body is
never buffered without limit) and parked tasks woken directly. The app task itself runs
Hypercorn's ``_handle`` (its error handling and logging), unchanged.

The inbox also offers the app an ASGI extension, ``scope["extensions"][DISCONNECT_HOOK]``:
a function that registers a callback for the client's going away. ASGI has no other way
to hear a disconnect than a task parked in ``receive``; with the hook, a request that has
read its body is told without one (a task per request, or per open stream, fewer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import trio

from . import seam

__all__ = ["DISCONNECT_HOOK", "Inbox", "TaskGroup"]

#: The ASGI extension's key: ``hook(callback) -> unregister``. From the call on, the
#: request's further body events are discarded (the app has read what it wants) and
#: ``callback()`` runs once the client is gone (at once if it is gone already); the
#: disconnect event itself stays queued for ``receive``.
DISCONNECT_HOOK = "scalemcp.on_disconnect"
_GONE = frozenset({"http.disconnect", "websocket.disconnect"})

#: Named once: Trio formats a name per task otherwise (memory, per open stream).
_APP_TASK = "scalemcp.serving.app"


def _nothing() -> None:
    pass


class Inbox:
    """The ASGI receive events of one request: bounded, any number of waiting tasks.

    Small, as it lives as long as its request (an open SSE stream: for hours): the events
    are a list (a request has a few; a deque costs 600 bytes empty) and the parking lots
    exist only while someone waits."""

    __slots__ = ("_events", "_limit", "_on_gone", "_readers", "_writers")

    def __init__(self, limit: int) -> None:
        self._events: list[Any] = []
        self._limit = max(1, limit)
        self._readers: trio.lowlevel.ParkingLot | None = None
        self._writers: trio.lowlevel.ParkingLot | None = None
        self._on_gone: Callable[[], object] | None = None

    async def put(self, event: Any) -> None:
        while True:
            if self._on_gone is not None:
                if event.get("type") not in _GONE:
                    return  # watched for its end only: the body is not wanted any more
                self._on_gone()
                break
            if len(self._events) < self._limit:
                break
            if self._writers is None:
                self._writers = trio.lowlevel.ParkingLot()
            await self._writers.park()
        self._events.append(event)
        if self._readers:
            self._readers.unpark()

    def on_disconnect(self, callback: Callable[[], object]) -> Callable[[], None]:
        """:data:`DISCONNECT_HOOK`: ``callback`` once the client is gone; returns the undo."""
        if any(event.get("type") in _GONE for event in self._events):
            callback()
        else:
            self._events.clear()  # unread body events: as the watched ``put`` drops them
            if self._writers:
                self._writers.unpark_all()
        self._on_gone = callback

        def unregister() -> None:
            if self._on_gone is callback:
                self._on_gone = None

        return unregister

    def disconnect_nowait(self) -> None:
        """Queue ``http.disconnect`` past the bound (the end of a request never waits)."""
        if self._on_gone is not None:
            self._on_gone()
        self._events.append({"type": "http.disconnect"})
        if self._readers:
            self._readers.unpark()

    def abandon(self) -> None:
        """The app is done: further body events are dropped, a blocked ``put`` returns."""
        self.on_disconnect(_nothing)

    async def get(self) -> Any:
        while not self._events:
            if self._readers is None:
                self._readers = trio.lowlevel.ParkingLot()
            await self._readers.park()
        event = self._events.pop(0)  # (a few at most: bounded by ``limit``)
        if self._writers:
            self._writers.unpark()
        return event


class TaskGroup:
    """What Hypercorn's protocols call ``task_group``: a nursery for a connection's tasks."""

    __slots__ = ("_manager", "_nursery")

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None

    async def spawn_app(self, app: seam.AppWrapper, config: seam.Config, scope: Any,
                        send: Callable[[Any], Awaitable[None]]
                        ) -> Callable[[Any], Awaitable[None]]:
        return self.spawn_request(app, config, scope, send).put

    def spawn_request(self, app: seam.AppWrapper, config: seam.Config, scope: Any,
                      send: Callable[[Any], Awaitable[None]]) -> Inbox:
        """Start the app on ``scope`` (Hypercorn's ``_handle``); returns its inbox."""
        inbox = Inbox(config.max_app_queue_size)
        assert self._nursery is not None
        if scope.get("type") == "http":
            scope.setdefault("extensions", {})[DISCONNECT_HOOK] = inbox.on_disconnect
        self._nursery.start_soon(seam.handle_app, app, config, scope, inbox.get, send,
                                 trio.to_thread.run_sync, trio.from_thread.run,
                                 name=_APP_TASK)
        return inbox

    def spawn(self, func: Callable[..., Awaitable[object]], *args: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(func, *args)

    async def __aenter__(self) -> TaskGroup:
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()
        return self

    async def __aexit__(self, exc_type: type, exc_value: BaseException,
                        tb: TracebackType) -> None:
        # As Hypercorn's: what the nursery raises propagates; its return value is not used.
        assert self._manager is not None
        try:
            await self._manager.__aexit__(exc_type, exc_value, tb)
        finally:
            self._manager = None
            self._nursery = None
