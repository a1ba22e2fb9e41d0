"""The app the task tests serve: tools that run as durable tasks, and what they saw."""

from __future__ import annotations

import trio

import scalemcp
from scalemcp import Context

app = scalemcp.App("tasks-test", version="1.0")

#: What the tools saw, by label: "started", "cancelled", "done".
SEEN: dict[str, list[str]] = {}
#: Set when the tool of a label starts.
STARTED: dict[str, trio.Event] = {}


def started(label: str) -> trio.Event:
    return STARTED.setdefault(label, trio.Event())


def saw(label: str, what: str) -> None:
    SEEN.setdefault(label, []).append(what)
    if what == "started":
        started(label).set()


@app.tool(task=scalemcp.TaskPolicy(ttl_s=60, poll_interval_s=0.25))
async def work(ctx: Context, seconds: float = 0.0, label: str = "") -> str:
    """Reports progress, sleeps, answers; records its cancellation."""
    saw(label, "started")
    await ctx.report_progress(1, 2, f"half of {label}")
    try:
        await trio.sleep(seconds)
    except trio.Cancelled:
        saw(label, "cancelled")
        raise
    saw(label, "done")
    return f"worked {label} as task {ctx.task_id is not None}"


@app.tool(task="required")
async def only_task() -> str:
    return "ran as a task"


@app.tool(task=True)
async def ask_name(ctx: Context) -> str:
    """Asks for a name (elicitation), then greets."""
    answer = await ctx.elicit("Your name?", {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
    return f"Hello, {(answer.content or {}).get('name')}!"


@app.tool
async def plain() -> str:
    return "never a task"
