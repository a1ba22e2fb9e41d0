"""Waiting for conditions that nothing announces (a replica in sync, a load balancer's
health checks, a count in Redis): look again every 50 ms, within a deadline.

Readiness of a server is never one of them: servers say when they serve (harness.serve,
harness.redis).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import trio

INTERVAL_S = 0.05


def wait_until(check: Callable[[], object], what: str, timeout: float = 15.0,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``check()`` is true; fails after ``timeout`` s, or at once if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(INTERVAL_S)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Until ``await check()`` (or ``check()``) is truthy, within ``timeout`` s; its value."""
    with trio.move_on_after(timeout):
        while True:
            value = check()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await trio.sleep(INTERVAL_S)
    raise TimeoutError(f"{what}: not within {timeout} s")
