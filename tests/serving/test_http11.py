"""scalemcp's HTTP/1.1 protocol (scalemcp/serving/http11.py) over real sockets.

Each test speaks raw bytes to a server on port 0: what a request may be (and the status a
bad one gets, with the connection closed), the bodies it may carry, keep-alive and
pipelining, the responses' framing, and that the ASGI scope is the one Hypercorn's
``H11Protocol`` builds for the same bytes (the ``hypercorn`` setting serves as reference).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig

from scalemcp.config import ConnectionSettings
from scalemcp.serving import serve
from scalemcp.serving.h1parse import BadRequest, parse_head

TIMEOUT_S = 10


class Recorder:
    """An ASGI app that records each request's scope and body and answers by path:
    ``/stream`` (no Content-Length: chunked, its head sent before its body), ``/fail``
    (raises before answering), ``/fail-late`` (raises mid-body), ``/over`` (more bytes
    than its Content-Length), anything else: its body echoed with a Content-Length."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.release = trio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.scopes.append(scope)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        path = scope["path"]
        if path == "/fail":
            raise RuntimeError("the app failed")
        if path == "/inject":  # a header that would split the response: refused
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"x-a", b"1\r\nset-cookie: x=1")]})
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await self.release.wait()
            for part in (b"one", b"two"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        length = len(body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % length), (b"x-path", path.encode())]})
        if path == "/fail-late":
            raise RuntimeError("the app failed mid-body")
        await send({"type": "http.response.body", "body": body + (b"!" if path == "/over"
                                                                   else b"")})


def _config(**settings: Any) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    for name, value in settings.items():
        setattr(hc, name, value)
    return hc


@asynccontextmanager
async def served(app: Recorder, http1: str = "scalemcp", **hc: Any) -> AsyncIterator[int]:
    settings = ConnectionSettings(http1_protocol=http1)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, _config(**hc), settings=settings))
        yield int(binds[0].rsplit(":", 1)[1])
        nursery.cancel_scope.cancel()


async def exchange(port: int, data: bytes, *, until_close: bool = True) -> bytes:
    """Send ``data``; everything the server answers until it closes (or 0.3 s of quiet)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        got = b""
        while True:
            with trio.move_on_after(math.inf if until_close else 0.3) as scope:
                chunk = await stream.receive_some(65536)
            if scope.cancelled_caught or not chunk:
                return got
            got += chunk


def heads(answer: bytes) -> list[bytes]:
    return [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(("head", "status"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad(name): v\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n", 400),
    (b"GET / HTTP/1.1\r\nA: \x00\r\nHost: x\r\n", 400),
    (b"GET / HTTP/1.1\r\nAccept: */*\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n", 400),
    (b"GET / HTTP/2.1\r\nHost: x\r\n", 505),
    (b"GET / HTTX/1.1\r\nHost: x\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n", 400),
    (b"GET /\xff HTTP/1.1\r\nHost: x\r\n", 400),
])
def test_a_bad_head_is_refused_with_its_status(head: bytes, status: int) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(head.removesuffix(b"\r\n"))
    assert caught.value.status == status


def test_a_good_head_is_read_as_h11_reads_it() -> None:
    request = parse_head(b"post /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n"
                         b"X-Thing:  spaced value \t\r\nConnection: keep-alive, Upgrade-Insecure")
    assert (request.method, request.target, request.content_length) == ("POST", b"/p?q=1", 5)
    assert request.headers[2] == (b"x-thing", b"spaced value")
    assert request.keep_alive
    assert not request.upgrade
    old = parse_head(b"GET / HTTP/1.0")
    assert old.http10
    assert not old.keep_alive
    assert old.host is None
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").keep_alive


async def test_bad_requests_get_their_status_and_the_connection_closes() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            for request, status in [
                (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", b"400"),
                (b"GET / HTTP/2.1\r\nHost: x\r\n\r\n", b"505"),
                (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br\r\n\r\n", b"501"),
                (b"GET / HTTP/1.1\nHost: x\n\n", b"400"),
                (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
                (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * 20000, b"431"),
                (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 b"400"),
            ]:
                answer = await exchange(port, request)
                assert answer.startswith(b"HTTP/1.1 " + status), (request[:40], answer)
                assert b"\r\nconnection: close\r\n" in answer
            # Only the chunked request with a bad chunk size reached the app.
            assert len(app.scopes) == 1


async def test_bodies_chunked_and_by_length_reach_the_app_whole() -> None:
    app = Recorder()
    chunked = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n1 ; a=\"b\"\r\n \r\n6\r\nworld!\r\n"
               b"0\r\nTrailer-One: 1\r\nTrailer-Two: 2\r\n\r\n")
    by_length = b"POST /l HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nabc\r\n\r\n"
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                for byte in range(len(chunked)):  # one byte at a time: every split point
                    await stream.send_all(chunked[byte:byte + 1])
                await stream.send_all(by_length + GET)
                answer = b""
                while answer.count(b"HTTP/1.1 200") < 3:
                    answer += await stream.receive_some(65536)
            too_many = (b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"0\r\n" + b"T: x\r\n" * 4000 + b"\r\n")
            refused = await exchange(port, too_many)
    # (the last request reached the app, which heard its client leave: an empty body)
    assert app.bodies == [b"hello world!", b"abc\r\n\r\n", b"", b""]
    assert answer.endswith(b"\r\n\r\n/a") or b"x-path: /a" in answer
    assert refused.startswith(b"HTTP/1.1 431")


async def test_expect_100_continue_is_answered_before_the_body_comes() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                      b"Expect: 100-continue\r\n\r\n")
                interim = await stream.receive_some(65536)
                assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
                await stream.send_all(b"ok")
                answer = await stream.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nok")


async def test_http10_closes_unless_asked_to_keep_alive() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            closed = await exchange(port, b"GET /a HTTP/1.0\r\n\r\n" + GET)
            kept = await exchange(
                port, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET,
                until_close=False)
    assert len(heads(closed)) == 1
    assert b"\r\nconnection: close\r\n" in closed
    assert len(heads(kept)) == 2
    assert b"\r\nconnection: keep-alive\r\n" in kept


async def test_connection_close_from_either_side_closes_after_the_response() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app, keep_alive_max_requests=2) as port:
            asked = await exchange(port, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close"
                                         b"\r\n\r\n" + GET)
            capped = await exchange(port, GET * 3)
    assert len(heads(asked)) == 1
    assert b"\r\nconnection: close\r\n" in asked
    assert len(heads(capped)) == 2
    assert capped.count(b"\r\nconnection: close\r\n") == 1


async def test_pipelined_requests_are_answered_in_order_and_head_sends_no_body() -> None:
    app = Recorder()
    pipelined = b"".join(b"%s /%d HTTP/1.1\r\nHost: x\r\n\r\n" % (method, n)
                         for n, method in enumerate([b"GET", b"HEAD", b"GET"]))
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            answer = await exchange(port, pipelined, until_close=False)
    assert [line for line in answer.split(b"\r\n") if line.startswith(b"x-path")] == [
        b"x-path: /0", b"x-path: /1", b"x-path: /2"]
    # The HEAD answer keeps its Content-Length and sends no body: the next head follows.
    assert b"x-path: /1\r\n" in answer
    assert answer.count(b"content-length: 0\r\n") == 3
    assert [scope["method"] for scope in app.scopes] == ["GET", "HEAD", "GET"]


async def test_a_response_without_length_is_chunked_and_its_head_is_not_held() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await stream.receive_some(65536)
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                assert head.endswith(b"\r\n\r\n")
                assert b"\r\ntransfer-encoding: chunked\r\n" in head
                app.release.set()
                body = b""
                while not body.endswith(b"0\r\n\r\n"):
                    body += await stream.receive_some(65536)
    assert body == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"


async def test_an_app_failure_is_a_500_before_the_response_and_a_close_after() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            early = await exchange(port, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
            injected = await exchange(port, b"GET /inject HTTP/1.1\r\nHost: x\r\n\r\n")
            late = await exchange(port, b"GET /fail-late HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
            over = await exchange(port, b"POST /over HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 1\r\n\r\nx" + GET)
    assert early.startswith(b"HTTP/1.1 500 ")
    assert len(heads(early)) == 1
    assert b"\r\nconnection: close\r\n" in early
    assert injected.startswith(b"HTTP/1.1 500 ")
    assert b"set-cookie" not in injected
    # The head announced a length the body never reached: the close tells the client.
    assert len(heads(late)) <= 1
    assert b"x-path: /a" not in late
    assert len(heads(over)) <= 1
    assert b"x-path: /a" not in over


@pytest.mark.parametrize("request_bytes", [
    b"GET /p%20q/r?x=%20 HTTP/1.1\r\nHost: example\r\nX-Raw: A\r\nCookie: a=1\r\n\r\n",
    b"POST /p HTTP/1.0\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nab",
])
async def test_the_scope_is_the_one_hypercorn_builds(request_bytes: bytes) -> None:
    scopes, answers = {}, {}
    for http1 in ("scalemcp", "hypercorn"):
        app = Recorder()
        with trio.fail_after(TIMEOUT_S):
            async with served(app, http1, root_path="/root") as port:
                answers[http1] = await exchange(port, request_bytes, until_close=False)
        scope = dict(app.scopes[0])
        scope.pop("client"), scope.pop("server")  # ports differ
        scope["extensions"] = sorted(scope["extensions"])
        scopes[http1] = scope
    assert scopes["scalemcp"] == scopes["hypercorn"]
    # Each setting served its own protocol (h11 writes no reason phrase).
    assert answers["scalemcp"].startswith(b"HTTP/1.1 200 OK\r\n")
    assert answers["hypercorn"].startswith(b"HTTP/1.1 200 \r\n")


async def test_the_answers_carry_hypercorns_date_and_server_headers() -> None:
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            answer = await exchange(port, GET, until_close=False)
        async with served(Recorder(), include_server_header=False,
                          include_date_header=False) as port:
            bare = await exchange(port, GET, until_close=False)
    assert b"\r\nserver: hypercorn-h11\r\n" in answer
    assert b"\r\ndate: " in answer
    assert b"\r\nserver:" not in bare
    assert b"\r\ndate:" not in bare


async def test_upgrades_and_the_h2_preface_go_to_hypercorns_protocol_mid_connection() -> None:
    app = Recorder()
    h2c = (b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with trio.fail_after(TIMEOUT_S):
        async with served(app) as port:
            upgraded = await exchange(port, GET + h2c, until_close=False)
            h2 = await exchange(port, preface, until_close=False)
    assert upgraded.startswith(b"HTTP/1.1 200 OK\r\n")  # the first request: this protocol
    assert b"HTTP/1.1 101 \r\n" in upgraded
    assert b"\r\nupgrade: h2c\r\n" in upgraded
    assert h2[3:4] == b"\x04"  # an HTTP/2 SETTINGS frame: Hypercorn's H2Protocol answers
    assert [scope["path"] for scope in app.scopes] == ["/a", "/up"]


def test_a_name_seen_before_without_its_colon_is_still_refused() -> None:
    parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nX-Seen: 1")
    with pytest.raises(BadRequest):
        parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nX-Seen")


async def test_over_tls_it_serves_http11_with_the_https_scheme(tmp_path: Path) -> None:
    from scalemcp.security.dev_cert import make_dev_cert

    certfile, keyfile = make_dev_cert(tmp_path, ["127.0.0.1", "localhost"])
    context = ssl.create_default_context(cafile=certfile)
    context.set_alpn_protocols(["http/1.1"])
    app = Recorder()
    with trio.fail_after(TIMEOUT_S):
        async with served(app, certfile=certfile, keyfile=keyfile) as port:
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            stream = trio.SSLStream(tcp, context, server_hostname="localhost")
            async with stream:
                await stream.send_all(GET + b"POST /b HTTP/1.1\r\nHost: x\r\n"
                                            b"Content-Length: 3\r\n\r\nabc")
                answer = b""
                while not answer.endswith(b"\r\n\r\nabc"):
                    answer += await stream.receive_some(65536)
    assert len(heads(answer)) == 2
    assert [(scope["scheme"], scope["path"]) for scope in app.scopes] == [
        ("https", "/a"), ("https", "/b")]
