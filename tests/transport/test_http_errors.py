"""Bad input at the HTTP level, through the ASGI app (in memory: tests/harness/asgi.py).

Every case checks the status and the JSON-RPC error the client gets, then that the same
session still answers a ``tools/call``; no answer may be a 500 or carry a traceback, and
the server may not log an error (an unexpected exception is logged with its traceback).
The last part covers SSE resumption: ``Last-Event-ID`` replays exactly the rest of the
stream it names, and never another stream's events.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

import scalemcp
from examples.quickstart import app
from scalemcp.testing import open_server
from tests.harness import client
from tests.harness.asgi import open_client
from tests.harness.client import JSON, initialize
from tests.harness.sse import Event, messages

TIMEOUT_S = 15


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, "server logged errors:\n" + "\n".join(
        f"{r.name}: {r.getMessage()}" for r in bad)


class Session(client.Session):
    """A raw session whose every answer is checked to be clean."""

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        r = await super().post(body, headers)
        check_clean(r)
        return r

    async def assert_works(self) -> None:
        """The session still serves a tool call after whatever came before."""
        answer = await self.call("tools/call", {"name": "echo", "arguments": {"message": "ok"}})
        assert answer["result"]["content"] == [{"type": "text", "text": "ok"}], answer


def initialize_message(version: str) -> dict[str, Any]:
    return initialize(version, name="http-errors")


def check_clean(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert "Traceback" not in r.text
    assert 'File "' not in r.text


def assert_error(r: httpx.Response, status: int, code: int, fragment: str = "") -> dict[str, Any]:
    """An HTTP error whose body is a JSON-RPC error without a usable id."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == JSON
    body = r.json()
    assert body["jsonrpc"] == "2.0"
    assert "result" not in body
    assert body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body
    return body  # type: ignore[no-any-return]


@asynccontextmanager
async def session(
    version: str = "2025-06-18", config: scalemcp.Config | None = None, *,
    socket: bool = False,
) -> AsyncIterator[Session]:
    """An initialized session with the app in memory, or (``socket``) served by Hypercorn on
    a real port, for what only the HTTP server does."""
    config = config or scalemcp.Config()
    async with contextlib.AsyncExitStack() as stack:
        if socket:
            url = await stack.enter_async_context(open_server(app, config))
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=TIMEOUT_S))
        else:
            url, http = await stack.enter_async_context(
                open_client(app, config, timeout=TIMEOUT_S))
        s = Session(http, url, version, name="http-errors")
        await s.initialize()
        yield s


# -- bodies that are not JSON-RPC --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping",}', id="trailing-comma"),
        pytest.param(b"\xff\xfe\x00", id="binary"),
    ],
)
async def test_malformed_json_is_400_parse_error(body: bytes) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            r = await s.post(body)
            error = assert_error(r, 400, -32700, "malformed JSON")
            assert error["id"] is None
            await s.assert_works()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b'"ping"', "Expected `object | array`", id="string"),
        pytest.param(b"{}", "jsonrpc", id="empty-object"),
        pytest.param(b'{"jsonrpc":"1.0","id":1,"method":"ping"}', '"2.0"', id="version"),
        pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"ping"}', "null", id="null-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', "$.id", id="object-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":["ping"]}', "$.method", id="method"),
        pytest.param(b'{"jsonrpc":"2.0","id":1}', "exactly one of", id="neither"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}', "cannot carry",
                     id="request-with-result"),
        pytest.param(b"[]", "empty batch", id="empty-batch"),
        pytest.param(b"[1,2]", "$[0]", id="batch-of-numbers"),
    ],
)
async def test_wrong_jsonrpc_shape_is_400_invalid_request(body: bytes, fragment: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            r = await s.post(body)
            assert_error(r, 400, -32600, fragment)
            await s.assert_works()


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        pytest.param("tools/call", {"name": 5}, "$.name", id="tool-name-number"),
        pytest.param("tools/call", {"name": "echo", "arguments": {"message": 5}},
                     "$.message", id="tool-argument-type"),
        pytest.param("tools/call", {"name": "echo", "arguments": {}},
                     "`message`", id="tool-argument-missing"),
        pytest.param("tools/call", {"name": "echo", "arguments": "hi"},
                     "Expected `object`", id="arguments-not-object"),
        pytest.param("tools/call", {"name": "countdown", "arguments": {"n": 99}},
                     "$.n", id="tool-argument-constraint"),
        pytest.param("tools/call", {"name": "echo", "arguments": {"message": "x"},
                                    "_meta": {"progressToken": 1.5}},
                     "$._meta.progressToken", id="progress-token-float"),
        pytest.param("tools/call", {"name": "missing_tool"}, "missing_tool", id="unknown-tool"),
        pytest.param("tools/list", {"cursor": 5}, "$.cursor", id="cursor-number"),
        pytest.param("tools/list", {"cursor": "not-a-cursor"}, "cursor", id="cursor-garbage"),
        pytest.param("tools/list", [], "Expected `object`", id="params-array"),
        pytest.param("resources/read", {"uri": ["x"]}, "$.uri", id="uri-array"),
        pytest.param("prompts/get", {"name": "review_code", "arguments": {"code": 1}},
                     "$.arguments", id="prompt-argument-type"),
        pytest.param("prompts/get", {"name": "review_code"}, "code", id="prompt-argument-missing"),
        pytest.param("logging/setLevel", {"level": "loud"}, "$.level", id="log-level"),
        pytest.param("completion/complete",
                     {"ref": {"type": "ref/nope"}, "argument": {"name": "a", "value": "b"}},
                     "$.ref.type", id="completion-ref-type"),
    ],
)
async def test_wrong_params_are_invalid_params_naming_the_field(
    method: str, params: Any, fragment: str
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-06-18") as s:
            answer = await s.call(method, params)
            error = answer["error"]
            assert error["code"] == -32602, answer
            assert fragment in error["message"], error
            await s.assert_works()


async def test_unknown_method_is_method_not_found() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            answer = await s.call("tools/explode", {})
            assert answer["error"]["code"] == -32601
            assert "tools/explode" in answer["error"]["message"]
            r = await s.post({"jsonrpc": "2.0", "method": "notifications/whatever"})
            assert r.status_code == 202
            assert r.content == b""
            await s.assert_works()


async def test_notifications_and_responses_with_odd_content_are_accepted_and_ignored() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            for body in [
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "garbage"},
                {"jsonrpc": "2.0", "method": "notifications/cancelled",
                 "params": {"requestId": 12345}},
                {"jsonrpc": "2.0", "id": "srv-unknown", "result": {}},
                {"jsonrpc": "2.0", "id": 77, "error": {"code": -1, "message": "no"}},
            ]:
                r = await s.post(body)
                assert r.status_code == 202, (body, r.text)
                assert r.content == b""
            await s.assert_works()


# -- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [None, "application/json", "text/event-stream", "text/html", "application/*"],
)
async def test_post_without_both_accept_types_is_406(accept: str | None) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            headers = s.headers()
            del headers["accept"]
            if accept is not None:
                headers["accept"] = accept
            r = await s.post(s.request("ping"), headers)
            assert_error(r, 406, -32600, "Accept")
            await s.assert_works()


@pytest.mark.parametrize(
    "accept",
    ["application/json, text/event-stream", "text/event-stream;q=0.5, application/json",
     "*/*", "application/*, text/*"],
)
async def test_post_accept_variants_that_admit_both(accept: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            r = await s.post(s.request("ping"), s.headers(accept=accept))
            assert r.status_code == 200, r.text
            assert r.json()["result"] == {}


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "json"]
)
async def test_non_json_content_type_is_415(content_type: str | None) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            headers = s.headers()
            del headers["content-type"]
            if content_type is not None:
                headers["content-type"] = content_type
            r = await s.post(s.request("ping"), headers)
            assert_error(r, 415, -32600, "Content-Type")
            r = await s.post(s.request("ping"), s.headers(content_type="application/json; "
                                                                  "charset=utf-8"))
            assert r.status_code == 200
            await s.assert_works()


async def test_missing_session_id_is_400_and_unknown_is_404() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            headers = s.headers()
            del headers["mcp-session-id"]
            assert_error(await s.post(s.request("ping"), headers), 400, -32600, "Mcp-Session-Id")
            for sid in ["unknown-session", "x" * 500, s.session_id + "x", s.session_id.upper()]:
                r = await s.post(s.request("ping"), s.headers(mcp_session_id=sid))
                assert_error(r, 404, -32600, "session")
            await s.assert_works()


@pytest.mark.parametrize("value", ["1999-01-01", "latest", "2025-06-18, 2025-03-26", ""])
async def test_unsupported_protocol_version_header_is_400(value: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-06-18") as s:
            r = await s.post(s.request("ping"), s.headers(mcp_protocol_version=value))
            # An unknown version is not a session-era one, so the request is read as a
            # stateless (2026-07-28) one, whose first check is the required _meta.
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] in (-32022, -32602), error
            assert "version" in error["message"].lower()
            # With the _meta a stateless request carries, the version itself is refused.
            meta = {"io.modelcontextprotocol/protocolVersion": value,
                    "io.modelcontextprotocol/clientCapabilities": {}}
            r = await s.post(s.request("ping", {"_meta": meta}),
                             s.headers(mcp_protocol_version=value, mcp_method="ping"))
            body = assert_error(r, 400, -32022)
            assert "version" in body["error"]["message"].lower()
            assert body["error"]["data"]["requested"] == value
            assert "2026-07-28" in body["error"]["data"]["supported"]
            await s.assert_works()


async def test_unsupported_protocol_version_header_on_get_delete_and_batch_is_400() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-03-26") as s:
            bad = s.headers(mcp_protocol_version="1999-01-01")
            r = await s.http.get(s.url, headers={**bad, "accept": "text/event-stream"})
            assert_error(r, 400, -32022, "MCP-Protocol-Version")
            r = await s.http.delete(s.url, headers=bad)
            assert_error(r, 400, -32022, "MCP-Protocol-Version")
            r = await s.post([s.request("ping")], bad)
            assert_error(r, 400, -32022, "MCP-Protocol-Version")
            # The session was not deleted by the refused DELETE.
            await s.assert_works()


async def test_supported_but_different_protocol_version_header_is_accepted() -> None:
    """scalemcp accepts any supported version on a request (see the spec digest, 4.7)."""
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25") as s:
            r = await s.post(s.request("ping"), s.headers(mcp_protocol_version="2025-03-26"))
            assert r.status_code == 200
            assert r.json()["result"] == {}
            await s.assert_works()


async def test_batches_are_rejected_after_2025_03_26() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-06-18") as s:
            r = await s.post([s.request("ping"), s.request("tools/list")])
            assert_error(r, 400, -32600, "batches are not allowed")
            r = await s.post([{"jsonrpc": "2.0", "method": "notifications/initialized"}])
            assert_error(r, 400, -32600, "batches are not allowed")
            await s.assert_works()


async def test_batches_are_accepted_in_2025_03_26() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-03-26") as s:
            ping, tools = s.request("ping"), s.request("tools/list")
            r = await s.post([ping, {"jsonrpc": "2.0", "method": "notifications/x"}, tools])
            assert r.status_code == 200, r.text
            answers = {a["id"]: a for a in r.json()}
            assert answers.keys() == {ping["id"], tools["id"]}
            assert answers[ping["id"]]["result"] == {}
            assert "echo" in {t["name"] for t in answers[tools["id"]]["result"]["tools"]}
            r = await s.post([{"jsonrpc": "2.0", "method": "notifications/initialized"}])
            assert r.status_code == 202
            init = initialize_message("2025-03-26")
            assert_error(await s.post([init, s.request("ping")]), 400, -32600, "initialize")
            await s.assert_works()


# -- size and depth limits ---------------------------------------------------------------


async def test_oversize_body_is_413() -> None:
    config = scalemcp.Config.from_options(max_body_bytes=2048)
    with trio.fail_after(TIMEOUT_S):
        async with session(config=config) as s:
            big = s.request("tools/call", {"name": "echo", "arguments": {"message": "x" * 4096}})
            assert_error(await s.post(big), 413, -32600, "2048 bytes")

            async def chunks() -> AsyncIterator[bytes]:
                data = json.dumps(big).encode()
                for i in range(0, len(data), 512):
                    yield data[i:i + 512]

            # No Content-Length: the limit holds while the body streams in.
            r = await s.http.post(s.url, content=chunks(), headers=s.headers())
            check_clean(r)
            assert "content-length" not in r.request.headers
            assert_error(r, 413, -32600, "2048 bytes")
            # Just under the limit is fine.
            fits = s.request("tools/call", {"name": "echo", "arguments": {"message": "y" * 1800}})
            assert len(json.dumps(fits)) < 2048
            r = await s.post(fits)
            assert r.status_code == 200
            assert r.json()["result"]["content"][0]["text"] == "y" * 1800
            await s.assert_works()


@pytest.mark.parametrize(
    "nested",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="objects"),
        pytest.param(b"[" * 100_000, id="unterminated"),
    ],
)
async def test_deeply_nested_json_is_a_clear_client_error(nested: bytes) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            body = (b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":'
                    b'{"name":"echo","arguments":{"message":' + nested + b"}}}")
            r = await s.post(body)
            # A limit (max_json_depth), like the other shape limits: -32600, not -32700.
            assert_error(r, 400, -32600, "nested too deeply")
            await s.assert_works()


# -- origin, methods, session end ------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://evil.example", False),
        ("https://localhost.evil.example", False),
        ("null", False),
        ("http://localhost:6274", True),
        ("http://127.0.0.1", True),
        ("https://[::1]:8443", True),
    ],
)
async def test_origin_is_checked(origin: str, allowed: bool) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            r = await s.post(s.request("ping"), s.headers(origin=origin))
            if allowed:
                assert r.status_code == 200, r.text
                assert r.json()["result"] == {}
            else:
                assert_error(r, 403, -32600, "Origin")
                r = await s.http.get(s.url, headers={**s.headers(origin=origin),
                                                     "accept": "text/event-stream"})
                assert_error(r, 403, -32600, "Origin")
            await s.assert_works()


async def test_allowed_origins_config() -> None:
    config = scalemcp.Config.from_options(allowed_origins=["https://app.example"])
    with trio.fail_after(TIMEOUT_S):
        async with session(config=config) as s:
            ok = await s.post(s.request("ping"), s.headers(origin="https://app.example/"))
            assert ok.status_code == 200
            other = await s.post(s.request("ping"), s.headers(origin="https://other.example"))
            assert_error(other, 403, -32600, "Origin")
            await s.assert_works()


async def test_other_methods_and_paths() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            r = await s.http.put(s.url, headers=s.headers(), content=b"{}")
            check_clean(r)
            assert r.status_code == 405
            assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST",
                                                                            "DELETE"}
            r = await s.http.post(s.url + "/extra", headers=s.headers(),
                                  json=s.request("ping"))
            check_clean(r)
            assert r.status_code == 404
            r = await s.http.get(s.url, headers={**s.headers(), "accept": JSON})
            assert_error(r, 406, -32600, "text/event-stream")
            await s.assert_works()


async def test_delete_ends_the_session() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            r = await s.http.delete(s.url, headers=s.headers())
            check_clean(r)
            assert r.status_code == 200
            assert_error(await s.post(s.request("ping")), 404, -32600, "session")
            r = await s.http.get(s.url, headers={**s.headers(), "accept": "text/event-stream"})
            assert_error(r, 404, -32600, "session")
            r = await s.http.delete(s.url, headers=s.headers())
            assert_error(r, 404, -32600, "session")
            headers = s.headers()
            del headers["mcp-session-id"]
            assert_error(await s.http.delete(s.url, headers=headers), 400, -32600,
                         "Mcp-Session-Id")
            # A client that gets 404 starts over; that works.
            await s.initialize()
            await s.assert_works()


@pytest.mark.parametrize("last_event_id", ["nocolon", ":1", "p1:", "p" * 300 + ":1", "p1:\x7f"])
async def test_get_with_bad_last_event_id_is_400(last_event_id: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session() as s:
            headers = {**s.headers(), "accept": "text/event-stream",
                       "last-event-id": last_event_id}
            r = await s.http.get(s.url, headers=headers)
            assert_error(r, 400, -32600, "Last-Event-ID")
            await s.assert_works()


# -- resumption --------------------------------------------------------------------------------


async def read_events(r: httpx.Response, limit: int | None = None) -> list[Event]:
    """Read SSE events (ids required) until the body ends or ``limit`` events arrived."""
    return await client.read_events(r, limit)


async def resume(s: Session, last_event_id: str) -> list[Event]:
    return await s.resume(last_event_id)


def countdown(s: Session, n: int, token: str) -> dict[str, Any]:
    return s.request("tools/call", {"name": "countdown", "arguments": {"n": n},
                                    "_meta": {"progressToken": token}})


def check_countdown(got: list[dict[str, Any]], request_id: int, n: int, token: str) -> None:
    """Exactly n progress + n log notifications, in order, then the one response."""
    progress = [m["params"] for m in got if m.get("method") == "notifications/progress"]
    logs = [m["params"]["data"] for m in got if m.get("method") == "notifications/message"]
    responses = [m for m in got if "id" in m]
    assert [p["progress"] for p in progress] == list(range(1, n + 1))
    assert all(p["progressToken"] == token for p in progress)
    assert logs == [f"tick {i}" for i in range(n, 0, -1)]
    assert len(responses) == 1
    assert responses[0]["id"] == request_id
    assert responses[0]["result"]["content"][0]["text"] == "liftoff"
    assert got[-1] is responses[0]
    assert len(got) == 2 * n + 1


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
async def test_resume_after_disconnect_replays_exactly_the_rest(version: str) -> None:
    n, token = 8, "resume-me"
    with trio.fail_after(TIMEOUT_S):
        async with session(version) as s:
            message = countdown(s, n, token)
            async with s.http.stream("POST", s.url, json=message, headers=s.headers()) as r:
                first = await read_events(r, limit=4)
            # Disconnected mid-stream: the tool goes on; the client resumes from the last id.
            priming = version >= "2025-11-25"
            assert (first[0].message is None) is priming
            assert len({e.stream for e in first}) == 1
            rest = await resume(s, first[-1].id)
            everything = first + rest
            ids = [e.id for e in everything]
            assert len(ids) == len(set(ids)), f"duplicates: {ids}"
            assert {e.stream for e in everything} == {first[0].stream}
            positions = [e.position for e in everything]
            assert positions == list(range(positions[0], positions[0] + len(positions)))
            check_countdown(messages(everything), message["id"], n, token)

            # Resuming from the middle again gives the same tail (replay is repeatable).
            again = await resume(s, first[1].id)
            assert [e.id for e in again] == [e.id for e in everything[2:]]
            # After the final event, there is nothing left to replay.
            assert await resume(s, everything[-1].id) == []
            await s.assert_works()


async def test_last_event_id_of_another_stream_never_replays_this_one() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25") as s:
            a = countdown(s, 6, "stream-a")
            async with s.http.stream("POST", s.url, json=a, headers=s.headers()) as r:
                a_first = await read_events(r, limit=3)
            a_stream = a_first[0].stream

            b = countdown(s, 2, "stream-b")
            async with s.http.stream("POST", s.url, json=b, headers=s.headers()) as r:
                b_events = await read_events(r)
            b_stream = b_events[0].stream
            assert b_stream != a_stream
            check_countdown(messages(b_events), b["id"], 2, "stream-b")

            # Resuming B, even from its start, gives B's events only.
            replayed = await resume(s, f"{b_stream}:0")
            assert {e.stream for e in replayed} == {b_stream}
            assert [e.id for e in replayed] == [e.id for e in b_events]
            assert all(m.get("params", {}).get("progressToken") != "stream-a"
                       for m in messages(replayed))
            # A made-up stream name, or A's position on B's stream name, replays nothing of A.
            assert await resume(s, "p0000000000000000:0") == []
            tail = await resume(s, f"{b_stream}:{a_first[-1].position}")
            assert {e.stream for e in tail} <= {b_stream}

            # Another session cannot resume A's stream with A's event id.
            other = Session(s.http, s.url, s.version)
            await other.initialize()
            assert await resume(other, a_first[-1].id) == []

            # A itself is still intact and resumable.
            a_rest = await resume(s, a_first[-1].id)
            assert {e.stream for e in a_rest} == {a_stream}
            check_countdown(messages(a_first + a_rest), a["id"], 6, "stream-a")
            await s.assert_works()
            await other.assert_works()
