"""Every JSON-RPC message the server emits validates against the official schema.

The example apps are served in memory (tests/harness/asgi.py) and driven with raw
requests (tests/harness/client.py), once per session-era protocol version. Each message
the server sends, in a JSON body or as an SSE ``data:`` event, is checked twice against
that version's ``schema.json``:

* as published: the envelope (``JSONRPCResponse``/``JSONRPCResultResponse``,
  ``JSONRPCError``/``JSONRPCErrorResponse``, ``JSONRPCNotification``, ``JSONRPCRequest``),
  and the payload against the definition for its method (``CallToolResult``,
  ``ProgressNotification``, ...);
* "closed": the same definitions with ``additionalProperties: false`` added to every
  object the schema lists properties for (except JSON-Schema-valued and ``_meta``
  members, which are open by design). The official schemas are open, so only this
  catches a field that the negotiated version does not have (``structuredContent`` in
  2025-03-26, ``title`` before 2025-06-18, ``icons`` before 2025-11-25, ...): the server
  must leave those out for older clients.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jsonschema
import pytest
import trio
from jsonschema.exceptions import best_match

import scalemcp
from examples.conformance import PNG_B64
from examples.conformance import app as conformance_app
from examples.quickstart import app as quickstart_app
from scalemcp.protocol.versions import features
from tests.harness import client
from tests.harness.asgi import open_asgi
from tests.harness.sse import Event, sse_events

#: The official schemas, vendored from the spec repository (see tests/schemas/LICENSE-NOTE.txt).
SCHEMA_DIR = pathlib.Path(os.environ.get(
    "SCALEMCP_SPEC_SCHEMAS", pathlib.Path(__file__).parents[1] / "schemas"))
VERSIONS = ["2025-03-26", "2025-06-18", "2025-11-25"]
DIALECTS: dict[str, type[Any]] = {
    "http://json-schema.org/draft-07/schema#": jsonschema.Draft7Validator,
    "https://json-schema.org/draft/2020-12/schema": jsonschema.Draft202012Validator,
}
TIMEOUT_S = 15

#: The result definition for each request method the server answers.
RESULT_DEFS = {
    "initialize": "InitializeResult",
    "ping": "EmptyResult",
    "tools/list": "ListToolsResult",
    "tools/call": "CallToolResult",
    "resources/list": "ListResourcesResult",
    "resources/templates/list": "ListResourceTemplatesResult",
    "resources/read": "ReadResourceResult",
    "resources/subscribe": "EmptyResult",
    "resources/unsubscribe": "EmptyResult",
    "prompts/list": "ListPromptsResult",
    "prompts/get": "GetPromptResult",
    "completion/complete": "CompleteResult",
    "logging/setLevel": "EmptyResult",
}
NOTIFICATION_DEFS = {
    "notifications/progress": "ProgressNotification",
    "notifications/message": "LoggingMessageNotification",
    "notifications/cancelled": "CancelledNotification",
    "notifications/tools/list_changed": "ToolListChangedNotification",
    "notifications/prompts/list_changed": "PromptListChangedNotification",
    "notifications/resources/list_changed": "ResourceListChangedNotification",
    "notifications/resources/updated": "ResourceUpdatedNotification",
}
SERVER_REQUEST_DEFS = {
    "elicitation/create": "ElicitRequest",
    "sampling/createMessage": "CreateMessageRequest",
    "roots/list": "ListRootsRequest",
}
#: Members whose values are JSON Schemas or free-form by design: never closed.
OPEN_MEMBERS = frozenset(
    {"_meta", "inputSchema", "outputSchema", "requestedSchema", "structuredContent",
     "experimental", "data", "arguments"}
)


# -- schemas ------------------------------------------------------------------------------


def _close(node: Any) -> None:
    """Add ``additionalProperties: false`` to every object schema that lists properties."""
    if isinstance(node, list):
        for item in node:
            _close(item)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if (
        isinstance(props, dict)
        and "additionalProperties" not in node
        and not any(k in node for k in ("allOf", "anyOf", "oneOf", "$ref"))
    ):
        node["additionalProperties"] = False
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                if name not in OPEN_MEMBERS:
                    _close(sub)
        elif key not in ("const", "enum", "default", "examples", "description"):
            _close(value)


class VersionSchema:
    """One version's schema.json, as published and closed."""

    def __init__(self, version: str) -> None:
        path = SCHEMA_DIR / version / "schema.json"
        if not path.exists():
            pytest.fail(f"official schema missing: {path} (set SCALEMCP_SPEC_SCHEMAS)")
        document = json.loads(path.read_text())
        self.version = version
        self.dialect = document["$schema"]
        self.cls = DIALECTS[self.dialect]
        self.cls.check_schema(document)
        self.defs_key = "$defs" if "$defs" in document else "definitions"
        expected_key = "$defs" if self.cls is jsonschema.Draft202012Validator else "definitions"
        assert self.defs_key == expected_key, (version, self.defs_key)
        self.document = document
        closed = copy.deepcopy(document)
        defs = closed[self.defs_key]
        capabilities = defs["ServerCapabilities"]["properties"]
        if features(version).extensions and "extensions" not in capabilities:
            # The one field added on purpose, where the feature table says so: SEP-2133
            # ``capabilities.extensions`` (the skills extension), which both official SDKs
            # and the conformance suite read from a 2025-11-25 initialize result
            # (docs/skills.md). Older versions must not carry it.
            capabilities["extensions"] = {
                "type": "object", "additionalProperties": {"type": "object"}}
        for name, definition in defs.items():
            props = definition.get("properties")
            # 2025-03-26/2025-06-18 define notifications and server requests without the
            # envelope members; they are validated separately, so allow them here.
            if isinstance(props, dict) and "method" in props and "jsonrpc" not in props:
                props["jsonrpc"] = {"const": "2.0"}
                if name.endswith("Request"):
                    props["id"] = {"$ref": f"#/{self.defs_key}/RequestId"}
        _close(defs)
        self.closed = closed
        self._validators: dict[tuple[str, bool], Any] = {}

    def validator(self, definition: str, closed: bool) -> Any:
        key = (definition, closed)
        if key not in self._validators:
            root = self.closed if closed else self.document
            assert definition in root[self.defs_key], f"{self.version} has no {definition}"
            schema = {**root, "$ref": f"#/{self.defs_key}/{definition}"}
            self._validators[key] = self.cls(schema)
        return self._validators[key]

    def check(self, instance: Any, definition: str, what: str) -> None:
        for closed in (False, True):
            error = best_match(self.validator(definition, closed).iter_errors(instance))
            if error is not None:
                kind = "closed (extra field for this version?)" if closed else "official"
                path = "/".join(str(p) for p in error.absolute_path)
                raise AssertionError(
                    f"{self.version} {what} fails {kind} #{definition} at /{path}: "
                    f"{error.message}\n{json.dumps(instance)[:2000]}"
                )

    # Envelope names changed in 2025-11-25.
    @property
    def result_envelope(self) -> str:
        return "JSONRPCResultResponse" if self.version >= "2025-11-25" else "JSONRPCResponse"

    @property
    def error_envelope(self) -> str:
        return "JSONRPCErrorResponse" if self.version >= "2025-11-25" else "JSONRPCError"


@functools.cache
def schema_for(version: str) -> VersionSchema:
    return VersionSchema(version)


# -- a raw client that validates everything it receives ------------------------------------


ServerRequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Client:
    """Raw JSON-RPC over Streamable HTTP (a harness session); validates every message the
    server sends."""

    def __init__(self, session: client.Session) -> None:
        self.session = session
        self.session.next_id = 0
        self.version = session.version
        self.schema = schema_for(self.version)
        #: method of every request we sent, by id (to pick the result definition)
        self.methods: dict[int | str, str] = {}
        #: every message the server sent, validated, in order
        self.received: list[dict[str, Any]] = []
        #: SSE events as received (priming events included)
        self.events: list[Event] = []

    @property
    def next_id(self) -> int:
        return self.session.next_id

    def validate(self, message: Any) -> None:
        s = self.schema
        if isinstance(message, list):
            assert self.version == "2025-03-26", "batched answer outside 2025-03-26"
            s.check(message, "JSONRPCBatchResponse", "batch")
            for item in message:
                self.validate(item)
            return
        assert isinstance(message, dict), message
        s.check(message, "JSONRPCMessage", "message")
        if "method" in message and "id" in message:
            method = message["method"]
            s.check(message, "JSONRPCRequest", f"{method} request")
            s.check(message, SERVER_REQUEST_DEFS[method], f"{method} request")
            s.check(message, "ServerRequest", f"{method} request")
        elif "method" in message:
            method = message["method"]
            s.check(message, "JSONRPCNotification", method)
            s.check(message, NOTIFICATION_DEFS[method], method)
            s.check(message, "ServerNotification", method)
        elif "error" in message:
            s.check(message, s.error_envelope, "error")
            assert isinstance(message["error"]["code"], int)
        else:
            method = self.methods[message["id"]]
            s.check(message, s.result_envelope, f"{method} response")
            s.check(message["result"], RESULT_DEFS[method], f"{method} result")
            s.check(message["result"], "ServerResult", f"{method} result")
        self.received.append(message)

    def _request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        message = self.session.request(method, params)
        self.methods[message["id"]] = method
        return message

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.request(
            "initialize", client.initialize_params(self.version, capabilities, "schema-test"))
        assert answer["result"]["protocolVersion"] == self.version
        await self.notify("notifications/initialized")
        return answer

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        r = await self.session.post(client.notification(method, params))
        assert r.status_code == 202, (r.status_code, r.text)
        assert r.content == b""

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        on_request: ServerRequestHandler | None = None,
    ) -> dict[str, Any]:
        """Send one request; returns its response after validating all that came with it."""
        message = self._request(method, params)
        messages = await self.post(message, on_request=on_request)
        final = messages[-1]
        assert final.get("id") == message["id"], final
        assert "result" in final or "error" in final
        for earlier in messages[:-1]:
            assert "method" in earlier, f"a response before the last message: {earlier}"
        return final

    async def batch(self, calls: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
        body = [self._request(method, params) for method, params in calls]
        r = await self.session.post(body)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        answer = r.json()
        self.validate(answer)
        assert isinstance(answer, list)
        return answer

    async def post(
        self, message: Any, *, on_request: ServerRequestHandler | None = None
    ) -> list[dict[str, Any]]:
        async with self.session.stream(message) as r:
            assert r.status_code == 200, (r.status_code, (await r.aread())[:500])
            if message.get("method") == "initialize":
                self.session.session_id = r.headers["mcp-session-id"]
            assert r.headers.get("mcp-session-id") == self.session.session_id
            content_type = r.headers["content-type"]
            if content_type.startswith("application/json"):
                body = json.loads(await r.aread())
                self.validate(body)
                return [body]
            assert content_type.startswith("text/event-stream"), content_type
            return await self._read_sse(r, on_request)

    async def _read_sse(
        self, r: httpx.Response, on_request: ServerRequestHandler | None
    ) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        first = True
        async for event in sse_events(r, complete=True):  # keep-alive comments: no event
            self.events.append(event)
            assert event.id is not None, f"SSE event without an id (not resumable): {event}"
            if event.data == "":
                # The 2025-11-25 priming event: first, with an id and a retry hint.
                assert first, "empty SSE event that is not the priming event"
                assert self.version >= "2025-11-25", "priming event before 2025-11-25"
                assert event.retry is not None
                assert event.retry >= 0
                first = False
                continue
            if first and self.version >= "2025-11-25":
                raise AssertionError(f"2025-11-25 SSE stream without priming event: {event}")
            first = False
            assert event.event in (None, "message")
            message = json.loads(event.data)
            self.validate(message)
            messages.append(message)
            if "method" in message and "id" in message:
                assert on_request is not None, f"unexpected server request: {message}"
                result = await on_request(message)
                answer = await self.session.post(client.result(message["id"], result))
                assert answer.status_code == 202, (answer.status_code, answer.text)
        assert messages, "SSE answer without any message"
        return messages


@asynccontextmanager
async def connect(
    app: scalemcp.App, version: str, capabilities: dict[str, Any] | None = None
) -> AsyncIterator[Client]:
    async with (
        open_asgi(app, scalemcp.Config()) as served,
        served.client(timeout=TIMEOUT_S) as http,
    ):
        c = Client(client.Session(http, served.url, version))
        await c.initialize(capabilities)
        yield c


def text_of(result: dict[str, Any]) -> str:
    return "".join(b["text"] for b in result["content"] if b["type"] == "text")


parametrize_versions = pytest.mark.parametrize("version", VERSIONS)


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [*VERSIONS, "2024-11-05", "2026-07-28"])
def test_schema_files_have_the_expected_dialect(version: str) -> None:
    document = json.loads((SCHEMA_DIR / version / "schema.json").read_text())
    cls = DIALECTS[document["$schema"]]
    if version >= "2025-11-25":
        assert cls is jsonschema.Draft202012Validator
        assert "$defs" in document
    else:
        assert cls is jsonschema.Draft7Validator
        assert "definitions" in document


@parametrize_versions
def test_closed_schema_rejects_fields_a_version_lacks(version: str) -> None:
    """The closed check is what makes the 'older version' assertions below able to fail."""
    s = schema_for(version)
    result = {"content": [{"type": "text", "text": "x"}], "structuredContent": {"a": 1}}
    closed = s.validator("CallToolResult", True)
    assert s.validator("CallToolResult", False).is_valid(result)
    assert closed.is_valid(result) is (version >= "2025-06-18")
    tool = {"name": "t", "inputSchema": {"type": "object"}, "icons": [{"src": "x"}]}
    assert s.validator("Tool", True).is_valid(tool) is (version >= "2025-11-25")
    assert not closed.is_valid({"content": [], "bogus": 1})
    # Free-form members stay open.
    assert closed.is_valid({"content": [], "_meta": {"anything": [1]}})


@parametrize_versions
async def test_lifecycle_ping_and_batches(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(conformance_app, version) as c:
            init = c.received[0]["result"]
            assert init["serverInfo"]["name"] == "scalemcp-conformance"
            assert {"tools", "resources", "prompts", "logging"} <= init["capabilities"].keys()
            if version >= "2025-03-26":
                assert "completions" in init["capabilities"]
            assert (await c.request("ping"))["result"] == {}
            assert (await c.request("ping", {}))["result"] == {}
            if version == "2025-03-26":
                answers = await c.batch([("ping", None), ("tools/list", None)])
                assert sorted(a["id"] for a in answers) == [c.next_id - 1, c.next_id]
                assert all("result" in a for a in answers)
            assert len(c.received) >= 3


@parametrize_versions
async def test_tools_list_and_content_tools(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(conformance_app, version) as c:
            tools = (await c.request("tools/list"))["result"]["tools"]
            names = {t["name"] for t in tools}
            assert {"test_simple_text", "test_image_content", "test_audio_content",
                    "test_embedded_resource", "test_error_handling"} <= names

            text = (await c.request("tools/call", {"name": "test_simple_text"}))["result"]
            assert text_of(text) == "This is a simple text response for testing."
            assert not text.get("isError", False)

            image = (await c.request("tools/call", {"name": "test_image_content",
                                                    "arguments": {}}))["result"]
            assert image["content"] == [{"type": "image", "data": PNG_B64,
                                         "mimeType": "image/png"}]

            audio = (await c.request("tools/call", {"name": "test_audio_content"}))["result"]
            assert audio["content"][0]["type"] == "audio"
            assert audio["content"][0]["mimeType"] == "audio/wav"

            embedded = (await c.request("tools/call",
                                        {"name": "test_embedded_resource"}))["result"]
            block = embedded["content"][0]
            assert block["type"] == "resource"
            assert block["resource"]["uri"] == "test://embedded-resource"

            mixed = (await c.request("tools/call",
                                     {"name": "test_multiple_content_types"}))["result"]
            assert [b["type"] for b in mixed["content"]] == ["text", "image", "resource"]

            failing = (await c.request("tools/call", {"name": "test_error_handling"}))["result"]
            assert failing["isError"] is True
            assert "intentionally returns an error" in text_of(failing)

            schema_tool = (await c.request("tools/call", {
                "name": "json_schema_2020_12_tool",
                "arguments": {"name": "a", "address": {"city": "b"}},
            }))["result"]
            assert text_of(schema_tool) == "name=a, address={'city': 'b'}"


@parametrize_versions
async def test_structured_output_and_bad_arguments(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(quickstart_app, version) as c:
            tools = {t["name"]: t for t in (await c.request("tools/list"))["result"]["tools"]}
            forecast = (await c.request("tools/call", {
                "name": "forecast", "arguments": {"city": "Paris"}}))["result"]
            added = (await c.request("tools/call", {
                "name": "add", "arguments": {"a": 2, "b": 3}}))["result"]
            expected = {"city": "Paris", "temperature_c": 21.5, "conditions": "sunny"}
            assert json.loads(text_of(forecast)) == expected
            assert json.loads(text_of(added)) == 5  # the value, not its wrapper
            if version >= "2025-06-18":
                assert forecast["structuredContent"] == expected
                assert added["structuredContent"] == {"result": 5}
                assert tools["forecast"]["outputSchema"]["type"] == "object"
                assert tools["add"]["outputSchema"]["required"] == ["result"]
            else:
                # 2025-03-26 has no structured output: text only, no outputSchema.
                assert "structuredContent" not in forecast
                assert "structuredContent" not in added
                assert "outputSchema" not in tools["forecast"]

            bad = await c.request("tools/call", {"name": "add", "arguments": {"a": "x", "b": 1}})
            if version >= "2025-11-25":
                # Input validation failures are tool execution errors from 2025-11-25 on.
                assert bad["result"]["isError"] is True
                assert "$.a" in text_of(bad["result"])
            else:
                assert bad["error"]["code"] == -32602
                assert "$.a" in bad["error"]["message"]
            short = await c.request("tools/call", {"name": "forecast", "arguments": {"city": ""}})
            assert ("error" in short) is (version < "2025-11-25")

            unknown = await c.request("tools/call", {"name": "no_such_tool"})
            assert unknown["error"]["code"] == -32602
            assert "no_such_tool" in unknown["error"]["message"]
            wrong_type = await c.request("tools/call", {"name": 5})
            assert wrong_type["error"]["code"] == -32602
            assert "$.name" in wrong_type["error"]["message"]
            unknown_method = await c.request("tools/nonexistent")
            assert unknown_method["error"]["code"] == -32601


@parametrize_versions
async def test_resources_prompts_and_completion(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(conformance_app, version) as c:
            resources = (await c.request("resources/list"))["result"]["resources"]
            assert {r["uri"] for r in resources} >= {
                "test://static-text", "test://static-binary", "test://watched-resource"}
            templates = (await c.request("resources/templates/list"))["result"]
            assert "test://template/{id}/data" in [
                t["uriTemplate"] for t in templates["resourceTemplates"]]

            text = (await c.request("resources/read", {"uri": "test://static-text"}))["result"]
            assert text["contents"][0]["text"].startswith("This is the content")
            blob = (await c.request("resources/read", {"uri": "test://static-binary"}))["result"]
            assert blob["contents"][0]["blob"] == PNG_B64
            assert blob["contents"][0]["mimeType"] == "image/png"
            filled = (await c.request("resources/read",
                                      {"uri": "test://template/42/data"}))["result"]
            assert json.loads(filled["contents"][0]["text"])["id"] == "42"
            missing = await c.request("resources/read", {"uri": "test://nope"})
            assert missing["error"]["code"] == -32002
            assert (await c.request("resources/subscribe",
                                    {"uri": "test://watched-resource"}))["result"] == {}
            assert (await c.request("resources/unsubscribe",
                                    {"uri": "test://watched-resource"}))["result"] == {}

            prompts = (await c.request("prompts/list"))["result"]["prompts"]
            assert {p["name"] for p in prompts} >= {
                "test_simple_prompt", "test_prompt_with_arguments",
                "test_prompt_with_embedded_resource", "test_prompt_with_image"}
            simple = (await c.request("prompts/get", {"name": "test_simple_prompt"}))["result"]
            assert simple["messages"][0]["content"]["type"] == "text"
            with_args = (await c.request("prompts/get", {
                "name": "test_prompt_with_arguments",
                "arguments": {"arg1": "a", "arg2": "b"}}))["result"]
            assert "arg1='a'" in with_args["messages"][0]["content"]["text"]
            embedded = (await c.request("prompts/get", {
                "name": "test_prompt_with_embedded_resource",
                "arguments": {"resourceUri": "test://x"}}))["result"]
            assert embedded["messages"][0]["content"]["resource"]["uri"] == "test://x"
            image = (await c.request("prompts/get", {"name": "test_prompt_with_image"}))["result"]
            assert image["messages"][0]["content"]["type"] == "image"
            missing_arg = await c.request("prompts/get", {"name": "test_prompt_with_arguments"})
            assert missing_arg["error"]["code"] == -32602

            completion = (await c.request("completion/complete", {
                "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                "argument": {"name": "arg1", "value": "pa"},
            }))["result"]["completion"]
            assert completion["values"] == ["paris", "park"]
            assert completion["hasMore"] is False
            bad_ref = await c.request("completion/complete", {
                "ref": {"type": "ref/prompt", "name": "nope"},
                "argument": {"name": "a", "value": ""}})
            assert bad_ref["error"]["code"] == -32602


@parametrize_versions
async def test_progress_and_log_notifications_on_sse(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(conformance_app, version) as c:
            progress = await c.request("tools/call", {
                "name": "test_tool_with_progress", "_meta": {"progressToken": "tok-1"}})
            assert text_of(progress["result"]) == "Tool with progress executed successfully"
            notes = [m["params"] for m in c.received if m.get("method") ==
                     "notifications/progress"]
            assert [n["progress"] for n in notes] == [0, 50, 100]
            assert all(n["progressToken"] == "tok-1" and n["total"] == 100 for n in notes)
            assert notes[1]["message"] == "step 50"
            if version >= "2025-11-25":
                assert c.events[0].data == "", "no priming event"

            assert (await c.request("logging/setLevel", {"level": "debug"}))["result"] == {}
            before = len(c.received)
            logged = await c.request("tools/call", {"name": "test_tool_with_logging"})
            assert not logged["result"].get("isError", False)
            logs = [m["params"] for m in c.received[before:]
                    if m.get("method") == "notifications/message"]
            assert [entry["data"] for entry in logs] == [
                "Tool execution started", "Tool processing data", "Tool execution completed"]
            assert all(entry["level"] == "info" for entry in logs)

            # Above the level set, nothing is sent: the answer is plain JSON again.
            assert (await c.request("logging/setLevel", {"level": "error"}))["result"] == {}
            before = len(c.received)
            quiet = await c.request("tools/call", {"name": "test_tool_with_logging"})
            assert c.received[before:] == [quiet]
            bad_level = await c.request("logging/setLevel", {"level": "verbose"})
            assert bad_level["error"]["code"] == -32602


@parametrize_versions
async def test_countdown_interleaves_progress_and_logs(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(quickstart_app, version) as c:
            before = len(c.received)
            answer = await c.request("tools/call", {
                "name": "countdown", "arguments": {"n": 3}, "_meta": {"progressToken": 7}})
            assert text_of(answer["result"]) == "liftoff"
            sent = c.received[before:]
            assert sent[-1] is answer
            methods = [m.get("method") for m in sent[:-1]]
            assert methods == ["notifications/progress", "notifications/message"] * 3
            assert [m["params"]["progress"] for m in sent[:-1:2]] == [1, 2, 3]
            assert all(m["params"]["progressToken"] == 7 for m in sent[:-1:2])


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
async def test_elicitation_request(version: str) -> None:
    seen: list[dict[str, Any]] = []

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"action": "accept", "content": {"name": "Ada"}}

    with trio.fail_after(TIMEOUT_S):
        async with connect(quickstart_app, version, {"elicitation": {}}) as c:
            result = await c.request("tools/call", {"name": "ask_name"}, on_request=answer)
            assert text_of(result["result"]) == "Hello, Ada!"
            (request,) = seen
            assert request["method"] == "elicitation/create"
            assert request["params"]["requestedSchema"]["required"] == ["name"]
            assert ("mode" in request["params"]) is (version >= "2025-11-25")


@parametrize_versions
async def test_sampling_request(version: str) -> None:
    seen: list[dict[str, Any]] = []

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"role": "assistant", "model": "m",
                "content": {"type": "text", "text": "forty-two"}}

    with trio.fail_after(TIMEOUT_S):
        async with connect(conformance_app, version, {"sampling": {}}) as c:
            result = await c.request("tools/call", {
                "name": "test_sampling", "arguments": {"prompt": "meaning?"}}, on_request=answer)
            assert text_of(result["result"]) == "LLM response: forty-two"
            (request,) = seen
            assert request["params"]["maxTokens"] == 100
            assert request["params"]["messages"][0]["content"]["text"] == "meaning?"


@parametrize_versions
async def test_server_request_without_capability_is_an_error(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(conformance_app, version) as c:
            answer = await c.request("tools/call", {
                "name": "test_sampling", "arguments": {"prompt": "x"}})
            assert "error" in answer
            assert "sampling" in answer["error"]["message"]


# An app using every optional descriptor field, to check what each version gets.
titled_app = scalemcp.App("titled", version="2.0.0", title="Titled Server")


@titled_app.tool(
    title="Adder",
    annotations=scalemcp.ToolAnnotations(title="Adder", read_only_hint=True),
    meta={"example.com/owner": "tests"},
)
async def add_titled(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@titled_app.resource("doc://readme", title="Read me", mime_type="text/plain")
def readme() -> str:
    return "hello"


@titled_app.resource("doc://pages/{name}", title="A page", mime_type="text/plain")
def page(name: str) -> str:
    return f"page {name}"


@titled_app.prompt(title="Greeting")
def greet(name: str) -> str:
    """Greet someone."""
    return f"Hello {name}"


@parametrize_versions
async def test_optional_descriptor_fields_follow_the_version(version: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with connect(titled_app, version) as c:
            info = c.received[0]["result"]["serverInfo"]
            (tool,) = (await c.request("tools/list"))["result"]["tools"]
            (resource,) = (await c.request("resources/list"))["result"]["resources"]
            (template,) = (await c.request("resources/templates/list"))["result"][
                "resourceTemplates"]
            (prompt,) = (await c.request("prompts/list"))["result"]["prompts"]
            called = (await c.request("tools/call", {
                "name": "add_titled", "arguments": {"a": 1, "b": 2}}))["result"]
            assert json.loads(text_of(called)) == 3
            assert tool["annotations"]["readOnlyHint"] is True
            has_titles = version >= "2025-06-18"
            assert ("title" in info) is has_titles
            assert ("title" in tool) is has_titles
            assert ("_meta" in tool) is has_titles
            assert ("title" in resource) is has_titles
            assert ("title" in template) is has_titles
            assert ("title" in prompt) is has_titles
            read = (await c.request("resources/read", {"uri": "doc://pages/a"}))["result"]
            assert read["contents"][0]["text"] == "page a"
            got = (await c.request("prompts/get", {
                "name": "greet", "arguments": {"name": "Bo"}}))["result"]
            assert got["messages"][0]["content"]["text"] == "Hello Bo"
