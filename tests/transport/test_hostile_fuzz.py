"""Generated hostile input at the HTTP level, against a real ``scalemcp serve`` process.

Three categories, each in every era (session: 2025-03-26/06-18/11-25 with a live session;
modern: stateless 2026-07-28; legacy: ``GET /sse`` + ``POST /messages``):

* **random bodies**: arbitrary bytes, text, JSON values and JSON-ish token soup;
* **mutated messages**: valid JSON-RPC messages of that era with fields dropped, retyped,
  added, replaced by huge/deep/odd values, wrapped, then sometimes truncated or bit-flipped;
* **spoiled headers**: a valid request whose session id, protocol version,
  ``Last-Event-ID``, ``Mcp-Method``/``Mcp-Name``/``Mcp-Param-*``, content type or accept
  headers are dropped, garbled, near-valid, huge, empty or doubled (POST, GET, DELETE).
* **out-of-order messages** (session and legacy eras): sequences of valid messages on a
  new session at wrong moments: calls before initialize or notifications/initialized,
  initialize or initialized twice, responses to requests never sent, cancellations of
  unknown or finished ids, a request reusing an in-flight id, use after DELETE (legacy:
  after the stream closed), a GET resuming another session's stream by Last-Event-ID.

A *bystander* session (log level ``warning``, one subscription, one remembered SSE answer)
is never targeted; after the module it must still answer, keep its level (a countdown's
``info`` logs stay away) and replay exactly its remembered events. The worker's RSS growth
from after a warm-up to the end is printed with the input count and must stay below 40 MB.

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
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .fuzz_counts import COUNTS, NOTES
from .hostile import (
    ACCEPT,
    LEGACY_VERSION,
    MAX_BODY,
    MODERN_META,
    SESSION_VERSIONS,
    Answer,
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
    sse_events,
)

EXAMPLES = int(os.environ.get("SCALEMCP_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
ERAS = ["session", "modern", "legacy"]
#: Examples of the out-of-order tests, each a sequence of 2-8 inputs on a new session (a
#: legacy one costs about 0.2 s to open and close: half as many there).
ORDER_EXAMPLES = {"session": max(5, EXAMPLES // 4), "legacy": max(5, EXAMPLES // 8)}
#: How much the worker's RSS may grow from after the warm-up to the end of the module.
RSS_GROWTH_LIMIT_KB = 40 * 1024


class Bystander:
    """A session (2025-11-25) the fuzz never targets on purpose: log level ``warning``, one
    subscription, one finished SSE answer remembered. :meth:`check` finds it unchanged."""

    VERSION = "2025-11-25"

    def __init__(self, target: Target) -> None:
        self.client = target.client
        self.token = "bystander-" + secrets.token_hex(6)
        self.sid = target._initialize(self.VERSION)
        self.headers = {"accept": ACCEPT, "content-type": "application/json",
                        "mcp-session-id": self.sid, "mcp-protocol-version": self.VERSION}
        sub = self._post(request(1, "resources/subscribe", {"uri": "greeting://bystander"}))
        assert sub.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}, sub
        first = self._post(self._countdown(2))
        self.events = sse_events(first.body)
        kinds = [json.loads(data).get("method") for _, data in self.events if data.strip()]
        assert "notifications/message" in kinds, kinds  # at the default level "info"
        level = self._post(request(3, "logging/setLevel", {"level": "warning"}))
        assert level.json() == {"jsonrpc": "2.0", "id": 3, "result": {}}, level
        assert self.log_messages() == [], "logging/setLevel warning has no effect"

    def _post(self, message: Any) -> Answer:
        return self.client.post_json("/mcp", message, self.headers)

    def _countdown(self, rid: int) -> dict[str, Any]:
        return request(rid, "tools/call", {"name": "countdown", "arguments": {"n": 3},
                                           "_meta": {"progressToken": self.token}})

    def log_messages(self) -> list[Any]:
        """The log notifications of a countdown (it logs at ``info``) on this session."""
        r = self._post(self._countdown(self.client.rid()))
        assert r.status == 200, r
        messages = [json.loads(data) for _, data in sse_events(r.body) if data.strip()]
        assert messages, r
        assert "result" in messages[-1], messages
        return [m for m in messages if m.get("method") == "notifications/message"]

    def check(self) -> None:
        rid = self.client.rid()
        r = self._post(request(rid, "tools/call", {"name": "echo",
                                                   "arguments": {"message": "still"}}))
        assert r.status == 200, ("the bystander session is gone or broken", r)
        assert r.json()["result"]["content"] == [{"type": "text", "text": "still"}], r
        assert self.log_messages() == [], "the bystander's log level changed"
        get = {k: v for k, v in self.headers.items() if k != "content-type"}
        get["accept"] = "text/event-stream"
        get["last-event-id"] = self.events[0][0]
        replay = self.client.send("GET", "/mcp", encode_headers(get))
        assert replay.status == 200, replay
        assert sse_events(replay.body) == self.events[1:], ("replay differs", replay.body)


def fuzz(target: Target) -> settings:
    """The hypothesis settings of a test against ``target`` (its number of examples)."""
    return settings(FUZZ, max_examples=target.examples)


class Target:
    """The server, a client, one live session per era; sends a valid call on demand.

    ``variant`` names how it is reached and what backs it (``http1``: HTTP/1.1, memory
    backend; others in test_hostile_fuzz_variants.py); its tests run ``examples`` inputs.
    """

    def __init__(self, server: Server, variant: str = "http1",
                 examples: int = EXAMPLES) -> None:
        self.variant = variant
        self.examples = examples
        #: Prefixed to the counted categories ("" for the default variant).
        self.prefix = "" if variant == "http1" else variant + ":"
        self.server = server
        self.client = Client(server)
        self.sessions = {v: self._initialize(v) for v in SESSION_VERSIONS}
        self.event_ids = {v: self._finished_stream(v) for v in SESSION_VERSIONS}
        self.request_state = self._request_state()
        self.legacy = Legacy(server)
        self._legacy_init()
        self.bystander = Bystander(self)

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
    with serving(Server(Path(tmp_path_factory.mktemp("hostile")))) as fleet:
        yield fleet


@contextlib.contextmanager
def serving(server: Server, variant: str = "http1", examples: int = EXAMPLES
            ) -> Iterator[Target]:
    """The target of a module's tests, and after them its checks: the bystander is
    untouched, the worker is the same process, its memory growth is bounded, its log
    holds no error."""
    try:
        fleet = Target(server, variant, examples)
        workers = server.workers()
        assert len(workers) == 1, workers
        for _ in range(10):  # warm-up: imports, caches, buffers, before the RSS baseline
            for era in ERAS:
                fleet.assert_works(era)
        rss_before = server.rss_kb()
        inputs_before = sum(COUNTS.values())
        yield fleet
        # After every test of the module: the bystander is as it was, memory is bounded.
        fleet.bystander.check()
        growth = server.rss_kb() - rss_before
        inputs = sum(COUNTS.values()) - inputs_before
        NOTES.append(f"{variant}: worker RSS {rss_before} kB -> {rss_before + growth} kB: "
                     f"{growth:+} kB after {inputs} inputs")
        assert growth < RSS_GROWTH_LIMIT_KB, NOTES[-1]
        fleet.close()
        assert server.proc.poll() is None, "the server exited"
        assert server.workers() == workers, "the worker process died and was replaced"
        assert not fleet.legacy.problems, fleet.legacy.problems
    finally:
        log = server.stop()
    bad = [line for line in log.splitlines()
           if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]
    assert not bad, log[-4000:]


def run_counted(key: str, test: Callable[[], None], examples: int = EXAMPLES) -> None:
    """Run a hypothesis test and check it generated at least half its examples."""
    before = COUNTS[key]
    test()
    ran = COUNTS[key] - before
    assert ran >= max(1, examples // 2), f"{key}: only {ran} inputs generated"


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
    key = f"{target.prefix}random-body/{era}"

    @fuzz(target)
    @given(body=random_bodies, version=st.sampled_from(SESSION_VERSIONS),
           method=st.sampled_from(["tools/call", "ping", "initialize", "server/discover"]))
    def check(body: bytes, version: str, method: str) -> None:
        path, headers = body_target(target, era, version, {"method": method})
        COUNTS[key] += 1
        target.client.send("POST", path, encode_headers(headers), body)
        target.assert_works(era, version)

    run_counted(key, check, target.examples)


# -- 2. mutated valid messages --------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
def test_mutated_messages(target: Target, era: str) -> None:
    key = f"{target.prefix}mutated-message/{era}"
    pools = {v: session_pool(v) for v in SESSION_VERSIONS}
    legacy = session_pool(LEGACY_VERSION)
    modern = modern_pool(target.request_state)

    @fuzz(target)
    @given(data=st.data(), version=st.sampled_from(SESSION_VERSIONS))
    def check(data: st.DataObject, version: str) -> None:
        pool = {"session": pools[version], "modern": modern, "legacy": legacy}[era]
        original = data.draw(st.sampled_from(pool))
        body = data.draw(mutated([original]))
        path, headers = body_target(target, era, version, original)
        COUNTS[key] += 1  # counted once sent (a draw may overrun and end the example)
        target.client.send("POST", path, encode_headers(headers), body)
        target.assert_works(era, version)

    run_counted(key, check, target.examples)


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
    key = f"{target.prefix}spoiled-headers/{era}"

    @fuzz(target)
    @given(data=st.data(), version=st.sampled_from(SESSION_VERSIONS),
           choice=st.integers(0, 3))
    def check(data: st.DataObject, version: str, choice: int) -> None:
        method, path, base, names, body, forbid = header_case(target, era, version, choice)
        headers = data.draw(spoiled_headers(base, names, forbid))
        COUNTS[key] += 1
        target.client.send(method, path, headers, body)
        target.assert_works(era, version)

    run_counted(key, check, target.examples)


# -- 4. out-of-order messages ---------------------------------------------------------------

#: Steps of an out-of-order sequence, each a valid message or request at a wrong moment.
ORDER_STEPS = ["initialize", "initialized", "call", "read", "ping", "response", "cancel",
               "reuse-id", "end", "foreign-last-event-id"]


class Scratch:
    """The session an out-of-order sequence drives (created by its first initialize)."""

    def __init__(self, target: Target, era: str, version: str) -> None:
        self.target = target
        self.era = era
        self.version = version
        self.sid: str | None = None
        self.legacy = Legacy(target.server) if era == "legacy" else None
        self.ended = False
        self.finished: list[int] = []  # ids of requests answered

    def headers(self) -> dict[str, str]:
        if self.legacy is not None:
            return {"content-type": "application/json"}
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        if self.sid is not None:
            headers["mcp-session-id"] = self.sid
            headers["mcp-protocol-version"] = self.version
        return headers

    def post(self, message: Any) -> Answer:
        path = self.legacy.endpoint if self.legacy is not None else "/mcp"
        return self.target.client.post_json(path, message, self.headers())

    def ask(self, message: dict[str, Any], *, answered: bool = True) -> None:
        """Send a request; check the answer is one (a result or a JSON-RPC error)."""
        r = self.post(message)
        if self.ended:
            return  # checked by check_answer; the session may be gone (404) or closing
        if self.legacy is None and self.sid is None and message["method"] != "initialize":
            assert r.status == 400, r  # no session id yet
            return
        if self.legacy is not None:
            if r.status != 202 or not answered:
                return
            answer = self.legacy.answer_to(message["id"])
        elif r.headers.get("content-type", "").startswith("application/json"):
            answer = r.json()
        else:
            return  # an SSE answer (the ask tool), read in part and checked
        assert answer.get("id") == message["id"], answer
        assert ("result" in answer) != ("error" in answer), answer
        self.finished.append(message["id"])

    def step(self, step: str, pick: int) -> None:
        rid = self.target.client.rid()
        if step == "initialize":
            init = request(rid, "initialize", initialize_params(
                LEGACY_VERSION if self.legacy is not None else self.version))
            if self.legacy is None and self.sid is None:
                r = self.target.client.post_json("/mcp", init, self.headers())
                assert r.status == 200, r
                assert "result" in r.json(), r
                self.sid = r.headers["mcp-session-id"]
                self.ended = False  # an "end" before it ended no session
            else:
                self.ask(init)  # a second initialize on the session
        elif step == "initialized":
            r = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            assert r.status in (202, 400, 404), r
        elif step in ("call", "read", "ping"):
            self.ask({"call": request(rid, "tools/call", {"name": "add",
                                                          "arguments": {"a": 1, "b": 2}}),
                      "read": request(rid, "resources/read", {"uri": "greeting://ooo"}),
                      "ping": request(rid, "ping")}[step])
        elif step == "response":  # an answer to a request the server never sent
            ids = [f"srv-{secrets.token_hex(4)}", rid, *self.finished]
            never = ids[pick % len(ids)]
            body: dict[str, Any] = {"jsonrpc": "2.0", "id": never}
            body.update({"result": {"action": "accept", "content": {"name": "x"}}} if pick % 2
                        else {"error": {"code": -32000, "message": "no"}})
            r = self.post(body)
            assert r.status in (202, 400, 404), r
        elif step == "cancel":  # an id never used, or one already answered
            ids = [rid + 10_000, *self.finished]
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": ids[pick % len(ids)], "reason": "x"}}
            r = self.post(cancel)
            assert r.status in (202, 400, 404), r
        elif step == "reuse-id":  # ask (in flight, waiting for elicitation), same id again
            self.ask(request(rid, "tools/call", {"name": "ask", "arguments": {}}),
                     answered=False)
            self.ask(request(rid, "tools/call", {"name": "echo",
                                                 "arguments": {"message": "twin"}}),
                     answered=False)
        elif step == "end":  # DELETE (legacy: close the stream); later steps use it anyway
            if self.legacy is not None:
                if not self.ended:
                    self.legacy.close()
            elif self.sid is not None:
                r = self.target.client.send("DELETE", "/mcp", encode_headers(
                    {"mcp-session-id": self.sid, "mcp-protocol-version": self.version}))
                assert r.status == (404 if self.ended else 200), r
            if self.legacy is not None or self.sid is not None:  # else nothing to end yet
                self.ended = True
        else:  # foreign-last-event-id: resume the bystander's stream from this session
            by = self.target.bystander
            headers = {"accept": "text/event-stream", "last-event-id": by.events[0][0]}
            if self.legacy is None and self.sid is not None:
                headers["mcp-session-id"] = self.sid
                headers["mcp-protocol-version"] = self.version
            r = self.target.client.send("GET", "/sse" if self.legacy is not None else "/mcp",
                                        encode_headers(headers))
            assert by.token.encode() not in r.body, ("another session's events", r)

    def close(self) -> None:
        if self.legacy is not None:
            if not self.ended:
                self.legacy.close()
            assert not self.legacy.problems, self.legacy.problems
        elif self.sid is not None and not self.ended:
            self.target.client.send("DELETE", "/mcp", encode_headers(
                {"mcp-session-id": self.sid, "mcp-protocol-version": self.version}))


@pytest.mark.parametrize("era", ["session", "legacy"])
def test_out_of_order_messages(target: Target, era: str) -> None:
    key = f"{target.prefix}out-of-order/{era}"

    @settings(fuzz(target), max_examples=max(2, ORDER_EXAMPLES[era] * target.examples
                                             // EXAMPLES))
    @given(steps=st.lists(st.tuples(st.sampled_from(ORDER_STEPS), st.integers(0, 5)),
                          min_size=2, max_size=8),
           version=st.sampled_from(SESSION_VERSIONS))
    @example(steps=[("end", 0), ("initialize", 0), ("end", 0)], version="2025-03-26")
    def check(steps: list[tuple[str, int]], version: str) -> None:
        scratch = Scratch(target, era, version)
        try:
            for step, pick in steps:
                COUNTS[key] += 1
                scratch.step(step, pick)
        finally:
            scratch.close()
        target.assert_works(era, version)

    run_counted(key, check, max(2, ORDER_EXAMPLES[era] * target.examples // EXAMPLES))


# -- 5. what the fuzz found, pinned: an early refusal and the connection after it ------------


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
