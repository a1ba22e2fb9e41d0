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
from tests.harness.ports import unused_port
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


async def test_a_worker_serves_metrics_and_probes_on_its_metrics_port(tmp_path: Path) -> None:
    """No MCP port, so ``--metrics-port`` is its only listener: /metrics with the task
    figures, liveness, and readiness that fails once Redis stays away; nothing else."""
    redis = RedisServer()
    port = unused_port()
    marks = tmp_path / "marks"
    marks.mkdir()
    common = ["--redis-url", redis.url, "--state-keys", "k" * 64]
    server = ServeProcess(APP, *common, "--no-serve-tasks", env={"CLUSTER_MARKS": str(marks)})
    worker = _start_worker(*common, "--metrics-port", str(port), "--ready-backend-grace-s",
                           "0", marks=marks)
    assert worker.stdout is not None
    output = LineLog(worker.stdout)
    base = f"http://127.0.0.1:{port}"
    try:
        output.wait_for(lambda line: "task worker" in line and "ready" in line, 20)
        assert f"/metrics and probes on http://127.0.0.1:{port}" in output.join()
        with trio.fail_after(30):
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(f"{base}/healthz")).status_code == 200
                assert (await http.get(f"{base}/readyz")).json()["status"] == "ready"
                assert (await http.get(f"{base}/mcp")).status_code == 404
                assert (await http.post(f"{base}/metrics")).status_code == 405
                c = Stateless(http, server.url, capabilities=DECLARED)
                r = await c.call("tools/call", {"name": "job", "arguments": {
                    "tag": "m1", "seconds": 0.05}}, "job")
                task_id = r.json()["result"]["taskId"]
                while True:
                    got = (await c.call("tasks/get", {"taskId": task_id}, task_id)).json()
                    if got["result"]["status"] == "completed":
                        break
                    await trio.sleep(0.05)
                text = (await http.get(f"{base}/metrics")).text
                assert "scalemcp_tasks_running 0.0" in text
                assert "scalemcp_task_run_seconds_count 1.0" in text  # this worker ran it
                redis.stop()
                unready = await http.get(f"{base}/readyz")
                assert unready.status_code == 503, unready.text
                assert (await http.get(f"{base}/healthz")).status_code == 200  # alive still
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        stop_group(worker)
        server.stop()
        redis.stop()


def _start_worker(*args: str, marks: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scalemcp.cli", "worker", APP, *args, "--log-level", "info"],
        cwd=ROOT, env={**os.environ, "CLUSTER_MARKS": str(marks), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
