"""Calling user functions: async directly, sync in a worker thread, Context injected."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import trio

from .context import Context


def context_param(fn: Callable[..., Any]) -> str | None:
    """The name of the parameter annotated ``Context``, if any."""
    try:
        hints = get_type_hints(fn)
    except Exception:
        hints = {}
    for name, tp in hints.items():
        if tp is Context:
            return name
    return None


def is_context(annotation: Any) -> bool:
    return annotation is Context


async def invoke(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    # Sync handlers must never block the event loop.
    result = await trio.to_thread.run_sync(functools.partial(fn, **kwargs), abandon_on_cancel=True)
    if inspect.isawaitable(result):
        return await result
    return result
