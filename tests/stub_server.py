"""Small real HTTP servers for tests: an ASGI callable served by Hypercorn's trio worker on
an ephemeral loopback port (JWKS endpoints, token introspection, an OTLP collector)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

Handler = Callable[[dict[str, Any], bytes, Any], Awaitable[None]]


@asynccontextmanager
async def serving(handle: Handler) -> AsyncIterator[str]:
    """Serve ``handle(scope, body, send)`` for every HTTP request; yields the base URL.

    Lifespan events are answered here and the request body is read whole first, so a
    handler only looks at the request and sends its answer.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await handle(scope, body, send)

    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 0.5
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        try:
            yield binds[0]
        finally:
            nursery.cancel_scope.cancel()


async def send_json(send: Any, body: bytes, status: int = 200) -> None:
    """Answer with ``body`` as application/json."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
