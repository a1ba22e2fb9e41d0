"""``scalemcp worker``: a process without HTTP runs the tasks a serving node (with
``--no-serve-tasks``) creates, through Redis; SIGTERM drains it and it exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.harness.client import Stateless
from tests.harness.output import LineLog
from tests.harness.redis import RedisServer
from tests.harness.serve import ROOT, ServeProcess, stop_group

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

APP = "tests.cluster.task_app:app"
DECLARED = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[ServeProcess, subprocess.Popen[bytes], LineLog,
                                            Path]]:
    redis = RedisServer()
    marks = tmp_path / "marks"
    marks.mkdir()
    common = ["--redis-url", redis.url, "--state-keys", "k" * 64]
    env = {**os.environ, "CLUSTER_MARKS": str(marks), "PYTHONUNBUFFERED": "1"}
    server = ServeProcess(APP, *common, "--no-serve-tasks", env={"CLUSTER_MARKS": str(marks)})
    worker = subprocess.Popen(
        [sys.executable, "-m", "scalemcp.cli", "worker", APP, *common, "--log-level", "info"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    assert worker.stdout is not None
    output = LineLog(worker.stdout)
    try:
        output.wait_for(lambda line: "task worker" in line and "ready" in line, 20)
        yield server, worker, output, marks
    finally:
        stop_group(worker)
        server.stop()
        redis.stop()


async def test_a_dedicated_worker_runs_the_tasks(
        fleet: tuple[ServeProcess, subprocess.Popen[bytes], LineLog, Path]) -> None:
    server, worker, output, marks = fleet
    with trio.fail_after(30):
        async with httpx.AsyncClient(timeout=10) as http:
            c = Stateless(http, server.url, capabilities=DECLARED)
            r = await c.call("tools/call", {"name": "job", "arguments": {"tag": "w1",
                                                                        "seconds": 0.1}}, "job")
            task_id = r.json()["result"]["taskId"]
            while True:
                got: dict[str, Any] = (await c.call("tasks/get", {"taskId": task_id},
                                                    task_id)).json()["result"]
                if got["status"] == "completed":
                    break
                await trio.sleep(0.05)
    # The worker process ran it, not the serving one.
    assert sorted(p.name for p in marks.iterdir()) == [f"w1.{worker.pid}.end",
                                                        f"w1.{worker.pid}.start"]
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert "stopped" in output.join()
