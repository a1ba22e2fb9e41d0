"""A slow consumer over HTTP/2 (prior knowledge): one stream stops reading, not the others.

The client opens the connection window wide but never the flood stream's own window, so
the server may send that stream 64 KiB and no more. The server must then buffer little
(Hypercorn's HTTP/2 buffer used to grow without bound here), reset the stream after
``sse_send_timeout_s`` (the client resumes), and go on serving the connection's other
streams.
"""

from __future__ import annotations

import gc
import json

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import trio
import trio.testing
from hypercorn.protocol.h2 import StreamBuffer

import scalemcp
from scalemcp.testing import open_server

from .slow_app import app
from .test_slow_consumer import ACCEPT, EVENT_BYTES, VERSION, events, progress_of

COUNT = 100  # 4 MB of events


def buffered_by_hypercorn() -> int:
    return sum(len(b.buffer) for b in gc.get_objects() if isinstance(b, StreamBuffer))


class H2Client:
    def __init__(self, stream: trio.SocketStream, port: int, session_id: str) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.headers = [(":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
                        (":path", "/mcp"), ("accept", ACCEPT), ("mcp-session-id", session_id),
                        ("mcp-protocol-version", VERSION), ("content-type", "application/json")]
        self.data: dict[int, bytes] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}

    async def start(self) -> None:
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(2**30)  # the connection: wide open
        await self.stream.send_all(self.conn.data_to_send())

    async def post(self, stream_id: int, message: dict[str, object]) -> None:
        self.conn.send_headers(stream_id, [(":method", "POST"), *self.headers])
        self.conn.send_data(stream_id, json.dumps(message).encode(), end_stream=True)
        await self.stream.send_all(self.conn.data_to_send())

    async def pump_until(self, done: object) -> None:
        """Read frames until ``done()``; only streams other than 1 get their window back."""
        while not done():  # type: ignore[operator]
            for event in self.conn.receive_data(await self.stream.receive_some(65536)):
                if isinstance(event, h2.events.DataReceived):
                    self.data[event.stream_id] = self.data.get(event.stream_id, b"") + event.data
                    if event.stream_id != 1:
                        self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                            event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    self.reset[event.stream_id] = event.error_code
            await self.stream.send_all(self.conn.data_to_send())


async def test_an_http2_stream_that_is_not_read_is_bounded_and_reset() -> None:
    config = scalemcp.Config.from_options(sse_send_timeout_s=2)
    with trio.fail_after(30):
        async with open_server(app, config) as url, httpx.AsyncClient() as http:
            r = await http.post(url, headers={"accept": ACCEPT}, json={
                "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": VERSION, "capabilities": {},
                    "clientInfo": {"name": "h2", "version": "1"}}})
            session_id = r.headers["mcp-session-id"]
            port = int(url.split(":")[-1].split("/")[0])
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                client = H2Client(stream, port, session_id)
                await client.start()
                await client.post(1, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                      "params": {"name": "flood", "arguments": {
                                          "count": COUNT, "size": EVENT_BYTES},
                                          "_meta": {"progressToken": "p"}}})
                with trio.move_on_after(0.5):
                    await client.pump_until(lambda: False)
                # The server has done all it can: the tool produced 4 MB, and what waits
                # for the client in Hypercorn is a few frames, not all of it.
                await trio.testing.wait_all_tasks_blocked()
                assert 1 not in client.reset, "tripped before the measurement"
                assert buffered_by_hypercorn() < 256 * 1024, buffered_by_hypercorn()
                await client.pump_until(lambda: 1 in client.reset)
                assert client.reset[1] == h2.errors.ErrorCodes.CANCEL
                assert 1 not in client.ended
                assert buffered_by_hypercorn() == 0
                # The connection goes on.
                await client.post(3, {"jsonrpc": "2.0", "id": 2, "method": "ping"})
                await client.pump_until(lambda: 3 in client.ended)
                assert json.loads(client.data[3])["result"] == {}
            received = events(client.data[1])
            assert len(received) < COUNT
            last_id = received[-1][0]
            assert last_id is not None
            r = await http.get(url, headers={
                "accept": "text/event-stream", "mcp-session-id": session_id,
                "mcp-protocol-version": VERSION, "last-event-id": last_id})
            rest = events(r.content)
            assert progress_of(received) + progress_of(rest) == list(range(1, COUNT + 1))
            assert rest[-1][1]["result"]["content"][0]["text"] == f"sent {COUNT}"
