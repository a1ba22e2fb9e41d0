"""The app the hostile-input fuzz tests serve: every kind of handler, each quick.

Tools answer with JSON (``echo``, ``add``), stream progress (``countdown``, at most a few
short steps, so a fuzzed call never holds the server long), ask the client (``ask``:
elicitation), fail on purpose (``fail``), or take an argument that modern clients also send
as the ``Mcp-Param-Region`` header (``region``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import trio

import scalemcp

app = scalemcp.App("hostile", version="1.0.0")


@app.tool
async def echo(message: str) -> str:
    """Echo a message back."""
    return message


@app.tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool
async def countdown(n: Annotated[int, msgspec.Meta(ge=1, le=3)], ctx: scalemcp.Context) -> str:
    """Report progress n times, 5 ms apart."""
    for i in range(n):
        await ctx.report_progress(i + 1, n)
        await ctx.info(f"tick {i}")
        await trio.sleep(0.005)
    return "liftoff"


@app.tool
async def ask(ctx: scalemcp.Context) -> str:
    """Ask the client for a name (elicitation)."""
    answer = await ctx.elicit("Name?", {"type": "object",
                                        "properties": {"name": {"type": "string"}}})
    return str((answer.content or {}).get("name", "-"))


@app.tool
async def fail() -> str:
    """Always an isError result."""
    raise scalemcp.ToolError("failed on purpose")


@app.tool(headers={"region": "Region"})
async def region(region: str) -> str:
    """Echo a parameter that modern clients also send as Mcp-Param-Region."""
    return f"region={region}"


@app.resource("greeting://{name}", mime_type="text/plain")
def greeting(name: str) -> str:
    return f"Hello, {name}!"


@app.prompt
def review(code: str) -> str:
    """Review some code."""
    return f"Review this:\n{code}"
