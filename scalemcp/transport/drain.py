"""Graceful drain: what a worker does between SIGTERM and exit.

Theory of operation
-------------------
:meth:`Drain.begin` (the worker supervisor calls it on SIGTERM, see :mod:`.workers`) is
also Hypercorn's shutdown trigger, so at that moment the worker stops accepting
connections, closes idle keep-alive ones and refuses new requests on open ones, and
``/readyz`` answers 503 to any probe that still gets through. Requests in flight go on.

SSE streams and WebSockets go on for ``drain_timeout_s``, then end cleanly: an SSE
response gets its final chunk (session-era streams are resumable, so the client resumes
elsewhere with ``Last-Event-ID``; 2025-11-25 clients get a ``retry:`` hint first), a
WebSocket gets close code 1001. Each such stream watches the drain with
:func:`when_closing`, started in its own nursery; the server's drain is
passed to it explicitly (each request carries it, ``Request.closing``). Hypercorn's
``graceful_timeout`` is ``drain_timeout_s`` + :data:`HARD_STOP_MARGIN_S`: what is still
running then is cancelled. Session-era requests run outside any connection, so the app
keeps them running until they finish or that same hard stop (:meth:`Drain.run_down`):
a call that outlives its stream's connection writes the rest of its events, and its
result, to the backend, where the client's resume on another worker finds them. A second
SIGTERM/SIGINT closes the streams, and cancels that work, at once.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import trio

__all__ = ["HARD_STOP_MARGIN_S", "Drain", "closing", "when_closing"]

log = logging.getLogger("scalemcp.server")

#: Time after the streams are closed before Hypercorn cancels what is left.
HARD_STOP_MARGIN_S = 5.0



class Drain:
    """One server's drain state; plain attributes, so it can be built outside ``trio.run``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        #: True from :meth:`begin` on: ``/readyz`` answers 503.
        self.draining = False
        self._begun = trio.Event()
        self._now = trio.Event()
        self._close_at = math.inf
        #: What open streams do when they must end (:meth:`on_closing`), called by
        #: :meth:`watch`: one task for the server, not one per stream.
        self._closers: dict[object, Callable[[], object]] = {}
        self._closed = False

    def begin(self) -> None:
        """Stop taking work; close streams ``timeout_s`` from now. Idempotent."""
        if self.draining:
            return
        self.draining = True
        self._close_at = trio.current_time() + self.timeout_s
        self._begun.set()
        log.info("draining: no new connections; open streams end within %.1f s",
                 self.timeout_s)

    def close_now(self) -> None:
        """Close the streams without waiting for the rest of the drain."""
        self.begin()
        if not self._now.is_set():
            log.info("closing open streams now")
            self._now.set()

    async def wait_begun(self) -> None:
        await self._begun.wait()

    async def wait_closing(self) -> None:
        """Return when open streams must end."""
        await self._begun.wait()
        with trio.move_on_at(self._close_at):
            await self._now.wait()

    @contextmanager
    def on_closing(self, fn: Callable[[], object]) -> Iterator[None]:
        """Within the block, call ``fn()`` (it must not block) when open streams must end;
        at once if they must already. Needs :meth:`watch` running (the app's lifespan)."""
        key = object()
        self.add_closer(key, fn)
        try:
            yield
        finally:
            self.remove_closer(key)

    def add_closer(self, key: object, fn: Callable[[], object]) -> None:
        """:meth:`on_closing` without a block: until :meth:`remove_closer` with ``key``."""
        if self._closed:
            fn()
        self._closers[key] = fn

    def remove_closer(self, key: object) -> None:
        self._closers.pop(key, None)

    async def watch(self) -> None:
        """Run for the server's lifetime: calls the :meth:`on_closing` functions when
        streams must end."""
        await self.wait_closing()
        self._closed = True
        if self._closers:
            log.info("closing %d open streams", len(self._closers))
        for fn in list(self._closers.values()):
            fn()

    async def run_down(self, wait_finished: Callable[[], Awaitable[None]]) -> None:
        """While draining, await ``wait_finished()`` until the hard stop (or :meth:`close_now`).

        Returns at once if the server is not draining (e.g. a test cancelled it).
        """
        if not self.draining:
            return
        with trio.move_on_at(self._close_at + HARD_STOP_MARGIN_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_set, self._now, nursery.cancel_scope)
                await wait_finished()
                nursery.cancel_scope.cancel()


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


@contextmanager
def closing(drain: Drain | None, fn: Callable[[], object]) -> Iterator[None]:
    """:meth:`Drain.on_closing` of ``drain``, if there is one (a bare ASGI app has none)."""
    if drain is None:
        yield
        return
    with drain.on_closing(fn):
        yield


async def when_closing(drain: Drain | None, fn: Callable[..., object], *args: object) -> None:
    """Call (or await) ``fn(*args)`` when ``drain`` closes the server's streams.

    Start it in the stream's nursery; without a drain (a bare ASGI app) it never returns.
    """
    if drain is None:
        await trio.sleep_forever()
        return
    await drain.wait_closing()
    result = fn(*args)
    if inspect.isawaitable(result):
        await result
