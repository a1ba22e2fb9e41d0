"""Interop: the official TypeScript SDK v2 client (``@modelcontextprotocol/client``) on 2026-07-28.

``ts_client_v2.mjs`` drives ``Client`` + ``StreamableHTTPClientTransport`` from
``$MCP_TS_CLIENT_V2_DIR`` against a real ``scalemcp serve examples.quickstart:app`` and prints a
JSON summary, including every HTTP exchange (request headers and JSON-RPC body, the JSON-RPC
messages of each response). v2 speaks the modern era when asked to: ``versionNegotiation: {mode:
{pin: "2026-07-28"}}`` (or ``"auto"``, which probes ``server/discover``); its default is
``"legacy"`` (``initialize``). Per-request logging goes in ``_meta["io.modelcontextprotocol/
logLevel"]``; ``input_required`` results are fulfilled through the ``elicitation/create`` handler
and retried with ``inputResponses`` + ``requestState`` by the client itself.
One node run per module, shared by the tests.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import pytest

from tests.conftest import node_env
from tests.harness.serve import ServeProcess

SCRIPT = pathlib.Path(__file__).with_name("ts_client_v2.mjs")
MODERN = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
TOOLS = ["add", "echo", "forecast", "countdown", "ask_name"]


@pytest.fixture(scope="module")
def run(quickstart_server: ServeProcess) -> dict[str, Any]:
    env = node_env()
    assert env.get("MCP_TS_CLIENT_V2_DIR"), (
        "MCP_TS_CLIENT_V2_DIR missing from .cache/node-tools/env.sh: run scripts/install-node-tools"
    )
    proc = subprocess.run(
        ["node", str(SCRIPT), quickstart_server.url],
        env=env, capture_output=True, text=True, timeout=30,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output (rc={proc.returncode}): {proc.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in summary, (summary["error"], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return summary


@pytest.fixture(scope="module")
def pinned(run: dict[str, Any]) -> dict[str, Any]:
    scenario: dict[str, Any] = run["pinned"]
    return scenario


def rpc_method(exchange: dict[str, Any]) -> str | None:
    body = exchange["body"]
    return body.get("method") if isinstance(body, dict) else None


def response(exchange: dict[str, Any]) -> dict[str, Any]:
    """The JSON-RPC response (the message with the request's id) of one exchange."""
    responses = [m for m in exchange["messages"] if "id" in m and "method" not in m]
    assert len(responses) == 1, f"not one JSON-RPC response: {exchange}"
    found: dict[str, Any] = responses[0]
    assert found["id"] == exchange["body"]["id"]
    return found


def check_stateless_2026(http: list[dict[str, Any]]) -> None:
    """Every exchange is a lone POST of the stateless 2026-07-28 era, answered in-band."""
    assert http, "no HTTP exchanges recorded"
    for e in http:
        assert e["method"] == "POST", f"not a POST: {e}"  # no GET stream, no DELETE
        body = e["body"]
        assert isinstance(body, dict), f"not a lone request: {e}"  # never a batch
        assert "id" in body, f"not a request: {e}"
        assert body["method"] not in ("initialize", "notifications/initialized"), f"handshake: {e}"
        assert e["request"]["sessionId"] is None, f"session id sent: {e}"
        assert e["responseSessionId"] is None, f"session id issued: {e}"
        assert e["request"]["protocolVersion"] == MODERN, f"MCP-Protocol-Version: {e}"
        params = body["params"]
        assert params["_meta"][META_VERSION] == MODERN, f"_meta protocolVersion: {e}"
        assert e["request"]["mcpMethod"] == body["method"], f"Mcp-Method: {e}"
        name = params.get("uri") if body["method"] == "resources/read" else params.get("name")
        assert e["request"]["mcpName"] == name, f"Mcp-Name: {e}"
        answer = response(e)
        assert e["status"] == 200 or "error" in answer, f"HTTP status: {e}"


def test_discover_and_server_identity(pinned: dict[str, Any]) -> None:
    assert pinned["protocolVersion"] == MODERN
    assert pinned["transportProtocolVersion"] == MODERN
    assert pinned["sessionId"] is None
    assert pinned["serverVersion"] == {"name": "quickstart", "version": "1.0.0"}
    assert pinned["instructions"] == "A small demo server."
    assert {"tools", "resources", "prompts", "logging"} <= set(pinned["capabilities"])
    discover = response(pinned["http"][0])["result"]
    assert MODERN in discover["supportedVersions"]


def test_list_and_call_tools(pinned: dict[str, Any]) -> None:
    assert pinned["tools"] == TOOLS
    add = pinned["add"]
    assert add["structured"] == {"result": 5}
    assert add["isError"] is False
    assert [json.loads(t) for t in add["texts"]] == [5]  # the value, not its wrapper
    assert pinned["unknownToolCode"] == -32602
    # SEP-2164: resource-not-found is -32602 in 2026 (-32002 before). v2 reports -32602 for both
    # (ResourceNotFoundError), so look at the wire as well.
    assert pinned["missingResourceCode"] == -32602
    (missing,) = [e for e in pinned["http"] if e["request"]["mcpName"] == "nope://missing"]
    error = response(missing)["error"]
    assert (error["code"], error["data"]) == (-32602, {"uri": "nope://missing"})


def test_progress_and_per_request_logging(pinned: dict[str, Any]) -> None:
    assert pinned["countdown"] == {
        "texts": ["liftoff"],
        "progress": [[1, 3, "3 left"], [2, 3, "2 left"], [3, 3, "1 left"]],
    }
    assert pinned["countdownLogs"] == [
        {"level": "info", "data": "tick 3"},
        {"level": "info", "data": "tick 2"},
        {"level": "info", "data": "tick 1"},
    ]
    # No logLevel in _meta: no logs at all; "warning": none of the info logs. Progress flows.
    assert pinned["countdownNoLevel"] == {
        "texts": ["liftoff"], "progress": [[1, 2, "2 left"], [2, 2, "1 left"]]}
    assert pinned["logsWithoutLevel"] == []
    assert pinned["countdownWarning"] == {"texts": ["liftoff"], "progress": [[1, 1, "1 left"]]}
    assert pinned["logsAtWarning"] == []

    # On the wire: the first countdown streamed progress (under the request's token) and logs.
    countdowns = [e for e in pinned["http"] if e["request"]["mcpName"] == "countdown"]
    assert len(countdowns) == 3
    first = countdowns[0]
    meta = first["body"]["params"]["_meta"]
    assert meta["io.modelcontextprotocol/logLevel"] == "info"
    assert first["contentType"] == "text/event-stream"
    notes = [m for m in first["messages"] if "method" in m]
    assert [m["method"] for m in notes] == ["notifications/progress", "notifications/message"] * 3
    assert {m["params"]["progressToken"] for m in notes[::2]} == {meta["progressToken"]}
    assert "io.modelcontextprotocol/logLevel" not in countdowns[1]["body"]["params"]["_meta"]


def test_elicitation_via_mrtr(pinned: dict[str, Any]) -> None:
    """ask_name: the client's elicitation/create handler answers, once accepting, once declining."""
    assert pinned["askName"] == [["Hello, Zoë!"], ["No name given."]]
    asked = pinned["elicitations"]
    assert len(asked) == 2
    assert asked[0]["message"] == "What is your name?"
    assert asked[0]["requestedSchema"]["required"] == ["name"]


def test_mrtr_round_trip_on_the_wire(pinned: dict[str, Any]) -> None:
    start, end = pinned["askNameHttpRange"]
    first, retry = pinned["http"][start:end]
    assert rpc_method(first) == rpc_method(retry) == "tools/call"
    assert first["request"]["mcpName"] == retry["request"]["mcpName"] == "ask_name"
    assert "inputResponses" not in first["body"]["params"]
    asked = response(first)["result"]
    assert asked["resultType"] == "input_required"
    (key,) = asked["inputRequests"]
    assert asked["inputRequests"][key]["method"] == "elicitation/create"
    assert asked["requestState"]

    params = retry["body"]["params"]
    assert retry["body"]["id"] != first["body"]["id"]
    assert params["arguments"] == first["body"]["params"]["arguments"]
    assert params["inputResponses"] == {key: {"action": "accept", "content": {"name": "Zoë"}}}
    assert params["requestState"] == asked["requestState"]  # echoed byte for byte
    done = response(retry)["result"]
    assert done.get("resultType", "complete") == "complete"
    assert done["content"] == [{"type": "text", "text": "Hello, Zoë!"}]


def test_resource_template_and_prompt(pinned: dict[str, Any]) -> None:
    assert pinned["greeting"] == [
        {"uri": "greeting://Ada", "mimeType": "text/plain", "text": "Hello, Ada!"}]
    assert pinned["reviewPrompt"] == [
        {"role": "user", "content": {"type": "text", "text": "Please review this code:\n\nx = 1"}}]


def test_wire_was_stateless_2026(pinned: dict[str, Any]) -> None:
    http = pinned["http"]
    check_stateless_2026(http)
    assert [(rpc_method(e), e["request"]["mcpName"]) for e in http] == [
        ("server/discover", None),
        ("tools/list", None),
        ("tools/call", "add"),
        ("tools/call", "countdown"),
        ("tools/call", "countdown"),
        ("tools/call", "countdown"),
        ("tools/call", "ask_name"),  # input_required
        ("tools/call", "ask_name"),  # retry: accept
        ("tools/call", "ask_name"),  # input_required
        ("tools/call", "ask_name"),  # retry: decline
        ("resources/read", "greeting://Ada"),
        ("prompts/get", "review_code"),
        ("tools/call", "no_such_tool"),
        ("resources/read", "nope://missing"),
    ]
    kinds = [response(e).get("result", {}).get("resultType") for e in http]
    assert kinds.count("input_required") == 2


def test_auto_negotiation_selects_2026(run: dict[str, Any]) -> None:
    auto = run["auto"]
    assert auto["protocolVersion"] == MODERN  # the v2 default is "legacy"; "auto" must pick 2026
    assert auto["addStructured"] == {"result": 42}
    check_stateless_2026(auto["http"])
    assert [rpc_method(e) for e in auto["http"]] == ["server/discover", "tools/call"]


def test_wire_check_rejects_session_era(run: dict[str, Any]) -> None:
    """Control: the same client in its default legacy mode, on the same server, fails the check."""
    legacy = run["legacy"]
    assert legacy["protocolVersion"] == "2025-11-25"
    assert legacy["tools"] == TOOLS
    assert legacy["askName"] == ["Hello, Zoë!"]
    http = legacy["http"]
    with pytest.raises(AssertionError, match="handshake"):
        check_stateless_2026(http)  # initialize comes first
    get = [e for e in http if e["method"] == "GET"]  # the standalone SSE stream
    with pytest.raises(AssertionError, match="not a POST"):
        check_stateless_2026(get)
    calls = [e for e in http if rpc_method(e) in ("tools/list", "tools/call")]
    assert len(calls) == 2
    with pytest.raises(AssertionError, match="session id sent"):
        check_stateless_2026(calls)
