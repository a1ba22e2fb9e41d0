"""The ``task`` scenario: durable tasks, created and waited for.

One operation creates a task with ``tools/call`` and waits until it has ended; it is timed
from the request to the moment the client knows the task completed (create-to-complete,
recorded as the op ``task``), and the create alone is recorded too (``other:task_create``;
the counter ``tasks_created``). Which wire:

- modern (2026-07-28): the client declares the ``io.modelcontextprotocol/tasks`` extension
  in its per-request capabilities and gets a ``CreateTaskResult`` (``resultType: "task"``);
- session (2025-11-25): ``params.task`` with a TTL; the result's ``task`` is the handle.

How it waits (``task_wait``): ``poll``: ``tasks/get`` every ``task_poll_ms`` (counted:
``task_polls``); ``listen`` (modern only): a ``subscriptions/listen`` stream with the task's
id until ``notifications/tasks`` says it ended (one ``tasks/get`` after the acknowledgement
covers a task that ended before the stream began).

A task that ends ``failed`` or ``cancelled`` is an error of that kind (``task_failed``...);
a tool the server runs inline is ``not_a_task``.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, Final

import msgspec
import trio
from msgspec import UNSET, Raw

from .client import McpClient, read_messages
from .config import BenchConfig
from .errors import McpError
from .messages import Message
from .scenarios import ClientCtx, Scenario

__all__ = ["EXTENSION", "TaskScenario"]

EXTENSION: Final = "io.modelcontextprotocol/tasks"
_TTL_MS: Final = 60_000
_ENDED: Final = frozenset({"completed", "failed", "cancelled"})


class TaskHead(msgspec.Struct, frozen=True, rename="camel"):
    """A task as ``tasks/get`` and ``notifications/tasks`` carry it (the parts read)."""

    task_id: str
    status: str


class ModernCreated(msgspec.Struct, frozen=True, rename="camel"):
    result_type: str = "complete"
    task_id: str | None = None


class SessionCreated(msgspec.Struct, frozen=True):
    task: TaskHead | None = None


_head = msgspec.json.Decoder(TaskHead)
_modern_created = msgspec.json.Decoder(ModernCreated)
_session_created = msgspec.json.Decoder(SessionCreated)


def _decode(decoder: msgspec.json.Decoder[Any], raw: Raw | Any, what: str) -> Any:
    if raw is UNSET:
        raise McpError("decode", f"{what} is missing")
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise McpError("decode", f"{what}: {exc}") from exc


class TaskScenario(Scenario):
    unsupported_eras = ("legacy-sse",)

    def __init__(self, config: BenchConfig) -> None:
        super().__init__(config)
        self.poll_s = config.task_poll_ms / 1000

    async def op(self, ctx: ClientCtx) -> str:
        await self.ensure_open(ctx)
        assert isinstance(ctx.mcp, McpClient)  # legacy-sse is refused above
        mcp = ctx.mcp
        started = trio.current_time()
        task_id = await self.create(mcp)
        ctx.rec.observe("task_create", trio.current_time() - started)
        ctx.rec.count("tasks_created")
        if self.config.task_wait == "listen":
            status = await self.listen(mcp, task_id)
        else:
            status = await self.poll(ctx, mcp, task_id)
        if status != "completed":
            raise McpError(f"task_{status}", f"task {task_id} ended {status}")
        return "task"

    async def create(self, mcp: McpClient) -> str:
        params: dict[str, Any] = {"name": self.tool, "arguments": self.args}
        if mcp.era == "modern":
            result = (await mcp.request("tools/call", params)).result
            created: ModernCreated = _decode(_modern_created, result, "tools/call result")
            if created.result_type != "task" or created.task_id is None:
                raise McpError("not_a_task", f"{self.tool!r} ran inline, not as a task")
            return created.task_id
        params["task"] = {"ttl": _TTL_MS}
        result = (await mcp.request("tools/call", params)).result
        session: SessionCreated = _decode(_session_created, result, "tools/call result")
        if session.task is None:
            raise McpError("not_a_task", f"{self.tool!r} ran inline, not as a task")
        return session.task.task_id

    async def get(self, mcp: McpClient, task_id: str) -> str:
        result = (await mcp.request("tasks/get", {"taskId": task_id})).result
        head: TaskHead = _decode(_head, result, "tasks/get result")
        return head.status

    async def poll(self, ctx: ClientCtx, mcp: McpClient, task_id: str) -> str:
        while True:
            status = await self.get(mcp, task_id)
            ctx.rec.count("task_polls")
            if status in _ENDED:
                return status
            await trio.sleep(self.poll_s)

    async def listen(self, mcp: McpClient, task_id: str) -> str:
        params = {"notifications": {"taskIds": [task_id]}}
        headers, body = mcp.build("subscriptions/listen", params, mcp.next_id())
        response = await mcp.post(headers, body)
        try:
            async with aclosing(read_messages(response)) as stream:
                async for message, _ in stream:
                    if (status := await self._heard(mcp, task_id, message)) is not None:
                        return status
        finally:
            await response.aclose()
        raise McpError("listen_ended", f"the listen stream ended before task {task_id} did")

    async def _heard(self, mcp: McpClient, task_id: str, message: Message) -> str | None:
        """The task's final status if ``message`` tells it (the acknowledgement: ask once)."""
        if message.method == "notifications/subscriptions/acknowledged":
            status = await self.get(mcp, task_id)
            return status if status in _ENDED else None
        if message.method == "notifications/tasks":
            head: TaskHead = _decode(_head, message.params, "notifications/tasks params")
            if head.task_id == task_id and head.status in _ENDED:
                return head.status
        return None
