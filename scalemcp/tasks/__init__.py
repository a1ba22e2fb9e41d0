"""Running durable tasks: the worker side of ``state/tasks.py``.

:class:`TaskRunner` claims tasks from the store, runs each under a lease it renews, stops
one at once when its cancellation is announced, and writes what came out with its fencing
token. What a task *does* is the engine's (``engine/tasks.py``): the runner is handed an
``execute`` function and knows nothing of MCP.
"""

from __future__ import annotations

from .runner import Execute, Outcome, TaskRunner

__all__ = ["Execute", "Outcome", "TaskRunner"]
