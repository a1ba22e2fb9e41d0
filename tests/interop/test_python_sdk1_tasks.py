"""Interop: the official Python SDK's 2025-11-25 tasks client (``mcp`` 1.x,
``session.experimental``) against scalemcp, on one node and through a fleet on Redis.

``py_sdk1_tasks_client.py`` runs in a venv of its own with ``mcp`` 1.x (the project's venv
has 2.x, whose client validates a 2025-11-25 ``tools/call`` result as a CallToolResult only,
so it cannot take a task): task-augmented ``tools/call``, ``tasks/get`` polling,
``tasks/result``, an ``elicitation/create`` inside a task answered by the SDK's callback,
``tasks/cancel``, ``tasks/list``. Through the fleet (tests/interop/task_fleet.py) its
requests go to two serving nodes in turn and a task worker runs the tasks, so the answer
to the task's question reaches a node that does not run it and crosses Redis.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from tests.harness.serve import ROOT
from tests.interop.task_fleet import assert_answer_crossed, client_summary, summary_on

SCRIPT = pathlib.Path(__file__).with_name("py_sdk1_tasks_client.py")
SDK = "mcp==1.26.0"
VENV = ROOT / ".cache" / "sdk-venvs" / "mcp1"
RELATED = "io.modelcontextprotocol/related-task"


def sdk_python() -> str:
    """The SDK 1.x venv's Python (``SCALEMCP_MCP1_PYTHON``, or made on first use)."""
    if given := os.environ.get("SCALEMCP_MCP1_PYTHON"):
        return given
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", SDK], check=True,
                       timeout=300)
    return str(python)


def run_script(*urls: str) -> dict[str, Any]:
    return client_summary([sdk_python(), str(SCRIPT), *urls], cwd=str(SCRIPT.parent))


@pytest.fixture(scope="module", params=["one node", "fleet"])
def summary(request: pytest.FixtureRequest) -> dict[str, Any]:
    return summary_on(request.param, run_script)


def test_negotiates_tasks(summary: dict[str, Any]) -> None:
    assert summary["protocolVersion"] == "2025-11-25"
    assert summary["capabilities"]["tasks"] == {
        "list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}


def test_call_as_task_polls_and_resolves(summary: dict[str, Any]) -> None:
    first = summary["ids"]["first"]
    assert summary["created"] == {"status": "working", "ttl": 60000, "pollInterval": 1000}
    assert summary["polled"][-1] == "completed"
    assert set(summary["polled"][:-1]) <= {"working"}
    assert summary["getFinished"] == {"taskId": first, "status": "completed",
                                      "statusMessage": "step 2 of 2"}
    assert summary["resultFinished"] == {"texts": [f"crunched 2 steps (task {first})"],
                                         "related": {"taskId": first}}


def test_elicitation_inside_a_task_reaches_the_sdk(summary: dict[str, Any]) -> None:
    invoice = summary["ids"]["invoice"]
    assert summary["elicitations"] == [
        {"message": "Send an invoice of 12.50 to ACME?", "relatedTask": {"taskId": invoice}}]
    assert summary["invoice"] == [f"invoice sent to ACME (idempotency key {invoice})"]


def test_cancel_and_list(summary: dict[str, Any]) -> None:
    ids = summary["ids"]
    assert summary["beforeCancel"] == "working"
    assert summary["cancelled"] == {"taskId": ids["long"], "status": "cancelled"}
    assert summary["afterCancel"] == "cancelled"
    assert summary["cancelAgain"]["code"] == -32602
    assert "already cancelled" in summary["cancelAgain"]["message"]
    assert summary["listed"] == [
        {"taskId": ids["long"], "status": "cancelled"},
        {"taskId": ids["invoice"], "status": "completed"},
        {"taskId": ids["first"], "status": "completed"}]


@pytest.mark.parametrize("summary", ["fleet"], indirect=True)
def test_the_answer_crosses_to_the_task_worker(summary: dict[str, Any]) -> None:
    assert_answer_crossed(summary)
