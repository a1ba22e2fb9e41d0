"""Durable tasks survive ``kill -9``: a fleet (3 nodes x 2 workers, haproxy, Redis) runs
task jobs while workers running them are killed; another worker takes each killed task
over after its lease and finishes it, the client sees it through ``tasks/get`` on any
node, and no task's result is written twice (the store counts terminal writes).

Reported: the time from a worker's death to its task starting again elsewhere (target:
at most 2 leases). A tool not safe to re-run (``max_attempts=1``) fails at once instead.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from scalemcp.state.redis import RedisBackend
from tests.harness.client import Stateless
from tests.harness.fleet import Cluster, running

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

LEASE_S = 1.0
JOBS = 30
KILLS = 3
DECLARED = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("task-chaos"), app="tests.cluster.task_app:app",
                      env={"SCALEMCP_TASK_LEASE_S": str(LEASE_S)})
    with running(cluster):
        yield cluster


def starts(marks: Path) -> dict[str, list[tuple[float, int]]]:
    """Each tag's runs: (start time, pid), in order."""
    found: dict[str, list[tuple[float, int]]] = {}
    for path in marks.glob("*.start"):
        tag, pid, _ = path.name.rsplit(".", 2)
        found.setdefault(tag, []).append((float(path.read_text()), int(pid)))
    return {tag: sorted(runs) for tag, runs in found.items()}


def running_now(marks: Path) -> dict[int, list[str]]:
    """pid -> the tags it started and has not finished."""
    busy: dict[int, list[str]] = {}
    for path in marks.glob("*.start"):
        tag, pid, _ = path.name.rsplit(".", 2)
        if not (marks / f"{tag}.{pid}.end").exists():
            busy.setdefault(int(pid), []).append(tag)
    return busy


async def create(c: Stateless, tool: str, arguments: dict[str, Any]) -> str:
    r = await c.call("tools/call", {"name": tool, "arguments": arguments}, tool)
    result = r.json()["result"]
    assert result["resultType"] == "task", result
    return str(result["taskId"])


async def terminal(c: Stateless, task_id: str) -> dict[str, Any]:
    while True:
        try:
            r = await c.call("tasks/get", {"taskId": task_id}, task_id)
        except httpx.TransportError:  # it reached a worker as it was killed: ask again
            continue
        task: dict[str, Any] = r.json()["result"]
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
        await trio.sleep(0.2)


async def test_killed_workers_tasks_finish_elsewhere_once(fleet: Cluster) -> None:
    marks = fleet.workdir / "marks"
    kills: list[tuple[float, int, list[str]]] = []
    with trio.fail_after(120):
        async with httpx.AsyncClient(timeout=10) as http:
            c = Stateless(http, fleet.url, capabilities=DECLARED)
            ids = {f"j{i}": await create(c, "job", {"tag": f"j{i}", "seconds": 1 + i % 3 * 0.5})
                   for i in range(JOBS)}
            once = await create(c, "once", {"tag": "once"})
            for _ in range(KILLS):
                await trio.sleep(0.7)
                busy = running_now(marks)
                alive = set(fleet.workers())
                victims = [pid for pid in busy if pid in alive]
                # the non-rerunnable task's worker first, then whichever runs the most
                victims.sort(key=lambda p: ("once" not in busy[p], -len(busy[p])))
                if not victims:
                    continue
                os.kill(victims[0], signal.SIGKILL)
                kills.append((time.monotonic(), victims[0], busy[victims[0]]))
            results = {tag: await terminal(c, task_id) for tag, task_id in ids.items()}
            failed_once = await terminal(c, once)

    assert len(kills) >= 2, "no worker was running a task when the test looked"
    assert {tag: r["status"] for tag, r in results.items()} == {t: "completed" for t in ids}
    if any("once" in tags for _, _, tags in kills):
        assert failed_once["status"] == "failed"
        assert "stopped" in failed_once["error"]["message"]

    # Every task was written terminal exactly once (fencing's witness, counted in Redis).
    backend = RedisBackend(fleet.redis.url)
    async with backend.running():
        for task_id in [*ids.values(), once]:
            record = await backend.tasks.get(task_id)
            assert record is not None
            assert record.terminal_writes == 1, (task_id, record)

    # Each killed task started again on another worker; how long after the kill.
    runs = starts(marks)
    gaps = []
    for killed_at, pid, tags in kills:
        for tag in tags:
            if tag == "once":
                continue
            later = [t for t, p in runs[tag] if p != pid and t > killed_at]
            assert later, f"{tag} was not run again after worker {pid} died"
            gaps.append(later[0] - killed_at)
    assert gaps
    worst = max(gaps)
    print(f"\ndeath to running elsewhere: {len(gaps)} tasks, worst {worst:.2f} s, "
          f"mean {sum(gaps) / len(gaps):.2f} s (lease {LEASE_S} s)")
    # Target 2 leases; a second more for this machine's load (it is reported above).
    assert worst <= 2 * LEASE_S + 1.0
