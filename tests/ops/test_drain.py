"""Graceful drain: /readyz turns 503 at once, open streams end cleanly after the drain.

In process, the drain is begun by hand so every kind of stream can be watched against a
server that still answers probes; then the real thing: ``scalemcp serve`` gets SIGTERM.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from scalemcp.config import Config
from scalemcp.server import asgi_app, hypercorn_config
from scalemcp.serving import serve
from scalemcp.transport.drain import HARD_STOP_MARGIN_S
from tests.harness.client import (
    initialize,
    modern_headers,
    modern_request,
    start_session,
    tool_call,
)
from tests.harness.serve import open_serve
from tests.ops.app import app

MODERN = modern_headers("subscriptions/listen")
LISTEN = modern_request("subscriptions/listen", None, 7)


class Stream:
    """One streamed response, read to its end; records when it ended and how."""

    def __init__(self) -> None:
        self.open = trio.Event()  # the first bytes arrived
        self.ended = trio.Event()
        self.ended_at: float | None = None
        self.error: Exception | None = None

    async def read(self, client: httpx.AsyncClient, method: str, url: str,
                   headers: dict[str, str], body: Any = None) -> None:
        try:
            async with client.stream(method, url, headers=headers, json=body) as response:
                assert response.status_code == 200, response.status_code
                async for _ in response.aiter_raw():
                    self.open.set()
        except httpx.HTTPError as exc:  # e.g. the body was cut before its last chunk
            self.error = exc
        self.ended_at = trio.current_time()
        self.ended.set()


async def _session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    return await start_session(client, url)


async def test_drain_in_process_closes_every_kind_of_stream() -> None:
    config = Config().replace(host="127.0.0.1", port=0, drain_timeout_s=0.5)
    asgi = asgi_app(app, config)
    hc = hypercorn_config(config)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as client:
            base = (await nursery.start(serve, asgi, hc))[0]
            url = base + "/mcp"
            assert (await client.get(base + "/readyz")).status_code == 200
            session = await _session(client, url)
            streams = {name: Stream() for name in ("get", "post", "legacy", "listen")}
            nursery.start_soon(streams["get"].read, client, "GET", url,
                               {**session, "accept": "text/event-stream"})
            nursery.start_soon(streams["post"].read, client, "POST", url, session,
                               tool_call("slow", {"steps": 200}, 2))
            nursery.start_soon(streams["legacy"].read, client, "GET", base + "/sse",
                               {"accept": "text/event-stream"})
            nursery.start_soon(streams["listen"].read, client, "POST", url, MODERN, LISTEN)
            ws = WebSocket()
            nursery.start_soon(ws.run, base.replace("http", "ws") + "/mcp")
            for stream in streams.values():
                await stream.open.wait()
            await ws.open.wait()

            began = trio.current_time()
            asgi.drain.begin()
            assert (await client.get(base + "/readyz")).status_code == 503
            with trio.fail_after(3):
                for stream in streams.values():
                    await stream.ended.wait()
                await ws.ended.wait()
            nursery.cancel_scope.cancel()
    for name, stream in streams.items():
        assert stream.error is None, (name, stream.error)
        assert stream.ended_at is not None
        assert 0.4 <= stream.ended_at - began < 2.0, (name, stream.ended_at - began)
    assert ws.close_code == 1001


class WebSocket:
    def __init__(self) -> None:
        self.open = trio.Event()  # initialized
        self.ended = trio.Event()
        self.close_code: int | None = None

    async def run(self, url: str) -> None:
        async with open_websocket_url(url, subprotocols=["mcp"]) as ws:
            await ws.send_message(json.dumps(initialize()))
            await ws.get_message()
            self.open.set()
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                self.close_code = exc.reason.code
        self.ended.set()


async def test_sigterm_drains_streams_and_exits_zero() -> None:
    with trio.fail_after(40):
        async with open_serve("tests.ops.app:app", "--log-format", "json",
                              "--drain-timeout-s", "1.5") as served:
            url = served.base + "/mcp"
            async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as client:
                session = await _session(client, url)
                get, post = Stream(), Stream()
                nursery.start_soon(get.read, client, "GET", url,
                                   {**session, "accept": "text/event-stream"})
                nursery.start_soon(post.read, client, "POST", url, session,
                                   tool_call("slow", {"steps": 400}, 2))
                await get.open.wait()
                await post.open.wait()

                sent = trio.current_time()
                served.proc.send_signal(signal.SIGTERM)  # to the supervisor, as Kubernetes does
                await served.wait_for(lambda line: "draining" in line)
                probe = await _readyz(served.base)
                assert probe != 200
                # The POST's call (20 s) runs on after its stream ends, until the hard stop.
                with trio.fail_after(1.5 + HARD_STOP_MARGIN_S + 3):
                    code = await served.proc.wait()
            stopped = trio.current_time()
        lines = served.json_lines()
    assert code == 0, served.stderr[-20:]
    for name, stream in (("get", get), ("post", post)):
        assert stream.error is None, (name, stream.error)
        assert stream.ended_at is not None
        assert 1.0 <= stream.ended_at - sent < 4.0, (name, stream.ended_at - sent)
    print(f"\nSIGTERM to exit: {stopped - sent:.1f} s "
          f"(drain 1.5 s + hard stop {HARD_STOP_MARGIN_S:g} s)")
    assert stopped - sent < 1.5 + HARD_STOP_MARGIN_S + 3
    messages = [line["message"] for line in lines]
    assert any(m.startswith("stopping: 1 worker(s) draining") for m in messages), messages
    assert not [line for line in served.stderr if "Traceback" in line]


async def _readyz(base: str) -> int:
    """The status a fresh probe gets during the drain; 0 if it gets no answer (the worker
    accepts no connection any more, so a load balancer's check times out or is refused)."""
    async with httpx.AsyncClient(timeout=0.5) as client:
        try:
            return (await client.get(base + "/readyz")).status_code
        except httpx.TransportError:
            return 0


async def test_second_sigterm_closes_streams_at_once() -> None:
    with trio.fail_after(20):
        async with open_serve("tests.ops.app:app", "--drain-timeout-s", "30") as served:
            url = served.base + "/mcp"
            async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as client:
                session = await _session(client, url)
                get = Stream()
                nursery.start_soon(get.read, client, "GET", url,
                                   {**session, "accept": "text/event-stream"})
                await get.open.wait()
                served.proc.send_signal(signal.SIGTERM)
                await served.wait_for(lambda line: "draining" in line)
                # Not a readiness wait: a repeat within a second counts as the same signal.
                await trio.sleep(1.1)
                again = trio.current_time()
                served.proc.send_signal(signal.SIGTERM)
                with trio.fail_after(5):
                    code = await served.proc.wait()
    assert code == 0
    assert get.error is None
    assert get.ended_at is not None
    assert get.ended_at - again < 3.0
