"""The 2024-11-05 HTTP+SSE transport: the official Python SDK's SSE client, and raw HTTP."""

from __future__ import annotations

import json

import httpx
import mcp
import trio

from tests.harness.serve import ServeProcess


def _sse_url(server: ServeProcess) -> str:
    return server.url.removesuffix("/mcp") + "/sse"


async def test_python_sdk_sse_client(quickstart_server: ServeProcess) -> None:
    from mcp.client.sse import sse_client

    with trio.fail_after(20):
        async with sse_client(_sse_url(quickstart_server)) as (read, write), mcp.ClientSession(
            read, write
        ) as session:
            await session.initialize()
            result = await session.call_tool("add", {"a": 2, "b": 3})
            assert result.structured_content == {"result": 5}
            tools = await session.list_tools()
            assert [t.name for t in tools.tools][:2] == ["add", "echo"]
            read_result = await session.read_resource("greeting://ann")
            assert read_result.contents[0].text == "Hello, ann!"


async def test_raw_2024_11_05_exchange(quickstart_server: ServeProcess) -> None:
    base = quickstart_server.url.removesuffix("/mcp")
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=base, timeout=10) as client, client.stream(
            "GET", "/sse", headers={"accept": "text/event-stream"}
        ) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: endpoint"
            endpoint = (await anext(lines)).removeprefix("data: ")
            assert endpoint.startswith("/messages?sessionId=")
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}}
            posted = await client.post(endpoint, json=init)
            assert posted.status_code == 202
            messages = []
            async for line in lines:
                if line.startswith("data: "):
                    messages.append(json.loads(line[6:]))
                    if len(messages) == 2:
                        break
                    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "hi"}}}
                    assert (await client.post(endpoint, json=call)).status_code == 202
            assert messages[0]["result"]["protocolVersion"] == "2024-11-05"
            assert messages[1] == {"jsonrpc": "2.0", "id": 2, "result": {
                "content": [{"type": "text", "text": "hi"}]}}
            unknown = await client.post("/messages?sessionId=nope", json=init)
            assert unknown.status_code == 404
