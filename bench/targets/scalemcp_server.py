"""scalemcp itself serving the bench tools (memory backend, one worker).

Usage: python bench/targets/scalemcp_server.py [--port 0] [--stateless-only]
       [--certfile C --keyfile K] [--serving-loop scalemcp|hypercorn]

Same tools as sdk_server.py: ``echo``, ``progress``, ``ask`` (elicitation in
every era), ``touch`` (tools list-changed fan-out); and ``work`` (CPU for a given
time: bench/overload.py's heavier request). Prints ``PORT <n>`` once
listening; serves HTTP/1.1 and h2c (prior knowledge). ``--stateless-only``:
the 2026-07-28 era only, no session state.

The module also works with ``scalemcp serve scalemcp_server:app`` (run from this
directory), which is how bench/suite starts the Redis and multi-worker variants.
``SCALEMCP_SRC`` (a directory holding the ``scalemcp`` package) puts that copy of
scalemcp first on the path: bench/suite uses it to serve an export of a commit (one
older than scalemcp's own serving loop is served on Hypercorn's, as it was then).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import trio
from hypercorn.trio import serve

sys.path.insert(0, os.environ.get("SCALEMCP_SRC") or str(Path(__file__).resolve().parents[2]))

import scalemcp
from scalemcp.server import asgi_app, hypercorn_config

app = scalemcp.App("bench-scalemcp", version="1")
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


@app.tool
async def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


@app.tool
async def work(us: int = 1000) -> str:
    """Compute for `us` microseconds (holding the worker, as CPU-bound work does)."""
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass
    return "worked"


@app.tool
async def progress(ctx: scalemcp.Context, steps: int = 5, delay_ms: int = 0) -> str:
    """Report `steps` progress notifications, sleeping `delay_ms` between them."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps)
        if delay_ms:
            await trio.sleep(delay_ms / 1000)
    return f"done {steps}"


@app.tool
async def ask(ctx: scalemcp.Context, message: str = "?") -> str:
    """Elicit an answer from the client and return it."""
    answer = await ctx.elicit(message, ANSWER_SCHEMA)
    return str((answer.content or {}).get("answer", answer.action))


@app.tool
async def touch(ctx: scalemcp.Context) -> str:
    """Publish a tools list-changed notification to every listener."""
    await ctx.notify_tools_changed()
    return "ok"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--stateless-only", action="store_true")
    parser.add_argument("--serving-loop", choices=["scalemcp", "hypercorn"], default="scalemcp")
    args = parser.parse_args()
    options = {"log_level": "warning", "host": args.host, "port": args.port,
               "certfile": args.certfile, "keyfile": args.keyfile,
               "stateless_only": args.stateless_only}
    try:
        from scalemcp.serving import serve as scalemcp_serve
    except ImportError:  # a scalemcp from before its own loop
        loop = "hypercorn"
    else:
        loop = args.serving_loop
        # Every load-generator client comes from one address: no per-address cap.
        options.update(serving_loop=loop, max_connections_per_client=1_000_000)
    config = scalemcp.Config.from_options(**options)
    hc = hypercorn_config(config)
    async with trio.open_nursery() as nursery:
        if loop == "scalemcp":
            binds = await nursery.start(partial(scalemcp_serve, asgi_app(app, config), hc,
                                                settings=config.connections))
        else:
            binds = await nursery.start(serve, asgi_app(app, config), hc)
        sys.stdout.write(f"PORT {binds[0].rsplit(':', 1)[1]}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main)
