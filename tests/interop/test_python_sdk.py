"""Interop: the official Python SDK client (``mcp`` 2.x) against real ``scalemcp serve`` processes.

Session-era Streamable HTTP: ``Client(url, mode="legacy")`` forces the ``initialize`` handshake
(mcp 2.x defaults to ``mode="auto"``, which first probes the 2026-07-28 ``server/discover``).
Every exchange goes over real HTTP to a real server process (fixtures in tests/conftest.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import mcp_types as types
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ClientMessageMetadata

from examples.conformance import PNG
from tests.harness.conditions import eventually
from tests.harness.serve import ServeProcess

pytestmark = [
    # set_logging_level / the legacy handshake are flagged deprecated (as of 2026-07-28) by mcp 2.x.
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

SESSION_ERA = "2025-11-25"
TIMEOUT = 15  # seconds, per test


@dataclass
class Exchange:
    method: str
    status: int
    content_type: str
    session_id: str | None
    protocol_version: str | None
    last_event_id: str | None


@dataclass
class Recorder:
    """Every HTTP exchange the SDK's transport makes, via httpx2 response hooks."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def hook(self, response: httpx2.Response) -> None:
        req = response.request
        self.exchanges.append(Exchange(
            method=req.method,
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            session_id=req.headers.get("mcp-session-id"),
            protocol_version=req.headers.get("mcp-protocol-version"),
            last_event_id=req.headers.get("last-event-id"),
        ))


@asynccontextmanager
async def connect(
    url: str, recorder: Recorder | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """A session-era (initialize handshake) client over the SDK's own Streamable HTTP transport."""
    hooks = {"response": [recorder.hook]} if recorder else {}
    async with httpx2.AsyncClient(
        event_hooks=hooks, timeout=httpx2.Timeout(10, read=30)
    ) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", read_timeout_seconds=10, **kwargs) as client:
            yield client


async def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    """Notification callbacks run in spawned tasks: give them a moment to land."""
    await eventually(cond, "the callbacks", timeout)


def texts(result: types.CallToolResult | types.GetPromptResult) -> list[str]:
    if isinstance(result, types.CallToolResult):
        content = result.content
    else:
        content = [m.content for m in result.messages]
    return [c.text for c in content if isinstance(c, types.TextContent)]


async def test_initialize_session_era(quickstart_server: ServeProcess) -> None:
    """initialize negotiates 2025-11-25; session id + version headers ride on every later
    request; the standalone GET stream opens; DELETE ends the session."""
    rec = Recorder()
    with trio.fail_after(TIMEOUT):
        async with connect(quickstart_server.url, rec) as client:
            assert client.protocol_version == SESSION_ERA
            assert client.server_info is not None
            assert (client.server_info.name, client.server_info.version) == ("quickstart", "1.0.0")
            assert client.instructions == "A small demo server."
            caps = client.server_capabilities
            assert caps.tools is not None
            assert caps.resources is not None
            assert caps.prompts is not None
            assert caps.logging is not None
            await client.send_ping()
            await wait_until(lambda: any(e.method == "GET" for e in rec.exchanges))
    init, *rest = rec.exchanges
    assert (init.method, init.status, init.session_id) == ("POST", 200, None)
    session_ids = {e.session_id for e in rest}
    assert len(session_ids) == 1
    assert None not in session_ids
    assert {e.protocol_version for e in rest} == {SESSION_ERA}
    # notifications/initialized -> 202; standalone GET stream -> SSE; DELETE on close.
    assert any(e.method == "POST" and e.status == 202 for e in rest)
    get = next(e for e in rest if e.method == "GET")
    assert (get.status, get.content_type.split(";")[0]) == (200, "text/event-stream")
    assert [(e.method, e.status) for e in rest if e.method == "DELETE"] == [("DELETE", 200)]


async def test_auto_mode_default(quickstart_server: ServeProcess) -> None:
    """The SDK default (mode="auto") probes server/discover and falls back to initialize on a
    session-era server; either way the connection must work (the modern path is issue 3)."""
    with trio.fail_after(TIMEOUT):
        async with Client(quickstart_server.url, read_timeout_seconds=10) as client:
            assert client.protocol_version in (SESSION_ERA, "2026-07-28")
            result = await client.call_tool("add", {"a": 20, "b": 22})
            assert result.structured_content == {"result": 42}


async def test_list_and_call_tools(quickstart_server: ServeProcess) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(quickstart_server.url) as client:
            listed = await client.list_tools()
            tools = {t.name: t for t in listed.tools}
            assert set(tools) == {"add", "echo", "forecast", "countdown", "ask_name"}
            assert tools["add"].description == "Add two integers."
            assert tools["add"].input_schema == {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            }
            assert tools["forecast"].output_schema is not None
            assert tools["forecast"].output_schema["required"] == [
                "city", "temperature_c", "conditions"]

            add = await client.call_tool("add", {"a": 2, "b": 3})
            assert not add.is_error
            assert add.structured_content == {"result": 5}
            assert [json.loads(t) for t in texts(add)] == [5]  # the value, not its wrapper

            echo = await client.call_tool("echo", {"message": "héllo wörld ✓"})
            assert texts(echo) == ["héllo wörld ✓"]
            assert echo.structured_content is None

            forecast = await client.call_tool("forecast", {"city": "Paris"})
            assert not forecast.is_error
            assert forecast.structured_content == {
                "city": "Paris", "temperature_c": 21.5, "conditions": "sunny"}

            # Input validation failures are tool execution errors (2025-11-25), not protocol errors.
            bad = await client.call_tool("forecast", {"city": ""})
            assert bad.is_error
            assert "forecast" in texts(bad)[0]

            with pytest.raises(MCPError) as excinfo:
                await client.call_tool("no_such_tool", {})
            assert excinfo.value.code == types.INVALID_PARAMS


async def test_progress_and_logging_callbacks(quickstart_server: ServeProcess) -> None:
    """countdown reports progress and logs per step; logging/setLevel filters the log stream."""
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    with trio.fail_after(TIMEOUT):
        async with connect(quickstart_server.url, logging_callback=on_log) as client:
            await client.set_logging_level("info")
            result = await client.call_tool("countdown", {"n": 3}, progress_callback=on_progress)
            assert texts(result) == ["liftoff"]
            await wait_until(lambda: len(progress) >= 3 and len(logs) >= 3)
            assert progress == [(1, 3, "3 left"), (2, 3, "2 left"), (3, 3, "1 left")]
            assert [(m.level, m.data) for m in logs] == [
                ("info", "tick 3"), ("info", "tick 2"), ("info", "tick 1")]

            # Above the tool's level: no log messages, progress still flows.
            logs.clear()
            progress.clear()
            await client.set_logging_level("warning")
            result = await client.call_tool("countdown", {"n": 2}, progress_callback=on_progress)
            assert texts(result) == ["liftoff"]
            await wait_until(lambda: len(progress) >= 2)
            assert progress == [(1, 2, "2 left"), (2, 2, "1 left")]
            # Back to info: only the new call's single tick may arrive, nothing from the call above.
            await client.set_logging_level("info")
            await client.call_tool("countdown", {"n": 1})
            await wait_until(lambda: len(logs) >= 1)
            await trio.sleep(0.1)  # real time: a moment for a log that must not come
            assert [m.data for m in logs] == ["tick 1"]


async def test_conformance_progress_and_logging(conformance_server: ServeProcess) -> None:
    logs: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append((params.level, params.data))

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    with trio.fail_after(TIMEOUT):
        async with connect(conformance_server.url, logging_callback=on_log) as client:
            await client.set_logging_level("debug")
            result = await client.call_tool(
                "test_tool_with_progress", {}, progress_callback=on_progress)
            assert texts(result) == ["Tool with progress executed successfully"]
            await wait_until(lambda: len(progress) >= 3)
            assert progress == [(0, 100, "step 0"), (50, 100, "step 50"), (100, 100, "step 100")]

            result = await client.call_tool("test_tool_with_logging", {})
            assert texts(result) == ["Tool with logging executed successfully"]
            await wait_until(lambda: len(logs) >= 3)
            assert logs == [
                ("info", "Tool execution started"),
                ("info", "Tool processing data"),
                ("info", "Tool execution completed"),
            ]


async def test_resources_and_template(quickstart_server: ServeProcess) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(quickstart_server.url) as client:
            listed = await client.list_resources()
            assert [(r.uri, r.name, r.mime_type, r.description) for r in listed.resources] == [
                ("config://app", "app_config", "application/json", "App settings")]

            read = await client.read_resource("config://app")
            (contents,) = read.contents
            assert isinstance(contents, types.TextResourceContents)
            assert contents.uri == "config://app"
            assert contents.mime_type == "application/json"
            assert json.loads(contents.text) == {"theme": "dark", "language": "en"}

            templates = await client.list_resource_templates()
            assert [(t.uri_template, t.mime_type) for t in templates.resource_templates] == [
                ("greeting://{name}", "text/plain")]
            read = await client.read_resource("greeting://Ada")
            (contents,) = read.contents
            assert isinstance(contents, types.TextResourceContents)
            assert (contents.uri, contents.text) == ("greeting://Ada", "Hello, Ada!")

            with pytest.raises(MCPError) as excinfo:
                await client.read_resource("nope://missing")
            assert excinfo.value.code == -32002  # resource not found (session era)


async def test_conformance_resources(conformance_server: ServeProcess) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(conformance_server.url) as client:
            read = await client.read_resource("test://static-binary")
            (blob,) = read.contents
            assert isinstance(blob, types.BlobResourceContents)
            assert blob.mime_type == "image/png"
            assert base64.b64decode(blob.blob) == PNG

            read = await client.read_resource("test://template/42/data")
            (contents,) = read.contents
            assert isinstance(contents, types.TextResourceContents)
            assert contents.uri == "test://template/42/data"
            assert json.loads(contents.text) == {
                "id": "42", "templateTest": True, "data": "Data for ID: 42"}


async def test_prompts(quickstart_server: ServeProcess, conformance_server: ServeProcess) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(quickstart_server.url) as client:
            listed = await client.list_prompts()
            (prompt,) = listed.prompts
            assert (prompt.name, prompt.description) == ("review_code", "Ask for a code review.")
            assert [(a.name, a.required) for a in prompt.arguments or []] == [("code", True)]
            got = await client.get_prompt("review_code", {"code": "x = 1"})
            assert [m.role for m in got.messages] == ["user"]
            assert texts(got) == ["Please review this code:\n\nx = 1"]

        async with connect(conformance_server.url) as client:
            got = await client.get_prompt(
                "test_prompt_with_arguments", {"arg1": "alpha", "arg2": "beta"})
            assert texts(got) == ["Prompt with arguments: arg1='alpha', arg2='beta'"]
            got = await client.get_prompt(
                "test_prompt_with_embedded_resource", {"resourceUri": "test://r/1"})
            first, second = (m.content for m in got.messages)
            assert isinstance(first, types.EmbeddedResource)
            assert isinstance(first.resource, types.TextResourceContents)
            assert (first.resource.uri, first.resource.text) == (
                "test://r/1", "Embedded resource content for testing.")
            assert isinstance(second, types.TextContent)
            assert second.text == "Please process the embedded resource above."


async def test_elicitation_callback(
    quickstart_server: ServeProcess, conformance_server: ServeProcess
) -> None:
    """The server's elicitation/create reaches the client callback; the answer reaches the tool."""
    asked: list[types.ElicitRequestParams] = []
    answers = [
        types.ElicitResult(action="accept", content={"name": "Ada"}),
        types.ElicitResult(action="decline"),
        types.ElicitResult(
            action="accept", content={"username": "ada", "email": "ada@example.com"}),
    ]

    async def on_elicit(
        ctx: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        asked.append(params)
        return answers[len(asked) - 1]

    with trio.fail_after(TIMEOUT):
        async with connect(quickstart_server.url, elicitation_callback=on_elicit) as client:
            assert texts(await client.call_tool("ask_name", {})) == ["Hello, Ada!"]
            assert texts(await client.call_tool("ask_name", {})) == ["No name given."]
        assert asked[0].message == "What is your name?"
        assert isinstance(asked[0], types.ElicitRequestFormParams)
        assert asked[0].requested_schema["required"] == ["name"]

        async with connect(conformance_server.url, elicitation_callback=on_elicit) as client:
            result = await client.call_tool("test_elicitation", {"message": "Who are you?"})
            assert texts(result) == [
                "User response: action=accept, "
                "content={'username': 'ada', 'email': 'ada@example.com'}"]
        assert asked[2].message == "Who are you?"
        assert isinstance(asked[2], types.ElicitRequestFormParams)
        assert set(asked[2].requested_schema["properties"]) == {"username", "email"}
    assert len(asked) == 3


async def test_sampling_callback(conformance_server: ServeProcess) -> None:
    """test_sampling sends sampling/createMessage; the callback's text comes back in the result."""
    asked: list[types.CreateMessageRequestParams] = []

    async def on_sample(
        ctx: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        asked.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="Paris is the capital."),
            model="interop-test-model",
            stop_reason="endTurn",
        )

    with trio.fail_after(TIMEOUT):
        async with connect(conformance_server.url, sampling_callback=on_sample) as client:
            result = await client.call_tool(
                "test_sampling", {"prompt": "What is the capital of France?"})
            assert not result.is_error
            assert texts(result) == ["LLM response: Paris is the capital."]
    (params,) = asked
    assert params.max_tokens == 100
    (message,) = params.messages
    assert message.role == "user"
    assert isinstance(message.content, types.TextContent)
    assert message.content.text == "What is the capital of France?"


async def test_resume_dropped_sse_stream(conformance_server: ServeProcess) -> None:
    """test_reconnection drops the POST's SSE stream mid-call; the SDK resumes with
    GET + Last-Event-ID (after the server's retry interval) and gets the result there."""
    rec = Recorder()
    tokens: list[str] = []

    async def on_token(token: str) -> None:
        tokens.append(token)

    with trio.fail_after(TIMEOUT):
        async with connect(conformance_server.url, rec) as client:
            request = types.CallToolRequest(
                params=types.CallToolRequestParams(name="test_reconnection", arguments={}))
            started = time.monotonic()
            result = await client.session.send_request(
                request, types.CallToolResult,
                metadata=ClientMessageMetadata(on_resumption_token_update=on_token))
            elapsed = time.monotonic() - started
    assert texts(result) == ["Reconnection test completed successfully"]
    assert not result.is_error
    resumes = [e for e in rec.exchanges if e.last_event_id is not None]
    assert len(resumes) == 1, rec.exchanges
    (resume,) = resumes
    assert resume.method == "GET"
    assert (resume.status, resume.content_type.split(";")[0]) == (200, "text/event-stream")
    # The resume cursor is the priming event id of the dropped POST stream; the response
    # then arrives on the resumed stream under a later event id.
    assert tokens[0] == resume.last_event_id
    assert len(tokens) >= 2
    assert tokens[-1] != resume.last_event_id
    assert elapsed >= 0.9  # the client honoured the server's `retry: 1000`


async def test_completion(conformance_server: ServeProcess) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(conformance_server.url) as client:
            assert client.server_capabilities.completions is not None
            ref = types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
            done = await client.complete(ref, {"name": "arg1", "value": "pa"})
            assert done.completion.values == ["paris", "park"]
            done = await client.complete(ref, {"name": "arg1", "value": "test"})
            assert done.completion.values == ["test", "testing", "tested"]
            template = types.ResourceTemplateReference(
                type="ref/resource", uri="test://template/{id}/data")
            done = await client.complete(template, {"name": "id", "value": "zzz"})
            assert done.completion.values == []


async def test_modern_stateless(quickstart_server: ServeProcess) -> None:
    """2026-07-28: no initialize, no session; logging opt-in per request, elicitation via MRTR."""
    rec = Recorder()
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_elicit(
        ctx: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    with trio.fail_after(TIMEOUT):
        async with httpx2.AsyncClient(event_hooks={"response": [rec.hook]}) as http, Client(
            streamable_http_client(quickstart_server.url, http_client=http),
            mode="2026-07-28", read_timeout_seconds=10, log_level="info",
            logging_callback=on_log, elicitation_callback=on_elicit,
        ) as client:
            assert client.protocol_version == "2026-07-28"
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == {
                "add", "echo", "forecast", "countdown", "ask_name"}
            add = await client.call_tool("add", {"a": 2, "b": 3})
            assert add.structured_content == {"result": 5}
            result = await client.call_tool(
                "countdown", {"n": 2}, progress_callback=on_progress)
            assert texts(result) == ["liftoff"]
            await wait_until(lambda: len(progress) >= 2 and len(logs) >= 2)
            assert progress == [(1, 2, "2 left"), (2, 2, "1 left")]
            assert logs == ["tick 2", "tick 1"]
            assert texts(await client.call_tool("ask_name", {})) == ["Hello, Grace!"]
            read = await client.read_resource("greeting://Ada")
            (contents,) = read.contents
            assert isinstance(contents, types.TextResourceContents)
            assert contents.text == "Hello, Ada!"
            got = await client.get_prompt("review_code", {"code": "x = 1"})
            assert texts(got) == ["Please review this code:\n\nx = 1"]
    assert rec.exchanges
    assert all(e.method == "POST" for e in rec.exchanges)
    assert all(e.session_id is None for e in rec.exchanges)
    assert {e.protocol_version for e in rec.exchanges} == {"2026-07-28"}
