"""Interop driver: the official Python SDK 1.x client's experimental tasks API
(``session.experimental``: ``call_tool_as_task``, ``get_task``, ``get_task_result``,
``list_tasks``, ``cancel_task``; 2025-11-25 core tasks) against scalemcp serving
examples/tasks.py. Runs in its own venv (``mcp`` 1.x; the project's is 2.x, which has no
2025-11-25 tasks client); imports nothing from scalemcp or the tests.

Usage: python py_sdk1_tasks_client.py <url> [<url> ...]. With several URLs (the nodes of one
fleet) the requests go to them in turn. Prints one JSON summary on stdout
(tests/interop/test_python_sdk1_tasks.py asserts on it); a failure prints {"error": ...}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from typing import Any

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.context import RequestContext

RELATED = "io.modelcontextprotocol/related-task"


class InTurn(httpx.AsyncBaseTransport):
    """Sends each request to the next of ``urls``; what went where is kept."""

    def __init__(self, urls: list[str]) -> None:
        self.targets = [httpx.URL(url) for url in urls]
        self.inner = httpx.AsyncHTTPTransport()
        self.routed: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        node = len(self.routed) % len(self.targets)
        target = self.targets[node]
        request.url = request.url.copy_with(host=target.host, port=target.port)
        request.headers["host"] = f"{target.host}:{target.port}"
        what = request.method
        if what == "POST":
            body = json.loads(request.content)
            what = body.get("method") or ("response" if "result" in body else "error")
        self.routed.append({"node": node, "what": what})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run(urls: list[str]) -> dict[str, Any]:
    elicitations: list[dict[str, Any]] = []

    async def on_elicit(ctx: RequestContext[ClientSession, Any],
                        params: types.ElicitRequestParams) -> types.ElicitResult:
        meta = params.meta.model_dump(by_alias=True) if params.meta else {}
        elicitations.append({"message": params.message, "relatedTask": meta.get(RELATED)})
        return types.ElicitResult(action="accept", content={"confirm": True})

    routing = InTurn(urls)
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=routing, timeout=httpx.Timeout(10, read=30)) as http, \
            streamable_http_client(urls[0], http_client=http) as (read, write, _), \
            ClientSession(read, write, elicitation_callback=on_elicit) as session:
        init = await session.initialize()
        out["protocolVersion"] = init.protocolVersion
        out["capabilities"] = init.capabilities.model_dump(by_alias=True, exclude_none=True)
        tasks = session.experimental

        created = await tasks.call_tool_as_task("crunch", {"steps": 2, "step_s": 0.05})
        first = created.task.taskId
        out["created"] = {"status": created.task.status, "ttl": created.task.ttl,
                          "pollInterval": created.task.pollInterval}
        out["polled"] = [task.status async for task in tasks.poll_task(first)]
        got = await tasks.get_task(first)
        out["getFinished"] = {"taskId": got.taskId, "status": got.status,
                              "statusMessage": got.statusMessage}
        result = await tasks.get_task_result(first, types.CallToolResult)
        out["resultFinished"] = {
            "texts": [c.text for c in result.content if isinstance(c, types.TextContent)],
            "related": (result.meta or {}).get(RELATED)}

        # A task that asks: tasks/result blocks until it ends, the question arrives on
        # the session's GET stream and the callback above answers it.
        invoice = (await tasks.call_tool_as_task(
            "send_invoice", {"customer": "ACME", "amount_cents": 1250})).task.taskId
        invoiced = await tasks.get_task_result(invoice, types.CallToolResult)
        out["invoice"] = [c.text for c in invoiced.content if isinstance(c, types.TextContent)]
        out["elicitations"] = elicitations

        long = (await tasks.call_tool_as_task("crunch", {"steps": 100, "step_s": 0.1})
                ).task.taskId
        await asyncio.sleep(0.3)
        out["beforeCancel"] = (await tasks.get_task(long)).status
        cancelled = await tasks.cancel_task(long)
        out["cancelled"] = {"taskId": cancelled.taskId, "status": cancelled.status}
        out["afterCancel"] = (await tasks.get_task(long)).status
        try:
            await tasks.cancel_task(long)
            out["cancelAgain"] = "accepted"
        except Exception as exc:  # the SDK's McpError
            error = getattr(exc, "error", None)
            out["cancelAgain"] = {"code": getattr(error, "code", None), "message": str(exc)}
        listed = await tasks.list_tasks()
        out["listed"] = [{"taskId": t.taskId, "status": t.status} for t in listed.tasks]
        out["ids"] = {"first": first, "invoice": invoice, "long": long}
    out["routed"] = routing.routed
    return out


def main() -> int:
    try:
        out = asyncio.run(run(sys.argv[1:]))
    except BaseException:
        print(json.dumps({"error": traceback.format_exc()}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
