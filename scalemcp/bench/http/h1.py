"""A lean HTTP/1.1 keep-alive client: h11 over trio streams, nothing else.

A request takes an idle connection from the pool (or opens one), writes the
whole request in one ``send_all`` and reads events until the response head.
The body is read lazily. When the body has been read to its end and both
sides allow reuse, the connection returns to the pool; otherwise it is closed.
A request that fails on a *reused* connection before any response byte arrived
(the server closed an idle keep-alive connection) is retried once on a new one.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Mapping

import h11
import trio

from ._base import (
    Headers,
    HttpProtocolError,
    Origin,
)
from .pool import KeepAlivePool

__all__ = ["H1Client"]

_READ_SIZE = 65536
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError)


class _Connection:
    __slots__ = ("h11", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def next_event(self) -> h11.Event | type[h11.PAUSED]:
        conn = self.h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(_READ_SIZE)
                except _BROKEN as exc:
                    raise HttpProtocolError(f"connection lost: {exc}") from exc
                conn.receive_data(bytes(data))
                continue
            return event  # type: ignore[return-value]

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)


class H1Response:
    """A response on one HTTP/1.1 connection; see `scalemcp.bench.http.Response`."""

    __slots__ = ("_client", "_conn", "_done", "headers", "status")

    def __init__(
        self, client: H1Client, conn: _Connection, status: int, headers: Mapping[str, str]
    ) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self._done = False
        self.status = status
        self.headers = headers

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        if conn is None or self._done:
            return
        while True:
            event = await conn.next_event()
            if type(event) is h11.Data:
                yield bytes(event.data)
            elif type(event) is h11.EndOfMessage:
                self._done = True
                return
            elif type(event) is h11.ConnectionClosed:
                raise HttpProtocolError("connection closed before the body ended")

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done:
            await self._client._release(conn)
        else:
            await conn.close()


class H1Client(KeepAlivePool[_Connection, H1Response]):
    """A keep-alive pool of HTTP/1.1 connections to one origin."""

    def __init__(self, origin: Origin, *, insecure: bool = False, max_idle: int = 4) -> None:
        super().__init__(origin, insecure=insecure, max_idle=max_idle)
        self._host = origin.authority.encode()

    def _wrap(self, stream: trio.abc.Stream) -> _Connection:
        return _Connection(stream)

    async def _exchange(
        self, conn: _Connection, method: str, path: str, headers: Headers, body: bytes
    ) -> H1Response:
        all_headers = [(b"host", self._host), (b"content-length", b"%d" % len(body)), *headers]
        c = conn.h11
        data = c.send(h11.Request(method=method, target=path, headers=all_headers))
        assert data is not None
        if body:
            data += c.send(h11.Data(data=body)) or b""
        data += c.send(h11.EndOfMessage()) or b""
        try:
            await conn.stream.send_all(data)
        except _BROKEN as exc:
            raise HttpProtocolError(f"send failed: {exc}") from exc
        while True:
            event = await conn.next_event()
            if type(event) is h11.Response:
                break
            if type(event) is h11.ConnectionClosed:
                raise HttpProtocolError("connection closed before the response")
            # h11.InformationalResponse (1xx) is skipped
        head = {name.decode(): value.decode() for name, value in event.headers}
        response = H1Response(self, conn, event.status_code, head)
        if method == "HEAD" or event.status_code in (204, 304):
            response._done = await _drain_end(conn)
        return response

    async def _release(self, conn: _Connection) -> None:
        c = conn.h11
        if (
            not self._closed
            and c.our_state is h11.DONE
            and c.their_state is h11.DONE
            and len(self._idle) < self._max_idle
        ):
            c.start_next_cycle()
            self._idle.append(conn)
        else:
            await conn.close()



async def _drain_end(conn: _Connection) -> bool:
    event = await conn.next_event()
    return type(event) is h11.EndOfMessage
