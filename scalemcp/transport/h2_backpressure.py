"""Two fixes to Hypercorn's HTTP/2 sending, so a slow consumer is bounded there too.

Hypercorn (0.17, 0.18) hands each HTTP/2 stream's body to a ``StreamBuffer`` that should
make the app's ``send`` wait while more than two frames are buffered. It releases the app
whenever a pop returns less than one frame, and a pop returns *nothing* when the client's
flow-control window is closed: so against a client that stops reading, every ``send``
returns at once and the buffer grows without bound (measured: 4 MB for a 64 KiB window).
:func:`install` makes the release depend on what stays buffered instead (its intent), so
``send`` blocks and the send deadline (``send_guard``) applies.

Second, when an app ends an HTTP/2 response without its end (what the send deadline does
to a stuck stream), Hypercorn forgets the stream but never ends or resets it, so the client
waits on it for ever. :func:`install` resets it (RST_STREAM, CANCEL): the client sees the
stream fail and resumes, as an HTTP/1.1 client sees its connection close.

Third, when the connection itself ends (the client hung up, or died), Hypercorn tells
each stream's app that the client is gone but leaves the apps' sends blocked on the
buffers of a connection that will never be written again: each stream then holds its
task until the send deadline (30 s by default), and is counted as a slow consumer.
:func:`install` releases those buffers when the connection closes, so the apps see the
disconnect at once.

Fourth, body data that arrives for a stream the app has already answered and closed
(an early refusal, a 413, a shed request, while the client still uploads) made Hypercorn
raise ``KeyError`` out of its connection handler, which stopped the whole worker: any
client could crash an HTTP/2 worker (found by the hostile fuzz over h2c). :func:`install`
drops such data, still crediting the connection's flow-control window.

Fifth, a client may open streams and reset them at once (rapid reset, CVE-2023-44487):
HTTP/2's own limit (``h2_max_concurrent_streams``) counts only open streams, and a reset
one is closed for h2 at once while its app task and buffer live on. Hypercorn creates each
stream without yielding to them, so one read of a few kilobytes could start thousands of
apps (the ``priority`` tree then refuses its 1,001st stream with an exception that ends the
connection, logged as an error), while every other connection waited. :func:`install`
counts the streams still held (their buffers): at the limit, the connection's task yields
until the apps of finished streams have ended; a stream that still finds no room is
refused (RST_STREAM, REFUSED_STREAM), which a well-behaved client retries.

The patches are idempotent and touch nothing else; a Hypercorn without these classes is
left alone.
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio

__all__ = ["install"]

_INSTALLED = "_scalemcp_h2_backpressure"
#: Scheduler turns a connection at its stream limit waits for room before it refuses one.
_ROOM_TURNS = 32


def install() -> None:
    try:
        import h2.errors as h2_errors
        import h2.events as h2_events
        import h2.exceptions as h2_exceptions
        from hypercorn.events import Closed
        from hypercorn.protocol import h2 as hypercorn_h2
        from hypercorn.protocol.events import StreamClosed
    except ImportError:  # pragma: no cover - Hypercorn is a dependency
        return
    buffer_class: Any = getattr(hypercorn_h2, "StreamBuffer", None)
    protocol_class: Any = getattr(hypercorn_h2, "H2Protocol", None)
    if buffer_class is None or protocol_class is None or getattr(buffer_class, _INSTALLED, False):
        return
    low_water = getattr(hypercorn_h2, "BUFFER_LOW_WATER", 2**14)

    async def pop(self: Any, max_length: int) -> bytes:
        length = min(len(self.buffer), max_length)
        data = bytes(self.buffer[:length])
        del self.buffer[:length]
        if len(self.buffer) < low_water:  # was: len(data) < low_water
            await self._paused.set()
        if len(self.buffer) == 0:
            await self._is_empty.set()
        return data

    original_stream_send = protocol_class.stream_send
    original_handle = protocol_class.handle

    async def handle(self: Any, event: Any) -> None:
        await original_handle(self, event)
        if isinstance(event, Closed):
            for buffer in list(self.stream_buffers.values()):
                await buffer.close()  # wakes a send blocked on flow control

    async def stream_send(self: Any, event: Any) -> None:
        if isinstance(event, StreamClosed):
            await _reset_if_unfinished(self, event.stream_id)
        await original_stream_send(self, event)

    original_handle_events = protocol_class._handle_events

    async def handle_events(self: Any, events: list[Any]) -> None:
        limit = self.config.h2_max_concurrent_streams
        if not any(isinstance(e, h2_events.DataReceived) for e in events) and (
            len(self.stream_buffers)
            + sum(isinstance(e, h2_events.RequestReceived) for e in events) < limit
        ):
            await original_handle_events(self, events)
            return
        run: list[Any] = []  # in order: an earlier event of the batch may open the stream
        refused: set[int] = set()
        for event in events:
            if isinstance(event, h2_events.RequestReceived) and (
                len(self.stream_buffers) + len(run) >= limit
            ):
                if run:
                    await original_handle_events(self, run)
                    run = []
                if not await _room_for_a_stream(self, limit):
                    refused.add(event.stream_id)
                    with contextlib.suppress(h2_exceptions.ProtocolError):
                        self.connection.reset_stream(
                            event.stream_id, h2_errors.ErrorCodes.REFUSED_STREAM)
                    continue
            elif getattr(event, "stream_id", None) in refused:
                if isinstance(event, h2_events.DataReceived):
                    self.connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id)
                continue
            elif isinstance(event, h2_events.DataReceived) and event.stream_id not in self.streams:
                if run:
                    await original_handle_events(self, run)
                    run = []
                if event.stream_id not in self.streams:  # the stream was answered and closed
                    self.connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id)
                    continue
            run.append(event)
        await original_handle_events(self, run)

    buffer_class.pop = pop
    protocol_class._handle_events = handle_events
    protocol_class.stream_send = stream_send
    protocol_class.handle = handle
    setattr(buffer_class, _INSTALLED, True)


async def _room_for_a_stream(protocol: Any, limit: int) -> bool:
    """Whether a new stream fits under ``limit`` streams held, after letting the apps and
    the sender of this connection (and every other task) run a few turns."""
    for _ in range(_ROOM_TURNS):
        if len(protocol.stream_buffers) < limit:
            return True
        await trio.lowlevel.checkpoint()
    return len(protocol.stream_buffers) < limit


async def _reset_if_unfinished(protocol: Any, stream_id: int) -> None:
    """The app closed a stream whose body it did not end: reset it, drop its buffer."""
    import h2.errors
    import h2.exceptions

    buffer = protocol.stream_buffers.get(stream_id)
    if buffer is None or buffer._complete:
        return  # ended normally (or already gone)
    try:
        protocol.connection.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    except h2.exceptions.ProtocolError:
        pass  # the stream is closed already
    else:
        # Written by the connection's own task: a client that reads nothing at all must
        # not hold up the app (the connection closes once idle, keep_alive_timeout_s).
        protocol.task_group.spawn(protocol._flush)
    # Emptied and marked complete, the sending task removes it on its next turn.
    await buffer.close()
    protocol.priority.unblock(stream_id)
    await protocol.has_data.set()
