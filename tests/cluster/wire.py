"""Client-side helpers for the cluster tests: raw session-era HTTP, SSE parsing, and the
official Python SDK client (session era) with a record of who served each exchange."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

VERSION = "2025-11-25"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": VERSION, "capabilities": {"elicitation": {}},
    "clientInfo": {"name": "cluster-test", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def call(request_id: int, tool: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def start_session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    """initialize + notifications/initialized; the headers every later request needs."""
    init = await client.post(url, json=INIT, headers=ACCEPT)
    assert init.status_code == 200, init.text
    headers = {**ACCEPT, "mcp-session-id": init.headers["mcp-session-id"],
               "mcp-protocol-version": VERSION}
    assert (await client.post(url, json=INITIALIZED, headers=headers)).status_code == 202
    return headers


async def modern_call(client: httpx.AsyncClient, url: str, request_id: int, tool: str,
                      arguments: dict[str, Any]) -> httpx.Response:
    """A stateless 2026-07-28 tools/call: ``_meta`` in the body, Mcp-Method/Mcp-Name headers."""
    body = call(request_id, tool, arguments)
    body["params"]["_meta"] = MODERN_META
    headers = {**ACCEPT, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
               "mcp-name": tool}
    return await client.post(url, json=body, headers=headers)


@dataclass
class Event:
    id: str | None
    data: str

    @property
    def message(self) -> dict[str, Any] | None:
        return json.loads(self.data) if self.data else None


async def sse_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Every event of an SSE response (comments and keep-alives skipped)."""
    event_id: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or event_id is not None:
                yield Event(event_id, "\n".join(data))
            event_id, data = None, []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def progress_of(events: list[Event]) -> list[float]:
    return [m["params"]["progress"] for e in events if (m := e.message)
            and m.get("method") == "notifications/progress"]


# -- the official SDK -----------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    rpc: str  # the JSON-RPC method, "response" for a client's answer, "" for a GET/DELETE
    status: int
    served_by: str
    session_id: str | None
    last_event_id: str | None


@dataclass
class Recorder:
    """Every HTTP exchange the SDK makes, with the node haproxy sent it to."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def hook(self, response: httpx2.Response) -> None:
        req = response.request
        rpc = ""
        if req.method == "POST":
            body = json.loads(req.content)
            rpc = body.get("method", "response") if isinstance(body, dict) else "batch"
        self.exchanges.append(Exchange(
            method=req.method, rpc=rpc, status=response.status_code,
            served_by=response.headers.get("x-served-by", ""),
            session_id=req.headers.get("mcp-session-id"),
            last_event_id=req.headers.get("last-event-id"),
        ))

    def of(self, rpc: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.rpc == rpc]


@asynccontextmanager
async def sdk_session(url: str, recorder: Recorder, **kwargs: Any) -> AsyncIterator[Client]:
    """The official Python SDK client in the session era (initialize handshake)."""
    async with httpx2.AsyncClient(event_hooks={"response": [recorder.hook]},
                                  timeout=httpx2.Timeout(10, read=30)) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", read_timeout_seconds=20, **kwargs) as client:
            yield client


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``await check()`` (or ``check()``) until truthy, within ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while True:
            value = check()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await trio.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout} s")
