"""One simulated client of the legacy HTTP+SSE transport (2024-11-05).

``open`` GETs the SSE endpoint (the URL given to the bench, e.g. ``/sse``),
waits for the ``endpoint`` event, then starts a reader task that hands each
response on the stream to the request waiting for its id; requests are POSTed
to the announced endpoint (``202``) and their latency runs until the response
arrives on the stream. ``close`` ends the reader and drops the stream.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import trio

from . import messages
from .client import OnMessage, OnRequest, check_response, error_detail
from .errors import McpError, single_errors
from .http import Headers, HttpClient, HttpError, Response
from .messages import Message, ProgressParams
from .sse import SseDecoder, SseEvent

__all__ = ["LegacyClient", "open_legacy_client"]


class _Pending:
    __slots__ = ("done", "message", "on_message", "on_request")

    def __init__(self, on_message: OnMessage | None, on_request: OnRequest | None) -> None:
        self.done = trio.Event()
        self.message: Message | None = None
        self.on_message = on_message
        self.on_request = on_request


class LegacyClient:
    def __init__(
        self, http: HttpClient, sse_path: str, nursery: trio.Nursery, headers: Headers
    ) -> None:
        self.http = http
        self.sse_path = sse_path
        self._nursery = nursery
        self._headers = [(b"content-type", b"application/json"), *headers]
        self._endpoint: str | None = None
        self._stream: Response | None = None
        self._reader: trio.CancelScope | None = None
        self._pending: dict[int | str, _Pending] = {}
        self._by_token: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._broken: Exception | None = None
        """Why the reader stopped early (an unreadable message, a broken stream)."""

    @property
    def is_open(self) -> bool:
        return self._endpoint is not None

    async def open(self) -> None:
        await self.close()
        headers = [(b"accept", b"text/event-stream"), *self._headers[1:]]
        response = await self.http.send("GET", self.sse_path, headers, b"")
        if response.status != 200:
            raise McpError(f"http_{response.status}", await error_detail(response))
        self._stream = response
        self._broken = None
        events = _events(response)
        first = await anext(events, None)
        if first is None or first.event != "endpoint":
            seen = "nothing" if first is None else f"a {first.event!r} event"
            raise McpError("protocol", f"GET {self.sse_path} sent {seen}, not an 'endpoint' event")
        self._endpoint = urljoin(self.sse_path, first.data.decode().strip())
        if urlsplit(self._endpoint).scheme:
            split = urlsplit(self._endpoint)
            self._endpoint = split.path + (f"?{split.query}" if split.query else "")
        self._reader = await self._nursery.start(self._read, events)
        await self.request("initialize", messages.initialize_params(messages.LEGACY_SSE_VERSION))
        await self._post(messages.notification("notifications/initialized"))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None
        self._endpoint = None
        for pending in self._pending.values():
            pending.done.set()

    async def _post(self, body: bytes) -> None:
        if self._endpoint is None:
            raise McpError("session_lost", "no SSE stream")
        response = await self.http.send("POST", self._endpoint, self._headers, body)
        if response.status >= 300:
            if response.status == 404:
                self._endpoint = None
            raise McpError(f"http_{response.status}", await error_detail(response))
        await response.aclose()

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        on_message: OnMessage | None = None,
        on_request: OnRequest | None = None,
    ) -> Message:
        req_id = next(self._ids)
        pending = self._pending[req_id] = _Pending(on_message, on_request)
        token = ((params or {}).get("_meta") or {}).get("progressToken")
        if token is not None:
            self._by_token[str(token)] = pending
        try:
            await self._post(messages.request(req_id, method, params))
            await pending.done.wait()
        finally:
            self._pending.pop(req_id, None)
            if token is not None:
                self._by_token.pop(str(token), None)
        message = pending.message
        if message is None:
            if isinstance(self._broken, McpError):
                raise self._broken
            detail = f": {self._broken}" if self._broken else ""
            raise McpError("session_lost", f"the SSE stream ended before the response{detail}")
        return check_response(message)

    async def _read(
        self,
        events: AsyncGenerator[SseEvent, None],
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                async with aclosing(events):
                    async for event in events:
                        if event.event == "message" and event.data:
                            for message in messages.decode(event.data):
                                await self._dispatch(message, event.id)
            except (McpError, HttpError) as exc:
                self._broken = exc
            self._endpoint = None
            for pending in self._pending.values():
                pending.done.set()

    async def _dispatch(self, message: Message, event_id: str | None) -> None:
        if message.is_response:
            if isinstance(message.id, int | str) and (pending := self._pending.get(message.id)):
                pending.message = message
                pending.done.set()
            return
        if isinstance(message.id, int | str):
            owner = next(iter(self._pending.values()), None)
            if owner is None or owner.on_request is None:
                return
            result = await owner.on_request(message)
            await self._post(messages.response(message.id, result))
            return
        token = None
        if message.method == "notifications/progress":
            progress = messages.decode_part(ProgressParams, message.params, "progress")
            token = str(progress.progress_token)
        target = self._by_token.get(token) if token is not None else None
        if target is not None and target.on_message is not None:
            await target.on_message(message, event_id)


async def _events(response: Response) -> AsyncGenerator[SseEvent, None]:
    decoder = SseDecoder()
    async with aclosing(response.chunks()) as chunks:
        async for chunk in chunks:
            for event in decoder.feed(chunk):
                yield event


@asynccontextmanager
async def open_legacy_client(
    http: HttpClient, sse_path: str, *, headers: Headers = (), timeout_s: float = 30.0
) -> AsyncIterator[LegacyClient]:
    """A `LegacyClient` whose reader tasks live in a nursery closed on exit."""
    with single_errors():
        async with trio.open_nursery() as nursery:
            client = LegacyClient(http, sse_path, nursery, headers)
            try:
                yield client
            finally:
                with trio.move_on_after(min(timeout_s, 2.0)) as scope:
                    scope.shield = True
                    await client.close()
                nursery.cancel_scope.cancel()
