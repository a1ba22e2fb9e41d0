"""Open one simulated client of the configured era: its HTTP client and its MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from .client import McpClient, OnMessage, OnRequest
from .config import BenchConfig
from .http import open_http_client, parse_url
from .legacy import open_legacy_client
from .messages import Message

__all__ = ["McpLike", "open_mcp_client"]


class McpLike(Protocol):
    """What scenarios need from a client; `McpClient` and the legacy client have it."""

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        on_message: OnMessage | None = None,
        on_request: OnRequest | None = None,
    ) -> Message: ...


@asynccontextmanager
async def open_mcp_client(config: BenchConfig) -> AsyncIterator[McpLike]:
    """A client of ``config.era`` for ``config.url``, not yet opened (no session yet)."""
    origin, path = parse_url(config.url)
    headers = [(k.strip().lower().encode(), v.strip().encode()) for k, v in config.headers]
    async with open_http_client(
        origin, impl=config.client, http2=config.http2, insecure=config.insecure
    ) as http:
        if config.era == "legacy-sse":
            async with open_legacy_client(
                http, path, headers=headers, timeout_s=config.timeout_s
            ) as legacy:
                yield legacy
        else:
            yield McpClient(
                http,
                path,
                era=config.era,
                headers=headers,
                version=config.protocol_version,
                capabilities=_capabilities(config),
            )


def _capabilities(config: BenchConfig) -> dict[str, Any] | None:
    """What the client declares: elicitation to be asked, the tasks extension (2026-07-28)
    to be given tasks."""
    if config.scenario == "elicit":
        return {"elicitation": {}}
    if config.scenario == "task" and config.era == "modern":
        return {"extensions": {"io.modelcontextprotocol/tasks": {}}}
    return None
