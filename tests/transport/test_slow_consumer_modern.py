"""A stateless (2026-07-28) SSE answer whose client stops reading: closed, handler cancelled.

That era has no resumption; the stream is the request, so a client that accepts nothing
for ``sse_send_timeout_s`` has its connection closed and the handler cancelled, as if it
had disconnected (spec 5.2).
"""

from __future__ import annotations

import json
import socket

import trio

import scalemcp
from scalemcp.testing import open_server

from .test_slow_consumer import dechunk

MODERN = "2026-07-28"


async def test_a_stalled_stateless_stream_is_closed_and_its_handler_cancelled() -> None:
    app = scalemcp.App("endless", version="1.0.0")
    cancelled = trio.Event()
    sent: list[int] = []

    @app.tool
    async def endless(ctx: scalemcp.Context) -> str:
        """Report progress for ever, 40 kB at a time."""
        try:
            for i in range(1, 10**9):
                await ctx.report_progress(i, message="x" * 40_000)
                sent.append(i)
        except trio.Cancelled:
            cancelled.set()
            raise
        return "never"

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "endless", "_meta": {
            "progressToken": "p", "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    with trio.fail_after(30):
        async with open_server(app, scalemcp.Config.from_options(sse_send_timeout_s=1)) as url:
            port = int(url.split(":")[-1].split("/")[0])
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", port))
            async with trio.SocketStream(sock) as stream:
                await stream.send_all(
                    b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                    b"accept: application/json, text/event-stream\r\n"
                    b"mcp-protocol-version: " + MODERN.encode() + b"\r\n"
                    b"mcp-method: tools/call\r\nmcp-name: endless\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await cancelled.wait()  # the handler blocked on its sends, then was cancelled
                data = bytearray()
                while chunk := await stream.receive_some(1 << 20):
                    data += chunk
            received, complete = dechunk(bytes(data))
            assert not complete  # cut, not ended
            assert b"notifications/progress" in received
            assert b'"result"' not in received
