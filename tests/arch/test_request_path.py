"""Probes of the request path: what one ``tools/call`` costs in decodes, in every era.

The params of a request are decoded once (``scalemcp.protocol.classify.decode_params``),
its tool arguments once (the tool's own decoder), and no request digest is computed unless
a ``requestState`` is sealed or opened. Counted on a real server, in this process.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

import scalemcp
from scalemcp.app.tools import ToolSpec
from scalemcp.engine import modern as modern_engine
from scalemcp.engine import results as engine_results
from scalemcp.protocol import classify
from tests.harness import client
from tests.harness.asgi import open_client
from tests.harness.client import ELICITATION, MODERN_VERSION, modern_meta

MODERN = MODERN_VERSION
META = modern_meta(ELICITATION)
ACCEPT = {"accept": client.ACCEPT}


def probe_app() -> scalemcp.App:
    app = scalemcp.App("probe")

    @app.tool
    async def add(a: int, b: int) -> int:
        return a + b

    @app.tool
    async def confirm(ctx: scalemcp.Context) -> str:
        answer = await ctx.elicit("Sure?", {"type": "object", "properties": {
            "ok": {"type": "boolean"}}, "required": ["ok"]})
        return "yes" if answer.content and answer.content["ok"] else "no"

    return app


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Count params decodes by method, argument decodes, and request digests."""
    counts: Counter[str] = Counter()
    decode = classify.decode_params

    def decode_params(method: str, raw: Any) -> Any:
        counts[f"params {method}"] += 1
        return decode(method, raw)

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)
        return counted

    monkeypatch.setattr(classify, "decode_params", decode_params)
    monkeypatch.setattr(ToolSpec, "decode_arguments", wrap("arguments",
                                                            ToolSpec.decode_arguments))
    monkeypatch.setattr(modern_engine, "digest_params", wrap("digest",
                                                              modern_engine.digest_params))
    monkeypatch.setattr(engine_results, "digest_params", wrap("digest",
                                                               engine_results.digest_params))
    yield counts


def rpc(rid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


async def test_session_era_call_decodes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_client(probe_app()) as (url, http):
        init = await http.post(url, headers=ACCEPT, json=rpc(1, "initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"}}))
        headers = {**ACCEPT, "mcp-session-id": init.headers["mcp-session-id"],
                   "mcp-protocol-version": "2025-11-25"}
        with counting(monkeypatch) as counts:
            r = await http.post(url, headers=headers, json=rpc(2, "tools/call", {
                "name": "add", "arguments": {"a": 1, "b": 2}}))
            assert r.json()["result"]["structuredContent"] == {"result": 3}
        assert counts == Counter({"params tools/call": 1, "arguments": 1})


async def test_modern_call_decodes_once_and_digests_only_for_request_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": "tools/call"}
    async with open_client(probe_app()) as (url, http):
        with counting(monkeypatch) as counts:
            r = await http.post(url, headers={**headers, "mcp-name": "add"}, json=rpc(
                1, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": META}))
            assert r.json()["result"]["structuredContent"] == {"result": 3}
        assert counts == Counter({"params tools/call": 1, "arguments": 1})

        # A multi round-trip call: the first round seals a requestState (one digest), the
        # retry opens it (one digest); each round decodes its params once.
        with counting(monkeypatch) as counts:
            first = await http.post(url, headers={**headers, "mcp-name": "confirm"}, json=rpc(
                2, "tools/call", {"name": "confirm", "_meta": META}))
            body = first.json()["result"]
            assert body["resultType"] == "input_required"
            (key,) = body["inputRequests"]
            second = await http.post(url, headers={**headers, "mcp-name": "confirm"}, json=rpc(
                3, "tools/call", {"name": "confirm", "_meta": META,
                                  "requestState": body["requestState"],
                                  "inputResponses": {key: {"action": "accept",
                                                           "content": {"ok": True}}}}))
            assert second.json()["result"]["content"][0]["text"] == "yes"
        assert counts == Counter({"params tools/call": 2, "arguments": 2, "digest": 2})


async def test_legacy_call_decodes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_client(probe_app(), timeout=10) as (url, http):
        base = url.removesuffix("/mcp")
        async with http.stream("GET", base + "/sse", headers={"accept": "text/event-stream"}
                               ) as sse:
            lines = sse.aiter_lines()
            endpoint = ""
            async for line in lines:
                if line.startswith("data: "):
                    endpoint = line[6:]
                    break
            await http.post(base + endpoint, json=rpc(1, "initialize", {
                "protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "probe", "version": "1"}}))
            with counting(monkeypatch) as counts:
                with trio.fail_after(10):
                    posted = await http.post(base + endpoint, json=rpc(2, "tools/call", {
                        "name": "add", "arguments": {"a": 1, "b": 2}}))
                    assert posted.status_code == 202
                    async for line in lines:
                        if line.startswith("data: ") and '"id":2' in line:
                            assert json.loads(line[6:])["result"]["content"][0]["text"] == "3"
                            break
        assert counts == Counter({"params tools/call": 1, "arguments": 1})


async def test_get_stream_filters_changes_without_a_session_load_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session's GET stream keeps its subscriptions and reads them again only when a
    subscribe or unsubscribe says they changed: 20 updates cost no session load."""
    from scalemcp.state.memory import MemoryBackend

    app = scalemcp.App("changes")

    @app.tool
    async def touch(ctx: scalemcp.Context, uris: list[str]) -> str:
        for uri in uris:
            await ctx.notify_resource_updated(uri)
        return "ok"

    loads = Counter[str]()
    load = MemoryBackend.load_session

    async def counted(self: MemoryBackend, session_id: str) -> Any:
        loads["load"] += 1
        return await load(self, session_id)

    monkeypatch.setattr(MemoryBackend, "load_session", counted)
    async with open_client(app, timeout=10) as (url, http):
        init = await http.post(url, headers=ACCEPT, json=rpc(1, "initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"}}))
        headers = {**ACCEPT, "mcp-session-id": init.headers["mcp-session-id"],
                   "mcp-protocol-version": "2025-11-25"}
        await http.post(url, headers=headers, json=rpc(2, "resources/subscribe",
                                                       {"uri": "res://wanted"}))
        async with http.stream("GET", url, headers={**headers, "accept": "text/event-stream"}
                               ) as stream:
            lines = stream.aiter_lines()

            async def updates(count: int) -> list[str]:
                seen: list[str] = []
                with trio.fail_after(10):
                    async for line in lines:
                        if line.startswith("data: ") and "resources/updated" in line:
                            seen.append(json.loads(line[6:])["params"]["uri"])
                            if len(seen) == count:
                                return seen
                raise AssertionError("the stream ended")

            before = loads["load"]
            uris = ["res://other", "res://wanted"] * 10
            called = await http.post(url, headers=headers, json=rpc(3, "tools/call", {
                "name": "touch", "arguments": {"uris": uris}}))
            assert called.json()["result"]["content"][0]["text"] == "ok"
            assert await updates(10) == ["res://wanted"] * 10
            assert loads["load"] - before == 1  # the tools/call's own; none per change

            # A subscription made while the stream is open reaches its filter.
            await http.post(url, headers=headers, json=rpc(4, "resources/subscribe",
                                                           {"uri": "res://other"}))
            await http.post(url, headers=headers, json=rpc(5, "tools/call", {
                "name": "touch", "arguments": {"uris": ["res://other"]}}))
            assert await updates(1) == ["res://other"]
