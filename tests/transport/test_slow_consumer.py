"""A client that stops reading an SSE stream, against a real ``scalemcp serve`` process.

The client is a raw socket with a tiny receive buffer. While a tool streams megabytes of
progress, the server's sends block; after ``sse_send_timeout_s`` the server closes the
connection without ending the stream (no final chunk), its memory stays bounded however
much the tool produces, and a resume with ``Last-Event-ID`` delivers every remaining event
exactly once.
"""

from __future__ import annotations

import json
import pathlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from tests.harness.serve import ServeProcess

VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
EVENT_BYTES = 40_000
TIMEOUT_S = 90


@pytest.fixture
def server() -> Iterator[ServeProcess]:
    proc = ServeProcess("tests.transport.slow_app:app", "--sse-send-timeout-s", "1",
                         "--stream-maxlen", "300")
    yield proc
    log = proc.stop()
    assert "Traceback" not in log, log


def worker_pid(supervisor: int) -> int:
    tasks = pathlib.Path(f"/proc/{supervisor}/task")
    children = [int(pid) for task in tasks.iterdir()
                for pid in (task / "children").read_text().split()]
    workers = [pid for pid in children
               if b"spawn_main" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 1, children
    return workers[0]


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the most memory the process ever had resident."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


class Client:
    def __init__(self, http: httpx.AsyncClient, server: ServeProcess) -> None:
        self.http = http
        self.server = server
        self.session_id = ""

    def headers(self) -> dict[str, str]:
        return {"accept": ACCEPT, "mcp-session-id": self.session_id,
                "mcp-protocol-version": VERSION}

    async def initialize(self) -> None:
        r = await self.http.post(self.server.url, headers={"accept": ACCEPT}, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": VERSION, "capabilities": {},
                "clientInfo": {"name": "slow", "version": "1"}}})
        self.session_id = r.headers["mcp-session-id"]
        r = await self.http.post(self.server.url, headers=self.headers(),
                                 json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert r.status_code == 202

    async def metric(self, name: str) -> float:
        text = (await self.http.get(self.server.url.removesuffix("/mcp") + "/metrics")).text
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    async def wait_metric(self, name: str, value: float) -> None:
        """Poll the server's /metrics (another process: no event to wait on)."""
        while True:
            if await self.metric(name) >= value:
                return
            await trio.sleep(0.1)

    @asynccontextmanager
    async def stalled_call(self, count: int) -> AsyncIterator[trio.SocketStream]:
        """POST a flood of ``count`` events and read nothing of the answer.

        The socket is closed on the way out whatever happens: a server stuck on it (were
        the send deadline broken) could not even shut down while it stays open.
        """
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "flood", "arguments": {"count": count, "size": EVENT_BYTES},
            "_meta": {"progressToken": "p"}}}).encode()
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", self.server.port))
        async with trio.SocketStream(sock) as stream:
            head = "".join(f"{k}: {v}\r\n" for k, v in {
                **self.headers(), "host": f"127.0.0.1:{self.server.port}",
                "content-type": "application/json", "content-length": str(len(body))}.items())
            await stream.send_all(f"POST /mcp HTTP/1.1\r\n{head}\r\n".encode() + body)
            yield stream


async def read_to_end(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some(1 << 20):
        data += chunk
    return bytes(data)


def dechunk(response: bytes) -> tuple[bytes, bool]:
    """The body of an HTTP/1.1 chunked response, and whether it was complete."""
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = bytearray()
    while b"\r\n" in rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(body), True
        body += rest[:size]
        rest = rest[size + 2:]
    return bytes(body), False


def events(body: bytes) -> list[tuple[str | None, Any]]:
    """The complete SSE events of ``body``: (id, decoded data or None)."""
    found = []
    for block in body.split(b"\n\n")[:-1]:  # what follows the last blank line is cut off
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        event_id = fields[b"id"].decode() if b"id" in fields else None
        data = fields.get(b"data")
        found.append((event_id, json.loads(data) if data else None))
    return found


def progress_of(found: list[tuple[str | None, Any]]) -> list[int]:
    values = []
    for _, message in found:
        if message and message.get("method") == "notifications/progress":
            params = message["params"]
            assert params["message"][:8] == f"{int(params['progress']) - 1:08d}"
            assert len(params["message"]) == 8 + EVENT_BYTES
            values.append(int(params["progress"]))
    return values


async def test_a_client_that_stops_reading_is_closed_and_resumes(server: ServeProcess) -> None:
    count = 250  # 10 MB: much more than the socket buffers hold
    slow = "scalemcp_sse_slow_consumers_total"
    with trio.fail_after(TIMEOUT_S):
        async with httpx.AsyncClient(timeout=30) as http:
            client = Client(http, server)
            await client.initialize()
            async with client.stalled_call(count) as stream:
                await client.wait_metric(slow, 1)  # the server gave up on the connection
                first, complete = dechunk(await read_to_end(stream))
            assert not complete, "the stream must be cut, not ended"
            received = events(first)
            assert received[0] == (received[0][0], None)  # the priming event
            assert len(received) < count, "the client read nothing: most events are unsent"
            assert not any(m and "result" in m for _, m in received)
            last_id = received[-1][0]
            assert last_id is not None
            async with http.stream("GET", server.url, headers={
                **client.headers(), "accept": "text/event-stream", "last-event-id": last_id,
            }) as resumed:
                assert resumed.status_code == 200
                rest = events(b"".join([part async for part in resumed.aiter_bytes()]))
            answers = [m for _, m in rest if m and "result" in m]
            assert answers == [{"jsonrpc": "2.0", "id": 1, "result": {
                "content": [{"type": "text", "text": f"sent {count}"}]}}]
            progress = progress_of(received) + progress_of(rest)
            assert progress == list(range(1, count + 1))  # every event, once, in order


async def test_memory_stays_bounded_while_a_client_does_not_read(server: ServeProcess) -> None:
    count = 2000  # 80 MB of events, of which the backend keeps the last 300 (12 MB)
    produced = count * EVENT_BYTES
    with trio.fail_after(TIMEOUT_S):
        async with httpx.AsyncClient(timeout=30) as http:
            client = Client(http, server)
            await client.initialize()
            worker = worker_pid(server.proc.pid)
            before = peak_rss_bytes(worker)
            async with client.stalled_call(count) as stream:
                done = 'scalemcp_requests_total{era="session",method="tools/call",outcome="ok"}'
                await client.wait_metric(done, 1)  # the tool has produced everything
                await client.wait_metric("scalemcp_sse_slow_consumers_total", 1)
                grown = peak_rss_bytes(worker) - before
                assert grown < produced / 2, f"the worker grew {grown / 1e6:.0f} MB"
                _, complete = dechunk(await read_to_end(stream))
            assert not complete
            assert await trio.Path(f"/proc/{worker}").exists()  # the worker lives on
            await client.initialize()  # and serves
