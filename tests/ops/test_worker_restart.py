"""The supervisor replaces a worker killed by a signal, but not in a crash loop.

``scalemcp serve --workers 2 --stateless-only`` (no backend needed) as a real process: a
``kill -9``ed worker is replaced and the server keeps answering; killing the replacements
over and over (more than ``_MAX_REPLACED`` within ``_CRASH_WINDOW_S``) stops the server with
an error instead of restarting forever.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import trio

from scalemcp.ops.workers import _MAX_REPLACED
from tests.harness.client import modern_headers, modern_request
from tests.harness.serve import open_serve

MODERN = modern_headers("server/discover")
DISCOVER = modern_request("server/discover")


def workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except FileNotFoundError:
        return set()
    found = set()
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
        except FileNotFoundError:
            continue
    return found


async def two_workers_without(supervisor: int, gone: set[int]) -> set[int]:
    """Poll /proc (another process: no event to wait on) until two workers, none in
    ``gone``, run."""
    while True:
        now = workers(supervisor)
        if len(now) == 2 and not now & gone:
            return now
        await trio.sleep(0.02)


async def test_killed_worker_is_replaced_until_a_crash_loop() -> None:
    with trio.fail_after(60):
        async with open_serve("tests.ops.app:app", "--workers", "2", "--stateless-only",
                              "--state-keys", "ab" * 32) as served:
            pid = served.proc.pid
            first = await two_workers_without(pid, set())
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            after = await two_workers_without(pid, {victim})
            assert len(after & first) == 1  # the other one was left alone
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(4):  # both workers answer (each takes connections in turn)
                    r = await client.post(served.base + "/mcp", json=DISCOVER, headers=MODERN)
                    assert r.status_code == 200, r.text

            killed = {victim}
            for _ in range(_MAX_REPLACED):  # one replacement too many within the window
                current = await two_workers_without(pid, killed)
                victim = min(current)
                os.kill(victim, signal.SIGKILL)
                killed.add(victim)
            code = await served.proc.wait()
    assert code != 0
    log = "\n".join(served.stderr + served.stdout)
    assert log.count("killed by signal 9: replaced") == _MAX_REPLACED, log[-3000:]
    assert f"worker {victim} exited with code -9: stopping" in log, log[-3000:]
