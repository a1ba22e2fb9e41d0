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
from tests.harness.client import (
    ELICITATION,
    LEGACY_VERSION,
    SESSION_VERSION,
    Session,
    initialize,
    modern_headers,
    modern_request,
    open_legacy,
    result,
    tool_call,
)

CALL = tool_call("ask_name", {}, 7)
INIT = initialize(SESSION_VERSION, ELICITATION, 1, "t")
EXPECTED = {"content": [{"type": "text", "text": "Hello, Ada!"}]}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    assert request["method"] == "elicitation/create"
    assert request["params"]["requestedSchema"]["required"] == ["name"]
    return result(request["id"], {"action": "accept", "content": {"name": "Ada"}})


async def answer_result(request: dict[str, Any]) -> Any:
    return answer(request)["result"]


async def test_session_era() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, http):
            session = Session(http, url, SESSION_VERSION, capabilities=ELICITATION)
            await session.initialize()
            seen = await session.exchange(CALL, on_request=answer_result)
            assert seen[-1]["id"] == 7
            assert seen[-1]["result"] == EXPECTED


async def test_modern_era_multi_round_trip() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, client):
            headers = modern_headers("tools/call", "ask_name")
            call = modern_request("tools/call", CALL["params"], 7, ELICITATION)
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
        async with (
            open_client(app, timeout=10) as (url, http),
            open_legacy(http, url.removesuffix("/mcp")) as legacy,
        ):
            await legacy.post(initialize(LEGACY_VERSION, ELICITATION, 1, "t"))
            while True:
                message = await legacy.next_message()
                if message.get("id") == 1:
                    await legacy.post(CALL)
                elif "method" in message:
                    await legacy.post(answer(message))
                elif message.get("id") == 7:
                    assert message["result"] == EXPECTED
                    return


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
