"""One trace across two nodes: a client's answer routed through Redis to the waiting tool.

Two ``scalemcp serve`` processes share a redis-server and export spans over OTLP/HTTP to a
collector in the test. A tool on node A elicits; the client POSTs its answer to node B,
which routes it through A's Redis inbox. The tool's span (continuing the request's
``_meta.traceparent``), B's ``route response`` span (under the tool's span, which A
recorded with the mailbox; the answer POST's HTTP ``traceparent`` is a link) and A's
``receive response`` span (under B's) are one trace. A cancellation sent to B takes the
broadcast stream; its ``params._meta.traceparent`` is the parent, the cancel POST's HTTP
``traceparent`` a link.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio

from tests.harness.client import HEADERS, initialize, tool_call
from tests.harness.redis import open_redis_server
from tests.harness.serve import open_serve
from tests.ops.otlp import Collector, Exported, open_collector

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
META_SPAN = "00f067aa0ba902b7"  # the tools/call's params._meta.traceparent
ANSWER_SPAN = "b7ad6b7169203331"  # the answer POST's HTTP traceparent
CANCEL_SPAN = "a3ce929d0e0e4736"  # the cancel POST's HTTP traceparent
CANCEL_META = "53995c3f42cd8ad8"  # the cancellation's params._meta.traceparent
SERVER, PRODUCER, CONSUMER = 2, 4, 5


async def _messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an SSE response."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            text = "\n".join(data)
            data = []
            if text:
                yield json.loads(text)


def _traced_call(name: str, rid: int, **arguments: Any) -> dict[str, Any]:
    body = tool_call(name, arguments, rid)
    body["params"]["_meta"] = {"traceparent": f"00-{TRACE}-{META_SPAN}-01"}
    return body


def _metric(text: str, series: str) -> float:
    found = re.findall(rf"^{re.escape(series)} (\S+)$", text, flags=re.MULTILINE)
    return float(found[0]) if found else 0.0


async def _elicit_across(a: str, b: str, headers: dict[str, str]) -> str:
    """ask_name on node A, answered on node B; the tool's final text."""
    async with httpx.AsyncClient(timeout=20) as client, client.stream(
        "POST", a, json=_traced_call("ask_name", 2), headers=headers
    ) as response:
        assert response.status_code == 200
        async for message in _messages(response):
            if message.get("method") == "elicitation/create":
                answer = {"jsonrpc": "2.0", "id": message["id"],
                          "result": {"action": "accept", "content": {"name": "Ada"}}}
                async with httpx.AsyncClient(timeout=10) as other:
                    posted = await other.post(b, json=answer, headers={
                        **headers, "traceparent": f"00-{TRACE}-{ANSWER_SPAN}-01"})
                assert posted.status_code == 202, posted.text
            elif message.get("id") == 2:
                return str(message["result"]["content"][0]["text"])
    raise AssertionError("the stream ended without the tool's result")


async def _cancel_across(a: str, b: str, headers: dict[str, str]) -> dict[str, Any]:
    """slow on node A, cancelled on node B; the request's last message."""
    async with httpx.AsyncClient(timeout=20) as client, client.stream(
        "POST", a, json=_traced_call("slow", 3, steps=200), headers=headers
    ) as response:
        sent = False
        async for message in _messages(response):
            if message.get("method") == "notifications/message" and not sent:
                sent = True
                cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"requestId": 3, "reason": "changed my mind", "_meta": {
                              "traceparent": f"00-{TRACE}-{CANCEL_META}-01"}}}
                async with httpx.AsyncClient(timeout=10) as other:
                    posted = await other.post(b, json=cancel, headers={
                        **headers, "traceparent": f"00-{TRACE}-{CANCEL_SPAN}-01"})
                assert posted.status_code == 202, posted.text
            elif message.get("id") == 3:
                return message
    raise AssertionError("the stream ended without an answer")


def _complete(spans: list[Exported]) -> bool:
    names = {s.span.name for s in spans}
    return {"tools/call ask_name", "route response", "receive response",
            "tools/call slow", "route cancel", "receive cancel"} <= names


async def test_one_trace_spans_two_nodes() -> None:
    key = secrets.token_hex(32)
    with trio.fail_after(90):
        async with open_redis_server(password="pw") as redis_server, open_collector() as collector:
            redis = f"redis://:pw@127.0.0.1:{redis_server.port}/0"

            def env(name: str) -> dict[str, str]:
                return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": name,
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url,
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                        "OTEL_BSP_SCHEDULE_DELAY": "100"}

            args = ("tests.ops.app:app", "--redis-url", redis, "--state-keys", key)
            async with open_serve(*args, env=env("node-a")) as node_a, \
                    open_serve(*args, env=env("node-b")) as node_b:
                a, b = node_a.base + "/mcp", node_b.base + "/mcp"
                init = initialize()
                init["params"]["capabilities"] = {"elicitation": {}}
                async with httpx.AsyncClient(timeout=10) as client:
                    sid = (await client.post(a, json=init, headers=HEADERS)
                           ).headers["mcp-session-id"]
                headers = {**HEADERS, "mcp-session-id": sid,
                           "mcp-protocol-version": "2025-11-25"}
                assert (await _elicit_across(a, b, headers)).startswith("Hello, Ada!")
                cancelled = await _cancel_across(a, b, headers)
                assert "cancelled" in cancelled["error"]["message"], cancelled
                spans = await collector.wait_for(_complete)
                async with httpx.AsyncClient(timeout=10) as client:
                    metrics_a = (await client.get(node_a.base + "/metrics")).text
                    metrics_b = (await client.get(node_b.base + "/metrics")).text
    _check_trace(collector, spans)
    for kind in ("response", "cancel"):
        assert _metric(metrics_b, f'scalemcp_routed_messages_sent_total{{kind="{kind}"}}') == 1
        assert _metric(metrics_a, f'scalemcp_routed_messages_received_total{{kind="{kind}"}}') == 1


def _check_trace(collector: Collector, spans: list[Exported]) -> None:
    assert {s.trace_id for s in spans} == {TRACE}, [(s.span.name, s.trace_id) for s in spans]
    assert {s.service for s in spans} == {"node-a", "node-b"}
    tool = collector.named("tools/call ask_name")
    route = collector.named("route response")
    receive = collector.named("receive response")
    assert (tool.service, tool.span.kind, tool.parent_id) == ("node-a", SERVER, META_SPAN)
    assert (route.service, route.span.kind) == ("node-b", PRODUCER)
    assert route.parent_id == tool.span_id  # the waiting request's context, from its record
    assert route.links == [ANSWER_SPAN]  # the answer POST's own HTTP context
    assert (receive.service, receive.span.kind) == ("node-a", CONSUMER)
    assert receive.parent_id == route.span_id
    assert receive.links == [tool.span_id]
    assert route.span_id in tool.links  # the waiting request links to what answered it
    slow = collector.named("tools/call slow")
    cancel = collector.named("route cancel")
    got = collector.named("receive cancel")
    assert (cancel.service, cancel.parent_id) == ("node-b", CANCEL_META)  # MCP context first
    assert cancel.links == [CANCEL_SPAN]  # then the HTTP one
    assert (got.service, got.parent_id) == ("node-a", cancel.span_id)
    assert slow.service == "node-a"
