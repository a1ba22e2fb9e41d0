"""Generated hostile input at the HTTP level, against a real ``scalemcp serve`` process.

Three categories, each in every era (session: 2025-03-26/06-18/11-25 with a live session;
modern: stateless 2026-07-28; legacy: ``GET /sse`` + ``POST /messages``):

* **random bodies**: arbitrary bytes, text, JSON values and JSON-ish token soup;
* **mutated messages**: valid JSON-RPC messages of that era with fields dropped, retyped,
  added, replaced by huge/deep/odd values, wrapped, then sometimes truncated or bit-flipped;
* **spoiled headers**: a valid request whose session id, protocol version,
  ``Last-Event-ID``, ``Mcp-Method``/``Mcp-Name``/``Mcp-Param-*``, content type or accept
  headers are dropped, garbled, near-valid, huge, empty or doubled (POST, GET, DELETE).

Invariants: every answer passes :func:`tests.transport.hostile.check_answer` (no 5xx but
a deliberate 503, no traceback or exception text, JSON bodies are JSON-RPC with error
codes); after every input the era still serves a valid call; at the end the worker is the
same process and its log holds no error or traceback.

``SCALEMCP_FUZZ_EXAMPLES`` sets the examples per test (default 80, about 30 s in all on a
loaded 2-core machine). A long run (2000: 18,000 inputs, about 10 min)::

    SCALEMCP_FUZZ_EXAMPLES=2000 .venv/bin/pytest -p no:cacheprovider -q \\
        tests/transport/test_hostile_fuzz.py

The number of inputs per category is printed in the terminal summary; each test also
asserts it ran at least half its examples, so it cannot pass having sent nothing. The last
tests pin, deterministically, a bug class the fuzz found: a refusal sent before the body
arrived (406, 415, 405, 413) left a keep-alive connection that died under the next request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_counts import COUNTS
from .hostile import (
    ACCEPT,
    LEGACY_VERSION,
    MAX_BODY,
    MODERN_META,
    SESSION_VERSIONS,
    Client,
    Legacy,
    Server,
    encode_headers,
    initialize_params,
    modern_headers,
    modern_pool,
    mutated,
    random_bodies,
    request,
    session_pool,
    spoiled_headers,
)

EXAMPLES = int(os.environ.get("SCALEMCP_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
ERAS = ["session", "modern", "legacy"]


class Target:
    """The server, a client, one live session per era; sends a valid call on demand."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.client = Client(server)
        self.sessions = {v: self._initialize(v) for v in SESSION_VERSIONS}
        self.event_ids = {v: self._finished_stream(v) for v in SESSION_VERSIONS}
        self.request_state = self._request_state()
        self.legacy = Legacy(server)
        self._legacy_init()

    def session_headers(self, version: str) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json",
                   "mcp-session-id": self.sessions[version]}
        if version >= "2025-06-18":
            headers["mcp-protocol-version"] = version
        return headers

    def _initialize(self, version: str) -> str:
        init = request(1, "initialize", initialize_params(version))
        r = self.client.post_json("/mcp", init, {"accept": ACCEPT,
                                                 "content-type": "application/json"})
        assert r.status == 200, r
        sid = r.headers["mcp-session-id"]
        headers = {"accept": ACCEPT, "content-type": "application/json",
                   "mcp-session-id": sid, "mcp-protocol-version": version}
        done = self.client.post_json("/mcp", {"jsonrpc": "2.0",
                                              "method": "notifications/initialized"}, headers)
        assert done.status == 202, done
        return str(sid)

    def _finished_stream(self, version: str) -> str:
        """The id of an event of an SSE answer that has ended (a Last-Event-ID to replay)."""
        call = request(2, "tools/call", {"name": "countdown", "arguments": {"n": 1}})
        r = self.client.post_json("/mcp", call, self.session_headers(version))
        ids = [line[3:].strip() for line in r.body.decode().splitlines()
               if line.startswith("id:")]
        assert ids, r
        return ids[0]

    def _request_state(self) -> str:
        """A real signed requestState from a modern elicitation (to tamper with)."""
        ask = request(3, "tools/call", {"name": "ask", "arguments": {}, "_meta": MODERN_META})
        r = self.client.post_json("/mcp", ask, modern_headers(ask))
        result = r.json()["result"]
        assert result["resultType"] == "input_required", result
        return str(result["requestState"])

    def _legacy_init(self) -> None:
        init = request(4, "initialize", initialize_params(LEGACY_VERSION))
        r = self.client.post_json(self.legacy.endpoint, init,
                                  {"content-type": "application/json"})
        assert r.status == 202, r
        assert "result" in self.legacy.answer_to(4)

    # -- a valid call per era: the server still works ------------------------------------

    def assert_works(self, era: str, version: str = "2025-11-25") -> None:
        rid = self.client.rid()
        call = request(rid, "tools/call", {"name": "echo", "arguments": {"message": "ok"}})
        if era == "legacy":
            r = self.client.post_json(self.legacy.endpoint, call,
                                      {"content-type": "application/json"})
            assert r.status == 202, r
            answer = self.legacy.answer_to(rid)
        else:
            if era == "modern":
                call["params"]["_meta"] = MODERN_META
                r = self.client.post_json("/mcp", call, modern_headers(call))
            else:
                r = self.client.post_json("/mcp", call, self.session_headers(version))
            assert r.status == 200, r
            answer = r.json()
        assert answer["result"]["content"] == [{"type": "text", "text": "ok"}], answer

    def close(self) -> None:
        self.legacy.close()
        self.client.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = Server(Path(tmp_path_factory.mktemp("hostile")))
    try:
        fleet = Target(server)
        workers = server.workers()
        assert len(workers) == 1, workers
        yield fleet
        fleet.close()
        assert server.proc.poll() is None, "the server exited"
        assert server.workers() == workers, "the worker process died and was replaced"
        assert not fleet.legacy.problems, fleet.legacy.problems
    finally:
        log = server.stop()
    bad = [line for line in log.splitlines()
           if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]
    assert not bad, log[-4000:]


def run_counted(key: str, test: Callable[[], None]) -> None:
    """Run a hypothesis test and check it generated at least half its examples."""
    before = COUNTS[key]
    test()
    ran = COUNTS[key] - before
    assert ran >= max(1, EXAMPLES // 2), f"{key}: only {ran} inputs generated"


def body_target(target: Target, era: str, version: str, message: Any = None) -> tuple[
        str, dict[str, str]]:
    """Where a body of this era goes, and the valid headers it goes with."""
    if era == "legacy":
        return target.legacy.endpoint, {"content-type": "application/json"}
    if era == "modern":
        return "/mcp", modern_headers(message)
    return "/mcp", target.session_headers(version)


# -- 1. random bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
def test_random_bodies(target: Target, era: str) -> None:
    key = f"random-body/{era}"

    @FUZZ
    @given(body=random_bodies, version=st.sampled_from(SESSION_VERSIONS),
           method=st.sampled_from(["tools/call", "ping", "initialize", "server/discover"]))
    def check(body: bytes, version: str, method: str) -> None:
        path, headers = body_target(target, era, version, {"method": method})
        COUNTS[key] += 1
        target.client.send("POST", path, encode_headers(headers), body)
        target.assert_works(era, version)

    run_counted(key, check)


# -- 2. mutated valid messages --------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
def test_mutated_messages(target: Target, era: str) -> None:
    key = f"mutated-message/{era}"
    pools = {v: session_pool(v) for v in SESSION_VERSIONS}
    legacy = session_pool(LEGACY_VERSION)
    modern = modern_pool(target.request_state)

    @FUZZ
    @given(data=st.data(), version=st.sampled_from(SESSION_VERSIONS))
    def check(data: st.DataObject, version: str) -> None:
        pool = {"session": pools[version], "modern": modern, "legacy": legacy}[era]
        original = data.draw(st.sampled_from(pool))
        body = data.draw(mutated([original]))
        path, headers = body_target(target, era, version, original)
        COUNTS[key] += 1  # counted once sent (a draw may overrun and end the example)
        target.client.send("POST", path, encode_headers(headers), body)
        target.assert_works(era, version)

    run_counted(key, check)


# -- 3. spoiled headers ---------------------------------------------------------------------

SESSION_POST = ["mcp-session-id", "mcp-protocol-version", "content-type", "accept",
                "last-event-id", "mcp-method", "mcp-name", "mcp-param-region", "origin"]
SESSION_GET = ["mcp-session-id", "mcp-protocol-version", "accept", "last-event-id"]
MODERN_POST = ["mcp-protocol-version", "mcp-method", "mcp-name", "mcp-param-region",
               "mcp-param-other", "content-type", "accept", "mcp-session-id", "last-event-id"]
LEGACY_NAMES = ["accept", "content-type", "last-event-id", "mcp-session-id",
                "mcp-protocol-version"]


def header_case(target: Target, era: str, version: str, choice: int) -> tuple[
        str, str, dict[str, str], list[str], bytes | None, frozenset[bytes]]:
    """(method, path, valid headers, names to spoil, body, values never to send)."""
    if era == "modern":
        call = request(9, "tools/call", {"name": "region", "arguments": {"region": "eu"},
                                         "_meta": MODERN_META})
        return "POST", "/mcp", modern_headers(call), MODERN_POST, json.dumps(call).encode(), \
            frozenset()
    if era == "legacy":
        if choice % 2:
            call = request(9, "tools/call", {"name": "echo", "arguments": {"message": "x"}})
            return "POST", target.legacy.endpoint, {"content-type": "application/json"}, \
                LEGACY_NAMES, json.dumps(call).encode(), frozenset()
        return "GET", "/sse", {"accept": "text/event-stream"}, LEGACY_NAMES, None, frozenset()
    headers = target.session_headers(version)
    sid = headers["mcp-session-id"]
    if choice == 0:
        get = {**headers, "accept": "text/event-stream",
               "last-event-id": target.event_ids[version]}
        del get["content-type"]
        return "GET", "/mcp", get, SESSION_GET, None, frozenset()
    if choice == 1:  # never the live session's id: that DELETE would be a valid one
        bogus = {"mcp-session-id": sid + "x", "mcp-protocol-version": version}
        return "DELETE", "/mcp", bogus, ["mcp-session-id", "mcp-protocol-version"], None, \
            frozenset({sid.encode()})
    call = request(9, "tools/call", {"name": "countdown", "arguments": {"n": 1}})
    return "POST", "/mcp", headers, SESSION_POST, json.dumps(call).encode(), frozenset()


@pytest.mark.parametrize("era", ERAS)
def test_spoiled_headers(target: Target, era: str) -> None:
    key = f"spoiled-headers/{era}"

    @FUZZ
    @given(data=st.data(), version=st.sampled_from(SESSION_VERSIONS),
           choice=st.integers(0, 3))
    def check(data: st.DataObject, version: str, choice: int) -> None:
        method, path, base, names, body, forbid = header_case(target, era, version, choice)
        headers = data.draw(spoiled_headers(base, names, forbid))
        COUNTS[key] += 1
        target.client.send(method, path, headers, body)
        target.assert_works(era, version)

    run_counted(key, check)


# -- 4. what the fuzz found, pinned: an early refusal and the connection after it ------------


def _read_response(sock: socket.socket, already: bytes = b"") -> bytes:
    """One whole response (they all carry Content-Length); b"" if the server hung up."""
    data = already
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        rest += chunk
    return head + b"\r\n\r\n" + rest


@pytest.mark.parametrize(
    ("method", "extra", "size"),
    [
        pytest.param(b"POST", b"Accept: text/html\r\nContent-Type: application/json\r\n", 40,
                     id="406"),
        pytest.param(b"POST", b"Accept: */*\r\nContent-Type: text/plain\r\n", 40, id="415"),
        pytest.param(b"PUT", b"Content-Type: application/json\r\n", 40, id="405"),
        pytest.param(b"POST", b"Accept: */*\r\nContent-Type: application/json\r\n",
                     MAX_BODY + 1, id="413"),
    ],
)
def test_refusal_before_the_body_keeps_the_connection_or_says_close(
    target: Target, method: bytes, extra: bytes, size: int
) -> None:
    """The body arrives after the headers (as from most clients). The refusal must either
    leave the connection able to serve the next request or say ``Connection: close``; a
    connection that silently dies fails the client's next request (found by the fuzz)."""
    host = f"127.0.0.1:{target.server.port}".encode()
    head = (method + b" /mcp HTTP/1.1\r\nHost: " + host + b"\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % size)
    with socket.create_connection(("127.0.0.1", target.server.port), timeout=5) as sock:
        sock.sendall(head)
        sock.settimeout(0.3)  # a server that answers before the body does so at once
        early = b""
        with contextlib.suppress(TimeoutError):
            early = _read_response(sock)
        if early and b"\r\nconnection: close" in early.lower():
            return  # answered early, and said the connection ends: fine
        if early:  # answered early without saying so: the connection must stay usable
            closed = False
            with contextlib.suppress(TimeoutError):
                closed = sock.recv(1) == b""
            assert not closed, f"closed after {early[:40]!r} without Connection: close"
        sock.settimeout(5)
        sock.sendall(b"x" * size)
        first = early or _read_response(sock)
        assert first.startswith(b"HTTP/1.1 4"), first[:200]
        if b"\r\nconnection: close" in first.lower():
            return
        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: " + host + b"\r\nAccept: */*\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(ping), ping))
        second = _read_response(sock)
    assert second.startswith(b"HTTP/1.1 400"), second[:200]  # no session id: 400, answered
