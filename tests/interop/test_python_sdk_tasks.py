"""Interop: the official Python SDK client (``mcp`` 2.x) drives scalemcp's durable tasks.

The SDK ships no tasks client; it has an extension API (``ClientExtension`` with a
``ResultClaim`` on ``resultType``) and its request types mirror ``Mcp-Name`` from a
``name_param`` (which its docs say SEP-2663 needs for ``tasks/*``). This test builds the
tasks extension on that API the way an application would: the client declares
``io.modelcontextprotocol/tasks``, ``call_tool`` gets a CreateTaskResult, the claim polls
``tasks/get`` (and answers ``inputRequests`` with ``tasks/update``) until the task ends, and
the caller sees an ordinary CallToolResult. Real HTTP, a real ``scalemcp serve`` process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import mcp_types as types
import pytest
import trio
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from pydantic import Field, TypeAdapter

from tests.harness.serve import ServeProcess

pytestmark = [pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")]

EXTENSION = "io.modelcontextprotocol/tasks"
_ANY: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


class TaskParams(types.RequestParams):
    task_id: str


class UpdateParams(types.RequestParams):
    task_id: str
    input_responses: dict[str, Any]


class GetTask(types.Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class UpdateTask(types.Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param = "taskId"


class CreateTaskResult(types.Result):
    result_type: Literal["task"] = Field(default="task")
    task_id: str
    status: str
    poll_interval_ms: int | None = None


class Tasks(ClientExtension):
    """The tasks extension on the SDK's extension API: resolve a task to its result."""

    identifier = EXTENSION

    def __init__(self, answer: dict[str, Any] | None = None) -> None:
        self.answer = answer
        self.seen: list[str] = []

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self.resolve)]

    async def resolve(self, created: CreateTaskResult, ctx: ClaimContext
                      ) -> types.CallToolResult:
        self.seen.append(created.status)
        while True:
            task = await ctx.session.send_request(
                GetTask(params=TaskParams(task_id=created.task_id)), _ANY)
            self.seen.append(task["status"])
            if task["status"] == "completed":
                return types.CallToolResult.model_validate(task["result"])
            if task["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"task {task['status']}: {task.get('error')}")
            if task["status"] == "input_required" and self.answer is not None:
                answers = {key: self.answer for key in task["inputRequests"]}
                await ctx.session.send_request(
                    UpdateTask(params=UpdateParams(task_id=created.task_id,
                                                   input_responses=answers)), _ANY)
            await trio.sleep((created.poll_interval_ms or 100) / 1000)


def texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


async def on_elicit(ctx: Any, params: types.ElicitRequestParams
                   ) -> types.ElicitResult | types.ErrorData:
    """Declares elicitation; a task's questions come as inputRequests, answered above."""
    return types.ElicitResult(action="decline")


async def test_sdk_client_resolves_tasks(conformance_server: ServeProcess) -> None:
    tasks = Tasks(answer={"action": "accept", "content": {"confirm": True}})
    with trio.fail_after(30):
        async with Client(conformance_server.url, mode="2026-07-28", read_timeout_seconds=10,
                          extensions=[tasks], elicitation_callback=on_elicit) as client:
            result = await client.call_tool("slow_compute", {"seconds": 0.3, "label": "sdk"})
            assert texts(result) == ["computed sdk in 0.3 s"]
            assert tasks.seen[0] == "working"
            assert tasks.seen[-1] == "completed"

            tasks.seen.clear()
            confirmed = await client.call_tool("confirm_delete", {"filename": "a.txt"})
            assert texts(confirmed) == ["deleted a.txt"]
            assert "input_required" in tasks.seen

            greeting = await client.call_tool("greet", {"name": "SDK"})  # never a task
            assert texts(greeting) == ["Hello, SDK!"]
