"""HTTP clients for the load generator, behind one small interface.

``open_http_client`` picks the implementation: ``raw`` (the default: a
hand-written HTTP/1.1 keep-alive pool on trio streams, the cheapest in client
CPU; numbers in ``bench/README.md``), ``h11`` (the same pool with h11 doing
the framing), ``httpx`` (for comparison); with ``http2`` the lean clients use
one multiplexed h2 connection instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from ._base import (
    ConnectError as ConnectError,
)
from ._base import (
    Headers as Headers,
)
from ._base import (
    HttpClient as HttpClient,
)
from ._base import (
    HttpError as HttpError,
)
from ._base import (
    HttpProtocolError as HttpProtocolError,
)
from ._base import (
    Origin as Origin,
)
from ._base import (
    Response as Response,
)
from ._base import (
    parse_url as parse_url,
)
from .h1 import H1Client
from .h1raw import RawH1Client
from .h2client import open_h2_client
from .httpx_client import HttpxClient

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

ClientImpl = Literal["raw", "h11", "httpx"]


@asynccontextmanager
async def open_http_client(
    origin: Origin, *, impl: ClientImpl = "raw", http2: bool = False, insecure: bool = False
) -> AsyncIterator[HttpClient]:
    """A client for ``origin``; HTTP/2 with ``http2``, else HTTP/1.1 keep-alive."""
    if impl == "httpx":
        client: HttpClient = HttpxClient(origin, http2=http2, insecure=insecure)
        try:
            yield client
        finally:
            await client.aclose()
    elif http2:
        async with open_h2_client(origin, insecure=insecure) as h2client:
            yield h2client
    else:
        client = (
            RawH1Client(origin, insecure=insecure)
            if impl == "raw"
            else H1Client(origin, insecure=insecure)
        )
        try:
            yield client
        finally:
            await client.aclose()
