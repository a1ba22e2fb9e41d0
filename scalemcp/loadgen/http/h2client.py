"""An HTTP/2 client: one multiplexed h2 connection over a trio stream.

Cleartext URLs use prior knowledge (h2c without upgrade, which hypercorn
accepts); https negotiates ``h2`` by ALPN. A reader task owns the receive
side and hands each stream's events to an unbounded memory channel, so a slow
consumer never blocks other streams; every write goes through one lock,
taking the h2 state machine's pending bytes in order. Flow-control windows are
opened wide at start and credited back as data is consumed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio

from ..errors import single_errors
from ._base import ConnectError, Headers, HttpProtocolError, Origin, make_ssl_context, open_stream

__all__ = ["H2Client", "open_h2_client"]

_WINDOW = 1 << 24
_READ_SIZE = 65536
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_StreamEvent = h2.events.Event | HttpProtocolError


class H2Response:
    __slots__ = ("_client", "_done", "_events", "_stream_id", "headers", "status")

    def __init__(
        self,
        client: H2Client,
        stream_id: int,
        events: trio.MemoryReceiveChannel[_StreamEvent],
        status: int,
        headers: Mapping[str, str],
    ) -> None:
        self._client = client
        self._stream_id = stream_id
        self._events = events
        self._done = False
        self.status = status
        self.headers = headers

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        while not self._done:
            event = await self._events.receive()
            if isinstance(event, h2.events.DataReceived):
                await self._client._credit(self._stream_id, event.flow_controlled_length)
                if event.data:
                    yield event.data
                if event.stream_ended is not None:
                    self._done = True
            elif isinstance(event, h2.events.StreamEnded):
                self._done = True
            elif isinstance(event, HttpProtocolError):
                raise event
            elif isinstance(event, h2.events.StreamReset):
                raise HttpProtocolError(f"stream reset by peer (code {event.error_code})")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        await self._client._finish(self._stream_id, reset=not self._done)


class H2Client:
    """Use through `open_h2_client`, which runs the reader task."""

    def __init__(self, origin: Origin, stream: trio.abc.Stream) -> None:
        self._origin = origin
        self._stream = stream
        self._pseudo = [
            (b":scheme", origin.scheme.encode()),
            (b":authority", origin.authority.encode()),
        ]
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._conn = h2.connection.H2Connection(config=config)
        self._send_lock = trio.Lock()
        self._channels: dict[int, trio.MemorySendChannel[_StreamEvent]] = {}
        self._failed: HttpProtocolError | None = None
        self._window_opened = trio.Event()

    async def _start(self) -> None:
        self._conn.initiate_connection()
        self._conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW})
        self._conn.increment_flow_control_window(_WINDOW - 65535)
        await self._flush()

    async def _flush(self) -> None:
        async with self._send_lock:
            data = self._conn.data_to_send()
            if data:
                try:
                    await self._stream.send_all(data)
                except _BROKEN as exc:
                    error = HttpProtocolError(f"send failed: {exc}")
                    self._fail(error)
                    raise error from exc

    async def send(self, method: str, path: str, headers: Headers, body: bytes) -> H2Response:
        if self._failed is not None:
            raise self._failed
        conn = self._conn
        stream_id = conn.get_next_available_stream_id()
        send, receive = trio.open_memory_channel[_StreamEvent](float("inf"))
        self._channels[stream_id] = send
        all_headers = [(b":method", method.encode()), (b":path", path.encode()), *self._pseudo]
        all_headers += headers
        all_headers.append((b"content-length", b"%d" % len(body)))
        conn.send_headers(stream_id, all_headers, end_stream=not body)
        if body:
            while conn.local_flow_control_window(stream_id) < len(body):
                if self._failed is not None:
                    raise self._failed
                if self._window_opened.is_set():
                    self._window_opened = trio.Event()
                await self._window_opened.wait()
            conn.send_data(stream_id, body, end_stream=True)
        await self._flush()
        while True:
            event = await receive.receive()
            if isinstance(event, h2.events.ResponseReceived):
                break
            if isinstance(event, HttpProtocolError):
                raise event
            if isinstance(event, h2.events.StreamReset):
                raise HttpProtocolError(f"stream reset by peer (code {event.error_code})")
        head = {bytes(k).decode(): bytes(v).decode() for k, v in event.headers}
        status = int(head.pop(":status", "0"))
        response = H2Response(self, stream_id, receive, status, head)
        if event.stream_ended is not None:
            response._done = True
        return response

    async def _credit(self, stream_id: int, length: int) -> None:
        if length:
            try:
                self._conn.acknowledge_received_data(length, stream_id)
            except h2.exceptions.StreamClosedError:
                self._conn.increment_flow_control_window(length)
            await self._flush()

    async def _finish(self, stream_id: int, *, reset: bool) -> None:
        self._channels.pop(stream_id, None)
        if reset and self._failed is None:
            try:
                self._conn.reset_stream(stream_id)
            except h2.exceptions.StreamClosedError:
                return
            await self._flush()

    def _fail(self, error: HttpProtocolError) -> None:
        if self._failed is None:
            self._failed = error
        self._window_opened.set()
        for channel in self._channels.values():
            channel.send_nowait(error)
        self._channels.clear()

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    data = await self._stream.receive_some(_READ_SIZE)
                except _BROKEN as exc:
                    raise HttpProtocolError(f"connection lost: {exc}") from exc
                if not data:
                    raise HttpProtocolError("connection closed by peer")
                try:
                    events = self._conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    raise HttpProtocolError(f"h2 protocol error: {exc}") from exc
                for event in events:
                    self._dispatch(event)
                await self._flush()
        except HttpProtocolError as exc:
            self._fail(exc)

    def _dispatch(self, event: Any) -> None:
        stream_id = getattr(event, "stream_id", None)
        if isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window_opened.set()
        if isinstance(event, h2.events.ConnectionTerminated):
            self._fail(HttpProtocolError(f"GOAWAY (code {event.error_code})"))
        elif stream_id and (channel := self._channels.get(stream_id)) is not None:
            channel.send_nowait(event)
        elif isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
            self._conn.increment_flow_control_window(event.flow_controlled_length)

    async def aclose(self) -> None:
        self._fail(HttpProtocolError("client closed"))
        await trio.aclose_forcefully(self._stream)


@asynccontextmanager
async def open_h2_client(origin: Origin, *, insecure: bool = False) -> AsyncIterator[H2Client]:
    """An `H2Client` with its reader task; closes the connection on exit."""
    ssl_context = (
        make_ssl_context(insecure=insecure, alpn=["h2"]) if origin.scheme == "https" else None
    )
    stream = await open_stream(origin, ssl_context)
    if isinstance(stream, trio.SSLStream) and stream.selected_alpn_protocol() != "h2":
        await trio.aclose_forcefully(stream)
        raise ConnectError(f"{origin.authority} did not negotiate h2 by ALPN")
    client = H2Client(origin, stream)
    with single_errors():
        async with trio.open_nursery() as nursery:
            await client._start()
            nursery.start_soon(client._read_loop)
            try:
                yield client
            finally:
                # Close first: an await in the cancelled nursery would raise Cancelled,
                # which the nursery then swallows together with the caller's error.
                with trio.CancelScope(shield=True):
                    await client.aclose()
                nursery.cancel_scope.cancel()
