"""The app of the slow-consumer tests: a tool that streams a lot of progress, fast."""

from __future__ import annotations

import scalemcp

app = scalemcp.App("slow-consumer", version="1.0.0")


@app.tool
async def flood(count: int, size: int, ctx: scalemcp.Context) -> str:
    """Report progress ``count`` times, each message ``size`` characters long."""
    filler = "x" * size
    for i in range(count):
        await ctx.report_progress(i + 1, count, f"{i:08d}{filler}")
    return f"sent {count}"
