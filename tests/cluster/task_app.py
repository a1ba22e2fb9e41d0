"""The app of the task chaos test: one task tool that records each run it starts.

``job`` writes ``<marks>/<tag>.<pid>.start`` (monotonic-clock time of the start) when it
starts and ``.end`` when it finishes, so the test sees from outside which worker runs which
task, and when a killed worker's task started again elsewhere. CLOCK_MONOTONIC is shared by
every process of the machine.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import msgspec
import trio

import scalemcp

app = scalemcp.App("task-chaos", version="1.0.0")

NODE = os.environ.get("CLUSTER_NODE", "?")


async def _mark(tag: str, what: str) -> None:
    marks = os.environ.get("CLUSTER_MARKS")
    if marks:
        with trio.CancelScope(shield=True):
            await trio.Path(marks, f"{tag}.{os.getpid()}.{what}").write_text(
                f"{time.monotonic()}\n")


@app.tool(task=scalemcp.TaskPolicy(ttl_s=600, poll_interval_s=0.2, max_attempts=10))
async def job(tag: Annotated[str, msgspec.Meta(pattern="^[a-z0-9-]{1,40}$")],
              seconds: Annotated[float, msgspec.Meta(ge=0, le=10)] = 1.0) -> str:
    """Work ``seconds``; safe to re-run (it changes nothing)."""
    await _mark(tag, "start")
    await trio.sleep(seconds)
    await _mark(tag, "end")
    return f"{tag} done on {NODE} pid {os.getpid()}"


@app.tool(task=scalemcp.TaskPolicy(ttl_s=600, poll_interval_s=0.2, max_attempts=1))
async def once(tag: Annotated[str, msgspec.Meta(pattern="^[a-z0-9-]{1,40}$")]) -> str:
    """Not safe to re-run: a dead worker's task fails instead."""
    await _mark(tag, "start")
    await trio.sleep(30)
    return "unreachable in the test"
