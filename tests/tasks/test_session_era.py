"""Durable tasks over the 2025-11-25 wire (core, experimental): ``capabilities.tasks``,
``execution.taskSupport``, ``params.task``, ``tasks/get|result|list|cancel``, and input
through a real ``elicitation/create`` request on the session's GET stream, tagged with the
related task."""

from __future__ import annotations

import json
from typing import Any

import trio

import scalemcp
from tests.harness.asgi import open_client
from tests.harness.client import Session, result
from tests.harness.sse import sse_events

from .app import app

FAST = scalemcp.Config.from_options(task_lease_s=0.5)
RELATED = "io.modelcontextprotocol/related-task"


async def task_call(s: Session, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = await s.call("tools/call", {"name": tool, "arguments": arguments,
                                         "task": {"ttl": 30_000}})
    task: dict[str, Any] = answer["result"]["task"]
    return task


async def test_capabilities_and_tool_execution() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            s = Session(http, url)
            init = await s.initialize()
            assert init["result"]["capabilities"]["tasks"] == {
                "list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
            tools = {t["name"]: t for t in (await s.call("tools/list"))["result"]["tools"]}
            assert tools["work"]["execution"] == {"taskSupport": "optional"}
            assert tools["only_task"]["execution"] == {"taskSupport": "required"}
            assert "execution" not in tools["plain"]


async def test_get_result_list_cancel() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            s = Session(http, url)
            await s.initialize()
            task = await task_call(s, "work", {"seconds": 0.2, "label": "s1"})
            assert task["status"] == "working"
            assert task["ttl"] == 30_000
            assert task["pollInterval"] == 250
            got = (await s.call("tasks/get", {"taskId": task["taskId"]}))["result"]
            assert got["taskId"] == task["taskId"]
            done = (await s.call("tasks/result", {"taskId": task["taskId"]}))["result"]
            assert done["content"][0]["text"] == "worked s1 as task True"
            assert done["_meta"][RELATED] == {"taskId": task["taskId"]}
            listed = (await s.call("tasks/list"))["result"]["tasks"]
            assert [t["taskId"] for t in listed] == [task["taskId"]]
            assert listed[0]["status"] == "completed"
            again = await s.call("tasks/cancel", {"taskId": task["taskId"]})
            assert again["error"]["code"] == -32602  # terminal: cannot be cancelled

            running = await task_call(s, "work", {"seconds": 60, "label": "s2"})
            cancelled = await s.call("tasks/cancel", {"taskId": running["taskId"]})
            assert cancelled["result"]["status"] == "cancelled"


async def test_task_support_rules() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            s = Session(http, url)
            await s.initialize()
            refused = await s.call("tools/call", {"name": "only_task", "arguments": {}})
            assert refused["error"]["code"] == -32601
            forbidden = await s.call("tools/call", {"name": "plain", "arguments": {},
                                                    "task": {}})
            assert forbidden["error"]["code"] == -32601
            inline = await s.call("tools/call", {"name": "work", "arguments": {}})
            assert inline["result"]["content"][0]["text"] == "worked  as task False"
            unknown = await s.call("tasks/get", {"taskId": "nope"})
            assert unknown["error"]["code"] == -32602


async def test_elicitation_inside_a_task_goes_to_the_session() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            s = Session(http, url, capabilities={"elicitation": {}})
            await s.initialize()
            asked: list[dict[str, Any]] = []
            async with s.listen() as stream, trio.open_nursery() as nursery:
                async def answer_requests() -> None:
                    async for event in sse_events(stream):
                        if not event.data:
                            continue
                        message = json.loads(event.data)
                        if message.get("method") == "elicitation/create":
                            asked.append(message)
                            r = await s.post(result(message["id"], {
                                "action": "accept", "content": {"name": "Grace"}}))
                            assert r.status_code == 202

                nursery.start_soon(answer_requests)
                task = await task_call(s, "ask_name", {})
                done = (await s.call("tasks/result", {"taskId": task["taskId"]}))["result"]
                nursery.cancel_scope.cancel()
            assert done["content"][0]["text"] == "Hello, Grace!"
            assert asked[0]["params"]["_meta"][RELATED] == {"taskId": task["taskId"]}


async def test_status_changes_are_pushed_to_the_session() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            s = Session(http, url)
            await s.initialize()
            pushed: list[dict[str, Any]] = []
            async with s.listen() as stream:
                task = await task_call(s, "work", {"seconds": 0.1, "label": "s3"})
                async for event in sse_events(stream):
                    message = json.loads(event.data) if event.data else {}
                    if message.get("method") == "notifications/tasks/status":
                        pushed.append(message["params"])
                        if message["params"]["status"] == "completed":
                            break
            assert pushed[-1]["taskId"] == task["taskId"]
            assert pushed[-1]["status"] == "completed"
