"""The same `HttpClient` interface on httpx, kept to compare against the lean clients.

httpx is imported lazily; it is not a dependency of scalemcp.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from ._base import ConnectError, Headers, HttpProtocolError, Origin

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpxClient"]


class HttpxResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in response.headers.items()}

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        import httpx

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
        import httpx

        self._base = f"{origin.scheme}://{origin.authority}"
        kwargs: dict[str, Any] = {"http2": http2, "verify": not insecure, "timeout": None}
        self._client = httpx.AsyncClient(**kwargs)

    async def send(self, method: str, path: str, headers: Headers, body: bytes) -> HttpxResponse:
        import httpx

        request = self._client.build_request(
            method,
            self._base + path,
            headers=[(k.decode(), v.decode()) for k, v in headers],
            content=body,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.ConnectError as exc:
            raise ConnectError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise HttpProtocolError(str(exc)) from exc
        return HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()
