"""Load shedding in the serving loop (serving/admission.py): past capacity, a new HTTP/1.1
request is answered 503 + Retry-After from its bytes, before h11 and the app; the health
paths, upgrades and HTTP/2 pass; the connection stays open when the request's end is known.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import trio

import scalemcp
from scalemcp.observability.metrics import SHED
from scalemcp.server import asgi_app, hypercorn_config, shed_admission
from scalemcp.serving import Admission, serve
from scalemcp.serving.admission import CANNOT_DELIMIT, COUNTED
from scalemcp.transport.shedding import Shedder
from tests.harness.client import modern_headers, modern_request

from .test_loop import closed_by_server

app = scalemcp.App("admission", version="1.0.0")


@app.tool
async def nap(seconds: float) -> str:
    """Sleep without holding the event loop."""
    await trio.sleep(seconds)
    return "rested"


def post(body: bytes, *extra: bytes, length: int | None = None) -> bytes:
    head = [b"POST /mcp HTTP/1.1", b"host: 127.0.0.1", *extra,
            b"content-length: %d" % (len(body) if length is None else length)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


BODY = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
GET = b"GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def full() -> Admission:
    """An admission whose worker is past capacity (one request in flight, one allowed)."""
    shedder = Shedder(max_inflight=1, max_lag_s=0, retry_after_s=2)
    shedder.inflight = 1
    return Admission(shedder, ["/healthz", "/metrics"], b"{}")


@pytest.mark.parametrize(("data", "expected"), [
    (post(BODY), len(post(BODY))),  # whole: the connection stays open
    (post(BODY) + post(BODY), len(post(BODY))),  # pipelined: the first only
    (post(b""), len(post(b""))),
    (GET, len(GET)),
    (post(BODY[:5], length=len(BODY)), CANNOT_DELIMIT),  # the body still to come
    (b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-le", CANNOT_DELIMIT),  # the head too
    (post(BODY, b"Connection: close"), CANNOT_DELIMIT),
    (post(BODY).replace(b"HTTP/1.1", b"HTTP/1.0"), CANNOT_DELIMIT),
    (post(BODY, b"transfer-encoding: chunked"), CANNOT_DELIMIT),
    (post(BODY, b"content-length: 3"), CANNOT_DELIMIT),  # two lengths
    (post(BODY, b"content-length: -1"), CANNOT_DELIMIT),
    (b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n", None),  # never shed
    (b"GET /metrics?x=1 HTTP/1.1\r\nhost: x\r\n\r\n", None),
    (b"GET /mcp HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n", None),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None),  # HTTP/2: the protocol sheds
    (b"POST /mcp HT", None),  # no request line yet
    (b"\x16\x03\x01\x02\x00", None),  # not HTTP at all
])
def test_what_is_refused_and_how_much_of_the_bytes_it_takes(data: bytes,
                                                             expected: int | None) -> None:
    before = SHED.labels("inflight")._value.get()
    assert full().screen(data) == expected
    counted = SHED.labels("inflight")._value.get() - before
    assert counted == (expected is not None)


def test_under_capacity_work_is_counted_in_flight_and_nothing_else() -> None:
    shedder = Shedder(max_inflight=3, max_lag_s=0, retry_after_s=1)
    admission = Admission(shedder, ["/healthz"], b"{}")
    before = SHED.labels("inflight")._value.get()
    assert admission.screen(post(BODY)) == COUNTED
    assert shedder.inflight == 1
    assert admission.screen(GET) is None  # a stream: open for minutes at no cost
    assert admission.screen(b"POST /healthz HTTP/1.1\r\n\r\n") is None
    assert admission.screen(post(BODY)[:30]) is None  # a head still coming holds no slot
    assert shedder.inflight == 1
    admission.done()
    assert shedder.inflight == 0
    assert SHED.labels("inflight")._value.get() == before


def test_a_lagging_event_loop_is_past_capacity_too() -> None:
    shedder = Shedder(max_inflight=0, max_lag_s=0.1, retry_after_s=1)
    admission = Admission(shedder, [], b"{}")
    assert admission.screen(post(BODY)) == COUNTED
    admission.done()
    shedder.lag_s = 0.5  # as the watcher measures it (transport/shedding.py)
    before = SHED.labels("loop_lag")._value.get()
    assert admission.screen(post(BODY)) == len(post(BODY))
    assert SHED.labels("loop_lag")._value.get() == before + 1
    assert shedder.inflight == 0


def test_the_answers_are_complete_http_responses() -> None:
    admission = full()
    for answer, close in ((admission.keep_alive, False), (admission.close, True)):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nretry-after: 2" in head
        assert (b"\r\nconnection: close" in head) == close
        assert b"\r\ncontent-length: 2" in head
        assert body == b"{}"


class Counting:
    """The ASGI app, counting the HTTP requests that reach it."""

    def __init__(self, asgi: Any) -> None:
        self.asgi = asgi
        self.http = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.http += scope["type"] == "http"
        await self.asgi(scope, receive, send)


@asynccontextmanager
async def shedding_server(config: scalemcp.Config) -> AsyncIterator[tuple[int, Counting]]:
    config = config.replace(host="127.0.0.1", port=0)
    asgi = asgi_app(app, config)
    counting = Counting(asgi)
    hc = hypercorn_config(config)
    hc.graceful_timeout = 0.5
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, counting, hc, settings=config.connections,
                                            admission=shed_admission(asgi)))
        yield int(binds[0].rsplit(":", 1)[1]), counting
        nursery.cancel_scope.cancel()


def call(rid: int, seconds: float) -> bytes:
    body = json.dumps(modern_request("tools/call", {"name": "nap",
                                                    "arguments": {"seconds": seconds}}, rid))
    headers = modern_headers("tools/call", "nap")
    return post(body.encode(), *(f"{k}: {v}".encode() for k, v in headers.items()))


async def answer(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """One response (head, body) of Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head, body


async def test_past_capacity_a_request_is_refused_before_the_app_on_a_kept_connection() -> None:
    config = scalemcp.Config.from_options(shed_max_inflight=1, shed_retry_after_s=3)
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await busy.send_all(call(1, 1.0))
            await trio.sleep(0.3)  # it runs now: the worker is at its limit
            assert counting.http == 1
            await client.send_all(call(2, 0))
            head, body = await answer(client)
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"retry-after: 3" in head
            assert b"connection: close" not in head
            assert json.loads(body)["error"]["code"] == -32603
            assert counting.http == 1  # the app never saw it
            async with httpx.AsyncClient() as http:  # health is never shed
                health = await http.get(f"http://127.0.0.1:{port}/healthz")
            assert health.status_code == 200
            head, _ = await answer(busy)
            assert head.startswith(b"HTTP/1.1 200 ")
            for rid in range(3, 100):  # the same connection, served once the nap's done
                await client.send_all(call(rid, 0))  # (it counts until its answer is out)
                head, body = await answer(client)
                if not head.startswith(b"HTTP/1.1 503 "):
                    break
                await trio.sleep(0.05)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert json.loads(body)["result"]["content"][0]["text"] == "rested"


async def test_a_refused_request_whose_body_is_still_coming_closes_its_connection() -> None:
    config = scalemcp.Config.from_options(shed_max_inflight=1)
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            await busy.send_all(call(1, 1.0))
            await trio.sleep(0.3)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            whole = call(2, 0)
            await client.send_all(whole[:-5])  # the last bytes never come
            head, _ = await answer(client)
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"connection: close" in head
            assert await closed_by_server(client)
            assert counting.http == 1


async def test_a_burst_read_in_one_batch_cannot_pass_the_limit_together() -> None:
    """Counted from its bytes, not when its task starts: of 20 requests arriving at once,
    the limit's worth reach the app, the rest are refused by the loop; then nothing is
    left counted."""
    config = scalemcp.Config.from_options(shed_max_inflight=2)
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(20)]
            heads: list[bytes] = []

            async def one(rid: int, client: trio.SocketStream) -> None:
                await client.send_all(call(rid, 0.5))
                heads.append((await answer(client))[0])

            async with trio.open_nursery() as nursery:
                for rid, client in enumerate(clients):
                    nursery.start_soon(one, rid, client)
            await trio.sleep(0.2)  # the served ones' connections turn idle
            left = counting.asgi.shedder.inflight
    statuses = sorted(head[9:12] for head in heads)
    assert statuses.count(b"200") <= 2
    assert statuses.count(b"503") >= 18
    assert counting.http == statuses.count(b"200")
    assert left == 0
