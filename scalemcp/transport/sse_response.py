"""Serving one resumable SSE stream from the state backend to an HTTP client.

The loop replays events after a position and then follows the stream, sending a
keep-alive comment whenever it has been quiet for ``keepalive_s``. It ends when the
stream's final event is sent, the session disappears, the client disconnects, or
``drop`` is set (a deliberate disconnect; the stream goes on and the client resumes).
"""

from __future__ import annotations

import logging

import trio

from ..errors import BackendUnavailable
from ..observability.metrics import SSE_REPLAYED_EVENTS, SSE_RESUMES
from ..protocol.sse import GET_STREAM, KEEPALIVE, POST_STREAM, format_event, make_event_id
from ..state.base import StateBackend, StreamEvent
from .http import Request
from .observe import stream_opened
from .send_guard import guard_sends
from .stream_scope import StreamScope

log = logging.getLogger("scalemcp.transport")
#: How long cutting a connection may take (it does not wait for the client).
_CUT_S = 5.0

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


async def start_sse(req: Request, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = SSE_HEADERS + (extra or [])
    stream_opened()  # scalemcp_open_streams, until the exchange ends
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

    An idle stream on scalemcp's loop costs this task only: a disconnect, a slow client and
    the server's drain reach it through callbacks (:class:`~.stream_scope.StreamScope`).
    The drain cancels the loop; what the stream holds then is sent before the end.
    """
    unavailable: BackendUnavailable | None = None
    waiting: list[trio.CancelScope] = []  # (with ``drop``: the read to interrupt)

    # A resume (Last-Event-ID): the first read, without waiting, is the replay.
    replaying = after is not None
    kind = ("get" if stream.startswith(GET_STREAM) else "post" if stream.startswith(POST_STREAM)
            else "other")
    if replaying:
        SSE_RESUMES.labels(kind).inc()
    # (the server's drain cancels it too: the stream ends, resumable)
    async with StreamScope(req, nursery=drop is not None) as body:
        if drop is not None:  # a handler may drop the connection (POST streams)
            assert body.nursery is not None
            body.nursery.start_soon(_interrupt_on_drop, drop, waiting)
        while True:
            try:
                if drop is None:
                    batch = await state.read(session_id, stream, after,
                                             wait_s=0 if replaying else keepalive_s)
                else:
                    with trio.CancelScope() as wait_scope:
                        waiting.append(wait_scope)
                        batch = await state.read(
                            session_id, stream, after,
                            wait_s=0 if drop.is_set() or replaying else keepalive_s)
                    waiting.clear()
                    if wait_scope.cancelled_caught:
                        continue  # drop was set while waiting: read again without waiting
            except BackendUnavailable as exc:
                unavailable = exc
                break
            stopping = drop is not None and drop.is_set()
            if batch.events:
                if replaying:
                    SSE_REPLAYED_EVENTS.labels(kind).inc(len(batch.events))
                await send_chunk(req, _frame(stream, batch.events, retry_ms, with_ids))
                after = batch.events[-1].position
            elif not (batch.ended or stopping or replaying):
                await send_chunk(req, KEEPALIVE)
            replaying = False
            if batch.ended or batch.missing or stopping:
                break
    if unavailable is not None:
        # The stream lives on in the backend: cut the connection (no final chunk, so the
        # client sees a cut, not an end) and let the client resume once it answers again.
        log.info("cutting an SSE stream: %s (the client resumes with Last-Event-ID)",
                 unavailable)
        await _cut(req)
        return
    if body.guard.tripped:
        return  # a slow client: the connection is closed, the stream goes on (resumable)
    async with guard_sends(req, streaming=True):  # the end too, to a client that reads
        if body.drained:
            # What the stream holds now is sent first (it was cancelled while waiting).
            try:
                batch = await state.read(session_id, stream, after, wait_s=0)
            except BackendUnavailable as exc:
                log.info("cutting an SSE stream: %s (the client resumes with "
                         "Last-Event-ID)", exc)
                await _cut(req)
                return
            if batch.events:
                await send_chunk(req, _frame(stream, batch.events, retry_ms, with_ids))
            if retry_ms is not None and with_ids:
                # Spec 4.3 (2025-11-25): before dropping a connection, a ``retry:`` hint.
                await send_chunk(req, b"retry: %d\n\n" % retry_ms)
        await end_body(req)


async def _cut(req: Request) -> None:
    """End the exchange without ending the response: the client sees a cut connection."""
    with trio.CancelScope(deadline=trio.current_time() + _CUT_S, shield=True):
        try:
            await req.raw_send(None)  # Hypercorn: the app is done; an unended body is cut
        except Exception:  # another server: returning unended cuts it too
            log.debug("the server refused send(None)", exc_info=True)


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


async def _interrupt_on_drop(drop: trio.Event, waiting: list[trio.CancelScope]) -> None:
    await drop.wait()
    for scope in waiting:
        scope.cancel()
