"""The same tool (quickstart ``ask_name``, which calls ``ctx.elicit``) in every era."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio_websocket

from examples.quickstart import app
from scalemcp.testing import open_server
from tests.harness.asgi import open_client

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
}
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "ask_name", "arguments": {}}}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
    "clientInfo": {"name": "t", "version": "1"}}}
EXPECTED = {"content": [{"type": "text", "text": "Hello, Ada!"}]}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    assert request["method"] == "elicitation/create"
    assert request["params"]["requestedSchema"]["required"] == ["name"]
    return {"jsonrpc": "2.0", "id": request["id"],
            "result": {"action": "accept", "content": {"name": "Ada"}}}


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines()
            if line.startswith("data: ") and len(line) > 6]


async def test_session_era() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, client):
            init = await client.post(url, json=INIT, headers=ACCEPT)
            sid = init.headers["mcp-session-id"]
            headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
            async with client.stream("POST", url, json=CALL, headers=headers) as stream:
                assert stream.headers["content-type"] == "text/event-stream"
                seen: list[dict[str, Any]] = []
                async for line in stream.aiter_lines():
                    if not line.startswith("data: ") or len(line) == 6:
                        continue
                    message = json.loads(line[6:])
                    seen.append(message)
                    if "method" in message:
                        reply = await client.post(url, json=answer(message), headers=headers)
                        assert reply.status_code == 202
                    elif message.get("id") == 7:
                        break
            assert seen[-1]["result"] == EXPECTED


async def test_modern_era_multi_round_trip() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, client):
            headers = {**ACCEPT, "mcp-protocol-version": "2026-07-28",
                       "mcp-method": "tools/call", "mcp-name": "ask_name"}
            call = {**CALL, "params": {**CALL["params"], "_meta": MODERN_META}}
            first = (await client.post(url, json=call, headers=headers)).json()["result"]
            assert first["resultType"] == "input_required"
            [(key, request)] = first["inputRequests"].items()
            retry = {**call, "id": 8, "params": {
                **call["params"], "requestState": first["requestState"],
                "inputResponses": {key: answer({**request, "id": 0})["result"]}}}
            done = (await client.post(url, json=retry, headers=headers)).json()
            assert done["id"] == 8
            assert done["result"]["content"] == EXPECTED["content"]
            assert done["result"]["resultType"] == "complete"


async def test_legacy_http_sse() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, client):
            base = url.removesuffix("/mcp")
            async with client.stream("GET", base + "/sse") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "event: endpoint"
                endpoint = base + (await anext(lines)).removeprefix("data: ")
                legacy_init = {**INIT, "params": {**INIT["params"],
                                                  "protocolVersion": "2024-11-05"}}
                await client.post(endpoint, json=legacy_init)
                async for line in lines:
                    if not line.startswith("data: "):
                        continue
                    message = json.loads(line[6:])
                    if message.get("id") == 1:
                        await client.post(endpoint, json=CALL)
                    elif "method" in message:
                        await client.post(endpoint, json=answer(message))
                    elif message.get("id") == 7:
                        assert message["result"] == EXPECTED
                        return
    raise AssertionError("no result")


async def test_websocket() -> None:
    with trio.fail_after(15):
        async with open_server(app) as url:
            ws_url = url.replace("http://", "ws://")
            async with trio_websocket.open_websocket_url(ws_url, subprotocols=["mcp"]) as ws:
                assert ws.subprotocol == "mcp"
                await ws.send_message(json.dumps(INIT))
                assert json.loads(await ws.get_message())["result"]["protocolVersion"]
                await ws.send_message(json.dumps(CALL))
                request = json.loads(await ws.get_message())
                await ws.send_message(json.dumps(answer(request)))
                assert json.loads(await ws.get_message())["result"] == EXPECTED
                await ws.send_message("{not json")
                error = json.loads(await ws.get_message())
                assert error["error"]["code"] == -32700
                await ws.send_message(json.dumps({**CALL, "id": 9, "params": {
                    "name": "echo", "arguments": {"message": "still here"}}}))
                assert json.loads(await ws.get_message())["result"]["content"][0]["text"] == (
                    "still here")


async def test_websocket_refuses_binary_frames_and_missing_subprotocol() -> None:
    with trio.fail_after(15):
        async with open_server(app) as url:
            ws_url = url.replace("http://", "ws://")
            async with trio_websocket.open_websocket_url(ws_url, subprotocols=["mcp"]) as ws:
                await ws.send_message(b"\x00\x01")
                with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1003
            try:
                async with trio_websocket.open_websocket_url(ws_url) as ws:
                    await ws.get_message()
            except (trio_websocket.ConnectionRejected, trio_websocket.ConnectionClosed):
                pass
            else:
                raise AssertionError("connection without the mcp subprotocol was accepted")
