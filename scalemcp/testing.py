"""Test helpers: serve an app on a real port inside a test.

    async with scalemcp.testing.open_server(app) as url:
        ...  # url == "http://127.0.0.1:PORT/mcp"
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
from hypercorn.trio import serve as hypercorn_serve

from .app.app import App
from .config import Config
from .server import asgi_app, hypercorn_config, shed_admission
from .serving import serve

__all__ = ["open_server"]


@asynccontextmanager
async def open_server(app: App, config: Config | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:0 (``serving_loop``: scalemcp's, or Hypercorn's); yields
    the MCP endpoint URL."""
    config = config or Config()
    config = config.replace(host="127.0.0.1", port=0)
    hc = hypercorn_config(config)
    hc.graceful_timeout = 0.5
    async with trio.open_nursery() as nursery:
        asgi = asgi_app(app, config)
        if config.connections.serving_loop == "scalemcp":
            binds = await nursery.start(partial(serve, asgi, hc, settings=config.connections,
                                                admission=shed_admission(asgi)))
        else:
            binds = await nursery.start(hypercorn_serve, asgi, hc)
        base = binds[0].replace("0.0.0.0", "127.0.0.1")
        try:
            yield base + config.server.path
        finally:
            nursery.cancel_scope.cancel()
