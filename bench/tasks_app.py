"""The app of bench/tasks.py: one no-op tool that runs as a task when the client declares
tasks, inline otherwise."""

from __future__ import annotations

import scalemcp

app = scalemcp.App("tasks-bench", version="1.0.0")


@app.tool(task=scalemcp.TaskPolicy(ttl_s=300, poll_interval_s=0.02))
async def noop() -> str:
    """Does nothing."""
    return "ok"
