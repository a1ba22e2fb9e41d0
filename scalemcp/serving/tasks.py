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

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import trio

from . import seam

log = logging.getLogger("scalemcp.serving")

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


async def _run_app(app: seam.AppWrapper, config: seam.Config, scope: Any,
                   receive: Callable[[], Awaitable[Any]],
                   send: Callable[[Any], Awaitable[None]],
                   group: TaskGroup | None) -> None:
    """Hypercorn's ``_handle``: the app, its errors logged, then ``send(None)`` (the app is
    done). An ASGI app is called directly, not through its ``ASGIWrapper``: a coroutine
    frame fewer for as long as the request lives (an SSE stream: hours). ``group``: the
    connection's tasks, when they run in the worker's nursery (:class:`TaskGroup`)."""
    try:
        try:
            if type(app) is seam.ASGIWrapper:
                await app.app(scope, receive, send)
            else:
                await app(scope, receive, send, trio.to_thread.run_sync,
                          trio.from_thread.run)
        except trio.Cancelled:
            raise
        except BaseExceptionGroup as error:
            _, other_errors = error.split(trio.Cancelled)
            if other_errors is not None:
                await config.log.exception("Error in ASGI Framework")
                await send(None)
            else:
                raise
        except Exception:
            await config.log.exception("Error in ASGI Framework")
        finally:
            await send(None)
    except Exception:
        if group is None:
            raise
        group._failed()
    finally:
        if group is not None:
            group._ended()


class TaskGroup:
    """What Hypercorn's protocols call ``task_group``: where a connection's tasks run.

    Given the worker's nursery (the loop's connections), the tasks run there, and the
    group counts them: a nursery per connection, its cancel scope and their state cost
    about 1 KiB for as long as the connection lives (hours, with an open stream; 10,000 per
    worker). It keeps what matters of a nursery's contract: leaving ``async with`` waits
    until the connection's tasks are done (a connection ends after its requests); a task
    that fails is logged and ``on_failure`` is called (the connection closes, which ends
    its other tasks, as the nursery's cancellation did). The worker's stop cancels them
    with every connection. Without a nursery, it opens one of its own (Hypercorn's way).
    """

    __slots__ = ("_done", "_manager", "_nursery", "_on_failure", "_running", "_shared")

    def __init__(self, nursery: trio.Nursery | None = None,
                 on_failure: Callable[[], object] | None = None) -> None:
        self._shared = nursery
        self._nursery: trio.Nursery | None = nursery
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._on_failure = on_failure
        #: Tasks of this group running in the shared nursery.
        self._running = 0
        self._done: trio.Event | None = None

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
        group = None
        if self._shared is not None:
            group = self
            self._running += 1
        self._nursery.start_soon(_run_app, app, config, scope, inbox.get, send, group,
                                 name=_APP_TASK)
        return inbox

    def spawn(self, func: Callable[..., Awaitable[object]], *args: Any) -> None:
        assert self._nursery is not None
        if self._shared is None:
            self._nursery.start_soon(func, *args)
            return
        self._running += 1
        self._nursery.start_soon(self._tracked, func, args)

    async def _tracked(self, func: Callable[..., Awaitable[object]], args: tuple[Any, ...]
                       ) -> None:
        try:
            await func(*args)
        except Exception:
            self._failed()
        finally:
            self._ended()

    def _failed(self) -> None:
        log.exception("a connection's task failed: closing the connection")
        if self._on_failure is not None:
            self._on_failure()

    def _ended(self) -> None:
        self._running -= 1
        if not self._running and self._done is not None:
            self._done.set()

    async def __aenter__(self) -> TaskGroup:
        if self._shared is None:
            self._manager = trio.open_nursery()
            self._nursery = await self._manager.__aenter__()
        return self

    async def __aexit__(self, exc_type: type, exc_value: BaseException,
                        tb: TracebackType) -> None:
        if self._shared is not None:
            # As a nursery: the tasks end first (they are told: the connection closed).
            # Not when the connection failed: its close, after this, ends them.
            try:
                while exc_type is None and self._running:
                    self._done = trio.Event()
                    await self._done.wait()
            finally:
                # (the callback refers to the connection, which refers to this group: a
                # cycle that only the cyclic collector would free)
                self._on_failure = None
            return
        # As Hypercorn's: what the nursery raises propagates; its return value is not used.
        assert self._manager is not None
        try:
            await self._manager.__aexit__(exc_type, exc_value, tb)
        finally:
            self._manager = None
            self._nursery = None
