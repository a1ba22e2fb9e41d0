"""One simulated MCP client over Streamable HTTP: the session era or the modern era.

- ``session``: ``initialize`` (+ ``notifications/initialized``) opens a session;
  every later request carries ``Mcp-Session-Id`` and ``MCP-Protocol-Version``;
  ``close`` sends DELETE. A 404 on a request with a session id means the
  session is gone: the error is reported and the next request re-initializes.
- ``modern`` (2026-07-28): no handshake; every request carries the per-request
  ``_meta`` and the ``MCP-Protocol-Version`` / ``Mcp-Method`` / ``Mcp-Name``
  headers.

Answers may be JSON or SSE. While an SSE answer streams, notifications go to
the caller's ``on_message`` callback and server-to-client requests (e.g.
``elicitation/create``) to ``on_request``, whose result is POSTed back.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Literal

import trio
from msgspec import UNSET

from . import messages
from .errors import McpError
from .http import Headers, HttpClient, Response
from .messages import ErrorObject, InitializeResultHead, Message, RequestId
from .sse import SseDecoder

__all__ = [
    "McpClient",
    "OnMessage",
    "OnRequest",
    "check_response",
    "error_detail",
    "header_value",
    "read_messages",
]

Era = Literal["session", "modern"]
OnMessage = Callable[[Message, str | None], Awaitable[None]]
"""Called with each notification on a response stream and its SSE event id."""
OnRequest = Callable[[Message], Awaitable[dict[str, Any]]]
"""Called with a server-to-client request; returns the JSON-RPC result to send."""

DRAIN_S = 1.0
"""How long to keep reading an SSE answer after its response for the end of the stream."""
_ACCEPT = (b"accept", b"application/json, text/event-stream")
_CONTENT_TYPE = (b"content-type", b"application/json")


def header_value(value: str) -> bytes:
    """``value`` as a header, base64-wrapped when it is not plain visible ASCII."""
    plain = value.isascii() and value.isprintable() and value == value.strip()
    if plain and not (value.startswith("=?base64?") and value.endswith("?=")):
        return value.encode()
    return b"=?base64?" + base64.b64encode(value.encode()) + b"?="


async def read_messages(
    response: Response,
) -> AsyncGenerator[tuple[Message, str | None], None]:
    """Every JSON-RPC message of a JSON or SSE answer, with its SSE event id."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        decoder = SseDecoder()
        async with aclosing(response.chunks()) as chunks:
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    if event.data and event.event == "message":
                        for message in messages.decode(event.data):
                            yield message, event.id
    else:
        body = await response.read()
        if not body:
            return
        for message in messages.decode(body):
            yield message, None


class McpClient:
    """A simulated client; see the module docstring. Not safe for concurrent `open`."""

    def __init__(
        self,
        http: HttpClient,
        path: str,
        *,
        era: Era,
        headers: Headers = (),
        version: str | None = None,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        self.http = http
        self.path = path
        self.era: Era = era
        self.version = version or (
            messages.MODERN_VERSION if era == "modern" else messages.SESSION_VERSION
        )
        self.capabilities = capabilities or {}
        self.session_id: str | None = None
        self._initialized = False
        """Session era: initialize done. A stateless server gives no session id, so the
        id alone cannot say whether this client still has to initialize."""
        self._ids = itertools.count(1)
        self._offered = version
        self._extra = headers
        self._base: list[tuple[bytes, bytes]] = [_ACCEPT, _CONTENT_TYPE, *headers]

    def spawn(self) -> McpClient:
        """A fresh client with the same settings on the same HTTP client (no session)."""
        return McpClient(
            self.http,
            self.path,
            era=self.era,
            headers=self._extra,
            version=self._offered,
            capabilities=self.capabilities,
        )

    @property
    def is_open(self) -> bool:
        return self.era == "modern" or self._initialized

    def next_id(self) -> int:
        return next(self._ids)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Start a session (session era); a no-op for the modern era."""
        if self.era == "modern":
            return
        self.session_id = None
        self._initialized = False
        result = await self.request("initialize", messages.initialize_params(self.version))
        head = messages.decode_part(InitializeResultHead, result.result, "initialize result")
        self.version = head.protocol_version
        await self.notify("notifications/initialized")
        self._initialized = True

    async def close(self) -> None:
        """End the session with DELETE (errors ignored: the run is over)."""
        self._initialized = False
        if self.era != "session" or self.session_id is None:
            return
        headers = self.headers()
        self.session_id = None
        try:
            response = await self.http.send("DELETE", self.path, headers, b"")
            await response.aclose()
        except Exception:
            return

    # -- requests --------------------------------------------------------------

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers every request of this client carries right now."""
        headers = list(self._base)
        if self.era == "modern" or self._initialized or self.session_id is not None:
            headers.append((b"mcp-protocol-version", self.version.encode()))
        if self.session_id is not None:
            headers.append((b"mcp-session-id", self.session_id.encode()))
        return headers

    def build(
        self, method: str, params: dict[str, Any] | None, req_id: int | None
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """Headers and body for one POST; ``req_id=None`` builds a notification."""
        headers = self.headers()
        if self.era == "modern":
            params = dict(params or {})
            params["_meta"] = messages.modern_meta(self.capabilities, params.get("_meta"))
            headers.append((b"mcp-method", method.encode()))
            name = params.get("name", params.get("uri", params.get("taskId")))
            if isinstance(name, str):
                headers.append((b"mcp-name", header_value(name)))
        if req_id is None:
            return headers, messages.notification(method, params)
        return headers, messages.request(req_id, method, params)

    async def post(self, headers: Headers, body: bytes) -> Response:
        """POST a built message; non-2xx statuses raise `McpError`."""
        response = await self.http.send("POST", self.path, headers, body)
        if response.status >= 300:
            detail = await error_detail(response)
            if response.status == 404 and self.session_id is not None:
                self.session_id = None
                self._initialized = False
                raise McpError("session_lost", f"HTTP 404 for the session: {detail}")
            raise McpError(f"http_{response.status}", detail)
        if self.era == "session" and self.session_id is None:
            self.session_id = response.headers.get("mcp-session-id")
        return response

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        headers, body = self.build(method, params, None)
        response = await self.post(headers, body)
        await response.aclose()

    async def respond(self, req_id: RequestId, result: dict[str, Any]) -> None:
        """POST the answer to a server-to-client request (expects 202)."""
        response = await self.post(self.headers(), messages.response(req_id, result))
        await response.aclose()

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        on_message: OnMessage | None = None,
        on_request: OnRequest | None = None,
    ) -> Message:
        """Send a request and return its response message; JSON-RPC errors raise."""
        req_id = self.next_id()
        headers, body = self.build(method, params, req_id)
        response = await self.post(headers, body)
        try:
            return await self.await_response(response, req_id, on_message, on_request)
        finally:
            await response.aclose()

    async def await_response(
        self,
        response: Response,
        req_id: int,
        on_message: OnMessage | None,
        on_request: OnRequest | None,
    ) -> Message:
        """Read an answer until the response to ``req_id``; raises if it never comes."""
        async with aclosing(read_messages(response)) as stream:
            async for message, event_id in stream:
                if message.is_response:
                    if message.id == req_id:
                        await _finish(stream)
                        return check_response(message)
                elif isinstance(message.id, int | str):
                    if on_request is None:
                        raise McpError("unexpected_request", f"server sent {message.method}")
                    await self.respond(message.id, await on_request(message))
                elif on_message is not None:
                    await on_message(message, event_id)
        raise McpError("no_response", f"answer ended without the response to id {req_id}")


async def _finish(messages: AsyncGenerator[tuple[Message, str | None], None]) -> None:
    """Read an SSE answer to its end after the response, so its connection can be reused.

    A server ends the stream right after the response (the final chunk usually
    follows within microseconds); a client that stopped reading there would have to
    close the keep-alive connection and open a new one for its next request, which
    costs both sides a TCP handshake per request that no real client pays. Anything
    still arriving is ignored; a stream still open after `DRAIN_S` is given up (the
    connection is then closed, as before).
    """
    with trio.move_on_after(DRAIN_S):
        async for _ in messages:
            pass


def check_response(message: Message) -> Message:
    """``message`` if it is a result; a JSON-RPC error raises `McpError` ``jsonrpc_<code>``."""
    if message.error is not UNSET:
        raise McpError(f"jsonrpc_{message.error.code}", message.error.message)
    return message


async def error_detail(response: Response) -> str:
    """``HTTP <status>: <start of the body>``; reads and releases ``response``."""
    try:
        body = await response.read()
    finally:
        await response.aclose()
    text = _jsonrpc_error_message(body) or body[:300].decode(errors="replace").strip()
    return f"HTTP {response.status}" + (f": {text}" if text else "")


def _jsonrpc_error_message(body: bytes) -> str | None:
    """The error message of a JSON-RPC error body (it says it best), else None."""
    try:
        decoded = messages.decode(body)
    except McpError:
        return None
    error = decoded[0].error if decoded else UNSET
    return error.message if isinstance(error, ErrorObject) else None
