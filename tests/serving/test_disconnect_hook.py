"""The serving loop tells the app of a client's hang-up without a task parked in ``receive``.

ASGI's only way to hear a disconnect is ``receive``; a request that must be cancelled when
its client goes (spec 5.2) kept a watcher task for that, one per request and per open
stream. The loop's ``DISCONNECT_HOOK`` extension registers a callback instead: these tests
pin its contract (the inbox) and what the app gets from it over real sockets, on both eras'
cancellable paths, and that Hypercorn's own loop (no hook) still cancels through a task.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import scalemcp
from scalemcp.serving.tasks import Inbox
from scalemcp.testing import open_server

from .test_loop import Spawns

MODERN = "2026-07-28"
TIMEOUT_S = 20


async def test_a_watched_inbox_drops_the_body_and_keeps_the_disconnect() -> None:
    inbox = Inbox(limit=2)
    await inbox.put({"type": "http.request", "body": b"a", "more_body": True})
    gone: list[int] = []
    unregister = inbox.on_disconnect(lambda: gone.append(1))
    for _ in range(10):  # past the limit: dropped, never blocking the connection's reader
        with trio.fail_after(1):
            await inbox.put({"type": "http.request", "body": b"b", "more_body": True})
    assert gone == []
    await inbox.put({"type": "http.disconnect"})
    assert gone == [1]
    assert await inbox.get() == {"type": "http.disconnect"}  # receive still sees it
    unregister()
    await inbox.put({"type": "http.request", "body": b"c"})  # unwatched: queued again
    assert (await inbox.get())["body"] == b"c"


async def test_a_hook_set_after_the_client_left_fires_at_once() -> None:
    inbox = Inbox(limit=4)
    await inbox.put({"type": "http.disconnect"})
    gone: list[int] = []
    inbox.on_disconnect(lambda: gone.append(1))
    assert gone == [1]


async def test_a_reader_blocked_on_a_full_inbox_is_released_by_the_hook() -> None:
    inbox = Inbox(limit=1)
    await inbox.put({"type": "http.request", "body": b"1", "more_body": True})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.put, {"type": "http.request", "body": b"2", "more_body": True})
        await trio.testing.wait_all_tasks_blocked()
        inbox.on_disconnect(lambda: None)
        with trio.fail_after(1):
            await trio.testing.wait_all_tasks_blocked()  # the put returned: nursery ends


def _slow_app() -> tuple[scalemcp.App, trio.Event, trio.Event]:
    app = scalemcp.App("hang-up", version="1.0.0")
    started, cancelled = trio.Event(), trio.Event()

    @app.tool
    async def wait_forever() -> str:
        """Never answers."""
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise
        return "never"

    @app.tool
    def echo(message: str) -> str:
        """Echo."""
        return message

    return app, started, cancelled


def _modern_post(name: str, arguments: dict[str, Any], rid: int = 1) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {
        "name": name, "arguments": arguments, "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    return (b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"accept: application/json, text/event-stream\r\n"
            b"mcp-protocol-version: " + MODERN.encode() + b"\r\n"
            b"mcp-method: tools/call\r\nmcp-name: " + name.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.mark.parametrize("serving_loop", ["scalemcp", "hypercorn"])
async def test_a_stateless_call_is_cancelled_when_its_client_hangs_up(serving_loop: str) -> None:
    app, started, cancelled = _slow_app()
    config = scalemcp.Config.from_options(serving_loop=serving_loop)
    with trio.fail_after(TIMEOUT_S):
        async with open_server(app, config) as url:
            port = int(url.split(":")[-1].split("/")[0])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(_modern_post("wait_forever", {}))
            await started.wait()
            await stream.aclose()
            with trio.fail_after(2):
                await cancelled.wait()


async def test_a_stateless_call_on_the_loop_spawns_no_watcher_task() -> None:
    app, _, _ = _slow_app()
    requests = 40
    with trio.fail_after(TIMEOUT_S):
        async with open_server(app) as url:
            port = int(url.split(":")[-1].split("/")[0])
            stream = await trio.open_tcp_stream("127.0.0.1", port)

            async def call(rid: int) -> None:
                await stream.send_all(_modern_post("echo", {"message": "hi"}, rid))
                data = b""
                while b'"result"' not in data:
                    chunk = await stream.receive_some(65536)
                    assert chunk
                    data += chunk

            await call(0)
            spawns = Spawns()
            trio.lowlevel.add_instrument(spawns)
            try:
                for rid in range(1, requests + 1):
                    await call(rid)
            finally:
                trio.lowlevel.remove_instrument(spawns)
            await stream.aclose()
    # The app's task per request, nothing else (a watcher task would double it).
    assert requests <= spawns.count <= requests + 2
