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
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

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
