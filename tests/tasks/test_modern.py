"""Durable tasks over the 2026-07-28 wire (the io.modelcontextprotocol/tasks extension),
in memory: the server decides, tasks/get shows progress and the inlined result, a
cancellation stops the running tool before the task says cancelled, listen streams get
``notifications/tasks``, and each principal sees only its own tasks."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest
import trio

import scalemcp
from tests.harness.asgi import open_client
from tests.harness.client import Stateless
from tests.harness.sse import sse_events
from tests.security.test_api_keys import ALICE_KEY, BOB_KEY, keys_file

from .app import SEEN, app, started

EXT = "io.modelcontextprotocol/tasks"
DECLARED = {"extensions": {EXT: {}}}
FAST = scalemcp.Config.from_options(task_lease_s=0.5)


def client(http: httpx.AsyncClient, url: str, *, declared: bool = True,
           auth: dict[str, str] | None = None) -> Stateless:
    return Stateless(http, url, capabilities=DECLARED if declared else {}, auth=auth)


async def call(c: Stateless, method: str, params: dict[str, Any], name: str | None = None
               ) -> dict[str, Any]:
    r = await c.call(method, params, name)
    body: dict[str, Any] = r.json()
    return body


async def create(c: Stateless, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = await call(c, "tools/call", {"name": tool, "arguments": arguments}, tool)
    result: dict[str, Any] = body["result"]
    assert result["resultType"] == "task", body
    return result


async def get(c: Stateless, task_id: str) -> dict[str, Any]:
    body = await call(c, "tasks/get", {"taskId": task_id}, task_id)
    assert "result" in body, body
    result: dict[str, Any] = body["result"]
    return result


async def until(c: Stateless, task_id: str, *statuses: str) -> dict[str, Any]:
    while True:
        task = await get(c, task_id)
        if task["status"] in statuses:
            return task
        await trio.sleep(0.02)


async def test_a_task_runs_and_tasks_get_shows_it() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url)
            created = await create(c, "work", {"seconds": 0.3, "label": "m1"})
            assert set(created) >= {"taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs",
                                    "pollIntervalMs"}
            assert (created["ttlMs"], created["pollIntervalMs"]) == (60_000, 250)
            assert len(created["taskId"]) >= 43  # 256 bits
            working = await until(c, created["taskId"], "working")
            assert "result" not in working
            seen = await until(c, created["taskId"], "completed")
            assert seen["result"]["content"][0]["text"] == "worked m1 as task True"
            assert seen["statusMessage"] == "half of m1"
            assert seen["resultType"] == "complete"


async def test_undeclared_clients_get_results_or_32021() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url, declared=False)
            inline = (await call(c, "tools/call", {"name": "work", "arguments": {}}, "work"))
            assert inline["result"]["content"][0]["text"] == "worked  as task False"
            refused = await call(c, "tools/call", {"name": "only_task", "arguments": {}},
                                 "only_task")
            assert refused["error"]["code"] == -32021
            assert refused["error"]["data"] == {"requiredCapabilities": DECLARED}
            for method in ("tasks/get", "tasks/cancel"):
                r = await call(c, method, {"taskId": "x"}, "x")
                assert r["error"]["code"] == -32021


async def test_cancel_stops_the_tool_before_the_task_says_cancelled() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url)
            created = await create(c, "work", {"seconds": 60, "label": "m2"})
            task_id = created["taskId"]
            await started("m2").wait()
            asked = trio.current_time()
            ack = await call(c, "tasks/cancel", {"taskId": task_id}, task_id)
            assert ack["result"] == {"resultType": "complete"} or set(ack["result"]) <= {
                "resultType", "_meta"}
            done = await until(c, task_id, "cancelled", "completed", "failed")
            assert done["status"] == "cancelled"
            assert SEEN["m2"] == ["started", "cancelled"]  # it stopped, then said so
            assert trio.current_time() - asked < 1.0


async def test_listen_pushes_task_status() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url)
            created = await create(c, "work", {"seconds": 0.5, "label": "m3"})
            task_id = created["taskId"]
            body = c.request("subscriptions/listen",
                             {"notifications": {"taskIds": [task_id, "not-a-task"]}})
            async with http.stream("POST", url, json=body,
                                   headers=c.headers("subscriptions/listen")) as r:
                assert r.status_code == 200
                statuses = []
                async for event in sse_events(r):
                    if not event.data:
                        continue
                    message = json.loads(event.data)
                    if message["method"] == "notifications/subscriptions/acknowledged":
                        assert message["params"]["notifications"]["taskIds"] == [task_id]
                        continue
                    assert message["method"] == "notifications/tasks"
                    statuses.append(message["params"]["status"])
                    if message["params"]["status"] == "completed":
                        assert message["params"]["result"]["content"]
                        break
            assert statuses[-1] == "completed"


async def test_listen_for_tasks_needs_the_extension() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url, declared=False)
            r = await call(c, "subscriptions/listen", {"notifications": {"taskIds": ["t"]}})
            assert r["error"]["code"] == -32021


async def test_input_required_then_update() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url)
            c.capabilities = {**DECLARED, "elicitation": {}}
            task_id = (await create(c, "ask_name", {}))["taskId"]
            asking = await until(c, task_id, "input_required")
            [(key, request)] = asking["inputRequests"].items()
            assert request["method"] == "elicitation/create"
            # An answer that is not an object is no answer; unknown keys are ignored.
            for wrong in ({key: 12}, {"other": {"action": "accept"}}):
                ack = await call(c, "tasks/update", {"taskId": task_id, "inputResponses": wrong},
                                 task_id)
                assert ack["result"]["resultType"] == "complete"
                assert (await get(c, task_id))["status"] == "input_required"
            answer = {key: {"action": "accept", "content": {"name": "Ada"}}}
            await call(c, "tasks/update", {"taskId": task_id, "inputResponses": answer}, task_id)
            done = await until(c, task_id, "completed")
            assert done["result"]["content"][0]["text"] == "Hello, Ada!"


async def test_each_principal_sees_only_its_tasks(tmp_path: pathlib.Path) -> None:
    config = FAST.replace(auth="api_key", api_keys_file=keys_file(tmp_path))
    with trio.fail_after(20):
        async with open_client(app, config) as (url, http):
            alice = client(http, url, auth={"x-api-key": ALICE_KEY})
            bob = client(http, url, auth={"x-api-key": BOB_KEY})
            task_id = (await create(alice, "work", {"seconds": 5, "label": "m4"}))["taskId"]
            assert (await get(alice, task_id))["taskId"] == task_id
            for method in ("tasks/get", "tasks/cancel"):
                r = await call(bob, method, {"taskId": task_id}, task_id)
                assert r["error"]["code"] == -32602
            assert (await get(alice, task_id))["status"] == "working"  # bob cancelled nothing


@pytest.mark.parametrize("tool", ["plain"])
async def test_legacy_task_param_does_not_make_a_task(tool: str) -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST) as (url, http):
            c = client(http, url)
            r = await call(c, "tools/call", {"name": tool, "arguments": {}, "task": {"ttl": 5}},
                           tool)
            assert r["result"]["resultType"] == "complete"


async def test_too_many_tasks_are_refused() -> None:
    with trio.fail_after(20):
        async with open_client(app, FAST.replace(task_max_active=1)) as (url, http):
            c = client(http, url)
            await create(c, "work", {"seconds": 5, "label": "m5"})
            refused = await call(c, "tools/call", {"name": "work", "arguments": {}}, "work")
            assert refused["error"]["code"] == -31429
            assert refused["error"]["data"]["limit"] == "task_queue"
