"""What the MCP layer needs from an HTTP client, and the shared connection helpers.

Error tree (all derive from `HttpError`):

- `ConnectError`: the TCP/TLS connection could not be opened.
- `HttpProtocolError`: the peer broke HTTP framing or closed mid-message.

Each simulated MCP client owns one `HttpClient`: a keep-alive pool for
HTTP/1.1 (a request that streams an SSE answer holds its connection until the
body ends, so a second concurrent request opens a second connection), or a
single multiplexed connection for HTTP/2.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

import msgspec
import trio

__all__ = [
    "ConnectError",
    "Headers",
    "HttpClient",
    "HttpError",
    "HttpProtocolError",
    "Origin",
    "Response",
    "open_stream",
    "parse_url",
]

Headers = Sequence[tuple[bytes, bytes]]


class HttpError(Exception):
    """Base of every error the bench HTTP clients raise."""


class ConnectError(HttpError):
    """Opening the connection failed."""


class HttpProtocolError(HttpError):
    """The peer sent something that is not valid HTTP, or closed mid-message."""


class Origin(msgspec.Struct, frozen=True):
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> tuple[Origin, str]:
    """Split ``url`` into its origin and its path (with query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Origin(parts.scheme, parts.hostname, port), path


class Response(Protocol):
    """A response whose body may still be arriving."""

    status: int
    headers: Mapping[str, str]
    """Header names in lower case; a repeated header keeps its last value."""

    def chunks(self) -> AsyncGenerator[bytes, None]:
        """Body bytes as they arrive; ends with the body."""
        ...

    async def read(self) -> bytes:
        """The whole (rest of the) body."""
        ...

    async def aclose(self) -> None:
        """Release the response; a body not read to its end aborts the stream."""
        ...


class HttpClient(Protocol):
    """Sends requests to one origin; see the module docstring for pooling."""

    async def send(self, method: str, path: str, headers: Headers, body: bytes) -> Response:
        """Send a request and return once the response head has arrived."""
        ...

    async def aclose(self) -> None: ...


def make_ssl_context(*, insecure: bool, alpn: Sequence[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    return context


async def open_stream(
    origin: Origin, ssl_context: ssl.SSLContext | None
) -> trio.abc.HalfCloseableStream | trio.SSLStream[trio.SocketStream]:
    """A TCP (or TLS, for https) stream to ``origin``, mapped to `ConnectError`."""
    try:
        if origin.scheme == "https":
            assert ssl_context is not None
            stream = await trio.open_ssl_over_tcp_stream(
                origin.host, origin.port, ssl_context=ssl_context, https_compatible=True
            )
            await stream.do_handshake()
            return stream
        return await trio.open_tcp_stream(origin.host, origin.port)
    except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
        where = f"[{origin.host}]" if ":" in origin.host else origin.host
        raise ConnectError(f"cannot connect to {where}:{origin.port}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The most telling part of a connect failure: "Connection refused", not trio's summary."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
        cause = cause.exceptions[0]
    for err in (cause, exc):
        if isinstance(err, ssl.SSLError):
            return f"TLS: {err.reason or err}"
        if isinstance(err, OSError) and err.errno:
            return os.strerror(err.errno)
    return str(exc) or repr(exc)
