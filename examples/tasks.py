"""Durable tasks: a tool that runs in the background, survives its worker, asks questions.

    scalemcp serve examples.tasks:app                       # one process, memory backend
    scalemcp serve examples.tasks:app --workers 2 --redis-url redis://127.0.0.1:6379/0 \\
        --state-keys "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

A client that declares the tasks extension (2026-07-28) or sends ``params.task``
(2025-11-25) gets a task handle at once; see docs/tasks.md.
"""

from __future__ import annotations

import trio

import scalemcp
from scalemcp import Context, TaskPolicy

app = scalemcp.App("tasks-example", version="1.0.0")


@app.tool(task=TaskPolicy(ttl_s=3600, poll_interval_s=1.0, max_attempts=3))
async def crunch(ctx: Context, steps: int = 5, step_s: float = 1.0) -> str:
    """Works ``steps`` steps of ``step_s`` seconds, reporting each (the status message).

    Safe to re-run: it changes nothing, so a task whose worker dies simply runs again.
    """
    for step in range(steps):
        await ctx.report_progress(step, steps, f"step {step + 1} of {steps}")
        await trio.sleep(step_s)
    return f"crunched {steps} steps (task {ctx.task_id})"


@app.tool(task=TaskPolicy(support="required", max_attempts=1))
async def send_invoice(ctx: Context, customer: str, amount_cents: int) -> str:
    """Asks for confirmation, then 'sends' an invoice: only as a task, never run twice
    (``max_attempts=1``: if its worker dies, the task fails rather than sending again)."""
    answer = await ctx.elicit(
        f"Send an invoice of {amount_cents / 100:.2f} to {customer}?",
        {"type": "object", "properties": {"confirm": {"type": "boolean"}},
         "required": ["confirm"]})
    if answer.action != "accept" or not (answer.content or {}).get("confirm"):
        return "not sent"
    # A real tool would pass ctx.task_id to the payment API as its idempotency key.
    await trio.sleep(0.5)
    return f"invoice sent to {customer} (idempotency key {ctx.task_id})"


@app.tool
async def ping() -> str:
    """An ordinary tool, never a task."""
    return "pong"
