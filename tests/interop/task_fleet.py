"""A fleet for the SDK task interop tests: one redis-server, two serving nodes that run no
tasks (``--no-serve-tasks``) and one task worker (``scalemcp worker``), all serving
``examples.tasks:app``.

A client sends its requests to the two serving nodes in turn. Every task runs in the task
worker, a process that serves no HTTP, so the answer to a question a task asks
(``elicitation/create``) always reaches a node other than the one running the task, and
must cross Redis to reach it; each serving node counts what it sent that way
(``scalemcp_routed_messages_sent_total`` on its ``/metrics``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.harness.output import LineLog
from tests.harness.redis import RedisServer
from tests.harness.serve import ROOT, ServeProcess, stop_group

APP = "examples.tasks:app"
_ROUTED = re.compile(r'^scalemcp_routed_messages_sent_total\{kind="response"\} (\S+)$', re.M)


@dataclass
class TaskFleet:
    nodes: list[ServeProcess]
    worker: subprocess.Popen[bytes]
    worker_output: LineLog

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def routed_responses(self) -> list[float]:
        """Per serving node: the client responses it sent through Redis to another worker."""
        counts = []
        for node in self.nodes:
            with urllib.request.urlopen(f"{node.base}/metrics", timeout=5) as response:
                text = response.read().decode()
            counts.append(sum(float(m) for m in _ROUTED.findall(text)))
        return counts


@contextlib.contextmanager
def task_fleet() -> Iterator[TaskFleet]:
    """Start the fleet; stop it on the way out, failing if a process logged a traceback."""
    redis = RedisServer()
    common = ["--redis-url", redis.url, "--state-keys", "k" * 64]
    nodes: list[ServeProcess] = []
    worker: subprocess.Popen[bytes] | None = None
    output: LineLog | None = None
    logs: list[str] = []
    try:
        nodes = [ServeProcess(APP, *common, "--no-serve-tasks", wait=False) for _ in range(2)]
        worker = subprocess.Popen(
            [sys.executable, "-m", "scalemcp.cli", "worker", APP, *common, "--log-level", "info"],
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        assert worker.stdout is not None
        output = LineLog(worker.stdout)
        for node in nodes:
            node.wait_serving()
        output.wait_for(lambda line: "task worker" in line and "ready" in line, 30)
        yield TaskFleet(nodes, worker, output)
    finally:
        if worker is not None:
            stop_group(worker)
        if output is not None:
            logs.append(output.join())
        logs.extend(node.stop() for node in nodes)
        redis.stop()
    for log in logs:
        assert "Traceback" not in log, log


def client_summary(argv: list[str], env: dict[str, str] | None = None,
                   cwd: str | None = None) -> dict[str, Any]:
    """Run an SDK client script (``argv``); the JSON summary its last line prints."""
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output (rc={proc.returncode}): {proc.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in out, (out["error"], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def summary_on(where: str, run: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """``run(*urls)`` against one node (``where == "one node"``) or through the fleet; the
    fleet's summary also says what each serving node routed through Redis."""
    if where == "fleet":
        with task_fleet() as fleet:
            before = fleet.routed_responses()
            out = run(*fleet.urls)
            out["routedThroughRedis"] = [
                after - was for after, was in zip(fleet.routed_responses(), before, strict=True)]
        return out
    server = ServeProcess(APP)
    try:
        out = run(server.url)
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    return out


def assert_answer_crossed(summary: dict[str, Any]) -> None:
    """Through the fleet: the requests went to both nodes, and the elicitation's answer
    (a response POSTed to a serving node; the task runs in the task worker) was sent on
    through Redis by the node that received it."""
    routed = summary["routed"]
    assert {r["node"] for r in routed} == {0, 1}
    answered = [r["node"] for r in routed if r["what"] == "response"]
    assert len(answered) == 1, routed
    assert summary["routedThroughRedis"][answered[0]] == 1, summary["routedThroughRedis"]
