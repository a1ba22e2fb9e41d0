"""The app the ops tests serve: a tool that logs, a tool that streams, a traced tool."""

from __future__ import annotations

import logging
import os

import trio

import scalemcp

app = scalemcp.App("ops-test", version="1.0.0")
log = logging.getLogger("tests.ops.app")


@app.tool
async def whoami() -> str:
    """Write one log line from inside a handler."""
    log.info("whoami runs")
    return "ok"


@app.tool
async def slow(ctx: scalemcp.Context, steps: int = 100) -> str:
    """Send a log notification every 50 ms (an SSE stream that outlives a short drain)."""
    for i in range(steps):
        await ctx.info(f"step {i + 1} of {steps}")
        await trio.sleep(0.05)
    return "done"


@app.tool
async def traced() -> str:
    """Open a span of its own: it must nest under the server's span for this call."""
    from opentelemetry import trace

    with trace.get_tracer("tests.ops.app").start_as_current_span("inside the tool"):
        return "ok"


@app.tool
async def pid() -> int:
    """The worker process that serves this call."""
    return os.getpid()


@app.tool
async def ask_name(ctx: scalemcp.Context) -> str:
    """Ask the client for a name (elicitation); the answer may land on another node."""
    answer = await ctx.elicit(
        "What is your name?",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    name = (answer.content or {}).get("name", "?") if answer.action == "accept" else "-"
    return f"Hello, {name}! (pid {os.getpid()})"
