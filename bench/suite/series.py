"""The series of the suite: a target server, an era and a scenario each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Server:
    """How to start one target server."""

    kind: str
    """python (a script in bench/targets), scalemcp (the same, from the scalemcp source
    chosen by --scalemcp-src), serve (``scalemcp serve``, with a private Redis),
    fastmcp (python, maybe from a separate venv), node."""
    args: tuple[str, ...] = ()
    workers: int = 1
    redis: bool = False
    all_cores: bool = False
    """Run the server on every core (shared with the load generator) instead of core 0."""


@dataclass(frozen=True)
class Series:
    """One line of the report: a server, an era and a scenario, at every client count."""

    name: str
    server: Server
    era: str
    answers: str
    description: str
    scenario: str = "call"
    steps: int = 5
    main: bool = True
    """In the README's Performance table."""
    default: bool = True
    """Run without --targets naming it."""
    path: str = "/mcp"


def _py(*args: str) -> Server:
    return Server("python", args)


SCALEMCP = Server("scalemcp", ("scalemcp_server.py",))
SERIES = [
    Series("floor", _py("floor_server.py", "--server", "scalemcp"), "session", "JSON",
           "bare ASGI app on scalemcp's serving loop (its HTTP/1.1 protocol) answering canned "
           "JSON-RPC (the baseline)"),
    Series("floor-stock", _py("floor_server.py", "--server", "hypercorn"), "session", "JSON",
           "the same app on Hypercorn's stock trio worker: what scalemcp's loop replaces"),
    Series("floor-uvicorn", _py("floor_server.py", "--server", "uvicorn"), "session", "JSON",
           "the floor's ASGI app on uvicorn (asyncio, h11): the floor under the SDK and FastMCP",
           main=False, default=False),
    Series("floor-hypercorn-asyncio", _py("floor_server.py", "--server", "hypercorn-asyncio"),
           "session", "JSON", "the floor's ASGI app on hypercorn's asyncio worker",
           main=False, default=False),
    Series("scalemcp", SCALEMCP, "session", "JSON",
           "scalemcp, memory backend, 1 worker (scalemcp's serving loop), session era, echo"),
    Series("scalemcp-sse", SCALEMCP, "session", "SSE",
           "the same, a tool that sends one progress notification then returns (SSE answer)",
           scenario="call-progress", steps=1),
    Series("scalemcp-stateless", Server("scalemcp", ("scalemcp_server.py", "--stateless-only")),
           "modern", "JSON", "scalemcp --stateless-only, 2026-07-28 era (no session state)"),
    Series("scalemcp-redis", Server("serve", workers=1, redis=True), "session", "JSON",
           "scalemcp serve --workers 1 --redis-url (private redis-server on the server core)"),
    Series("scalemcp-redis-2w", Server("serve", workers=2, redis=True, all_cores=True),
           "session", "JSON",
           "scalemcp serve --workers 2 --redis-url: both cores, shared with the load generator"),
    Series("sdk-sse", _py("sdk_server.py", "--mode", "sse"), "session", "SSE",
           "official Python SDK (mcp) on uvicorn, stateful, SSE answers, in-memory event store"),
    Series("sdk-json", _py("sdk_server.py", "--mode", "json"), "session", "JSON",
           "official Python SDK on uvicorn, stateful, json_response=True"),
    Series("sdk-stateless", _py("sdk_server.py", "--mode", "stateless"), "modern", "JSON",
           "official Python SDK on uvicorn, stateless_http=True, 2026-07-28 era"),
    Series("fastmcp", Server("fastmcp", ("fastmcp_server.py", "--mode", "stateful")),
           "session", "SSE", "FastMCP on uvicorn, stateful http (SSE answers, its default)"),
    Series("fastmcp-stateless", Server("fastmcp", ("fastmcp_server.py", "--mode", "stateless")),
           "modern", "JSON", "FastMCP on uvicorn, stateless_http=True, 2026-07-28 era"),
    Series("ts-sse", Server("node", ("ts_server.mjs", "--mode", "sse")), "session", "SSE",
           "official TypeScript SDK v1 on Node (node:http), stateful, SSE answers"),
    Series("ts-stateless", Server("node", ("ts_server.mjs", "--mode", "stateless")),
           "session", "SSE",
           "official TypeScript SDK v1 on Node, stateless (a server + transport per request)"),
    Series("sdk-sse-hypercorn", _py("sdk_server.py", "--mode", "sse", "--server", "hypercorn"),
           "session", "SSE", "official Python SDK, stateful SSE, on hypercorn's asyncio worker",
           main=False, default=False),
    Series("sdk-legacy-sse", _py("sdk_server.py", "--mode", "legacy-sse"), "legacy-sse", "SSE",
           "official Python SDK, the 2024-11-05 HTTP+SSE transport", main=False, default=False,
           path="/sse"),
    Series("scalemcp-legacy-sse", SCALEMCP, "legacy-sse", "SSE",
           "scalemcp, memory backend, the 2024-11-05 HTTP+SSE transport", main=False,
           default=False, path="/sse"),
]
BASELINE = "floor"
