"""The floor: a bare ASGI app on a Trio serving loop answering fixed JSON-RPC.

Usage: python bench/targets/floor_server.py [--port 0] [--sse] [--certfile C --keyfile K]
       [--server scalemcp|hypercorn|hypercorn-asyncio|uvicorn]

No MCP logic at all: it reads the body, pulls out ``id`` and ``method`` with
msgspec, and answers ``initialize`` (with an ``Mcp-Session-Id``),
``tools/list``, ``server/discover`` and ``tools/call`` (as ``echo``) with
canned results; notifications and responses get 202. With ``--sse`` requests
are answered as one-event SSE streams. It is what any Python MCP server on
this stack costs at the very least. Prints ``PORT <n>`` once listening.

``--server scalemcp`` (the default) serves it on scalemcp's own loop (scalemcp.serving:
scalemcp's connection layer and HTTP/1.1 protocol), what ``scalemcp serve`` runs;
``--server hypercorn`` on Hypercorn's stock trio worker (the ``floor-stock`` series).

``--server uvicorn`` serves the same app on uvicorn (asyncio, h11 as uvicorn
picks it when httptools is missing): the floor of the stack the official
Python SDK and FastMCP run on. ``--server hypercorn-asyncio``: hypercorn's
asyncio worker, to tell hypercorn's cost from Trio's.
"""

from __future__ import annotations

import argparse
import socket
import sys
import uuid
from functools import partial
from typing import Any

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve


class Head(msgspec.Struct):
    id: int | str | None = None
    method: str | None = None


_decode = msgspec.json.Decoder(Head).decode
_INIT = (
    b'{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":false}},'
    b'"serverInfo":{"name":"floor","version":"1"}}'
)
_CALL = b'{"content":[{"type":"text","text":"hello"}],"isError":false,"resultType":"complete"}'
_LIST = (
    b'{"tools":[{"name":"echo","inputSchema":{"type":"object","properties":'
    b'{"message":{"type":"string"}},"required":["message"]}}],"ttlMs":0,"cacheScope":"public"}'
)
_DISCOVER = (
    b'{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},'
    b'"ttlMs":0,"cacheScope":"public","resultType":"complete"}'
)
RESULTS = {"initialize": _INIT, "tools/list": _LIST, "server/discover": _DISCOVER}


def make_app(sse: bool) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST":
            await _respond(send, 200 if scope["method"] == "DELETE" else 405, [], b"")
            return
        head = _decode(body)
        if head.id is None or head.method is None:
            await _respond(send, 202, [], b"")
            return
        result = RESULTS.get(head.method, _CALL)
        payload = b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (msgspec.json.encode(head.id), result)
        headers = []
        if head.method == "initialize":
            headers.append((b"mcp-session-id", uuid.uuid4().hex.encode()))
        if sse:
            headers.append((b"content-type", b"text/event-stream"))
            payload = b"event: message\ndata: " + payload + b"\n\n"
        else:
            headers.append((b"content-type", b"application/json"))
        await _respond(send, 200, headers, payload)

    return app


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sse", action="store_true")
    parser.add_argument("--certfile", help="serve https (HTTP/1.1 and h2 by ALPN)")
    parser.add_argument("--keyfile")
    parser.add_argument(
        "--server", choices=["scalemcp", "hypercorn", "hypercorn-asyncio", "uvicorn"],
        default="scalemcp"
    )
    return parser.parse_args()


def _listen(args: argparse.Namespace) -> socket.socket:
    """A bound, listening socket; prints ``PORT <n>``."""
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (see sdk_server.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
    sys.stdout.flush()
    return sock


def serve_uvicorn(args: argparse.Namespace) -> None:
    import uvicorn

    sock = _listen(args)
    config = uvicorn.Config(
        make_app(args.sse), log_level="warning", access_log=False, lifespan="on",
        ssl_certfile=args.certfile, ssl_keyfile=args.keyfile,
    )
    uvicorn.Server(config).run(sockets=[sock])


def config_from(args: argparse.Namespace) -> Config:
    config = Config()
    if args.certfile:
        config.certfile = args.certfile
        config.keyfile = args.keyfile
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 60
    return config


def serve_hypercorn_asyncio(args: argparse.Namespace) -> None:
    import asyncio

    from hypercorn.asyncio import serve as serve_asyncio

    sock = _listen(args)
    config = config_from(args)
    config.bind = [f"fd://{sock.fileno()}"]
    asyncio.run(serve_asyncio(make_app(args.sse), config))


async def main(args: argparse.Namespace) -> None:
    config = config_from(args)
    async with trio.open_nursery() as nursery:
        if args.server == "scalemcp":
            from scalemcp.config import ConnectionSettings
            from scalemcp.serving import serve as scalemcp_serve

            # Every load-generator client comes from one address: no per-address cap.
            settings = ConnectionSettings(max_connections_per_client=1_000_000)
            binds = await nursery.start(
                partial(scalemcp_serve, make_app(args.sse), config, settings=settings))
        else:
            binds = await nursery.start(serve, make_app(args.sse), config)
        port = binds[0].rsplit(":", 1)[1]
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.server == "uvicorn":
        serve_uvicorn(ARGS)
    elif ARGS.server == "hypercorn-asyncio":
        serve_hypercorn_asyncio(ARGS)
    else:
        trio.run(main, ARGS)
