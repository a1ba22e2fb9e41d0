"""The app of bench/tasks.py: one no-op tool that runs as a task when the client declares
tasks, inline otherwise."""

from __future__ import annotations

import scalemcp

app = scalemcp.App("tasks-bench", version="1.0.0")


# pollIntervalMs: scalemcp's default (1 s; FastMCP advertises 5 s). The bench's clients
# poll every 20 ms whatever it says, which the server paces (task_poll_min_interval_ms).
@app.tool(task=scalemcp.TaskPolicy(ttl_s=300))
async def noop() -> str:
    """Does nothing."""
    return "ok"
