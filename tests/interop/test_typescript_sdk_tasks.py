"""Interop: the official TypeScript SDK client's experimental tasks API (2025-11-25).

``ts_tasks_client.mjs`` drives ``client.experimental.tasks`` of ``@modelcontextprotocol/sdk``
1.x (``callToolStream`` with ``params.task``, ``getTask``, ``getTaskResult``, ``listTasks``,
``cancelTask``) and answers an ``elicitation/create`` a task sends, against a real
``scalemcp serve examples.tasks:app`` process, and against a fleet on Redis
(tests/interop/task_fleet.py: two serving nodes taking the SDK's requests in turn, the
tasks run by a task worker, so the elicitation's answer crosses to another node); it
prints a JSON summary the tests check, the same on both.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from tests.conftest import node_env
from tests.interop.task_fleet import assert_answer_crossed, client_summary, summary_on

SCRIPT = pathlib.Path(__file__).with_name("ts_tasks_client.mjs")
RELATED = "io.modelcontextprotocol/related-task"


def run_script(*urls: str) -> dict[str, Any]:
    return client_summary(["node", str(SCRIPT), *urls], env=node_env())


@pytest.fixture(scope="module", params=["one node", "fleet"])
def summary(request: pytest.FixtureRequest) -> dict[str, Any]:
    return summary_on(request.param, run_script)


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


@pytest.mark.parametrize("summary", ["fleet"], indirect=True)
def test_the_answer_crosses_to_the_task_worker(summary: dict[str, Any]) -> None:
    assert_answer_crossed(summary)
