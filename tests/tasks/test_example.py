"""examples/tasks.py does what its docstring says, over the 2026-07-28 wire."""

from __future__ import annotations

from typing import Any

import trio

from examples.tasks import app
from tests.harness.asgi import open_client
from tests.harness.client import Stateless

DECLARED = {"extensions": {"io.modelcontextprotocol/tasks": {}}, "elicitation": {}}


async def until(c: Stateless, task_id: str, *statuses: str) -> dict[str, Any]:
    while True:
        task: dict[str, Any] = (await c.call("tasks/get", {"taskId": task_id},
                                             task_id)).json()["result"]
        if task["status"] in statuses:
            return task
        await trio.sleep(0.02)


async def test_crunch_and_send_invoice() -> None:
    with trio.fail_after(20):
        async with open_client(app) as (url, http):
            c = Stateless(http, url, capabilities=DECLARED)
            created = (await c.call_tool("crunch", {"steps": 2, "step_s": 0.05})).json()
            done = await until(c, created["result"]["taskId"], "completed")
            assert done["result"]["content"][0]["text"].startswith("crunched 2 steps (task ")

            created = (await c.call_tool("send_invoice", {"customer": "ACME",
                                                          "amount_cents": 1250})).json()
            task_id = created["result"]["taskId"]
            asking = await until(c, task_id, "input_required")
            [key] = asking["inputRequests"]
            answer = {key: {"action": "accept", "content": {"confirm": True}}}
            await c.call("tasks/update", {"taskId": task_id, "inputResponses": answer}, task_id)
            done = await until(c, task_id, "completed")
            assert done["result"]["content"][0]["text"].startswith("invoice sent to ACME")

            plain = Stateless(http, url)  # no tasks declared: a required task tool refuses
            refused = (await plain.call_tool("send_invoice", {"customer": "x",
                                                              "amount_cents": 1})).json()
            assert refused["error"]["code"] == -32021
