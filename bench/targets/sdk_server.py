"""The official Python SDK (package ``mcp``) serving the bench tools on uvicorn.

Usage: python bench/targets/sdk_server.py --mode sse|json|stateless|legacy-sse [--port 0]
       [--server uvicorn|hypercorn]

Prints ``PORT <n>`` on stdout once the listening socket is bound, so a parent
process knows where to connect without polling. Tools:

- ``echo(message: str) -> str``: the common benchmark tool.
- ``progress(steps: int = 5, delay_ms: int = 0)``: sends ``steps`` progress
  notifications (for ``call-progress`` and ``resume``).
- ``ask(message: str)``: elicits a ``{"answer": str}`` form from the client.
- ``touch()``: publishes a tools list-changed event (``listen``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult
from pydantic import BaseModel


class MemoryEventStore(EventStore):
    """Keeps every event, for the ``resume`` scenario (stateful SSE mode only)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._events: dict[str, tuple[str, Any]] = {}
        self._streams: dict[str, list[str]] = {}

    async def store_event(self, stream_id: str, message: Any) -> str:
        event_id = f"{stream_id}:{next(self._ids)}"
        self._events[event_id] = (stream_id, message)
        self._streams.setdefault(stream_id, []).append(event_id)
        return event_id

    async def replay_events_after(
        self, last_event_id: str, send_callback: EventCallback
    ) -> str | None:
        found = self._events.get(last_event_id)
        if found is None:
            return None
        stream_id = found[0]
        ids = self._streams[stream_id]
        for event_id in ids[ids.index(last_event_id) + 1 :]:
            message = self._events[event_id][1]
            if message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


class Answer(BaseModel):
    answer: str


MODERN = "2026-07-28"
ANSWER_SCHEMA: Any = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


def build_server() -> MCPServer:
    app: MCPServer = MCPServer("bench-sdk", log_level="WARNING")

    @app.tool()
    def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    @app.tool()
    async def progress(ctx: Context, steps: int = 5, delay_ms: int = 0) -> str:
        """Report `steps` progress notifications, sleeping `delay_ms` between them."""
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps)
            if delay_ms:
                await anyio.sleep(delay_ms / 1000)
        return f"done {steps}"

    @app.tool()
    async def ask(ctx: Context, message: str = "?") -> str | InputRequiredResult:
        """Elicit an answer from the client and return it (2026-07-28: by MRTR)."""
        if ctx.protocol_version == MODERN:
            answer = (ctx.input_responses or {}).get("answer")
            if answer is None:
                form = ElicitRequestFormParams(message=message, requested_schema=ANSWER_SCHEMA)
                return InputRequiredResult(input_requests={"answer": ElicitRequest(params=form)})
            content = getattr(answer, "content", None) or {}
            return str(content.get("answer", getattr(answer, "action", "?")))
        result = await ctx.elicit(message, Answer)
        if result.action == "accept" and result.data is not None:
            return result.data.answer
        return result.action

    @app.tool()
    async def touch(ctx: Context) -> str:
        """Publish a tools list-changed event to every listener."""
        await ctx.notify_tools_changed()
        return "ok"

    return app


def serve_hypercorn(asgi: Any, sock: socket.socket) -> None:
    """The same app on hypercorn's asyncio worker (HTTP/1.1 and h2c prior knowledge)."""
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.keep_alive_timeout = 60
    asyncio.run(serve(asgi, config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["sse", "json", "stateless", "legacy-sse"], default="sse")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--server", choices=["uvicorn", "hypercorn"], default="uvicorn", help="hypercorn adds h2c"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    app = build_server()
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if args.mode == "legacy-sse":
        asgi = app.sse_app(transport_security=security)
    else:
        asgi = app.streamable_http_app(
            json_response=args.mode == "json",
            stateless_http=args.mode == "stateless",
            event_store=MemoryEventStore() if args.mode == "sse" else None,
            transport_security=security,
            max_sessions=None,
        )
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket's proto is IPPROTO_TCP (proto 0 skips it, and Nagle plus the
    # client's delayed ACK then holds every answer on a reused connection ~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
    sys.stdout.flush()
    if args.server == "hypercorn":
        serve_hypercorn(asgi, sock)
        return
    config = uvicorn.Config(
        asgi, log_level="warning", access_log=False, lifespan="on", backlog=1024
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
