"""The ASGI app driven in memory: no socket, no Hypercorn, lifespan included.

    async with open_asgi(app, config) as served, served.client() as http:
        r = await http.post(served.url, json=..., headers=...)

``served.client()`` is an ``httpx.AsyncClient`` whose transport calls the app directly:
each request runs as a task with ASGI ``scope``/``receive``/``send`` in memory, its
response streams back as the app sends it (SSE included), and closing a response before
its end is a client disconnect (``http.disconnect``). The app's lifespan runs around the
block (startup before, shutdown after), as Hypercorn runs it.

What a server adds is kept where tests see it: an exception in the app is logged (ERROR,
with its traceback) and answered 500 if no answer began; an answer the app leaves
unfinished (or cuts with ``send(None)``, as the send guard does) ends the body early, which
httpx reports as a ``RemoteProtocolError``. What needs a socket stays with real servers:
TCP backpressure, HTTP/1.1 and HTTP/2 framing, WebSocket.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import httpx
import trio

import scalemcp
from scalemcp.security.principal import Authenticator
from scalemcp.transport.asgi import ASGIApp

log = logging.getLogger("tests.harness.asgi")
#: How long lifespan shutdown may take before it is cancelled.
SHUTDOWN_S = 10.0
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_client_ports = itertools.count(40000)


class _Exchange:
    """One request/response between the transport and the app."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        self.started = trio.Event()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.disconnected = trio.Event()
        self._body_done = False
        self._chunks = request.stream.__aiter__()  # type: ignore[union-attr]
        self._send_body, self.body = trio.open_memory_channel[bytes](math.inf)

    async def receive(self) -> dict[str, Any]:
        if not self._body_done:
            try:
                chunk = await self._chunks.__anext__()
                return {"type": "http.request", "body": bytes(chunk), "more_body": True}
            except StopAsyncIteration:
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any] | None) -> None:
        if message is None:  # Hypercorn's "the app is done": cut an unfinished answer
            self._send_body.close()
            return
        await trio.lowlevel.checkpoint()
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
            self.started.set()
        elif message["type"] == "http.response.body":
            if self.disconnected.is_set() or self.complete:
                return  # the client went away: what is sent now goes nowhere
            body = message.get("body", b"")
            try:
                if body:
                    self._send_body.send_nowait(body)
                if not message.get("more_body", False):
                    self.complete = True
                    self._send_body.close()
            except trio.ClosedResourceError:
                pass  # cut before (send(None)): nothing more reaches the client

    async def run(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            log.exception("the app failed serving %s %s", scope["method"], scope["path"])
            if not self.started.is_set():
                self.status = 500
                self.headers = [(b"content-length", b"0")]
                self.complete = True
        finally:
            if not self.started.is_set():  # the app ended without an answer
                self.status = self.status or 500
                self.started.set()
            self._send_body.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.exchange.body:
            yield chunk
        if not self.exchange.complete:
            raise httpx.RemoteProtocolError("the server ended the answer before its end")

    async def aclose(self) -> None:
        self.exchange.disconnected.set()


class _Transport(httpx.AsyncBaseTransport):
    def __init__(self, app: ASGIApp, nursery: trio.Nursery,
                 server: tuple[str, int]) -> None:
        self.app = app
        self.nursery = nursery
        self.server = server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scope = {
            "type": "http", "asgi": _ASGI, "http_version": "1.1",
            "method": request.method, "scheme": url.scheme,
            "path": unquote(url.path), "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query, "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", next(_client_ports)), "server": self.server,
            "extensions": {},
        }
        exchange = _Exchange(request)
        self.nursery.start_soon(exchange.run, self.app, scope)
        try:
            await exchange.started.wait()
        except BaseException:  # cancelled (a timeout): the client hangs up
            exchange.disconnected.set()
            raise
        return httpx.Response(exchange.status, headers=exchange.headers, stream=_Body(exchange),
                              extensions={"http_version": b"HTTP/1.1"})


class InProcess:
    """An app served in memory by :func:`open_asgi`."""

    def __init__(self, asgi: ASGIApp, nursery: trio.Nursery, host: str, port: int) -> None:
        self.asgi = asgi
        self.base = f"http://{host}" + (f":{port}" if port != 80 else "")
        self.url = self.base + asgi.config.server.path
        self.transport = _Transport(asgi, nursery, (host, port))

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` talking to the app (``base_url`` is the server's)."""
        return httpx.AsyncClient(transport=self.transport, base_url=self.base, **kwargs)


async def _lifespan(asgi: ASGIApp, to_app: trio.MemoryReceiveChannel[dict[str, Any]],
                    from_app: trio.MemorySendChannel[dict[str, Any]]) -> None:
    async def send(message: dict[str, Any]) -> None:
        await from_app.send(message)

    scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
    await asgi(scope, to_app.receive, send)


@asynccontextmanager
async def open_asgi(app: scalemcp.App | ASGIApp, config: scalemcp.Config | None = None, *,
                    authenticator: Authenticator | None = None, host: str = "127.0.0.1",
                    port: int = 80) -> AsyncIterator[InProcess]:
    """Serve ``app`` (an App, or an ASGIApp built already) in memory for the block.

    Its lifespan starts first (a failed startup raises RuntimeError with the app's
    message); on the way out open requests are cancelled, then the lifespan shuts down.
    ``host``/``port`` are what the app sees as the server's address.
    """
    asgi = app if isinstance(app, ASGIApp) else scalemcp.asgi_app(
        app, config, authenticator=authenticator)
    to_app_send, to_app = trio.open_memory_channel[dict[str, Any]](math.inf)
    from_app, from_app_receive = trio.open_memory_channel[dict[str, Any]](math.inf)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_lifespan, asgi, to_app, from_app)
        to_app_send.send_nowait({"type": "lifespan.startup"})
        started = await from_app_receive.receive()
        if started["type"] != "lifespan.startup.complete":
            nursery.cancel_scope.cancel()
            raise RuntimeError(f"lifespan startup failed: {started.get('message', started)}")
        try:
            async with trio.open_nursery() as exchanges:
                try:
                    yield InProcess(asgi, exchanges, host, port)
                finally:
                    exchanges.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_S) as late:
                to_app_send.send_nowait({"type": "lifespan.shutdown"})
                await from_app_receive.receive()  # lifespan.shutdown.complete
            if late.cancelled_caught:
                log.error("lifespan shutdown took more than %g s", SHUTDOWN_S)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_client(app: scalemcp.App | ASGIApp, config: scalemcp.Config | None = None, *,
                      authenticator: Authenticator | None = None, **client: Any
                      ) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """:func:`open_asgi` and a client of it: yields (the MCP endpoint's URL, the client).
    ``client`` are ``httpx.AsyncClient`` options."""
    async with (open_asgi(app, config, authenticator=authenticator) as served,
                served.client(**client) as http):
        yield served.url, http


def client_of(*served: InProcess, **client: Any) -> httpx.AsyncClient:
    """One client for several apps in memory (each opened with its own ``port``)."""
    assert len({s.base for s in served}) == len(served), "give each app its own port"
    return httpx.AsyncClient(mounts={s.base: s.transport for s in served}, **client)
