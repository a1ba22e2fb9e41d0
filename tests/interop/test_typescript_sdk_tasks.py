"""Interop: the official TypeScript SDK client's experimental tasks API (2025-11-25).

``ts_tasks_client.mjs`` drives ``client.experimental.tasks`` of ``@modelcontextprotocol/sdk``
1.x (``callToolStream`` with ``params.task``, ``getTask``, ``getTaskResult``, ``listTasks``,
``cancelTask``) and answers an ``elicitation/create`` a task sends, against a real
``scalemcp serve examples.tasks:app`` process; it prints a JSON summary the tests check.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import pytest

from tests.conftest import node_env
from tests.harness.serve import ServeProcess

SCRIPT = pathlib.Path(__file__).with_name("ts_tasks_client.mjs")
RELATED = "io.modelcontextprotocol/related-task"


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    server = ServeProcess("examples.tasks:app")
    try:
        proc = subprocess.run(["node", str(SCRIPT), server.url], env=node_env(),
                              capture_output=True, text=True, timeout=60)
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output (rc={proc.returncode}): {proc.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in out, (out["error"], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_declares_tasks_to_the_sdk(summary: dict[str, Any]) -> None:
    assert summary["capabilities"]["tasks"] == {
        "list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    assert summary["taskSupport"] == {
        "crunch": "optional", "send_invoice": "required", "ping": None}


def test_call_tool_stream_creates_polls_and_resolves(summary: dict[str, Any]) -> None:
    streamed = summary["streamed"]
    task_id = summary["ids"]["first"]
    assert streamed[0] == {"type": "taskCreated", "taskId": task_id, "status": "working",
                           "pollInterval": 1000}
    assert {m["taskId"] for m in streamed[1:-1]} == {task_id}
    assert streamed[-2]["status"] == "completed"
    assert streamed[-1] == {"type": "result", "texts": [f"crunched 2 steps (task {task_id})"]}
    got = summary["getFinished"]
    assert (got["taskId"], got["status"], got["ttl"]) == (task_id, "completed", 60000)
    assert got["statusMessage"] == "step 2 of 2"
    result = summary["resultFinished"]
    assert result["_meta"][RELATED] == {"taskId": task_id}
    assert [c["text"] for c in result["content"]] == [f"crunched 2 steps (task {task_id})"]


def test_elicitation_inside_a_task_reaches_the_sdk(summary: dict[str, Any]) -> None:
    invoice_id = summary["ids"]["invoice"]
    assert summary["elicitations"] == [
        {"message": "Send an invoice of 12.50 to ACME?", "relatedTask": {"taskId": invoice_id}}]
    invoice = summary["invoice"]
    assert invoice[0] == {"type": "taskCreated", "taskId": invoice_id, "status": "working"}
    assert invoice[-1] == {
        "type": "result",
        "texts": [f"invoice sent to ACME (idempotency key {invoice_id})"]}


def test_cancel_and_errors(summary: dict[str, Any]) -> None:
    long_id = summary["ids"]["long"]
    assert summary["beforeCancel"] == "working"
    assert (summary["cancelled"]["taskId"], summary["cancelled"]["status"]) == (
        long_id, "cancelled")
    assert summary["afterCancel"] == "cancelled"
    assert summary["cancelAgain"]["code"] == -32602
    assert "already cancelled" in summary["cancelAgain"]["message"]
    assert summary["unknown"] == {"code": -32602}


def test_list_tasks_newest_first(summary: dict[str, Any]) -> None:
    ids = summary["ids"]
    assert summary["listed"] == [
        {"taskId": ids["long"], "status": "cancelled"},
        {"taskId": ids["invoice"], "status": "completed"},
        {"taskId": ids["first"], "status": "completed"}]
