"""The `HttpClient` interface on httpx: ``--client httpx``, the cross-check of the lean clients.

httpx is what the official Python MCP SDK's HTTP transports are built on, so
a run with it shows what the server under test does for such clients and
checks the hand-written HTTP/1.1 parser against h11. It costs several times
the client CPU (``bench/README.md``). httpx is not a dependency of scalemcp:
this module is imported only for ``--client httpx``, after the CLI checked it
is installed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import httpx

from ._base import ConnectError, Headers, HttpProtocolError, Origin

__all__ = ["HttpxClient"]


class HttpxResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in response.headers.items()}

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise HttpProtocolError(str(exc)) from exc

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    """One `httpx.AsyncClient` (its own keep-alive pool) per simulated MCP client."""

    def __init__(self, origin: Origin, *, http2: bool = False, insecure: bool = False) -> None:
        self._base = f"{origin.scheme}://{origin.authority}"
        # http1=False makes httpx speak h2 by prior knowledge on http:// as the raw client
        # does; with both allowed it would quietly use HTTP/1.1 there.
        self._client = httpx.AsyncClient(
            http1=not http2, http2=http2, verify=not insecure, timeout=None
        )

    async def send(self, method: str, path: str, headers: Headers, body: bytes) -> HttpxResponse:
        request = self._client.build_request(
            method,
            self._base + path,
            headers=[(k.decode(), v.decode()) for k, v in headers],
            content=body,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.ConnectError as exc:
            raise ConnectError(f"connect to {self._base} failed: {exc}") from exc
        except httpx.HTTPError as exc:
            raise HttpProtocolError(str(exc)) from exc
        return HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()
