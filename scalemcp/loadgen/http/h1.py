"""The bench's HTTP/1.1 keep-alive client: a hand-written parser on trio streams.

It only has to talk to servers under test, so it does exactly what that needs:
one ``send_all`` per request (the header block is joined once), a response
head parsed with ``bytes.find``/``split``, and bodies framed by
``Content-Length``, ``Transfer-Encoding: chunked`` or connection close. No
validation beyond what framing needs: a malformed response raises
`HttpProtocolError`. It costs the least client CPU of the clients measured
(``bench/README.md``); ``--client httpx`` (h11 underneath) cross-checks it.

Pooling: a request takes an idle connection (or opens one); when its body has
been read to the end and both sides allow reuse, the connection goes back to
the pool, else it is closed. A request that fails on a *reused* connection
before any response byte arrived (the server closed an idle keep-alive
connection meanwhile) is retried once on a new connection.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Mapping

import trio

from ._base import ConnectError, Headers, HttpProtocolError, Origin, make_ssl_context, open_stream

__all__ = ["H1Client"]

_READ_SIZE = 65536
_MAX_HEAD = 65536
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError)
_FIXED, _CHUNKED, _UNTIL_CLOSE, _EMPTY = range(4)


class _Connection:
    __slots__ = ("buf", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = b""

    async def fill(self) -> bool:
        """Append what arrives to the buffer; False at end of stream."""
        try:
            data = await self.stream.receive_some(_READ_SIZE)
        except _BROKEN as exc:
            raise HttpProtocolError(f"connection lost: {exc}") from exc
        if not data:
            return False
        self.buf = self.buf + data if self.buf else bytes(data)
        return True

    async def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if not await self.fill():
                raise HttpProtocolError("connection closed inside a chunked body")
        line, self.buf = self.buf[:end], self.buf[end + 2 :]
        return line

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpProtocolError(f"bad status line {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError as exc:
        raise HttpProtocolError(f"bad status line {lines[0][:80]!r}") from exc
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep:
            raise HttpProtocolError(f"bad header line {raw[:80]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    keep_alive = parts[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return status, headers, keep_alive


class H1Response:
    """A response on one connection; see `scalemcp.loadgen.http.Response`."""

    __slots__ = (
        "_client",
        "_conn",
        "_done",
        "_keep",
        "_mode",
        "_need_crlf",
        "_remaining",
        "headers",
        "status",
    )

    def __init__(
        self, client: H1Client, conn: _Connection, status: int, headers: dict[str, str]
    ) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self.status = status
        self.headers: Mapping[str, str] = headers
        self._keep = True
        self._remaining = 0
        self._mode = _EMPTY
        self._need_crlf = False
        self._done = False

    def _frame(self, method: str, keep_alive: bool) -> None:
        self._keep = keep_alive
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._mode = _EMPTY
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._mode = _CHUNKED
        elif (length := self.headers.get("content-length")) is not None:
            self._mode, self._remaining = _FIXED, int(length)
        else:
            self._mode, self._keep = _UNTIL_CLOSE, False
        self._done = self._mode == _EMPTY or (self._mode == _FIXED and self._remaining == 0)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        if conn is None:
            return
        while not self._done:
            data = await self._next(conn)
            if data:
                yield data

    async def _next(self, conn: _Connection) -> bytes:
        """The next piece of body (maybe empty); sets ``_done`` at the end."""
        if self._mode == _FIXED:
            data = await self._take(conn)
            self._done = self._remaining == 0
            return data
        if self._mode == _CHUNKED:
            if self._remaining == 0:
                if self._need_crlf and await conn.line():
                    raise HttpProtocolError("chunk not followed by CRLF")
                self._need_crlf = False
                size_line = await conn.line()
                try:
                    size = int(size_line.split(b";", 1)[0], 16)
                except ValueError as exc:
                    raise HttpProtocolError(f"bad chunk size {size_line[:40]!r}") from exc
                if size == 0:
                    while await conn.line():  # trailers end with an empty line
                        pass
                    self._done = True
                    return b""
                self._remaining = size
            data = await self._take(conn)
            self._need_crlf = self._remaining == 0
            return data
        if not conn.buf and not await conn.fill():
            self._done = True
            return b""
        data, conn.buf = conn.buf, b""
        return data

    async def _take(self, conn: _Connection) -> bytes:
        if not conn.buf and not await conn.fill():
            raise HttpProtocolError("connection closed inside the body")
        data = conn.buf[: self._remaining]
        conn.buf = conn.buf[len(data) :]
        self._remaining -= len(data)
        return data

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep:
            await self._client._release(conn)
        else:
            await conn.close()


class H1Client:
    """A keep-alive pool of HTTP/1.1 connections to one origin; see the module docstring."""

    def __init__(self, origin: Origin, *, insecure: bool = False, max_idle: int = 4) -> None:
        self._origin = origin
        self._ssl = (
            make_ssl_context(insecure=insecure, alpn=["http/1.1"])
            if origin.scheme == "https"
            else None
        )
        self._host = b"host: " + origin.authority.encode() + b"\r\n"
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._closed = False

    async def send(self, method: str, path: str, headers: Headers, body: bytes) -> H1Response:
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._open()
        try:
            return await self._exchange(conn, method, path, headers, body)
        except HttpProtocolError:
            await conn.close()
            if not reused:
                raise
        except BaseException:
            await conn.close()
            raise
        conn = await self._open()
        try:
            return await self._exchange(conn, method, path, headers, body)
        except BaseException:
            await conn.close()
            raise

    async def _open(self) -> _Connection:
        if self._closed:
            raise ConnectError("client is closed")
        return _Connection(await open_stream(self._origin, self._ssl))

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def _exchange(
        self, conn: _Connection, method: str, path: str, headers: Headers, body: bytes
    ) -> H1Response:
        lines = [b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()), self._host]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
        lines.append(b"content-length: %d\r\n\r\n" % len(body))
        lines.append(body)
        try:
            await conn.stream.send_all(b"".join(lines))
        except _BROKEN as exc:
            raise HttpProtocolError(f"send failed: {exc}") from exc
        while True:
            while (end := conn.buf.find(b"\r\n\r\n")) < 0:
                if len(conn.buf) > _MAX_HEAD:
                    raise HttpProtocolError("response head too large")
                if not await conn.fill():
                    raise HttpProtocolError("connection closed before the response")
            head, conn.buf = conn.buf[:end], conn.buf[end + 4 :]
            status, response_headers, keep_alive = _parse_head(head)
            if status >= 200 or status == 101:
                break
        response = H1Response(self, conn, status, response_headers)
        response._frame(method, keep_alive)
        return response

    async def _release(self, conn: _Connection) -> None:
        if not self._closed and len(self._idle) < self._max_idle and not conn.buf:
            self._idle.append(conn)
        else:
            await conn.close()

