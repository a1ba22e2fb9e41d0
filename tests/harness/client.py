"""Raw MCP over HTTP: the JSON-RPC messages and headers of each era, sent as given.

For tests that speak the wire protocol themselves (the official SDKs are tested apart):

* :class:`Session`: the session era (2025-03-26, 2025-06-18, 2025-11-25): ``initialize``,
  ``Mcp-Session-Id`` and ``MCP-Protocol-Version`` on every later request, answers in JSON
  or SSE, server requests answered mid-stream, resumption with ``Last-Event-ID``.
* :class:`Stateless`: the stateless era (2026-07-28): ``_meta`` in the body, ``Mcp-Method``
  and ``Mcp-Name`` headers.
* :func:`open_legacy`: the 2024-11-05 HTTP+SSE transport: a GET stream that names the
  endpoint to POST to, answers on the stream.

Each works over any ``httpx.AsyncClient``: a real server's or the in-process one of
``harness.asgi``. A request carries exactly the headers given (httpx's default ``Accept``
and ``Content-Type`` are left out unless given), so header rules can be tested too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .sse import Event, sse_events

ACCEPT = "application/json, text/event-stream"
JSON = "application/json"
SESSION_VERSION = "2025-11-25"
SESSION_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSION = "2026-07-28"
LEGACY_VERSION = "2024-11-05"
#: The client capability a test that answers elicitations declares.
ELICITATION: dict[str, Any] = {"elicitation": {}}
#: The headers of a POST outside a session (initialize).
HEADERS = {"accept": ACCEPT, "content-type": JSON}
#: Versions whose requests carry no MCP-Protocol-Version header.
_NO_VERSION_HEADER = ("2024-11-05", "2025-03-26")

Message = dict[str, Any]
#: Answers a server request (elicitation, sampling...): its result.
ServerRequestHandler = Callable[[Message], Awaitable[Any]]


def request(method: str, params: Any = None, rid: int | str = 1) -> Message:
    message: Message = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: Any = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def result(rid: int | str, value: Any) -> Message:
    """A client's answer to a server request."""
    return {"jsonrpc": "2.0", "id": rid, "result": value}


def tool_call(name: str, arguments: dict[str, Any] | None = None, rid: int | str = 1,
              **meta: Any) -> Message:
    """``tools/call``; ``meta`` becomes ``params._meta`` (e.g. ``progressToken``)."""
    params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
    if meta:
        params["_meta"] = meta
    return request("tools/call", params, rid)


def initialize_params(version: str = SESSION_VERSION,
                      capabilities: dict[str, Any] | None = None,
                      name: str = "harness") -> dict[str, Any]:
    return {"protocolVersion": version, "capabilities": capabilities or {},
            "clientInfo": {"name": name, "version": "1"}}


def initialize(version: str = SESSION_VERSION, capabilities: dict[str, Any] | None = None,
               rid: int | str = 1, name: str = "harness") -> Message:
    return request("initialize", initialize_params(version, capabilities, name), rid)


def modern_meta(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``_meta`` every 2026-07-28 request carries."""
    return {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": capabilities or {}}


def modern_request(method: str, params: dict[str, Any] | None = None, rid: int | str = 1,
                   capabilities: dict[str, Any] | None = None) -> Message:
    """A 2026-07-28 request: its params carry the era's ``_meta``."""
    return request(method, {**(params or {}), "_meta": modern_meta(capabilities)}, rid)


def modern_headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    """The headers of a 2026-07-28 request (``name``: Mcp-Name); ``extra`` adds more."""
    h = {"accept": ACCEPT, "content-type": JSON, "mcp-protocol-version": MODERN_VERSION,
         "mcp-method": method}
    if name is not None:
        h["mcp-name"] = name
    h.update(header_dict(extra))
    return h


def header_dict(extra: dict[str, str]) -> dict[str, str]:
    """Keyword arguments as header names: ``mcp_session_id`` -> ``mcp-session-id``."""
    return {k.replace("_", "-"): v for k, v in extra.items()}


async def post_exactly(http: httpx.AsyncClient, url: str, body: Any,
                       headers: dict[str, str], *, stream: bool = False) -> httpx.Response:
    """POST ``body`` (JSON, or bytes as they are) with exactly ``headers``: httpx's own
    ``Accept`` and ``Content-Type`` are dropped unless given. ``stream``: the body is left
    to read (close the response)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    built = http.build_request("POST", url, content=content, headers=headers)
    given = {name.lower() for name in headers}
    for name in ("accept", "content-type"):
        if name not in given:
            built.headers.pop(name, None)
    return await http.send(built, stream=stream)


class Session:
    """One session-era MCP session over raw HTTP.

    ``auth`` (e.g. an Authorization header) goes on every request; ``capabilities`` are
    the client's, sent with ``initialize``.
    """

    def __init__(self, http: httpx.AsyncClient, url: str, version: str = SESSION_VERSION,
                 *, auth: dict[str, str] | None = None,
                 capabilities: dict[str, Any] | None = None, name: str = "harness") -> None:
        self.http = http
        self.url = url
        self.version = version
        self.auth = auth or {}
        self.capabilities = capabilities or {}
        self.name = name
        self.session_id = ""
        self.next_id = 100

    # -- messages and headers

    def headers(self, **extra: str) -> dict[str, str]:
        """The headers of a request in this session; ``extra`` (``mcp_session_id=...``)
        adds or replaces some."""
        h = {"accept": ACCEPT, "content-type": JSON, **self.auth}
        if self.session_id:
            h["mcp-session-id"] = self.session_id
            if self.version not in _NO_VERSION_HEADER:
                h["mcp-protocol-version"] = self.version
        h.update(header_dict(extra))
        return h

    def stream_headers(self, last_event_id: str | None = None, **extra: str) -> dict[str, str]:
        """The headers of the GET stream (resuming after ``last_event_id``)."""
        h = {**self.headers(**extra), "accept": "text/event-stream"}
        h.pop("content-type", None)
        if last_event_id is not None:
            h["last-event-id"] = last_event_id
        return h

    def request(self, method: str, params: Any = None) -> Message:
        """A request with the next id."""
        self.next_id += 1
        return request(method, params, self.next_id)

    # -- exchanges

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> Message:
        """``initialize`` then ``notifications/initialized``; the initialize answer."""
        message = initialize(self.version, capabilities or self.capabilities, 1, self.name)
        self.session_id = ""
        r = await self.post(message)
        assert r.status_code == 200, r.text
        self.session_id = r.headers["mcp-session-id"]
        answer: Message = r.json()
        r = await self.post(notification("notifications/initialized"))
        assert r.status_code == 202, r.text
        return answer

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` with exactly ``headers`` (default: this session's); read whole."""
        return await post_exactly(self.http, self.url, body,
                                  self.headers() if headers is None else headers)

    async def call(self, method: str, params: Any = None) -> Message:
        """A request answered with JSON (HTTP 200); the JSON-RPC response."""
        message = self.request(method, params)
        r = await self.post(message)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == JSON
        answer: Message = r.json()
        assert answer["id"] == message["id"]
        return answer

    async def exchange(self, message: Message, *, on_request: ServerRequestHandler | None = None,
                       on_event: Callable[[Event], None] | None = None) -> list[Message]:
        """POST ``message`` (200 expected); every message of the answer, JSON or SSE, in
        order. A server request on the stream is answered with ``on_request``'s result
        (POSTed while the stream stays open); ``on_event`` sees every SSE event."""
        async with self.stream(message) as r:
            assert r.status_code == 200, (r.status_code, (await r.aread())[:500])
            if r.headers["content-type"].startswith(JSON):
                return [json.loads(await r.aread())]
            assert r.headers["content-type"].startswith("text/event-stream")
            received: list[Message] = []
            async for event in sse_events(r, complete=True):
                if on_event is not None:
                    on_event(event)
                if not event.data:
                    continue
                incoming = event.message
                received.append(incoming)
                if "method" in incoming and "id" in incoming:
                    assert on_request is not None, f"unexpected server request: {incoming}"
                    answer = await self.post(result(incoming["id"], await on_request(incoming)))
                    assert answer.status_code == 202, (answer.status_code, answer.text)
            return received

    @asynccontextmanager
    async def stream(self, body: Any, headers: dict[str, str] | None = None
                     ) -> AsyncIterator[httpx.Response]:
        """POST, the answer left to read as it arrives (leaving the block hangs up)."""
        r = await post_exactly(self.http, self.url, body,
                               self.headers() if headers is None else headers, stream=True)
        try:
            yield r
        finally:
            await r.aclose()

    @asynccontextmanager
    async def listen(self, last_event_id: str | None = None, **extra: str
                     ) -> AsyncIterator[httpx.Response]:
        """The GET stream (resuming after ``last_event_id``)."""
        async with self.http.stream("GET", self.url,
                                    headers=self.stream_headers(last_event_id, **extra)) as r:
            yield r

    async def resume(self, last_event_id: str) -> list[Event]:
        """Every event after ``last_event_id`` (GET with Last-Event-ID, read to its end)."""
        async with self.listen(last_event_id) as r:
            return await read_events(r)

    async def delete(self, **extra: str) -> httpx.Response:
        headers = self.headers(**extra)
        headers.pop("content-type", None)
        return await self.http.delete(self.url, headers=headers)


async def start_session(http: httpx.AsyncClient, url: str, version: str = SESSION_VERSION,
                        capabilities: dict[str, Any] | None = None) -> dict[str, str]:
    """A new session (``initialize`` + ``notifications/initialized``): the headers every
    later request in it carries."""
    session = Session(http, url, version, capabilities=capabilities)
    await session.initialize()
    return session.headers()


class Stateless:
    """The stateless 2026-07-28 era: every request stands alone."""

    def __init__(self, http: httpx.AsyncClient, url: str, *,
                 auth: dict[str, str] | None = None,
                 capabilities: dict[str, Any] | None = None) -> None:
        self.http = http
        self.url = url
        self.auth = auth or {}
        self.capabilities = capabilities or {}

    def headers(self, method: str, name: str | None = None, **extra: str) -> dict[str, str]:
        return {**modern_headers(method, name), **self.auth, **header_dict(extra)}

    def request(self, method: str, params: dict[str, Any] | None = None,
                rid: int | str = 1) -> Message:
        """A request whose params carry the era's ``_meta``."""
        return modern_request(method, params, rid, self.capabilities)

    async def post(self, body: Any, headers: dict[str, str]) -> httpx.Response:
        return await post_exactly(self.http, self.url, body, headers)

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   name: str | None = None, rid: int | str = 1) -> httpx.Response:
        """``method`` with the headers it needs (``name``: Mcp-Name)."""
        return await self.post(self.request(method, params, rid), self.headers(method, name))

    async def call_tool(self, tool: str, arguments: dict[str, Any] | None = None,
                        rid: int | str = 1) -> httpx.Response:
        return await self.call("tools/call", {"name": tool, "arguments": arguments or {}},
                               tool, rid)


async def modern_call(http: httpx.AsyncClient, url: str, rid: int | str, tool: str,
                      arguments: dict[str, Any] | None = None) -> httpx.Response:
    """A stateless 2026-07-28 ``tools/call`` (``_meta`` in the body, Mcp-Method/Mcp-Name)."""
    return await Stateless(http, url).call_tool(tool, arguments, rid)


async def read_events(response: httpx.Response, limit: int | None = None) -> list[Event]:
    """SSE events, each with an id, until the body ends or ``limit`` events arrived."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events: list[Event] = []
    async for event in sse_events(response, complete=limit is None):
        assert event.id is not None, event
        events.append(event)
        if limit is not None and len(events) >= limit:
            break
    return events


# -- 2024-11-05 -----------------------------------------------------------------------------


class Legacy:
    """A 2024-11-05 session: the GET /sse stream, and the endpoint it named."""

    def __init__(self, http: httpx.AsyncClient, base: str, events: AsyncIterator[Event],
                 endpoint: str, headers: dict[str, str]) -> None:
        self.http = http
        self.base = base
        self.events = events
        self.endpoint = endpoint
        self.headers = headers

    @property
    def messages_url(self) -> str:
        return self.base + self.endpoint

    async def post(self, body: Any, **extra: str) -> httpx.Response:
        headers = {"content-type": JSON, **self.headers, **header_dict(extra)}
        return await post_exactly(self.http, self.messages_url, body, headers)

    async def next_message(self) -> Message:
        """The next JSON-RPC message on the stream."""
        async for event in self.events:
            if event.data and event.event in (None, "message"):
                message: Message = event.message
                return message
        raise AssertionError("the SSE stream ended")

    async def answer_to(self, rid: int | str) -> Message:
        """The next response with id ``rid`` (earlier messages skipped)."""
        while True:
            message = await self.next_message()
            if message.get("id") == rid:
                return message

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> Message:
        r = await self.post(initialize(LEGACY_VERSION, capabilities, 1))
        assert r.status_code == 202, r.text
        answer = await self.answer_to(1)
        r = await self.post(notification("notifications/initialized"))
        assert r.status_code == 202, r.text
        return answer


@asynccontextmanager
async def open_legacy(http: httpx.AsyncClient, base: str, *, sse_path: str = "/sse",
                      headers: dict[str, str] | None = None) -> AsyncIterator[Legacy]:
    """Open ``base + sse_path``; yields once the ``endpoint`` event arrived."""
    headers = headers or {}
    async with http.stream("GET", base + sse_path,
                           headers={"accept": "text/event-stream", **headers}) as r:
        assert r.status_code == 200, (r.status_code, await r.aread())
        events = sse_events(r).__aiter__()
        async for event in events:
            if event.event == "endpoint":
                yield Legacy(http, base, events, event.data, headers)
                return
        raise AssertionError("no endpoint event on the SSE stream")
