"""Load shedding in the serving loop (serving/admission.py): past capacity, a new HTTP/1.1
request is answered 503 + Retry-After from its bytes, before h11 and the app; the health
paths, upgrades and HTTP/2 pass; the connection stays open when the request's end is known.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import h2.errors
import h2.settings
import httpx
import hyperframe.frame
import pytest
import trio

import scalemcp
from scalemcp.observability.metrics import SHED, SHED_H2
from scalemcp.server import asgi_app, hypercorn_config, shed_admission
from scalemcp.serving import Admission, serve
from scalemcp.serving.admission import CANNOT_DELIMIT, COUNTED
from scalemcp.transport.shedding import Shedder
from tests.harness.client import modern_headers, modern_request
from tests.harness.serve import ServeProcess

from .test_h2_body_deadline import Client as H2Client
from .test_loop import closed_by_server

app = scalemcp.App("admission", version="1.0.0")


@app.tool
async def nap(seconds: float) -> str:
    """Sleep without holding the event loop."""
    await trio.sleep(seconds)
    return "rested"


@app.tool
async def hog(seconds: float) -> str:
    """Compute (hold the event loop), as CPU-bound work does."""
    time.sleep(seconds)  # noqa: ASYNC251 (the point: the event loop is held)
    return "done"


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
async def shedding_server(config: scalemcp.Config, *, read_timeout: float | None = None
                          ) -> AsyncIterator[tuple[int, Counting]]:
    """``read_timeout`` set: the loop reads through the trio stream (as TLS does), not
    the socket directly."""
    config = config.replace(host="127.0.0.1", port=0)
    asgi = asgi_app(app, config)
    counting = Counting(asgi)
    hc = hypercorn_config(config)
    hc.graceful_timeout = 0.5
    hc.read_timeout = read_timeout
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, counting, hc, settings=config.connections,
                                            admission=shed_admission(asgi)))
        yield int(binds[0].rsplit(":", 1)[1]), counting
        nursery.cancel_scope.cancel()


def call(rid: int, seconds: float, tool: str = "nap") -> bytes:
    body = json.dumps(modern_request("tools/call", {"name": tool,
                                                    "arguments": {"seconds": seconds}}, rid))
    headers = modern_headers("tools/call", tool)
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


@pytest.mark.parametrize("read_timeout", [None, 30.0], ids=["socket", "stream"])
async def test_a_client_that_hangs_up_while_shed_is_closed_and_holds_nothing(
        read_timeout: float | None) -> None:
    """On both read paths: after a refusal on a kept connection, the client's end of file
    reaches the protocol as such (never taken for "all of it refused, read on", which
    would spin on the empty reads), so the connection closes; the worker serves on."""
    config = scalemcp.Config.from_options(shed_max_inflight=1)
    with trio.fail_after(20):
        async with shedding_server(config, read_timeout=read_timeout) as (port, counting):
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            await busy.send_all(call(1, 1.0))
            await trio.sleep(0.3)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(call(2, 0))
            head, _ = await answer(client)
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"connection: close" not in head  # kept: the next read is the EOF
            await client.send_eof()
            with trio.fail_after(2):
                assert await closed_by_server(client)
            # The refused request and the hang-up in one read, then the EOF.
            other = await trio.open_tcp_stream("127.0.0.1", port)
            await other.send_all(call(3, 0))
            await other.send_eof()
            with trio.fail_after(2):
                head, _ = await answer(other)
                assert head.startswith(b"HTTP/1.1 503 ")
                assert await closed_by_server(other)
            async with httpx.AsyncClient() as http:
                health = await http.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            assert health.status_code == 200
            head, _ = await answer(busy)
            assert head.startswith(b"HTTP/1.1 200 ")
            await trio.sleep(0.1)
            left = counting.asgi.shedder.inflight
    assert counting.http == 2  # the nap and /healthz
    assert left == 0


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


async def test_a_request_counts_until_its_answer_begins_so_open_listen_streams_hold_no_slot(
        ) -> None:
    """With room for 2 in flight, 3 ``subscriptions/listen`` streams stay open (each
    counted only until its stream's head went out) and a call is still served; a nap in
    progress does hold its slot."""
    config = scalemcp.Config.from_options(shed_max_inflight=2)
    listen = json.dumps(modern_request("subscriptions/listen",
                                       {"notifications": {"toolsListChanged": True}}))
    head = post(listen.encode(), *(f"{k}: {v}".encode()
                                   for k, v in modern_headers("subscriptions/listen").items()))
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
            for stream in streams:
                await stream.send_all(head)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(65536)
                assert data.startswith(b"HTTP/1.1 200 "), data
                assert b"text/event-stream" in data.lower()
            left = counting.asgi.shedder.inflight
            busy = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
            for rid, client in enumerate(busy[:2]):
                await client.send_all(call(rid, 0.5))
            await trio.sleep(0.2)
            await busy[2].send_all(call(9, 0))
            refused, _ = await answer(busy[2])
            for client in busy[:2]:
                served, _ = await answer(client)
                assert served.startswith(b"HTTP/1.1 200 ")
    assert left == 0  # the streams are open, none counted
    assert refused.startswith(b"HTTP/1.1 503 ")  # the two naps held the two slots


def work_call(rid: int, us: int) -> bytes:
    body = json.dumps(modern_request("tools/call", {"name": "work", "arguments": {"us": us}},
                                     rid))
    headers = modern_headers("tools/call", "work")
    return post(body.encode(), *(f"{k}: {v}".encode() for k, v in headers.items()))


def metric(text: str, name: str) -> float:
    return float(text.split(f"\n{name} ")[1].split()[0])


async def test_cpu_bound_overload_is_shed_by_the_adaptive_limit() -> None:
    """A real worker (its own process: a client in the same loop would be held by the
    work too) with the adaptive limit at its measured setting. A burst of 100 requests
    of 5 ms of CPU each is all admitted (the limit starts at 1,024 and nothing lagged
    yet) and makes the loop lag about 0.5 s: the limit falls (scalemcp_shed_limit). A
    second burst is then refused in part, with 503 by the loop; every other request is
    served."""
    server = ServeProcess("bench.targets.scalemcp_server:app", "--workers", "1",
                          "--stateless-only", "--shed-target-lag-s", "0.025")
    try:
        port = server.port or int(server.base.rsplit(":", 1)[1])
        statuses: list[list[bytes]] = [[], []]

        async def one(wave: int, rid: int, client: trio.SocketStream) -> None:
            await client.send_all(work_call(rid, 5000))
            statuses[wave].append((await answer(client))[0][9:12])

        with trio.fail_after(60):
            clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(100)]
            async with httpx.AsyncClient() as http:
                for wave in (0, 1):
                    async with trio.open_nursery() as nursery:
                        for rid, client in enumerate(clients):
                            nursery.start_soon(one, wave, rid, client)
                    if wave == 0:
                        limit = metric((await http.get(server.base + "/metrics")).text,
                                       "scalemcp_shed_limit")
                text = (await http.get(server.base + "/metrics")).text
    finally:
        server.stop()
    assert statuses[0] == [b"200"] * 100
    assert 8 <= limit < 1024
    assert set(statuses[1]) == {b"200", b"503"}, statuses[1]
    assert statuses[1].count(b"200") >= 8
    assert metric(text, 'scalemcp_shed_total{reason="inflight"}') == statuses[1].count(b"503")


# HTTP/2: past capacity a new stream is answered 503 (or refused) before Hypercorn and the
# app, on the connection it came on, which goes on serving.


def h2_call(rid: int, seconds: float) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(modern_request("tools/call", {"name": "nap",
                                                    "arguments": {"seconds": seconds}}, rid))
    headers = [(b":method", b"POST"), (b":path", b"/mcp"), (b":scheme", b"http"),
               (b":authority", b"127.0.0.1")]
    headers += [(k.lower().encode(), v.encode())
                for k, v in modern_headers("tools/call", "nap").items()]
    return headers, body.encode()


async def h2_open(port: int, **settings: int) -> H2Client:
    client = H2Client(await trio.open_tcp_stream("127.0.0.1", port))
    if settings:
        client.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes[k]: v
                                         for k, v in settings.items()})
    client.h2.initiate_connection()
    await client.flush()
    return client


async def h2_send(client: H2Client, stream_id: int, rid: int, seconds: float, *,
                  end: bool = True) -> None:
    headers, body = h2_call(rid, seconds)
    client.h2.send_headers(stream_id, headers)
    client.h2.send_data(stream_id, body if end else body[:-5], end_stream=end)
    await client.flush()


def h2_shed(how: str) -> float:
    return SHED_H2.labels(how)._value.get()


async def test_past_capacity_an_h2_stream_gets_503_before_the_app_and_its_connection_goes_on(
        ) -> None:
    config = scalemcp.Config.from_options(shed_max_inflight=1, shed_retry_after_s=3)
    answered, inflight = h2_shed("503"), SHED.labels("inflight")._value.get()
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            client = await h2_open(port)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read)
                await h2_send(client, 1, 1, 1.0)  # it runs: the worker is at its limit
                await trio.sleep(0.3)
                assert counting.http == 1
                await h2_send(client, 3, 2, 0)  # whole: answered 503, the stream ends
                await client.ended[3].wait()
                await h2_send(client, 5, 3, 0, end=False)  # its body still coming
                await client.ended[5].wait()
                # Its body's rest was on the way already (h2 would not send it now).
                late = hyperframe.frame.DataFrame(5, b"late", flags=["END_STREAM"])
                async with client._sending:
                    await client.stream.send_all(late.serialize())
                assert counting.http == 1  # the app saw neither
                client.h2.send_headers(7, [(b":method", b"GET"), (b":path", b"/healthz"),
                                           (b":scheme", b"http"),
                                           (b":authority", b"127.0.0.1")], end_stream=True)
                await client.flush()
                await client.ended[7].wait()  # never shed, on the same connection
                await client.ended[1].wait()
                await trio.sleep(0.05)  # the nap's task ends: room again
                await h2_send(client, 9, 4, 0)
                await client.ended[9].wait()
                nursery.cancel_scope.cancel()
    assert client.status[3] == client.status[5] == b"503"
    assert json.loads(client.bodies[3])["error"]["code"] == -32603
    assert client.reset[5][0] == h2.errors.ErrorCodes.NO_ERROR  # "stop sending the body"
    assert 3 not in client.reset
    assert client.status[7] == b"200"
    assert client.status[1] == client.status[9] == b"200"
    assert json.loads(client.bodies[9])["result"]["content"][0]["text"] == "rested"
    assert counting.http == 3  # the nap, /healthz and the last call
    assert h2_shed("503") == answered + 2
    assert SHED.labels("inflight")._value.get() == inflight + 2


async def test_an_h2_stream_past_capacity_with_no_window_for_the_answer_is_refused() -> None:
    """A client that gives the server no flow-control window gets RST_STREAM
    REFUSED_STREAM (not processed: safe to retry), never a stream held open."""
    config = scalemcp.Config.from_options(shed_max_inflight=1)
    refused = h2_shed("refused_stream")
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            busy = await h2_open(port)
            client = await h2_open(port, INITIAL_WINDOW_SIZE=0)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(busy.read)
                nursery.start_soon(client.read)
                await h2_send(busy, 1, 1, 1.0)
                await trio.sleep(0.3)
                await h2_send(client, 1, 2, 0)
                await client.ended[1].wait()
                nursery.cancel_scope.cancel()
    assert client.reset[1][0] == h2.errors.ErrorCodes.REFUSED_STREAM
    assert 1 not in client.status
    assert counting.http == 1
    assert h2_shed("refused_stream") == refused + 1


async def test_a_burst_of_h2_streams_in_one_read_cannot_pass_the_limit_together() -> None:
    config = scalemcp.Config.from_options(shed_max_inflight=2)
    with trio.fail_after(20):
        async with shedding_server(config) as (port, counting):
            client = await h2_open(port)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read)
                for n in range(20):  # one write: the server reads them in one batch
                    headers, body = h2_call(n, 0.3)
                    client.h2.send_headers(2 * n + 1, headers)
                    client.h2.send_data(2 * n + 1, body, end_stream=True)
                await client.flush()
                for n in range(20):
                    await client.ended[2 * n + 1].wait()
                await trio.sleep(0.1)
                left = counting.asgi.shedder.inflight
                nursery.cancel_scope.cancel()
    statuses = [client.status[2 * n + 1] for n in range(20)]
    assert statuses.count(b"200") == 2
    assert statuses.count(b"503") == 18
    assert counting.http == 2
    assert left == 0
