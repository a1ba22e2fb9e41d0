"""Small ASGI helpers: request headers, bounded body reads, plain responses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, PayloadTooLarge, WireError
from ..protocol import jsonrpc

if TYPE_CHECKING:
    from ..serving.clock import Clock
    from .drain import Drain
    from .send_guard import SendGuard

Scope = dict[str, Any]
Message = dict[str, Any]


class ClientGone(Exception):
    """The client hung up mid-request: nothing can be answered, nothing is wrong here."""


#: Header names seen (as the server gives them) to their decoded lower-case form: clients
#: send the same few, and a name decoded once is shared by every request that holds it
#: (an open stream holds its request for hours). Bounded.
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 1024


def _name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_NAMES) < _MAX_NAMES and type(raw) is bytes:
        _NAMES[raw] = name
    return name


class HeaderView(Mapping[str, str]):
    """A request's headers by lower-case name, read from the ASGI scope's list when asked
    (repeated names joined with ", ", as :class:`Request` does) rather than held decoded in
    a dict: what an open stream keeps instead (it looks at its headers rarely, if ever, and
    lives for hours; the dict and its strings are about 0.6 KiB)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        key = name.encode("latin-1")
        found: str | None = None
        for k, v in self._raw:
            if len(k) == len(key) and k.lower() == key:
                value = v.decode("latin-1")
                found = value if found is None else f"{found}, {value}"
        return default if found is None else found

    def __getitem__(self, name: str) -> str:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return str(found)

    def __iter__(self) -> Iterator[str]:
        return iter({k.decode("latin-1").lower(): None for k, _ in self._raw})

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._raw})


class Request:
    __slots__ = (
        "_send",
        "body_read",
        "clock",
        "closing",
        "extra_headers",
        "guard",
        "headers",
        "method",
        "path",
        "query",
        "receive",
        "rpc_id",
        "scope",
        "send_timeout_s",
        "started",
        "status",
    )

    def __init__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.started = False
        self.status = 0
        #: The body has been read (or reading it failed): nothing is left to drain.
        self.body_read = False
        #: The JSON-RPC id of the request this POST carries, once known (for errors).
        self.rpc_id: int | str | None = None
        #: The serving server's drain: streams end when it closes them (None: no server).
        self.closing: Drain | None = None
        #: Added to the response start (security headers, CORS).
        self.extra_headers: list[tuple[bytes, bytes]] = []
        #: SSE streams: how long the client may take to accept 64 KiB (0: no limit), and
        #: the guard enforcing it while one is open (``send_guard.guard_sends``).
        self.send_timeout_s = 0.0
        self.guard: SendGuard | None = None
        #: The app's clock, for the guard's deadlines (None, or not running: a task each).
        self.clock: Clock | None = None
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        headers: dict[str, str] = {}
        names = _NAMES
        for k, v in scope["headers"]:
            name = names.get(k)
            if name is None:
                name = _name(k)
            value = v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers: Mapping[str, str] = headers

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            if self.extra_headers:
                message = {**message, "headers": [*message["headers"], *self.extra_headers]}
        if self.guard is not None:
            await self.guard.send(message)
        else:
            await self._send(message)

    @property
    def raw_send(self) -> Any:
        """The server's ASGI ``send``, unguarded."""
        return self._send

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    async def body(self, limit: int) -> bytes:
        """The whole body; :class:`PayloadTooLarge` past ``limit`` bytes."""
        self.body_read = True
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone("the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, limit: int) -> PayloadTooLarge:
        # The rest of the body stays unread, so the connection cannot carry another
        # request: the error says so (Connection: close), or a client reusing it would
        # get no answer to its next one.
        return PayloadTooLarge(f"request body exceeds {limit} bytes")

    async def drain(self, limit: int) -> None:
        """Read and discard the body, so an early answer leaves the connection clean."""
        if self.method in ("GET", "HEAD", "DELETE"):
            return
        with contextlib.suppress(PayloadTooLarge, InvalidRequest, ClientGone):
            await self.body(limit)

    async def respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        raw = list(headers or [])
        if content_type is not None:
            raw.append((b"content-type", content_type.encode()))
        raw.append((b"content-length", str(len(body)).encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        await self.send({"type": "http.response.body", "body": body})

    async def respond_json(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        await self.respond(status, body, content_type="application/json", headers=headers)

    async def respond_error(
        self,
        status: int,
        error: WireError,
        request_id: int | str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        extra = error.http_headers()
        if extra:
            headers = [*(headers or []), *extra]
        await self.respond_json(status, jsonrpc.encode_error(request_id, error), headers)


def accepts(accept: str | None, *types: str) -> bool:
    """True if the Accept header admits every one of ``types``."""
    if accept is None:
        return False
    offered = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if "*/*" in offered:
        return True
    return all(t in offered or f"{t.split('/')[0]}/*" in offered for t in types)


def is_json_content(content_type: str | None) -> bool:
    return content_type is not None and (
        content_type.split(";")[0].strip().lower() == "application/json"
    )
