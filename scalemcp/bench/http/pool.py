"""The keep-alive pool both HTTP/1.1 clients share: reuse idle connections, retry once."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

import trio

from ._base import ConnectError, Headers, HttpProtocolError, Origin, make_ssl_context, open_stream

__all__ = ["KeepAlivePool"]


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)
R = TypeVar("R")


class KeepAlivePool(Generic[C, R]):
    """Subclasses say how to wrap a stream and run one exchange on a connection."""

    def __init__(self, origin: Origin, *, insecure: bool = False, max_idle: int = 4) -> None:
        self._origin = origin
        self._ssl = (
            make_ssl_context(insecure=insecure, alpn=["http/1.1"])
            if origin.scheme == "https"
            else None
        )
        self._idle: list[C] = []
        self._max_idle = max_idle
        self._closed = False

    def _wrap(self, stream: trio.abc.Stream) -> C:
        raise NotImplementedError

    async def _exchange(
        self, conn: C, method: str, path: str, headers: Headers, body: bytes
    ) -> R:
        raise NotImplementedError

    async def send(self, method: str, path: str, headers: Headers, body: bytes) -> R:
        # A reused connection may have been closed by the server meanwhile: retry once fresh.
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

    async def _open(self) -> C:
        if self._closed:
            raise ConnectError("client is closed")
        return self._wrap(await open_stream(self._origin, self._ssl))

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
