"""Interop: the official TypeScript SDK client against real ``scalemcp serve`` processes.

``ts_client.mjs`` drives ``Client`` + ``StreamableHTTPClientTransport`` (session era:
initialize handshake, ``Mcp-Session-Id``, SSE resumption) from ``$MCP_TS_SDK_DIR`` and prints a
JSON summary of everything it saw, including every HTTP exchange; the tests assert on it.
One node run per server, shared by the tests of this module.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from typing import Any

import pytest

from examples.conformance import PNG
from tests.conftest import node_env
from tests.harness.serve import ServeProcess

SCRIPT = pathlib.Path(__file__).with_name("ts_client.mjs")
SESSION_ERA = "2025-11-25"


def run_ts_client(scenario: str, url: str) -> dict[str, Any]:
    env = node_env()
    assert env.get("MCP_TS_SDK_DIR"), "MCP_TS_SDK_DIR missing from .cache/node-tools/env.sh"
    proc = subprocess.run(
        ["node", str(SCRIPT), scenario, url],
        env=env, capture_output=True, text=True, timeout=30,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output (rc={proc.returncode}): {proc.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in summary, (summary["error"], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return summary


@pytest.fixture(scope="module")
def quickstart(quickstart_server: ServeProcess) -> dict[str, Any]:
    return run_ts_client("quickstart", quickstart_server.url)


@pytest.fixture(scope="module")
def conformance(conformance_server: ServeProcess) -> dict[str, Any]:
    return run_ts_client("conformance", conformance_server.url)


def only_text(contents: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(contents) == 1, contents
    return contents[0]


def test_initialize_and_session_headers(quickstart: dict[str, Any]) -> None:
    assert quickstart["protocolVersion"] == SESSION_ERA
    assert quickstart["serverVersion"] == {"name": "quickstart", "version": "1.0.0"}
    assert quickstart["instructions"] == "A small demo server."
    caps = quickstart["capabilities"]
    assert {"tools", "resources", "prompts", "logging"} <= set(caps)
    session_id = quickstart["sessionId"]
    assert session_id
    init, *rest = quickstart["http"]
    assert (init["method"], init["status"], init["sessionId"]) == ("POST", 200, None)
    assert {e["sessionId"] for e in rest} == {session_id}
    assert {e["protocolVersion"] for e in rest} == {SESSION_ERA}
    assert rest[0]["method"] == "POST"
    assert rest[0]["status"] == 202  # notifications/initialized
    gets = [e for e in rest if e["method"] == "GET"]
    assert [(g["status"], g["contentType"]) for g in gets] == [(200, "text/event-stream")]
    assert [(e["method"], e["status"]) for e in rest[-1:]] == [("DELETE", 200)]


def test_list_and_call_tools(quickstart: dict[str, Any]) -> None:
    tools = quickstart["tools"]
    assert set(tools) == {"add", "echo", "forecast", "countdown", "ask_name"}
    assert tools["add"]["description"] == "Add two integers."
    assert tools["add"]["inputSchema"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    assert tools["forecast"]["inputSchema"]["properties"]["city"] == {
        "type": "string", "minLength": 1, "maxLength": 80}
    assert tools["echo"]["outputSchema"] is None

    add = quickstart["add"]
    assert add["isError"] is False
    assert add["structured"] == {"result": 5}
    assert [json.loads(t) for t in add["texts"]] == [5]  # the value, not its wrapper
    assert quickstart["echo"] == {"texts": ["héllo wörld ✓"], "structured": None}
    assert quickstart["forecast"] == {
        "structured": {"city": "Paris", "temperature_c": 21.5, "conditions": "sunny"},
        "isError": False,
    }
    invalid = quickstart["forecastInvalid"]
    assert invalid["isError"] is True
    assert "forecast" in invalid["texts"][0]
    assert quickstart["unknownTool"]["code"] == -32602


def test_progress_and_logging(quickstart: dict[str, Any]) -> None:
    assert quickstart["countdown"] == {
        "texts": ["liftoff"],
        "progress": [[1, 3, "3 left"], [2, 3, "2 left"], [3, 3, "1 left"]],
    }
    assert quickstart["countdownLogs"] == [
        {"level": "info", "data": "tick 3"},
        {"level": "info", "data": "tick 2"},
        {"level": "info", "data": "tick 1"},
    ]
    # setLevel("warning"): progress still flows, the info logs do not.
    assert quickstart["quietCountdown"] == {
        "texts": ["liftoff"], "progress": [[1, 2, "2 left"], [2, 2, "1 left"]]}
    assert quickstart["logsAfterWarning"] == [{"level": "info", "data": "tick 1"}]


def test_conformance_progress_and_logging(conformance: dict[str, Any]) -> None:
    assert conformance["progressTool"] == {
        "texts": ["Tool with progress executed successfully"],
        "progress": [[0, 100, "step 0"], [50, 100, "step 50"], [100, 100, "step 100"]],
    }
    assert conformance["loggingTool"] == {
        "texts": ["Tool with logging executed successfully"],
        "logs": [
            {"level": "info", "data": "Tool execution started"},
            {"level": "info", "data": "Tool processing data"},
            {"level": "info", "data": "Tool execution completed"},
        ],
    }


def test_resources_and_template(quickstart: dict[str, Any], conformance: dict[str, Any]) -> None:
    assert [(r["uri"], r["name"], r["mimeType"]) for r in quickstart["resources"]] == [
        ("config://app", "app_config", "application/json")]
    config = only_text(quickstart["config"])
    assert (config["uri"], config["mimeType"]) == ("config://app", "application/json")
    assert json.loads(config["text"]) == {"theme": "dark", "language": "en"}
    assert [(t["uriTemplate"], t["mimeType"]) for t in quickstart["templates"]] == [
        ("greeting://{name}", "text/plain")]
    assert only_text(quickstart["greeting"]) == {
        "uri": "greeting://Ada", "mimeType": "text/plain", "text": "Hello, Ada!"}
    assert quickstart["missingResource"]["code"] == -32002

    binary = only_text(conformance["binary"])
    assert binary["mimeType"] == "image/png"
    assert base64.b64decode(binary["blob"]) == PNG
    data = only_text(conformance["templateData"])
    assert data["uri"] == "test://template/42/data"
    assert json.loads(data["text"]) == {"id": "42", "templateTest": True, "data": "Data for ID: 42"}


def test_prompts(quickstart: dict[str, Any], conformance: dict[str, Any]) -> None:
    assert quickstart["prompts"] == [{
        "name": "review_code",
        "description": "Ask for a code review.",
        "arguments": [{"name": "code", "required": True}],
    }]
    assert quickstart["reviewPrompt"]["messages"] == [{
        "role": "user",
        "content": {"type": "text", "text": "Please review this code:\n\nx = 1"},
    }]
    assert conformance["promptWithArgs"]["messages"] == [{
        "role": "user",
        "content": {"type": "text", "text": "Prompt with arguments: arg1='alpha', arg2='beta'"},
    }]


def test_elicitation(quickstart: dict[str, Any], conformance: dict[str, Any]) -> None:
    # ask_name: first answer accepts {"name": "Ada"}, second declines.
    assert quickstart["askName"] == [["Hello, Ada!"], ["No name given."]]
    asked = quickstart["elicitations"]
    assert len(asked) == 2
    assert asked[0]["message"] == "What is your name?"
    assert asked[0]["requestedSchema"]["required"] == ["name"]

    elicited = conformance["elicitation"]
    assert elicited["texts"] == [
        "User response: action=accept, content={'username': 'ada', 'email': 'ada@example.com'}"]
    (request,) = elicited["requests"]
    assert request["message"] == "Who are you?"
    assert set(request["requestedSchema"]["properties"]) == {"username", "email"}


def test_sampling(conformance: dict[str, Any]) -> None:
    sampled = conformance["sampling"]
    assert sampled["isError"] is False
    assert sampled["texts"] == ["LLM response: Paris is the capital."]
    (request,) = sampled["requests"]
    assert request["maxTokens"] == 100
    assert request["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "What is the capital of France?"}}]


def test_resume_dropped_sse_stream(conformance: dict[str, Any]) -> None:
    """test_reconnection closes the POST's SSE stream; the transport resumes it with
    GET + Last-Event-ID after the server's `retry` and receives the result there."""
    rec = conformance["reconnection"]
    assert rec["texts"] == ["Reconnection test completed successfully"]
    assert rec["isError"] is False
    # A 202 for the previous call's elicitation-response POST may land in this window too.
    exchanges = [e for e in rec["http"] if (e["method"], e["status"]) != ("POST", 202)]
    post, resume = exchanges
    assert (post["method"], post["status"], post["contentType"]) == (
        "POST", 200, "text/event-stream")
    assert post["lastEventId"] is None
    assert (resume["method"], resume["status"], resume["contentType"]) == (
        "GET", 200, "text/event-stream")
    # Cursor = the dropped stream's priming event id; the response came under a later id.
    tokens = rec["tokens"]
    assert resume["lastEventId"] == tokens[0]
    assert len(tokens) >= 2
    assert tokens[-1] != tokens[0]
    assert rec["elapsedMs"] >= 900  # server `retry: 1000` (the fallback backoff is 5000)
    assert rec["elapsedMs"] < 4000
    assert conformance["transportErrors"] == []


def test_completion(conformance: dict[str, Any]) -> None:
    assert "completions" in conformance["capabilities"]
    done = conformance["completions"]
    assert done["pa"]["values"] == ["paris", "park"]
    assert done["test"]["values"] == ["test", "testing", "tested"]
    assert done["template"]["values"] == []
