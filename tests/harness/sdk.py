"""The official Python SDK client (session era) with a record of every HTTP exchange it
made, and which node served it (haproxy's ``X-Served-By``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


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
    """Every HTTP exchange the SDK makes, with the node that served it."""

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
