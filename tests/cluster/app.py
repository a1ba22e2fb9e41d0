"""The app every node of the test cluster serves: tools that say where they run.

Nothing is added to the server to tell workers apart: each tool reports ``os.getpid()``
and the node name the harness puts in ``CLUSTER_NODE``. ``slow`` leaves a mark file in
``CLUSTER_MARKS`` (``<tag>``: ``cancelled`` or ``finished``, then node and pid) so a test
can see from outside what happened to it.
"""

from __future__ import annotations

import os
from typing import Annotated

import msgspec
import trio

import scalemcp

app = scalemcp.App("cluster", version="1.0.0")

NODE = os.environ.get("CLUSTER_NODE", "?")


def where() -> str:
    return f"{NODE} pid {os.getpid()}"


class Worker(msgspec.Struct):
    node: str
    pid: int


@app.tool
async def whoami() -> Worker:
    """The node and process that serve this call."""
    return Worker(node=NODE, pid=os.getpid())


@app.tool
async def countdown(
    n: Annotated[int, msgspec.Meta(ge=1, le=200)],
    ctx: scalemcp.Context,
    delay_ms: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 50,
    close_after: int = 0,
) -> str:
    """Report progress n times, delay_ms apart; each message names the node and pid.

    With ``close_after`` > 0 the server closes the SSE connection after that many steps
    (2025-11-25 SSE polling): the client must resume the stream to see the rest.
    """
    for i in range(n):
        await ctx.report_progress(i + 1, n, where())
        if i + 1 == close_after:
            await ctx.close_sse_stream()
        await trio.sleep(delay_ms / 1000)
    return f"liftoff from {where()}"


@app.tool
async def ask_name(ctx: scalemcp.Context) -> str:
    """Ask for a name (elicitation); the answer names where the tool ran."""
    answer = await ctx.elicit(
        "What is your name?",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    name = (answer.content or {}).get("name", "stranger") if answer.action == "accept" else "-"
    return f"Hello, {name}! ({where()})"


@app.tool
async def slow(tag: Annotated[str, msgspec.Meta(pattern="^[a-z0-9-]{1,40}$")],
               ctx: scalemcp.Context) -> str:
    """Report where it runs, then wait about 10 s; record whether it was cancelled."""
    await ctx.report_progress(1, 2, where())
    outcome = "cancelled"
    try:
        await trio.sleep(10)
        outcome = "finished"
    finally:
        marks = os.environ.get("CLUSTER_MARKS")
        if marks:
            with trio.CancelScope(shield=True):
                await trio.Path(marks, tag).write_text(f"{outcome} {where()}\n")
    return f"done on {where()}"
