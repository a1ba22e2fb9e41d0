"""Durable tasks survive ``kill -9``, at the size issue 11 names: through the fleet (3 nodes
x 2 workers, haproxy, Redis) a client submits 200 jobs of 1-3 s each while, every 2 s, a
worker running tasks is killed with ``kill -9`` (its node's supervisor replaces it).

Checked: every task reaches exactly one terminal state, every re-runnable task completes,
no task's result is written twice (the store counts terminal writes), each killed task
starts again on another worker, and a tool not safe to re-run (``max_attempts=1``) fails
at once instead. Reported: the time from a worker's death to its task starting again
elsewhere (target: at most 2 leases), the kills, the re-runs and the wall time.

The jobs arrive at a steady rate (about 20 running at a time), so the kills keep finding
running tasks for the whole run and a taken-over task is not held up behind a full queue.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from scalemcp.state.redis import RedisBackend
from tests.harness.client import Stateless
from tests.harness.conditions import wait_until
from tests.harness.fleet import Cluster, running

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

LEASE_S = 1.0
JOBS = 200
ARRIVAL_S = 0.12  # 24 s of arrivals, ~17 jobs running at a time, 11-12 kills
KILL_EVERY_S = 2.0
POLL_S = 0.5
TERMINAL = ("completed", "failed", "cancelled")
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


def running_on(marks: Path, pid: int) -> list[str]:
    """The tags ``pid`` started and has not finished."""
    return [path.name.split(".")[0] for path in marks.glob(f"*.{pid}.start")
            if not path.with_suffix(".end").exists()]


def running_now(marks: Path) -> dict[int, list[str]]:
    """pid -> the tags it started and has not finished."""
    busy: dict[int, list[str]] = {}
    for path in marks.glob("*.start"):
        tag, pid, _ = path.name.rsplit(".", 2)
        if not path.with_suffix(".end").exists():
            busy.setdefault(int(pid), []).append(tag)
    return busy


async def create(c: Stateless, tool: str, arguments: dict[str, Any]) -> str:
    r = await c.call("tools/call", {"name": tool, "arguments": arguments}, tool)
    result = r.json()["result"]
    assert result["resultType"] == "task", result
    return str(result["taskId"])


async def create_job(c: Stateless, i: int) -> tuple[str, str]:
    """Job ``i`` created: (tag, task id). A create that reached a worker as it was killed is
    sent again under a new tag (the lost one, if it was created, runs unwatched)."""
    for attempt in range(5):
        tag = f"j{i}" if attempt == 0 else f"j{i}-r{attempt}"
        arguments = {"tag": tag, "seconds": seconds(i)}
        try:
            r = await c.call("tools/call", {"name": "job", "arguments": arguments}, "job")
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code == 200:
            result = r.json()["result"]
            assert result["resultType"] == "task", result
            return tag, str(result["taskId"])
        await trio.sleep(0.2)  # a killed worker's reset, or haproxy's 502/503 meanwhile
    raise AssertionError(f"job {i} could not be created")


async def get(c: Stateless, task_id: str) -> dict[str, Any] | None:
    """The task, or None if the request reached a worker as it was killed."""
    try:
        r = await c.call("tasks/get", {"taskId": task_id}, task_id)
    except httpx.TransportError:
        return None
    if r.status_code != 200:  # haproxy's 502/503 while a node's worker is replaced
        return None
    task: dict[str, Any] = r.json()["result"]
    return task


async def terminal(c: Stateless, task_id: str) -> dict[str, Any]:
    while True:
        task = await get(c, task_id)
        if task is not None and task["status"] in TERMINAL:
            return task
        await trio.sleep(POLL_S)


async def watch(c: Stateless, ids: dict[str, str], results: dict[str, dict[str, Any]],
                submitted: trio.Event) -> None:
    """Poll every task not yet terminal, round after round, until all are."""
    while not submitted.is_set() or len(results) < len(ids):
        for tag, task_id in list(ids.items()):
            if tag not in results and (task := await get(c, task_id)) is not None \
                    and task["status"] in TERMINAL:
                results[tag] = task
        await trio.sleep(POLL_S)


class Killer:
    """Every ``KILL_EVERY_S``, while jobs arrive, ``kill -9`` a worker running tasks: the
    one running the non-rerunnable task first, then one drawn at random (seeded), on a node
    killed fewer than 8 times (a node's supervisor replaces at most 10 killed workers a
    minute, then stops: a crash loop).

    Not the busiest, and not after the last job arrived: the worker that takes a dead
    worker's tasks over holds them all, so chasing them (the busiest worker, or the last
    worker with tasks left) kills the same tasks again and again until their attempts run
    out, which tests the attempt limit (tests/tasks does), not the takeover.
    """

    def __init__(self, fleet: Cluster) -> None:
        self.fleet = fleet
        self.marks = fleet.workdir / "marks"
        self.kills: list[tuple[float, int, list[str]]] = []
        self.per_node: Counter[str] = Counter()
        self.draw = random.Random(11)

    async def run(self, until: trio.Event) -> None:
        start = trio.current_time()
        n = 0
        while not until.is_set():
            n += 1
            with trio.move_on_after(start + n * KILL_EVERY_S - trio.current_time()):
                await until.wait()
            if not until.is_set():
                self.kill_one()

    def kill_one(self) -> None:
        busy = running_now(self.marks)
        alive = self.fleet.workers()
        victims = [pid for pid in busy if pid in alive]
        if not victims:
            return
        victims = sorted(p for p in victims if self.per_node[alive[p]] < 8)
        if not victims:
            return
        pid = next((p for p in victims if "once" in busy[p]), None) or self.draw.choice(victims)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        self.per_node[alive[pid]] += 1
        # what it had started and not finished once it is dead: the tasks it lost
        self.kills.append((killed_at, pid, running_on(self.marks, pid)))


def seconds(i: int) -> float:
    """1.0, 1.1, ... 3.0 s, spread over the jobs."""
    return 1.0 + (i * 7 % 21) / 10


async def test_killed_workers_tasks_finish_elsewhere_once(fleet: Cluster) -> None:
    killer = Killer(fleet)
    ids: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    submitted = trio.Event()
    began = time.monotonic()
    with trio.fail_after(150):
        async with httpx.AsyncClient(timeout=10) as http:
            c = Stateless(http, fleet.url, capabilities=DECLARED)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(killer.run, submitted)
                nursery.start_soon(watch, c, ids, results, submitted)
                once = await create(c, "once", {"tag": "once"})
                t0 = trio.current_time()
                for i in range(JOBS):
                    await trio.sleep_until(t0 + i * ARRIVAL_S)
                    tag, ids[tag] = await create_job(c, i)
                submitted.set()
                failed_once = await terminal(c, once)
    wall = time.monotonic() - began
    kills = killer.kills

    assert len(kills) >= 10, f"only {len(kills)} kills found a worker running tasks"
    runs = starts(fleet.workdir / "marks")
    not_completed = {tag: (r["status"], r.get("error"), runs.get(tag))
                     for tag, r in results.items() if r["status"] != "completed"}
    assert not not_completed, (not_completed, kills)
    assert any("once" in tags for _, _, tags in kills)
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
    gaps = []
    for killed_at, pid, tags in kills:
        for tag in tags:
            if tag == "once":
                continue
            later = [t for t, p in runs[tag] if p != pid and t > killed_at]
            assert later, f"{tag} was not run again after worker {pid} died"
            gaps.append(later[0] - killed_at)
    assert gaps
    gaps.sort()
    worst = gaps[-1]
    reruns = sum(len(r) for tag, r in runs.items() if tag != "once") - JOBS
    print(f"\n{JOBS} jobs of 1-3 s in {wall:.1f} s, {len(kills)} workers killed "
          f"({dict(killer.per_node)}), {reruns} runs again; death to running elsewhere: "
          f"{len(gaps)} tasks, median {gaps[len(gaps) // 2]:.2f} s, "
          f"p90 {gaps[len(gaps) * 9 // 10]:.2f} s, worst {worst:.2f} s (lease {LEASE_S} s); "
          f"load {os.getloadavg()[0]:.2f}")
    # Target 2 leases; a second more for this machine's load (it is reported above).
    assert worst <= 2 * LEASE_S + 1.0

    # Every killed worker was replaced.
    wait_until(lambda: len(fleet.workers()) == 6, "every node back to 2 workers", 30)
