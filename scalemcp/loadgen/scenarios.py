"""The operations each scenario repeats; one `Scenario` object serves every client.

A scenario gets a `ClientCtx` per simulated client: ``setup`` once, then
``op`` again and again (each call is one timed operation; it returns the name
its latency is recorded under, and raises `McpError` on failure), then
``teardown``. The streaming scenarios (resume, elicit, listen) live in
`scalemcp.loadgen.streaming`; this module holds the plain ones and the factory.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgspec
import trio
from msgspec import UNSET

from . import messages
from .client import McpClient
from .clients import McpLike
from .config import BenchConfig
from .errors import McpError
from .messages import Message, ProgressParams, ToolResultHead
from .stats import Recorder

__all__ = ["ClientCtx", "Scenario", "make_scenario"]


class ClientCtx:
    """One simulated client as scenarios see it."""

    def __init__(self, index: int, mcp: McpLike, rec: Recorder, config: BenchConfig) -> None:
        self.index = index
        self.mcp = mcp
        self.rec = rec
        """Where this operation's counters go; the runner swaps it during warmup."""
        self.config = config
        self.rng = random.Random(index)
        self.tokens = itertools.count(1)
        self.state: Any = None
        """Per-client scenario state ("listener" marks a background client)."""

    def token(self) -> str:
        return f"bench-{self.index}-{next(self.tokens)}"


class Scenario:
    """Base scenario: sessions opened in setup, closed in teardown."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.tool = config.tool_name
        self.args = config.tool_args()

    async def setup(self, ctx: ClientCtx) -> None:
        await ctx.mcp.open()

    async def op(self, ctx: ClientCtx) -> str:
        raise NotImplementedError

    def background_clients(self, clients: int) -> int:
        """How many of a process's ``clients`` run `background` instead of `op`."""
        return 0

    async def background(self, ctx: ClientCtx) -> None:
        """Run until cancelled (clients with index < `background_clients`)."""
        await trio.sleep_forever()

    async def teardown(self, ctx: ClientCtx) -> None:
        await ctx.mcp.close()

    async def ensure_open(self, ctx: ClientCtx) -> None:
        if not ctx.mcp.is_open:
            await ctx.mcp.open()


def check_tool_result(message: Message) -> ToolResultHead:
    """The checked head of a tools/call result; ``isError`` raises `McpError` ``tool_error``."""
    if message.result is UNSET:
        raise McpError("no_result", "response without result")
    head = messages.decode_part(ToolResultHead, message.result, "tools/call result")
    if head.is_error:
        raise McpError("tool_error", bytes(message.result)[:200].decode(errors="replace"))
    return head


class CallScenario(Scenario):
    async def op(self, ctx: ClientCtx) -> str:
        await self.ensure_open(ctx)
        result = await ctx.mcp.request("tools/call", {"name": self.tool, "arguments": self.args})
        check_tool_result(result)
        return "tools/call"


class ListScenario(Scenario):
    async def op(self, ctx: ClientCtx) -> str:
        await self.ensure_open(ctx)
        await ctx.mcp.request("tools/list", {})
        return "tools/list"


class ProgressScenario(Scenario):
    """tools/call with a progressToken; counts the progress notifications."""

    async def op(self, ctx: ClientCtx) -> str:
        await self.ensure_open(ctx)
        token = ctx.token()
        seen = 0

        async def on_message(message: Message, _event_id: str | None) -> None:
            nonlocal seen
            if message.method != "notifications/progress":
                return
            progress = messages.decode_part(ProgressParams, message.params, "progress")
            if progress.progress_token == token:
                seen += 1

        params = {"name": self.tool, "arguments": self.args, "_meta": {"progressToken": token}}
        result = await ctx.mcp.request("tools/call", params, on_message=on_message)
        check_tool_result(result)
        ctx.rec.count("progress_notifications", seen)
        expected = self.config.steps if self.args.get("steps") == self.config.steps else None
        if expected is not None and seen < expected:
            ctx.rec.count("progress_missing", expected - seen)
        return "tools/call+progress"


class InitializeScenario(Scenario):
    """A new session per operation: initialize, initialized, DELETE (modern: server/discover)."""

    async def setup(self, ctx: ClientCtx) -> None:
        return None

    async def teardown(self, ctx: ClientCtx) -> None:
        return None

    async def op(self, ctx: ClientCtx) -> str:
        mcp = ctx.mcp
        if isinstance(mcp, McpClient):
            if mcp.era == "modern":
                await mcp.request("server/discover", {})
                return "server/discover"
            mcp = mcp.spawn()
        await mcp.open()
        await mcp.close()
        return "initialize"


class MixedScenario(Scenario):
    """60 % tools/call, 20 % tools/list, 10 % call with progress, 10 % new session."""

    def __init__(self, config: BenchConfig) -> None:
        super().__init__(config)
        self.call = CallScenario(config)
        self.list = ListScenario(config)
        self.init = InitializeScenario(config)
        progress_config = msgspec.structs.replace(
            config, scenario="call-progress", tool="progress", args=None
        )
        self.progress = ProgressScenario(progress_config)

    async def op(self, ctx: ClientCtx) -> str:
        pick = ctx.rng.random()
        if pick < 0.6:
            return await self.call.op(ctx)
        if pick < 0.8:
            return await self.list.op(ctx)
        if pick < 0.9:
            return await self.progress.op(ctx)
        return await self.init.op(ctx)


def make_scenario(config: BenchConfig) -> Scenario:
    """The scenario object for ``config.scenario``; raises ValueError if the era can't run it."""
    from . import streaming, tasks

    factories: dict[str, type[Scenario]] = {
        "call": CallScenario,
        "list": ListScenario,
        "call-progress": ProgressScenario,
        "initialize": InitializeScenario,
        "mixed": MixedScenario,
        "resume": streaming.ResumeScenario,
        "elicit": streaming.ElicitScenario,
        "listen": streaming.ListenScenario,
        "task": tasks.TaskScenario,
    }
    factory = factories[config.scenario]
    unsupported = getattr(factory, "unsupported_eras", ())
    if config.era in unsupported:
        raise ValueError(f"scenario {config.scenario!r} does not exist in the {config.era} era")
    if config.scenario == "task" and config.task_wait == "listen" and config.era != "modern":
        raise ValueError("--task-wait listen is a 2026-07-28 stream (subscriptions/listen): "
                         "--era modern")
    if config.scenario == "listen" and config.procs > 1:
        raise ValueError("listen times notifications against its own process's trigger: --procs 1")
    return factory(config)
