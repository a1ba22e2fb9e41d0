"""FastMCP (PyPI ``fastmcp``) serving the bench tools over Streamable HTTP on uvicorn.

Usage: python bench/targets/fastmcp_server.py --mode stateful|stateless [--json] [--port 0]

``stateful``: sessions (``Mcp-Session-Id``); ``stateless``: ``stateless_http=True``
(a fresh transport per request). Answers are SSE streams, FastMCP's default,
unless ``--json``. Host/Origin protection stays at FastMCP's default (it allows
loopback hosts). Tools: ``echo(message) -> str`` and ``progress(steps, delay_ms)``.
Prints ``PORT <n>`` once the listening socket is bound.

FastMCP 4 needs ``mcp`` 2.x; it installs next to it in one venv. When it is
missing, ``python -m bench.suite`` creates ``.cache/bench-venvs/fastmcp`` and runs
this file with that venv's Python.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import uvicorn
from fastmcp import Context, FastMCP


def build_server() -> FastMCP:
    app = FastMCP("bench-fastmcp")

    @app.tool
    def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    @app.tool
    async def progress(ctx: Context, steps: int = 5, delay_ms: int = 0) -> str:
        """Report `steps` progress notifications, sleeping `delay_ms` between them."""
        import anyio

        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps)
            if delay_ms:
                await anyio.sleep(delay_ms / 1000)
        return f"done {steps}"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["stateful", "stateless"], default="stateful")
    parser.add_argument("--json", action="store_true", help="JSON answers instead of SSE")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asgi = build_server().http_app(
        path="/mcp", stateless_http=args.mode == "stateless", json_response=args.json
    )
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (see sdk_server.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
    sys.stdout.flush()
    config = uvicorn.Config(
        asgi, log_level="warning", access_log=False, lifespan="on", backlog=1024
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
