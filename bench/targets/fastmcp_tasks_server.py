"""FastMCP + fastmcp-tasks (PyPI) serving bench/tasks_app.py's no-op task tool on Redis.

Usage: python bench/targets/fastmcp_tasks_server.py --redis-url URL [--concurrency 16]

The same tool as ``bench/tasks_app.py``: ``noop() -> "ok"``, a task (``task=True``, the
SEP-2663 ``io.modelcontextprotocol/tasks`` extension) when the client declares the
extension. The ``TasksExtension`` runs Docket on ``--redis-url`` with its worker embedded
in this process (``--concurrency`` tasks at a time, scalemcp's ``task_concurrency``
default is 16); every other Docket setting stays at its default. Stateless Streamable
HTTP, JSON answers, on uvicorn (one process). Prints ``PORT <n>`` once bound.

Run from ``.cache/bench-venvs/fastmcp-tasks`` (``bench/tasks_vs_fastmcp.py`` creates it),
never the project venv.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import uvicorn
from fastmcp import FastMCP
from fastmcp_tasks import TasksExtension


def build_server(redis_url: str, concurrency: int) -> FastMCP:
    app = FastMCP("tasks-bench-fastmcp")
    app.add_extension(TasksExtension(url=redis_url, concurrency=concurrency))

    @app.tool(task=True)
    async def noop() -> str:
        """Does nothing."""
        return "ok"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-connections", type=int, default=0,
                        help="redis-py pool size for Docket (0: redis-py's default, 100)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    url = args.redis_url
    if args.max_connections:
        # Docket builds its pool with from_url, which reads this query parameter.
        url += ("&" if "?" in url else "?") + f"max_connections={args.max_connections}"
    asgi = build_server(url, args.concurrency).http_app(
        path="/mcp", stateless_http=True, json_response=True)
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (see sdk_server.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
    sys.stdout.flush()
    config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="on",
                            backlog=1024)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
