"""Every phase of a connection has a deadline, counted in /metrics; a slowloris is cut.

Served by scalemcp's loop in this process (``scalemcp.testing.open_server``) with short
deadlines; the counters are read from the server's own ``/metrics``.
"""

from __future__ import annotations

import re
import socket

import httpx
import trio

import scalemcp
from examples.quickstart import app
from scalemcp.config import ConnectionSettings
from scalemcp.observability import metrics
from scalemcp.testing import open_server
from tests.harness.client import HEADERS, initialize
from tests.harness.conditions import eventually

from .test_loop import closed_by_server, get, hc_config, served

TRICKLERS = 200  # CI-sized; bench/slowloris.py runs 5,000
PARTIAL_HEAD = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: "


def port_of(url: str) -> int:
    return int(url.split(":")[-1].split("/")[0])


async def timed_out(http: httpx.AsyncClient, url: str, phase: str) -> float:
    text = (await http.get(url.removesuffix("/mcp") + "/metrics")).text
    found = re.search(rf'^scalemcp_connections_timed_out_total{{phase="{phase}"}} (\S+)$',
                      text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_slowloris_is_cut_at_the_head_deadline_while_a_client_is_served() -> None:
    config = scalemcp.Config.from_options(head_timeout_s=2.0, keep_alive_timeout_s=60)
    served: list[float] = []
    closed_after: list[float] = []
    with trio.fail_after(40):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            before = await timed_out(http, url, "head")
            started = trio.current_time()

            async def trickle() -> None:
                stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
                await stream.send_all(PARTIAL_HEAD)
                opened = trio.current_time()
                try:
                    while True:  # a byte every 0.25 s: a per-read timeout would never fire
                        await trio.sleep(0.25)
                        await stream.send_all(b"x")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                # Closed by the server (a write to a closed connection fails): when?
                assert await closed_by_server(stream)
                closed_after.append(trio.current_time() - opened)

            async def normal_client() -> None:
                response = await http.post(url, json=initialize(), headers=HEADERS)
                session = {**HEADERS, "mcp-session-id": response.headers["mcp-session-id"]}
                while trio.current_time() - started < 5:
                    began = trio.current_time()
                    call = {"jsonrpc": "2.0", "id": len(served) + 2, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "m"}}}
                    answer = await http.post(url, json=call, headers=session)
                    assert answer.status_code == 200, answer.text
                    served.append(trio.current_time() - began)
                    await trio.sleep(0.05)

            async with trio.open_nursery() as nursery:
                for _ in range(TRICKLERS):
                    nursery.start_soon(trickle)
                nursery.start_soon(normal_client)
            after = await timed_out(http, url, "head")
    assert len(closed_after) == TRICKLERS
    # Cut at the head deadline (2 s after their connect), not by anything else, and all of
    # them: a late write still lands in the socket buffer, so allow a few trickles more.
    assert min(closed_after) >= 1.5, min(closed_after)
    assert max(closed_after) < 6, max(closed_after)
    assert after - before == TRICKLERS
    # The normal client was answered all along (five seconds, two of them with 200 tricklers
    # open); how fast is for bench/slowloris.py to measure.
    assert len(served) >= 10, served


async def test_a_body_that_stops_coming_is_cut_at_the_body_deadline() -> None:
    config = scalemcp.Config.from_options(body_timeout_s=1.0, keep_alive_timeout_s=60)
    with trio.fail_after(20):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            before = await timed_out(http, url, "body")
            stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
            await stream.send_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                                  b"content-type: application/json\r\n"
                                  b"accept: application/json, text/event-stream\r\n"
                                  b"content-length: 1000\r\n\r\n{\"jsonrpc\":")
            began = trio.current_time()
            assert await closed_by_server(stream)
            assert 0.8 <= trio.current_time() - began < 5
            assert await timed_out(http, url, "body") - before == 1


async def test_a_fresh_connection_that_sends_nothing_is_cut_at_the_head_deadline() -> None:
    config = scalemcp.Config.from_options(head_timeout_s=0.5, keep_alive_timeout_s=60)
    with trio.fail_after(20):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            before = await timed_out(http, url, "head")
            stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
            began = trio.current_time()
            assert await closed_by_server(stream)
            assert 0.4 <= trio.current_time() - began < 3
            assert await timed_out(http, url, "head") - before == 1


async def test_an_idle_keep_alive_connection_is_counted_when_cut() -> None:
    config = scalemcp.Config.from_options(keep_alive_timeout_s=0.5)
    with trio.fail_after(20):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            before = await timed_out(http, url, "idle")
            stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += await stream.receive_some(65536)
            assert await closed_by_server(stream)
            # (httpx's own idle connection may be cut too: at least this one was counted.)
            assert await timed_out(http, url, "idle") - before >= 1


async def test_a_client_that_reads_nothing_is_cut_at_the_send_deadline() -> None:
    send_timed_out = metrics.CONNECTIONS_TIMED_OUT.labels("send")
    before = send_timed_out._value.get()
    settings = ConnectionSettings(send_timeout_s=1.0)
    with trio.fail_after(20):
        async with served(hc_config(keep_alive_timeout=60), settings=settings) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            await stream.send_all(get("/big/2000"))  # 128 MiB: far past any socket buffer
            await trio.sleep(0.5)  # the server's writes fill both buffers, then block
            began = trio.current_time()
            await eventually(lambda: send_timed_out._value.get() > before,  # it gives up...
                             "the send deadline", timeout=5)
            assert 0.3 < trio.current_time() - began < 5
            received = 0
            while chunk := await stream.receive_some(2**20):  # ...and the connection ends
                received += len(chunk)
            assert received < 2000 * 65536  # cut, not finished
