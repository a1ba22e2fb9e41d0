"""Serving one resumable SSE stream from the state backend to an HTTP client.

The loop replays events after a position and then follows the stream, sending a
keep-alive comment whenever it has been quiet for ``keepalive_s``. It ends when the
stream's final event is sent, the session disappears, the client disconnects, or
``drop`` is set (a deliberate disconnect; the stream goes on and the client resumes).
"""

from __future__ import annotations

import trio

from ..ops.drain import when_closing
from ..protocol.sse import KEEPALIVE, format_event, make_event_id
from ..state.base import StateBackend, StreamEvent
from .http import Request

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


async def start_sse(req: Request, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = SSE_HEADERS + (extra or [])
    await req.send({"type": "http.response.start", "status": 200, "headers": headers})


async def send_chunk(req: Request, chunk: bytes) -> None:
    await req.send({"type": "http.response.body", "body": chunk, "more_body": True})


async def end_body(req: Request) -> None:
    await req.send({"type": "http.response.body", "body": b"", "more_body": False})


async def follow_stream(
    req: Request,
    state: StateBackend,
    session_id: str,
    stream: str,
    after: str | None,
    *,
    keepalive_s: float,
    retry_ms: int | None,
    drop: trio.Event | None = None,
    with_ids: bool = True,
) -> None:
    """Send the stream's events after ``after`` until it ends; the response must be started.

    ``with_ids=False`` (legacy HTTP+SSE) sends bare ``message`` events and no priming.

    When ``drop`` is set, what is already in the stream is sent and the connection ends
    without ending the stream (the client resumes with ``Last-Event-ID``).
    """
    drop = drop if drop is not None else trio.Event()
    waiting: list[trio.CancelScope] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_on_disconnect, req, nursery.cancel_scope)
        nursery.start_soon(_interrupt_on_drop, drop, waiting)
        nursery.start_soon(when_closing, drop.set)  # the server drains: end, resumable
        while True:
            with trio.CancelScope() as wait_scope:
                waiting.append(wait_scope)
                batch = await state.read(
                    session_id, stream, after, wait_s=0 if drop.is_set() else keepalive_s
                )
            waiting.clear()
            if wait_scope.cancelled_caught:
                continue  # drop was set while waiting: read again without waiting
            if batch.events:
                await send_chunk(req, _frame(stream, batch.events, retry_ms, with_ids))
                after = batch.events[-1].position
            elif not (batch.ended or drop.is_set()):
                await send_chunk(req, KEEPALIVE)
            if batch.ended or batch.missing or drop.is_set():
                break
        nursery.cancel_scope.cancel()
    await end_body(req)


def _frame(
    stream: str, events: list[StreamEvent], retry_ms: int | None, with_ids: bool
) -> bytes:
    chunks = []
    for event in events:
        if not with_ids:
            if event.data:
                chunks.append(format_event(event.data, event="message"))
            continue
        event_id = make_event_id(stream, event.position)
        if event.data:
            chunks.append(format_event(event.data, event_id=event_id, event="message"))
        else:  # the priming event: an id to resume from, and the retry interval
            chunks.append(format_event(b"", event_id=event_id, retry_ms=retry_ms))
    return b"".join(chunks)


async def cancel_on_disconnect(req: Request, scope: trio.CancelScope) -> None:
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _interrupt_on_drop(drop: trio.Event, waiting: list[trio.CancelScope]) -> None:
    await drop.wait()
    for scope in waiting:
        scope.cancel()
