"""scalemcp's serving loop, on a bare ASGI app: what it does per connection and per request.

The whole suite runs on this loop (``scalemcp.testing.open_server`` and ``scalemcp serve``
use it); these tests pin what it does differently from Hypercorn's, and the behaviours a
connection layer owns: keep-alive, pipelining, the idle clock, max_requests, the stop.
"""

from __future__ import annotations

import gc
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from scalemcp.config import ConnectionSettings
from scalemcp.serving import serve
from scalemcp.serving.connection import Connection

TIMEOUT_S = 20
#: Set when the client of a ``/hold`` stream went away (``bare_app``).
HELD_GONE = trio.Event()


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers ``/sleep/<seconds>`` after sleeping, anything else at once, with its path;
    ``/count`` (slowly) with the number of body bytes and messages it received."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path: str = scope["path"]
    received = messages = 0
    while True:
        message = await receive()
        received += len(message.get("body", b""))
        messages += 1
        if path == "/count":
            await trio.sleep(0.001)  # slower than the client: the inbox fills
        if not message.get("more_body"):
            break
    if path.startswith("/sleep/"):
        await trio.sleep(float(path.removeprefix("/sleep/")))
    if path.startswith("/big/"):  # many chunks: a client that does not read blocks them
        chunks = int(path.removeprefix("/big/"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (chunks * 65536))]})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": b"x" * 65536,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path.startswith(("/stream/", "/hold")):  # a streamed (chunked) response
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(int(path.removeprefix("/stream/")) if path != "/hold" else 1):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        if path == "/hold":  # open until the client goes away
            while (await receive())["type"] != "http.disconnect":
                pass
            HELD_GONE.set()
            return
        await send({"type": "http.response.body", "body": b""})
        return
    body = f"{received} {messages}".encode() if path == "/count" else path.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def hc_config(**settings: Any) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.graceful_timeout = 1.0
    for name, value in settings.items():
        setattr(hc, name, value)
    return hc


@asynccontextmanager
async def served(hc: HypercornConfig, loop: Any = serve,
                 settings: ConnectionSettings | None = None) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        if settings is not None:
            binds = await nursery.start(partial(serve, bare_app, hc, settings=settings))
        else:
            binds = await nursery.start(loop, bare_app, hc)
        yield int(binds[0].rsplit(":", 1)[1])
        nursery.cancel_scope.cancel()


async def connect(port: int) -> trio.SocketStream:
    """A plain connect (``open_tcp_stream`` spawns a task per attempt: the tests count)."""
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


def get(path: str, *, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return b"GET %s HTTP/1.1\r\nhost: t\r\n%s\r\n" % (path.encode(), extra)


async def read_responses(stream: trio.SocketStream, count: int) -> list[bytes]:
    """``count`` response bodies (each a path: they have no CRLF), read in order."""
    data = b""
    bodies: list[bytes] = []
    while len(bodies) < count:
        chunk = await stream.receive_some(65536)
        assert chunk, f"connection closed after {len(bodies)} of {count} responses"
        data += chunk
        while b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            bodies.append(rest[:length])
            data = rest[length:]
    return bodies


async def closed_by_server(stream: trio.SocketStream) -> bool:
    try:
        return await stream.receive_some(65536) == b""
    except trio.BrokenResourceError:
        return True


class Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


@pytest.mark.parametrize(("loop", "at_most_per_request"), [
    (serve, 1.0),            # the app's task only: the keep-alive clock is one task
    (hypercorn_serve, 3.0),  # Hypercorn starts a clock task per request besides
])
async def test_keep_alive_requests_spawn_one_task_each(loop: Any,
                                                      at_most_per_request: float) -> None:
    requests = 50
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config(), loop) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(get("/warm"))
            await read_responses(stream, 1)
            spawns = Spawns()
            trio.lowlevel.add_instrument(spawns)
            try:
                for n in range(requests):
                    await stream.send_all(get(f"/{n}"))
                    assert await read_responses(stream, 1) == [f"/{n}".encode()]
            finally:
                trio.lowlevel.remove_instrument(spawns)
            await stream.aclose()
    assert requests <= spawns.count <= requests * at_most_per_request + 2
    if loop is hypercorn_serve:
        assert spawns.count >= 2 * requests  # what the loop saves, still there upstream


async def test_an_open_connection_is_one_task_its_deadlines_on_the_worker_clock() -> None:
    connections = 30
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config(keep_alive_timeout=0.5)) as port:
            spawns = Spawns()
            trio.lowlevel.add_instrument(spawns)
            try:
                streams = [await connect(port) for _ in range(connections)]
                for n, stream in enumerate(streams):
                    await stream.send_all(get(f"/{n}"))
                    assert await read_responses(stream, 1) == [f"/{n}".encode()]
            finally:
                trio.lowlevel.remove_instrument(spawns)
            # The connection's task and one app task per request: no timer task each...
            assert spawns.count == 2 * connections
            # ...yet each idle connection is still closed at its keep-alive deadline.
            for stream in streams:
                assert await closed_by_server(stream)


async def test_pipelined_requests_are_answered_in_order() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config()) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(get("/sleep/0.2") + get("/a") + get("/sleep/0.05") + get("/b"))
            assert await read_responses(stream, 4) == [b"/sleep/0.2", b"/a", b"/sleep/0.05",
                                                       b"/b"]
            await stream.send_all(get("/last", close=True))
            assert await read_responses(stream, 1) == [b"/last"]
            assert await closed_by_server(stream)


async def test_a_large_body_reaches_the_app_whole_through_its_bounded_inbox() -> None:
    size = 2 * 1024 * 1024
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config()) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            head = b"POST /count HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % size
            chunk = b"x" * 65536
            await stream.send_all(head)
            for _ in range(size // len(chunk)):
                await stream.send_all(chunk)
            [answer] = await read_responses(stream, 1)
            received, messages = map(int, answer.split())
            assert received == size
            assert messages > 10  # more than the inbox holds at once (max_app_queue_size)


async def test_the_idle_clock_runs_between_requests_only() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config(keep_alive_timeout=0.3)) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            # A request running three times the keep-alive timeout is not cut...
            await stream.send_all(get("/sleep/0.9"))
            assert await read_responses(stream, 1) == [b"/sleep/0.9"]
            # ...and the clock starts again from its end, each time.
            for _ in range(3):
                await trio.sleep(0.2)
                await stream.send_all(get("/again"))
                assert await read_responses(stream, 1) == [b"/again"]
            began = trio.current_time()
            assert await closed_by_server(stream)
            assert 0.2 <= trio.current_time() - began < 2.0


async def test_the_worker_stops_after_max_requests() -> None:
    hc = hc_config(max_requests=5, max_requests_jitter=0)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, bare_app, hc)
            port = int(binds[0].rsplit(":", 1)[1])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            for n in range(6):
                await stream.send_all(get(f"/{n}"))
                assert await read_responses(stream, 1) == [f"/{n}".encode()]
            # The sixth request passed the limit: the worker stops by itself (the nursery
            # exits without being cancelled), closing the idle connection.
            assert await closed_by_server(stream)


async def test_a_stop_closes_idle_connections_at_once_and_lets_requests_finish() -> None:
    stop = trio.Event()
    hc = hc_config(keep_alive_timeout=math.inf, graceful_timeout=5.0)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(bare_app, hc, shutdown_trigger=stop.wait,
                                          task_status=task_status))
            port = int(binds[0].rsplit(":", 1)[1])
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            await idle.send_all(get("/first"))
            assert await read_responses(idle, 1) == [b"/first"]
            fresh = await trio.open_tcp_stream("127.0.0.1", port)  # nothing sent yet
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            await busy.send_all(get("/sleep/0.5"))
            await trio.sleep(0.1)
            stop.set()
            began = trio.current_time()
            assert await closed_by_server(idle)
            assert await closed_by_server(fresh)
            assert trio.current_time() - began < 0.3
            assert await read_responses(busy, 1) == [b"/sleep/0.5"]
            assert await closed_by_server(busy)


async def test_a_closed_connection_is_freed_without_the_cyclic_collector() -> None:
    """A worker raises the collector's threshold (gc_tuning.py): what a closed connection
    leaves in reference cycles would wait for a rare full collection (the soak's RSS
    slope). With the collector off, nothing of 20 closed connections may remain."""
    gc.collect()
    gc.disable()
    try:
        with trio.fail_after(TIMEOUT_S):
            async with served(hc_config()) as port:
                for index in range(20):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    await stream.send_all(get(f"/{index}", close=index % 2 == 0))
                    assert await read_responses(stream, 1) == [f"/{index}".encode()]
                    await stream.aclose()
                await trio.sleep(0.2)  # the server has seen each of them end
                left = [o for o in gc.get_objects() if isinstance(o, Connection)]
    finally:
        gc.enable()
    assert left == []


async def read_until(stream: trio.SocketStream, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = await stream.receive_some(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    return data


async def test_a_stream_that_ends_at_once_leaves_its_connection_usable() -> None:
    """A streamed response moves its reader's wait to the worker's idle reads (it wakes
    the reader to do so): a stream that has ended by the time the reader runs must not
    be taken for a closed connection."""
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config()) as port:
            stream = await connect(port)
            for n in range(20):
                await stream.send_all(get(f"/stream/{n % 3}"))
                await read_until(stream, b"0\r\n\r\n")
                await stream.send_all(get(f"/{n}"))
                assert await read_responses(stream, 1) == [f"/{n}".encode()]
            await stream.aclose()


async def test_an_open_stream_hears_its_client_go_away() -> None:
    """Its connection waits in the worker's idle reads: the client's close still reaches
    the app at once."""
    global HELD_GONE
    HELD_GONE = trio.Event()
    with trio.fail_after(TIMEOUT_S):
        async with served(hc_config()) as port:
            stream = await connect(port)
            await stream.send_all(get("/hold"))
            await read_until(stream, b"1\r\nx\r\n")
            await trio.sleep(0.1)  # the reader has moved its wait
            await stream.aclose()
            with trio.fail_after(2):
                await HELD_GONE.wait()
