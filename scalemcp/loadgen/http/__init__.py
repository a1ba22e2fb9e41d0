"""HTTP clients for the load generator, behind one small interface (`HttpClient`).

``open_http_client`` picks the implementation: ``raw`` (the default: a
hand-written HTTP/1.1 keep-alive pool on trio streams, the cheapest in client
CPU), or with ``http2`` one multiplexed h2 connection; ``httpx`` runs the same
requests through httpx (h11 / h2 underneath), the client real MCP SDK clients
use, as a cross-check of the lean ones (measurements in ``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from ._base import (
    ConnectError,
    Headers,
    HttpClient,
    HttpError,
    HttpProtocolError,
    Origin,
    Response,
    parse_url,
)
from .h1 import H1Client
from .h2client import open_h2_client

__all__ = [
    "ClientImpl",
    "ConnectError",
    "Headers",
    "HttpClient",
    "HttpError",
    "HttpProtocolError",
    "Origin",
    "Response",
    "open_http_client",
    "parse_url",
]

ClientImpl = Literal["raw", "httpx"]


@asynccontextmanager
async def open_http_client(
    origin: Origin, *, impl: ClientImpl = "raw", http2: bool = False, insecure: bool = False
) -> AsyncIterator[HttpClient]:
    """A client for ``origin``; HTTP/2 with ``http2``, else HTTP/1.1 keep-alive."""
    if impl == "httpx":
        from .httpx_client import HttpxClient  # httpx is optional

        client: HttpClient = HttpxClient(origin, http2=http2, insecure=insecure)
    elif http2:
        async with open_h2_client(origin, insecure=insecure) as h2client:
            yield h2client
        return
    else:
        client = H1Client(origin, insecure=insecure)
    try:
        yield client
    finally:
        await client.aclose()
