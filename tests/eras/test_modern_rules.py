"""Modern-era (2026-07-28) wire rules: headers, versions, methods, requestState."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import trio

import scalemcp
from examples.quickstart import app
from tests.harness.asgi import client_of, open_asgi, open_client
from tests.harness.client import (
    ELICITATION,
    initialize,
    modern_headers,
    modern_meta,
    modern_request,
)

META = modern_meta(ELICITATION)


def request(method: str, params: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    return modern_request(method, params, rid, ELICITATION)


headers = modern_headers


async def post(client: httpx.AsyncClient, url: str, body: Any, h: dict[str, str]) -> Any:
    response = await client.post(url, json=body, headers=h)
    return response.status_code, response.json() if response.content else None


async def test_header_rules_and_base64_sentinel() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, c):
            call = request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
            status, body = await post(c, url, call, headers("tools/call", "echo"))
            assert (status, body["result"]["content"][0]["text"]) == (200, "x")
            sentinel = "=?base64?" + base64.b64encode(b"echo").decode() + "?="
            status, body = await post(c, url, call, headers("tools/call", sentinel))
            assert status == 200, body
            for bad in (headers("tools/call", "add"), headers("tools/call"),
                        headers("tools/list", "echo"), headers("tools/call", "=?base64?!!?=")):
                status, body = await post(c, url, call, bad)
                assert (status, body["error"]["code"], body["id"]) == (400, -32020, 1), bad
            mismatch = headers("tools/call", "echo", **{"mcp-protocol-version": "2025-11-25"})
            status, body = await post(c, url, call, mismatch)
            # A 2025 header sends the request down the session path, whose errors must not
            # look like modern ones (spec 5.5): no session -> 400 -32600.
            assert (status, body["error"]["code"]) == (400, -32600)


async def test_versions_methods_and_meta() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, c):
            bad = request("server/discover")
            bad["params"]["_meta"] = {**META, "io.modelcontextprotocol/protocolVersion": "v9"}
            status, body = await post(c, url, bad, headers("server/discover",
                                                          **{"mcp-protocol-version": "v9"}))
            assert (status, body["error"]["code"]) == (400, -32022)
            assert body["error"]["data"] == {"supported": ["2026-07-28"], "requested": "v9"}
            status, body = await post(c, url, request("ping"), headers("ping"))
            assert (status, body["error"]["code"]) == (404, -32601)
            no_meta = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}
            status, body = await post(c, url, no_meta, headers("tools/list"))
            assert (status, body["error"]["code"], body["id"]) == (400, -32602, 3)
            status, body = await post(c, url, request("server/discover"),
                                      headers("server/discover"))
            assert status == 200
            result = body["result"]
            assert "2026-07-28" in result["supportedVersions"]
            assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "quickstart"
            assert (result["resultType"], result["cacheScope"]) == ("complete", "private")
            notification = {"jsonrpc": "2.0", "method": "notifications/progress",
                            "params": {"_meta": META}}
            response = await c.post(url, json=notification, headers=headers("x"))
            assert response.status_code == 202


async def _first_round(c: httpx.AsyncClient, url: str) -> tuple[dict[str, Any], str]:
    call = request("tools/call", {"name": "ask_name", "arguments": {}})
    _, body = await post(c, url, call, headers("tools/call", "ask_name"))
    return call, body["result"]["requestState"]


async def _retry(c: httpx.AsyncClient, url: str, call: dict[str, Any], state: str) -> Any:
    retry = {**call, "id": 2, "params": {**call["params"], "requestState": state,
             "inputResponses": {"elicit-1": {"action": "accept", "content": {"name": "Bo"}}}}}
    return await post(c, url, retry, headers("tools/call", "ask_name"))


async def test_request_state_tampered_replayed_foreign_expired() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, c):
            call, state = await _first_round(c, url)
            _, body = await _retry(c, url, call, state[:-2] + "AA")
            assert body["error"]["code"] == -32602
            assert "integrity" in body["error"]["message"]
            _, body = await _retry(c, url, call, state)
            assert body["result"]["content"][0]["text"] == "Hello, Bo!"
            _, body = await _retry(c, url, call, state)  # replay
            assert "already used" in body["error"]["message"]
            other = {**call, "params": {**call["params"], "name": "echo"}}
            _, state2 = await _first_round(c, url)
            _, body = await post(c, url, {**other, "params": {
                **other["params"], "arguments": {"message": "m"}, "requestState": state2}},
                headers("tools/call", "echo"))
            assert "different request" in body["error"]["message"]
        short = scalemcp.Config.from_options(request_state_ttl_s=0.01, state_keys=["k1" * 16])
        async with open_client(app, short, timeout=10) as (url, c):
            call, state = await _first_round(c, url)
            await trio.sleep(0.05)  # real time: past the state's 10 ms TTL (wall clock)
            _status, body = await _retry(c, url, call, state)
            assert "expired" in body["error"]["message"]
        # A second server with another key ring cannot verify; with the key it can.
        ring = scalemcp.Config.from_options(state_keys=["k2" * 16, "k1" * 16])
        async with (
            open_asgi(app, short.replace(request_state_ttl_s=60), port=8001) as a,
            open_asgi(app, ring, port=8002) as b,
            client_of(a, b, timeout=10) as c,
        ):
            call, state = await _first_round(c, a.url)
            _, body = await _retry(c, b.url, call, state)
            assert body["result"]["content"][0]["text"] == "Hello, Bo!"
        other = scalemcp.Config.from_options(state_keys=["other" * 8])
        async with open_client(app, other, timeout=10) as (url_c, c):
            _, body = await _retry(c, url_c, call, state)
            assert "unknown key" in body["error"]["message"]


async def test_stateless_only_refuses_sessions() -> None:
    with trio.fail_after(15):
        config = scalemcp.Config.from_options(stateless_only=True)
        async with open_client(app, config, timeout=10) as (url, c):
            assert (await c.get(url)).status_code == 405
            assert (await c.delete(url)).status_code == 405
            init = initialize(name="t")
            status, body = await post(c, url, init, {
                "accept": "application/json, text/event-stream",
                "content-type": "application/json"})
            assert (status, body["error"]["code"]) == (400, -32022)
            assert body["error"]["data"]["supported"] == ["2026-07-28"]


async def test_closing_the_stream_cancels_the_handler() -> None:
    demo = scalemcp.App("cancel-demo")
    events: list[str] = []
    cancelled = trio.Event()

    @demo.tool
    async def slow(ctx: scalemcp.Context) -> str:
        """Reports progress, then waits."""
        await ctx.report_progress(1, 2)
        try:
            await trio.sleep(30)
        except trio.Cancelled:
            events.append("cancelled")
            cancelled.set()
            raise
        return "finished"

    with trio.fail_after(15):
        async with open_client(demo, timeout=10) as (url, c):
            call = request("tools/call", {"name": "slow", "arguments": {}})
            call["params"]["_meta"] = {**META, "progressToken": "p"}
            async with c.stream("POST", url, json=call,
                                headers=headers("tools/call", "slow")) as stream:
                async for line in stream.aiter_lines():
                    if "notifications/progress" in line:
                        break
            with trio.fail_after(5):
                await cancelled.wait()
    assert events == ["cancelled"]
