"""scalemcp's HTTP/1.1 protocol: Hypercorn's ``H11Protocol`` + ``HTTPStream``, in one class.

It stands where Hypercorn's ``H11Protocol`` stands (behind :class:`~.connection.Connection`,
same events: ``handle(RawData | Closed)``, ``send(RawData | Closed | Updated)``) and serves
ASGI as ``HTTPStream`` does (the same scope, Hypercorn's ``_handle`` around the app, its
access log, ``Date``/``Server`` headers), without h11's event objects and per-header
regular expressions (heads are parsed by :mod:`.h1parse`) and with the response head and
its first body written together.

Theory of operation. A connection carries one exchange at a time. ``_reading`` is where the
request side is: a head is awaited (``_HEAD``), a body arrives (``_BODY``: a Content-Length
countdown or a :class:`~.h1parse.ChunkedReader`), or the request is in and its response
is being sent (``_DONE``). Bytes that arrive in ``_DONE`` (a pipelined request) are parsed
only once the response ends, as h11 does: ``handle`` waits, so the reader stops reading
and the client meets TCP backpressure. The response side lives in :class:`_Exchange`, the
``send`` of one app: a complete response either recycles the connection (keep-alive, the
request read in full, the worker not stopping) or closes it.

A request with an ``Upgrade`` header (h2c, WebSocket) or the HTTP/2 preface is handed, with
every byte read so far, to Hypercorn's ``ProtocolWrapper``, which serves the connection
from then on (:attr:`HTTP11Protocol.fallback`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import trio

from . import seam
from .h1parse import BadRequest, ChunkedReader, RequestHead, parse_head
from .tasks import Inbox, TaskGroup

__all__ = ["HTTP11Protocol"]

_HEAD, _BODY, _DONE = range(3)
_REQUEST, _RESPONSE, _CLOSED = range(3)  # an exchange's response, as HTTPStream's states
_PREFACE = b"PRI * HTTP/2.0\r\n"
_STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                 for status in HTTPStatus}
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_BYTES = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_LAST_CHUNK = b"0\r\n\r\n"


class ResponseError(Exception):
    """An app's response HTTP/1.1 cannot carry (raised into the app, as h11 does)."""


class _ServerHeaders:
    """``config.response_headers("h11")`` as bytes, made at most once a second (Date)."""

    __slots__ = ("_config", "_second", "_value")

    def __init__(self) -> None:
        self._config: seam.Config | None = None
        self._second = -1
        self._value = b""

    def get(self, config: seam.Config) -> bytes:
        second = int(time.time())
        if second != self._second or config is not self._config:
            self._value = b"".join(name + b": " + value + b"\r\n"
                                   for name, value in config.response_headers("h11"))
            self._second, self._config = second, config
        return self._value


_server_headers = _ServerHeaders()


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def _empty_response(status: int, config: seam.Config) -> bytes:
    return (_status_line(status) + b"content-length: 0\r\nconnection: close\r\n"
            + _server_headers.get(config) + b"\r\n")


class HTTP11Protocol:
    """One HTTP/1.1 connection (plaintext or TLS), as Hypercorn's ``H11Protocol``."""

    __slots__ = ("_buffer", "_chunked", "_closed", "_exchange", "_left", "_max_head",
                 "_reading", "_requests", "_resume", "app", "client", "config", "context",
                 "fallback", "on_stream", "send", "server", "ssl", "state", "task_group")

    def __init__(self, app: seam.AppWrapper, config: seam.Config,
                 context: seam.WorkerContext, task_group: TaskGroup,
                 state: seam.ConnectionState, ssl: bool, client: tuple[str, int] | None,
                 server: tuple[str, int] | None,
                 send: Callable[[seam.Event], Awaitable[None]]) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.task_group = task_group
        self.state = state
        self.ssl = ssl
        self.client = client
        self.server = server
        self.send = send
        #: Hypercorn's protocol, once a request asked for an upgrade (it serves the rest).
        self.fallback: seam.ProtocolWrapper | None = None
        self._buffer = b""
        self._reading = _HEAD
        self._left = 0  # Content-Length body: bytes still to come
        self._chunked: ChunkedReader | None = None
        self._exchange: _Exchange | None = None
        self._requests = 0
        self._resume: trio.Event | None = None
        self._closed = False
        self._max_head = config.h11_max_incomplete_size
        #: Called when a response begins to stream (its connection waits differently).
        self.on_stream: Callable[[], None] | None = None

    @property
    def receiving_body(self) -> bool:
        """A request body is arriving (the connection's BODY phase)."""
        return self._reading == _BODY

    @property
    def between_requests(self) -> bool:
        """No request in progress (or its response complete), nothing of the next one
        read: bytes read now begin a new request (the loop's admission screens them)."""
        return self._reading == _HEAD and self._exchange is None and not self._buffer

    async def initiate(self) -> None:
        pass

    async def handle(self, event: seam.Event) -> None:
        if self.fallback is not None:
            await self.fallback.handle(event)
        elif isinstance(event, seam.RawData):
            data = event.data
            if not data or self._closed:
                return  # end of file: the Closed that follows ends the exchange
            self._buffer = self._buffer + data if self._buffer else data
            await self._process()
        elif isinstance(event, seam.Closed):
            self._on_closed()

    def _on_closed(self) -> None:
        self._closed = True
        exchange = self._exchange
        if exchange is not None:
            exchange.disconnect()
            # The exchange and this protocol refer to each other: a cycle, freed only by
            # a (rare, gc_threshold raised) full collection, holding the connection.
            self._exchange = None
        if self._resume is not None:
            self._resume.set()

    async def _process(self) -> None:
        try:
            while not self._closed:
                if self._reading == _HEAD:
                    if not await self._read_head():
                        return
                elif self._reading == _BODY:
                    if not await self._read_body():
                        return
                elif not self._buffer:
                    return
                else:  # a pipelined request: parsed once this response ends
                    self._resume = trio.Event()
                    await self._resume.wait()
                    self._resume = None
        except BadRequest as error:
            await self._refuse(error.status)

    async def _refuse(self, status: int) -> None:
        """Answer ``status`` (unless a response began) and close, as Hypercorn does."""
        exchange = self._exchange
        if exchange is None or exchange.state == _REQUEST:
            if exchange is not None:
                exchange.state = _CLOSED
                exchange.dead = True
            await self.send(seam.RawData(_empty_response(status, self.config)))
        elif exchange is not None:
            exchange.dead = True
        self._reading = _DONE
        await self.send(seam.Closed())

    async def _read_head(self) -> bool:
        buf = self._buffer
        if buf[:1] in (b"\r", b"\n"):
            buf = self._buffer = buf.lstrip(b"\r\n")  # blank lines before a request
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._max_head:
                raise BadRequest(431, "request head too large")
            if b"\n\n" in buf or b"\n\r\n" in buf:
                raise BadRequest(400, "bare LF in request head")
            return False
        if end > self._max_head:
            raise BadRequest(431, "request head too large")
        if buf.startswith(_PREFACE):
            await self._hand_over(buf)
            return False
        request = parse_head(buf[:end], raw_names=self.config.h11_pass_raw_headers)
        if request.upgrade:
            await self._hand_over(buf)
            return False
        self._buffer = buf[end + 4:]
        await self._start(request)
        return True

    async def _hand_over(self, data: bytes) -> None:
        """Hypercorn's protocol serves the connection from this request on."""
        self._buffer = b""
        self.fallback = seam.ProtocolWrapper(
            self.app, self.config, self.context, self.task_group, self.state, self.ssl,
            self.client, self.server, self.send, "http/1.1")
        await self.fallback.initiate()
        await self.fallback.handle(seam.RawData(data))

    async def _start(self, request: RequestHead) -> None:
        config = self.config
        if config.server_names and (
                request.host is None or request.host.decode("latin-1") not in config.server_names):
            await self.send(seam.RawData(_empty_response(404, config)))
            self._reading = _DONE
            await self.send(seam.Closed())
            return
        await self.send(seam.Updated(idle=False))
        exchange = _Exchange(self, request)
        self._exchange = exchange
        self._requests += 1
        exchange.inbox = self.task_group.spawn_request(
            self.app, config, exchange.scope, exchange.app_send)
        await self.context.mark_request()
        if request.chunked:
            self._chunked = ChunkedReader(self._max_head)
            self._reading = _BODY
        elif request.content_length:
            self._left = request.content_length
            self._reading = _BODY
        else:
            self._reading = _DONE
            await exchange.inbox.put({"type": "http.request", "body": b"", "more_body": False})
            return
        if request.expect_continue and not self._buffer:
            await self.send(seam.RawData(
                b"HTTP/1.1 100 Continue\r\n" + _server_headers.get(config) + b"\r\n"))

    async def _read_body(self) -> bool:
        exchange = self._exchange
        assert exchange is not None
        buf = self._buffer
        if not buf:
            return False
        if self._chunked is None:
            left = self._left
            if len(buf) <= left:
                data, self._buffer = buf, b""
            else:
                data, self._buffer = buf[:left], buf[left:]
            left = self._left = left - len(data)
            done = not left
        else:
            data, self._buffer, done = self._chunked.read(buf)
        if done:
            self._reading = _DONE
            self._chunked = None
        elif not data:
            return False
        await exchange.inbox.put({"type": "http.request", "body": data, "more_body": not done})
        return True

    async def _recycle(self, exchange: _Exchange) -> None:
        """A response ended: keep the connection for the next request, or close it."""
        if self._closed or exchange is not self._exchange:
            return
        if exchange.keep_alive and self._reading == _DONE and (
                not self.context.terminated.is_set()):
            self._exchange = None
            self._reading = _HEAD
            await self.send(seam.Updated(idle=True))
            if self._resume is not None:
                self._resume.set()
        else:
            await self.send(seam.Closed())


class _Exchange:
    """One request and its response: the ``send`` its app is given."""

    __slots__ = ("_disconnected", "_left", "_mode", "_no_body", "_pending", "_response",
                 "_start_time", "dead", "inbox", "keep_alive", "protocol", "request", "scope",
                 "state")

    def __init__(self, protocol: HTTP11Protocol, request: RequestHead) -> None:
        self.protocol = protocol
        self.request = request
        self.inbox: Inbox
        self.state = _REQUEST
        self.keep_alive = request.keep_alive
        #: Answered with an error by the protocol: the app's response goes nowhere.
        self.dead = False
        self._disconnected = False
        self._start_time = time.time()
        self._response: dict[str, Any] = {}
        self._pending = b""  # the response head, until the first body part
        self._mode = 0  # body framing: 0 none, 1 Content-Length, 2 chunked, 3 until close
        self._left = 0
        self._no_body = False
        self.scope = self._scope()

    def _scope(self) -> dict[str, Any]:
        """The scope Hypercorn's ``HTTPStream`` builds for an HTTP/1.x request."""
        protocol, request = self.protocol, self.request
        path, _, query_string = request.target.partition(b"?")
        return {
            "type": "http",
            "http_version": "1.0" if request.http10 else "1.1",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": request.method,
            "scheme": "https" if protocol.ssl else "http",
            "path": unquote(path.decode("ascii")),
            "raw_path": path,
            "query_string": query_string,
            "root_path": protocol.config.root_path,
            "headers": request.headers,
            "client": protocol.client,
            "server": protocol.server,
            "state": protocol.state.copy(),
            "extensions": {},
        }

    def disconnect(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            self.inbox.disconnect_nowait()

    async def app_send(self, message: dict[str, Any] | None) -> None:
        if message is None:
            await self._app_done()
            return
        kind = message["type"]
        if kind == "http.response.start" and self.state == _REQUEST:
            self._start(message)
            self.state = _RESPONSE
            if self._mode >= 2:  # streamed (SSE...): the head goes out now
                await self._write(self._pending)
                self._pending = b""
                if self.protocol.on_stream is not None:
                    self.protocol.on_stream()
        elif kind == "http.response.body" and self.state == _RESPONSE:
            await self._body(message.get("body", b""), message.get("more_body", False))
        else:
            raise ResponseError(f"Unexpected message type, {kind} given the state "
                                f"{_STATE_NAMES[self.state]}")

    def _start(self, message: dict[str, Any]) -> None:
        # Kept for the access log only: a streamed response lives for hours, and its start
        # message (a dict and its headers) would be held all that time for nothing.
        protocol, request = self.protocol, self.request
        if protocol.config.log.access_logger is not None:
            self._response = message
        status = int(message["status"])
        lines = [_status_line(status)]
        length: bytes | None = None
        chunked = close = app_close = False
        names = _NAMES
        for raw_name, raw_value in message.get("headers", ()):
            value = bytes(raw_value).strip()
            if value.translate(None, _VALUE_BYTES):
                raise ResponseError(f"invalid value of response header {raw_name!r}")
            lname = names.get(raw_name)
            if lname is None:
                name, lname = _check_name(raw_name)
            else:
                name = raw_name
            if lname == b"content-length":
                length = value
            elif lname == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise ResponseError("only Transfer-Encoding: chunked is supported")
                chunked = True
            elif lname == b"connection" and b"close" in value.lower():
                close = app_close = True
            lines.append(name + b": " + value + b"\r\n")
        no_body = request.method == "HEAD" or status < 200 or status in (204, 304)
        if status in (204, 304) or status < 200:
            self._mode = 0
        elif length is not None and not chunked:
            if not length.isdigit():
                raise ResponseError("invalid Content-Length")
            self._mode, self._left = 1, int(length)
        elif request.http10:
            self._mode = 3  # delimited by the close (HEAD: no body, the connection stays)
            if request.method != "HEAD":
                close = True
        else:
            self._mode = 2
            if not chunked:
                lines.append(b"transfer-encoding: chunked\r\n")
        if no_body:
            self._mode = 1 if self._mode == 1 else 0
            self._left = 0
        config = protocol.config
        if (close or not self.keep_alive or protocol.context.terminated.is_set()
                or protocol._requests >= config.keep_alive_max_requests):
            self.keep_alive = False
            if not app_close:
                lines.append(b"connection: close\r\n")
        elif request.http10:
            lines.append(b"connection: keep-alive\r\n")
        lines.append(_server_headers.get(config))
        lines.append(b"\r\n")
        self._pending = b"".join(lines)
        self._no_body = no_body

    async def _body(self, body: bytes, more: bool) -> None:
        mode = self._mode
        if self._no_body or not body:
            data = b""
        elif mode == 1:
            if len(body) > self._left:
                self.dead = True  # the response cannot end well: the close says so
                raise ResponseError("Too much data for declared Content-Length")
            self._left -= len(body)
            data = bytes(body)
        elif mode == 2:
            data = b"%x\r\n" % len(body) + body + b"\r\n"
        else:
            data = bytes(body)
        if not more:
            if mode == 1 and self._left and not self._no_body:
                self.dead = True  # the response cannot end well: the close says so
                raise ResponseError("Too little data for declared Content-Length")
            if mode == 2 and not self._no_body:
                data += _LAST_CHUNK
        if self._pending:
            data = self._pending + data
            self._pending = b""
        await self._write(data)
        if not more:
            self.state = _CLOSED
            await self._end()

    async def _write(self, data: bytes) -> None:
        if data and not self.dead:
            await self.protocol.send(seam.RawData(data))

    async def _end(self) -> None:
        protocol = self.protocol
        await _log_access(protocol.config, self.scope, self._response, self._start_time)
        self.disconnect()  # as HTTPStream's StreamClosed: the app's receive says so
        await protocol._recycle(self)

    async def _app_done(self) -> None:
        """Hypercorn's ``send(None)``: 500 if nothing was sent, close if not finished."""
        self.inbox.abandon()
        if self.state == _CLOSED:
            return
        protocol = self.protocol
        self.keep_alive = False
        if self.state == _REQUEST:
            self.state = _CLOSED
            await self._write(_empty_response(500, protocol.config))
            await _log_access(protocol.config, self.scope, {"status": 500, "headers": []},
                              self._start_time)
        else:
            self.state = _CLOSED
            await self._write(self._pending)
            self._pending = b""
        self.disconnect()
        if not protocol._closed and protocol._exchange is self:
            await protocol.send(seam.Closed())


#: Response header names seen valid (as the app gives them) to their lower-case form:
#: apps send the same few, so each is checked once (bounded).
_NAMES: dict[bytes, bytes] = {}
_MAX_NAMES = 1024


def _check_name(raw_name: bytes) -> tuple[bytes, bytes]:
    """As Hypercorn's ``build_and_validate_headers`` (stripped, no pseudo-header) and
    h11 (a token): the name to write and its lower-case form."""
    name = bytes(raw_name).strip()
    if name[:1] == b":":
        raise ValueError("Pseudo headers are not valid")
    if not name or name.translate(None, _TCHAR):
        raise ResponseError(f"invalid response header name {name!r}")
    lname = name.lower()
    if type(raw_name) is bytes and name == raw_name and len(_NAMES) < _MAX_NAMES:
        _NAMES[raw_name] = lname
    return name, lname


async def _log_access(config: seam.Config, scope: Any, response: Any, start: float) -> None:
    """Hypercorn's access log line (a no-op unless ``accesslog`` is set)."""
    if config.log.access_logger is not None:
        await config.log.access(scope, response, time.time() - start)


_STATE_NAMES = {_REQUEST: "REQUEST", _RESPONSE: "RESPONSE", _CLOSED: "CLOSED"}
