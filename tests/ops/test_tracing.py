"""OpenTelemetry: one server span per MCP request, continuing the caller's trace context."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import trio

from scalemcp.config import Config
from tests.conftest import ROOT
from tests.harness.asgi import open_client
from tests.harness.client import HEADERS, initialize, modern_headers, modern_meta, tool_call
from tests.ops.app import app

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HTTP_SPAN = "00f067aa0ba902b7"
META_TRACE = "0af7651916cd43dd8448eb211c80319c"
META_SPAN = "b7ad6b7169203331"
TRACED = Config.from_options(otel_enabled=True)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test (the process-wide SDK provider, made if need be)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # stops recording; the processor stays, inert


def _named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def test_session_span_continues_the_http_traceparent(spans: InMemorySpanExporter) -> None:
    with trio.fail_after(15):
        async with open_client(app, TRACED, timeout=10) as (url, client):
            sid = (await client.post(url, json=initialize(), headers=HEADERS)
                   ).headers["mcp-session-id"]
            headers = {**HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25",
                       "traceparent": f"00-{TRACE}-{HTTP_SPAN}-01"}
            for rid, name in ((2, "whoami"), (3, "traced"), (4, "nope")):
                response = await client.post(url, json=tool_call(name, None, rid), headers=headers)
                assert response.status_code == 200, response.text
    from opentelemetry import trace

    span = _named(spans, "tools/call whoami")
    assert span.kind is trace.SpanKind.SERVER
    assert span.parent is not None
    assert span.parent.is_remote
    assert _hex(span.parent.span_id, 16) == HTTP_SPAN
    assert _hex(span.context.trace_id, 32) == TRACE
    attributes: dict[str, Any] = dict(span.attributes or {})
    assert attributes == {
        "mcp.method.name": "tools/call",
        "mcp.protocol.version": "2025-11-25",
        "mcp.session.id": hashlib.sha256(sid.encode()).hexdigest()[:16],
        "jsonrpc.request.id": "2",
        "gen_ai.tool.name": "whoami",
        "gen_ai.operation.name": "execute_tool",
        "network.transport": "tcp",
        "network.protocol.name": "http",
    }
    assert span.status.status_code is trace.StatusCode.UNSET
    # The handler runs inside the span: the app's own span nests under it.
    outer = _named(spans, "tools/call traced")
    inner = _named(spans, "inside the tool")
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id
    # A JSON-RPC error marks the span.
    failed = _named(spans, "tools/call nope")
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "-32602"


async def test_meta_traceparent_is_the_parent_and_http_a_link(
    spans: InMemorySpanExporter,
) -> None:
    meta = {**modern_meta(), "traceparent": f"00-{META_TRACE}-{META_SPAN}-01",
            "tracestate": "vendor=1"}
    body = {"jsonrpc": "2.0", "id": "r-1", "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}, "_meta": meta}}
    headers = {**modern_headers("tools/call", "whoami"),
               "traceparent": f"00-{TRACE}-{HTTP_SPAN}-01"}
    garbled = {"jsonrpc": "2.0", "id": "r-2", "method": "tools/call", "params": {
        "name": "traced", "arguments": {}, "_meta": {**meta, "traceparent": "00-nonsense"}}}
    with trio.fail_after(15):
        async with open_client(app, TRACED, timeout=10) as (url, client):
            response = await client.post(url, json=body, headers=headers)
            assert response.status_code == 200, response.text
            response = await client.post(url, json=garbled,
                                         headers={**headers, "mcp-name": "traced"})
            assert response.status_code == 200, response.text
    fallback = _named(spans, "tools/call traced")  # a bad _meta context: the HTTP one
    assert fallback.parent is not None
    assert _hex(fallback.parent.span_id, 16) == HTTP_SPAN
    assert list(fallback.links) == []
    span = _named(spans, "tools/call whoami")
    assert span.parent is not None
    assert _hex(span.parent.span_id, 16) == META_SPAN
    assert _hex(span.context.trace_id, 32) == META_TRACE
    assert span.context.trace_state.get("vendor") == "1"
    assert [_hex(link.context.span_id, 16) for link in span.links] == [HTTP_SPAN]
    attributes = dict(span.attributes or {})
    assert attributes["jsonrpc.request.id"] == "r-1"
    assert attributes["mcp.protocol.version"] == "2026-07-28"
    assert "mcp.session.id" not in attributes


async def test_no_span_without_tracing(spans: InMemorySpanExporter) -> None:
    config = TRACED.replace(otel_enabled=False)
    with trio.fail_after(15):
        async with open_client(app, config, timeout=10) as (url, client):
            sid = (await client.post(url, json=initialize(), headers=HEADERS)
                   ).headers["mcp-session-id"]
            headers = {**HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
            await client.post(url, json=tool_call("whoami", None, 2), headers=headers)
    assert [s.name for s in spans.get_finished_spans()] == []


def test_tracing_off_imports_no_opentelemetry() -> None:
    script = """
import sys, httpx, trio
from examples.quickstart import app
from scalemcp.testing import open_server

async def main():
    async with open_server(app) as url, httpx.AsyncClient() as client:
        headers = {"accept": "application/json, text/event-stream",
                   "content-type": "application/json", "mcp-session-id": "x"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}
        sid = (await client.post(url, json=init, headers=headers)).headers["mcp-session-id"]
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}
        r = await client.post(url, json=call, headers={**headers, "mcp-session-id": sid})
        assert r.status_code == 200, r.text

trio.run(main)
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
