"""How a tool runs as a durable task: its :class:`TaskPolicy` (``@app.tool(task=...)``).

The same tool code runs inline or as a task: a client that declares tasks gets a task
handle at once and the work runs on whichever worker claims it; others get the result
inline (``optional``) or an error naming the capability they lack (``required``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["EXTENSION", "TaskPolicy", "TaskSupport", "policy_of"]

#: The 2026-07-28 tasks extension (SEP-2663), as declared in ``capabilities.extensions``.
EXTENSION = "io.modelcontextprotocol/tasks"

TaskSupport = Literal["forbidden", "optional", "required"]


class TaskPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How a tool's task runs.

    ``max_attempts`` is the retry policy: how many times the task may start when the
    worker running it dies (execution is at least once; ``ctx.task_id`` is the
    idempotency key). ``1`` declares the tool not safe to re-run: its task then fails
    with a clear error as soon as its worker is known dead. ``inline_first`` starts the
    call inline (so it may ask the client for input first, as multi round-trip
    requests do) and makes it a task where the tool calls ``ctx.continue_as_task()``.
    """

    support: TaskSupport = "optional"
    ttl_s: Annotated[float, Meta(gt=0)] = 3600.0
    poll_interval_s: Annotated[float, Meta(gt=0)] = 1.0
    max_attempts: Annotated[int, Meta(ge=1)] = 3
    inline_first: bool = False


def policy_of(task: bool | TaskSupport | TaskPolicy | None) -> TaskPolicy | None:
    """The policy ``@app.tool(task=...)`` names: True is ``optional``; None/False none."""
    if task is None or task is False:
        return None
    if task is True:
        return TaskPolicy()
    if isinstance(task, str):
        if task not in ("forbidden", "optional", "required"):
            raise ValueError(f"task support must be forbidden, optional or required, "
                             f"not {task!r}")
        return TaskPolicy(support=task)
    return task
