"""The scope an open response stream (SSE) runs in, and what ends it.

A stream's loop runs until something from outside ends it: the client goes away, the
client reads too slowly (its send guard trips: :mod:`.send_guard`), or the server drains.
:class:`StreamScope` sets all three up around the loop, and cancels the loop when one
happens.

Theory of operation. On scalemcp's serving loop (its ``DISCONNECT_HOOK`` extension) with
the app's clock running (send deadlines), all three are callbacks: the scope is one
cancel scope and three registrations, and an idle stream costs its task and nothing
more (a nursery, its cancel scope and a watcher task cost about 1 KiB per stream, and a
worker holds 10,000 streams). A guard that trips then runs its trip beside the clock's
task. Anywhere else (another ASGI server, an app driven without its lifespan) it is a
nursery: a task parked in ``receive`` hears the disconnect (ASGI's only way), the guard's
watcher is a task. ``nursery=True`` asks for the nursery anyway, for a body that starts
tasks of its own (:attr:`StreamScope.nursery`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import trio

from ..serving.tasks import DISCONNECT_HOOK
from .http import HeaderView, Request
from .send_guard import SendGuard

__all__ = ["StreamScope"]


class StreamScope:
    """``async with StreamScope(req) as body:`` the stream's loop; see the module docstring.

    ``drain=False``: the server's drain does not end this body. Afterwards,
    ``body.guard.tripped`` says the client was too slow (its connection is closed and the
    response must not be ended), ``body.drained`` that the server's drain ended it.
    """

    __slots__ = ("_drain", "_manager", "_nursery_wanted", "_req", "_unhook", "drained",
                 "guard", "nursery", "scope")

    def __init__(self, req: Request, *, drain: bool = True, nursery: bool = False) -> None:
        self._req = req
        #: The server's drain cancelled the body.
        self.drained = False
        self._drain = req.closing if drain else None
        self._nursery_wanted = nursery
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._unhook: Callable[[], None] | None = None
        #: The body's tasks, if it has a nursery (``nursery=True``, or not on scalemcp's loop).
        self.nursery: trio.Nursery | None = None
        self.scope: trio.CancelScope
        self.guard: SendGuard

    async def __aenter__(self) -> StreamScope:
        req = self._req
        # Open for long: its headers are read from the scope from now on, not held twice.
        req.headers = HeaderView(req.scope["headers"])
        hook = req.scope.get("extensions", {}).get(DISCONNECT_HOOK)
        clock = req.clock
        bare = hook is not None and not self._nursery_wanted and (
            req.send_timeout_s <= 0 or (clock is not None and clock.running))
        if bare:
            scope = self.scope = trio.CancelScope()
            scope.__enter__()
        else:
            self._manager = trio.open_nursery()
            self.nursery = await self._manager.__aenter__()
            scope = self.scope = self.nursery.cancel_scope
        guard = self.guard = SendGuard(req.raw_send, req.send_timeout_s, scope, self.nursery,
                                       clock)
        if req.send_timeout_s > 0:
            req.guard = guard
        if hook is not None:
            self._unhook = hook(scope.cancel)
        else:
            assert self.nursery is not None
            self.nursery.start_soon(_receive_until_gone, req, scope)
        if self._drain is not None:
            self._drain.add_closer(self, self._drained)
        return self

    def _drained(self) -> None:
        self.drained = True
        self.scope.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        if self._drain is not None:
            self._drain.remove_closer(self)
        if self._unhook is not None:
            self._unhook()
        self._req.guard = None
        self.guard.stop()
        if self._manager is None:
            return bool(self.scope.__exit__(exc_type, exc, tb))
        self.scope.cancel()  # the body is over: its watchers end with it
        return bool(await self._manager.__aexit__(exc_type, exc, tb))


async def _receive_until_gone(req: Request, scope: trio.CancelScope) -> None:
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
