"""Input limits through a real server: JSON shape in every era, request headers.

Each refusal is checked for its status, JSON-RPC code and a message naming the setting;
the session goes on working afterwards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio_websocket

import scalemcp
from examples.quickstart import app
from scalemcp.testing import open_server
from tests.harness.asgi import open_client
from tests.harness.client import ACCEPT, MODERN_VERSION, initialize, modern_meta

from .test_http_errors import TIMEOUT_S, assert_error, session

LIMITS = scalemcp.Config.from_options(max_json_string_chars=100, max_json_items=10,
                                      max_json_depth=6)
MODERN = MODERN_VERSION
META = modern_meta()


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


def echo(**arguments: Any) -> dict[str, Any]:
    return {"name": "echo", "arguments": {"message": "hi", **arguments}}


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        pytest.param(echo(message="x" * 101), ("max_json_string_chars",
                                               "$.params.arguments.message"), id="string"),
        pytest.param(echo(extra=list(range(11))), ("max_json_items", "$.params.arguments.extra"),
                     id="items"),
        # $ > params > arguments > deep: 3 levels, then 5 more.
        pytest.param(echo(deep=[[[[[]]]]]), ("max_json_depth", "nested too deeply"),
                     id="depth"),
        pytest.param({**echo(), "_meta": {"progressToken": "t" * 101}},
                     ("max_json_string_chars", "$.params._meta.progressToken"), id="meta"),
    ],
)
async def test_session_era_limits(params: dict[str, Any], fragments: tuple[str, ...]) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25", LIMITS) as s:
            r = await s.post(s.request("tools/call", params))
            body = assert_error(r, 400, -32600)
            for fragment in fragments:
                assert fragment in body["error"]["message"], body
            await s.assert_works()
            # Just inside every limit.
            inside = echo(message="y" * 100, extra=list(range(10)), deep=[[[]]])
            answer = await s.call("tools/call", inside)
            assert answer["result"]["content"][0]["text"] == "y" * 100


async def test_a_client_response_is_limited_too() -> None:
    """What a client answers (e.g. a sampling result) is bounded like a request."""
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25", LIMITS) as s:
            answer = {"jsonrpc": "2.0", "id": "srv-1", "result": {"content": "z" * 101}}
            r = await s.post(answer)
            assert_error(r, 400, -32600, "max_json_string_chars")
            await s.assert_works()


async def test_modern_era_limits() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with open_client(app, LIMITS) as (url, http):
            headers = {"accept": ACCEPT, "mcp-protocol-version": MODERN,
                       "mcp-method": "tools/call", "mcp-name": "echo"}
            for arguments, status in (({"message": "x" * 101}, 400), ({"message": "ok"}, 200)):
                message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "echo", "arguments": arguments, "_meta": META}}
                r = await http.post(url, json=message, headers=headers)
                assert r.status_code == status, r.text
            assert r.json()["result"]["content"][0]["text"] == "ok"
            message["params"]["arguments"] = {"message": "x" * 101}
            r = await http.post(url, json=message, headers=headers)
            assert_error(r, 400, -32600, "max_json_string_chars")


async def test_legacy_sse_limits() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with (
            open_client(app, LIMITS, timeout=10) as (_, http),
            http.stream("GET", "/sse", headers={"accept": "text/event-stream"}) as stream,
        ):
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: endpoint"
            endpoint = (await anext(lines)).removeprefix("data: ")
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": echo(
                message="x" * 101)}
            r = await http.post(endpoint, json=call)
            assert_error(r, 400, -32600, "max_json_string_chars")


async def test_websocket_limits() -> None:
    init = initialize(name="t")
    with trio.fail_after(TIMEOUT_S):
        async with open_server(app, LIMITS) as url:
            ws_url = url.replace("http://", "ws://")
            async with trio_websocket.open_websocket_url(ws_url, subprotocols=["mcp"]) as ws:
                await ws.send_message(json.dumps(init))
                assert json.loads(await ws.get_message())["result"]
                call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": echo(extra=list(range(11)))}
                await ws.send_message(json.dumps(call))
                error = json.loads(await ws.get_message())["error"]
                assert error["code"] == -32600
                assert "max_json_items" in error["message"]
                call["params"] = echo(message="still here")
                await ws.send_message(json.dumps(call))
                result = json.loads(await ws.get_message())["result"]
                assert result["content"][0]["text"] == "still here"


# -- headers ---------------------------------------------------------------------------


async def test_too_many_headers_is_431() -> None:
    config = scalemcp.Config.from_options(max_header_count=20)
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25", config, socket=True) as s:
            many = s.headers(**{f"x_extra_{i}": "1" for i in range(25)})
            assert_error(await s.post(s.request("ping"), many), 431, -32600, "max_header_count")
            assert (await s.http.get(s.url.removesuffix("/mcp") + "/healthz",
                                     headers=many)).status_code == 431
            await s.assert_works()
            # A WebSocket handshake too: refused, not switched (101).
            port = int(s.url.split(":")[-1].split("/")[0])
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                extra = "".join(f"x-extra-{i}: 1\r\n" for i in range(25))
                await stream.send_all(
                    b"GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
                    b"connection: Upgrade\r\nsec-websocket-version: 13\r\n"
                    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"sec-websocket-protocol: mcp\r\n" + extra.encode() + b"\r\n")
                status = (await stream.receive_some()).split(b"\r\n")[0]
                assert status.startswith(b"HTTP/1.1 403"), status


async def test_a_header_block_over_max_header_bytes_is_431() -> None:
    config = scalemcp.Config.from_options(max_header_bytes=4096)
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25", config, socket=True) as s:
            r = await s.post(s.request("ping"), s.headers(x_big="b" * 5000))
            # Refused while the request is parsed (Hypercorn), before the app sees it.
            assert r.status_code == 431, r.text
            fits = s.headers(x_big="b" * 3000)
            r = await s.post(s.request("ping"), fits)
            assert r.status_code == 200, r.text
            await s.assert_works()


async def test_mcp_headers_are_bounded() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with session("2025-11-25", scalemcp.Config.from_options(max_param_headers=4)) as s:
            params = s.headers(**{f"mcp_param_p{i}": "1" for i in range(5)})
            assert_error(await s.post(s.request("ping"), params), 400, -32600,
                         "max_param_headers")
            sse = {**s.headers(), "accept": "text/event-stream"}
            for last, fragment in (("p1:" + "9" * 300, "longer than 200"),
                                   ("not-an-id", "not one of ours")):
                r = await s.http.get(s.url, headers={**sse, "last-event-id": last})
                assert_error(r, 400, -32600, fragment)
            for sid in ("x" * 129, "not one of ours"):  # unknown (too long: no lookup)
                r = await s.post(s.request("ping"), s.headers(mcp_session_id=sid))
                assert_error(r, 404, -32600, "session")
            await s.assert_works()
