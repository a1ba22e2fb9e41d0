"""Slow SSE consumers: a send deadline per stream, then the connection is closed.

Theory of operation. A client that stops reading an SSE stream makes the server's sends
block once the socket buffers are full (Hypercorn applies backpressure through ASGI
``send``; over HTTP/2 only with ``h2_backpressure``), so nothing piles up in memory: events
wait in the state backend, bounded by ``stream_maxlen``. What must not happen is a stream
blocked for ever, holding its task and connection. Inside :func:`guard_sends`, once the
response streams (a body with more to come), every send is split into pieces of at most
:data:`PIECE_BYTES` and each piece must be accepted within ``sse_send_timeout_s``; when one
is not, the guard *trips*:

1. it closes the connection. Hypercorn's HTTP/1.1 sends are shielded from cancellation,
   so a stuck one can only end with its socket: the guard calls the ASGI ``send`` with
   ``None``, Hypercorn's own "the app is done" signal, which for a response not yet
   complete closes the connection (that wakes the stuck send). Over HTTP/2 the stream is
   reset (``h2_backpressure``) while the connection's other streams go on;
2. it cancels the body of ``guard_sends`` (the stream loop, or a stateless request's
   handler, as a client disconnect would), which ends without ending the response: no
   final chunk, so the client sees a cut connection, not a finished stream, and resumes
   with ``Last-Event-ID`` from the backend, losing nothing.
"""
from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..observability.metrics import SLOW_CONSUMERS
from ..serving.clock import Clock, Timer
from . import h2_backpressure

__all__ = ["PIECE_BYTES", "SendGuard", "guard_sends"]

log = logging.getLogger("scalemcp.transport")

#: The unit of progress: a client must accept this much within the send deadline.
PIECE_BYTES = 64 * 1024
#: How long closing the connection may take (it does not wait for the client).
_ABORT_TIMEOUT_S = 5.0

h2_backpressure.install()  # so that HTTP/2 sends block, and can be timed, too

class SendGuard:
    """The send deadline of one response; see the module docstring.

    It starts with the first streamed piece (a body with more to come), so a response sent
    in one piece (JSON) costs nothing. The deadline is a timer on the app's ``clock`` (one
    task for every stream of the worker; send timeouts are one setting, so a deadline
    moves in one field write per piece); without a running clock (an app driven without
    its lifespan) a watcher task per guard does the same. A trip is a task: in ``nursery``,
    or without one (:class:`~.stream_scope.StreamScope`'s bare scope) beside the clock's.
    """

    __slots__ = ("_body", "_clock", "_deadline", "_nursery", "_send", "_timeout_s", "_timer",
                 "tripped", "watching")

    def __init__(self, send: Callable[[Any], Awaitable[None]], timeout_s: float,
                 body: trio.CancelScope, nursery: trio.Nursery | None,
                 clock: Clock | None = None) -> None:
        self._send = send
        self._timeout_s = timeout_s
        self._body = body
        self._nursery = nursery
        self._clock = clock if clock is not None and clock.running else None
        #: The deadline on the clock, from the first streamed piece on.
        self._deadline: Timer | None = None
        #: Without a clock: the watcher's deadline (made when it starts).
        self._timer: trio.CancelScope | None = None
        #: Guarding has begun (from the first streamed piece on).
        self.watching = False
        #: True once the client was too slow: the connection is closed.
        self.tripped = False

    def start(self) -> None:
        """Begin guarding: a timer on the clock, or a watcher task."""
        self.watching = True
        if self._clock is not None:
            self._deadline = self._clock.timer(self._expired)
        else:
            assert self._nursery is not None, "a guard without a clock needs a nursery"
            self._timer = trio.CancelScope()
            self._nursery.start_soon(self.watch)

    def stop(self) -> None:
        """The guarded block is over: the clock forgets this guard."""
        if self._deadline is not None:
            self._deadline.cancel()

    async def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` (a body is cut into pieces), each piece within the deadline."""
        streaming = message["type"] == "http.response.body" and message.get("more_body")
        if not self.watching:
            if not streaming:
                await self._send(message)
                return
            self.start()
        if message["type"] != "http.response.body":
            await self._send_within(message)
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        for start in range(0, max(len(body), 1), PIECE_BYTES):
            piece = body[start:start + PIECE_BYTES]
            last = start + PIECE_BYTES >= len(body)
            await self._send_within({"type": "http.response.body", "body": piece,
                                     "more_body": more or not last})

    async def _send_within(self, message: dict[str, Any]) -> None:
        if self.tripped:
            await trio.lowlevel.checkpoint()  # the body is cancelled: this raises Cancelled
            return
        deadline = self._deadline
        if deadline is not None:
            deadline.move(trio.current_time() + self._timeout_s)
            try:
                await self._send(message)
            finally:
                deadline.move(math.inf)
            return
        timer = self._timer
        assert timer is not None
        timer.deadline = trio.current_time() + self._timeout_s
        try:
            await self._send(message)
        finally:
            timer.deadline = math.inf

    def _expired(self) -> None:
        # The clock's callback, while a piece is being sent (so the body and its
        # nursery are still open): the trip needs a task, for its sends.
        if self._nursery is not None:
            self._nursery.start_soon(self._trip)
        elif self._clock is not None:
            self._clock.spawn(self._trip)

    async def watch(self) -> None:
        """Run beside the body: trip when a piece is not accepted in time."""
        assert self._timer is not None
        with self._timer:
            await trio.sleep_forever()
        await self._trip()

    async def _trip(self) -> None:
        self.tripped = True
        SLOW_CONSUMERS.inc()
        log.info("closing an SSE connection: the client accepted nothing for %g s (it may "
                 "resume with Last-Event-ID)", self._timeout_s)
        with trio.CancelScope(deadline=trio.current_time() + _ABORT_TIMEOUT_S, shield=True):
            try:
                await self._send(None)  # Hypercorn: the app is done; cut the response
            except Exception:  # another server: cancelling the send below is enough
                log.debug("the server refused send(None)", exc_info=True)
        self._body.cancel()


@asynccontextmanager
async def guard_sends(req: Any, *, streaming: bool = False) -> AsyncIterator[SendGuard]:
    """Guard the sends of ``req`` (a :class:`~.http.Request`) made within the block, with
    its ``send_timeout_s`` (0: nothing is guarded), from the first streamed piece on, or
    from the first send if the response is ``streaming`` already (e.g. to end it).

    When the guard trips the block is cancelled and the caller must not end the response
    (``guard.tripped``).
    """
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as body:
            guard = SendGuard(req.raw_send, req.send_timeout_s, body, nursery, req.clock)
            if req.send_timeout_s > 0:
                req.guard = guard
                if streaming:
                    guard.start()
            try:
                yield guard
            finally:
                req.guard = None
                guard.stop()
        if guard.watching:
            nursery.cancel_scope.cancel()
