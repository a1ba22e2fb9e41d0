"""HTTP/2: a stream whose request body stalls is reset at the body deadline
(serving/h2_bodies.py); the other streams of its connection, and the connection, go on."""

from __future__ import annotations

from collections import defaultdict

import h2.config
import h2.connection
import h2.events
import trio

from scalemcp.config import ConnectionSettings
from scalemcp.observability.metrics import CONNECTIONS_TIMED_OUT
from scalemcp.serving.h2_bodies import StreamBodies

from .test_loop import hc_config, served

BODY_TIMEOUT_S = 1.0


class Client:
    """An h2c (prior knowledge) client: what each stream received, and when it ended."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.bodies: dict[int, bytes] = defaultdict(bytes)
        self.status: dict[int, bytes] = {}
        self.ended: dict[int, trio.Event] = defaultdict(trio.Event)
        self.reset: dict[int, tuple[int, float]] = {}  # stream: (error code, when)
        self._sending = trio.Lock()

    async def flush(self) -> None:
        async with self._sending:
            await self.stream.send_all(self.h2.data_to_send())

    async def post(self, stream_id: int, body: bytes, *, end: bool) -> None:
        self.h2.send_headers(stream_id, [(b":method", b"POST"), (b":path", b"/count"),
                                         (b":scheme", b"http"), (b":authority", b"127.0.0.1")])
        self.h2.send_data(stream_id, body, end_stream=end)
        await self.flush()

    async def read(self) -> None:
        while data := await self.stream.receive_some(65536):
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    self.status[event.stream_id] = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    self.bodies[event.stream_id] += event.data
                    self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended[event.stream_id].set()
                elif isinstance(event, h2.events.StreamReset):
                    self.reset[event.stream_id] = (event.error_code, trio.current_time())
                    self.ended[event.stream_id].set()
            await self.flush()


def stream_bodies_timed_out() -> float:
    return CONNECTIONS_TIMED_OUT.labels("stream_body")._value.get()


async def test_a_stalled_stream_body_is_reset_and_its_neighbours_are_served() -> None:
    settings = ConnectionSettings(body_timeout_s=BODY_TIMEOUT_S)
    before = stream_bodies_timed_out()
    with trio.fail_after(20):
        async with served(hc_config(), settings=settings) as port:
            client = Client(await trio.open_tcp_stream("127.0.0.1", port))
            client.h2.initiate_connection()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read)
                opened = trio.current_time()
                await client.post(1, b"abc", end=False)  # and nothing more: it stalls
                await client.post(3, b"12", end=False)  # a slow body, done in time
                await trio.sleep(BODY_TIMEOUT_S / 2)
                client.h2.send_data(3, b"345", end_stream=True)
                await client.flush()
                await client.ended[3].wait()
                await client.ended[1].wait()
                await client.post(5, b"after", end=True)  # the connection still serves
                await client.ended[5].wait()
                nursery.cancel_scope.cancel()
    code, when = client.reset[1]
    assert code == h2.errors.ErrorCodes.CANCEL
    assert when - opened >= BODY_TIMEOUT_S
    assert 3 not in client.reset
    assert (client.status[3], client.bodies[3].split()[0]) == (b"200", b"5")
    assert (client.status[5], client.bodies[5].split()[0]) == (b"200", b"5")
    assert stream_bodies_timed_out() == before + 1


class Holder:
    """What StreamBodies reads of a protocol: its h2 connection and its open streams."""

    def __init__(self) -> None:
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        self.connection.initiate_connection()
        self.streams: dict[int, object] = {}


def test_deadlines_of_streams_reset_by_their_client_do_not_pile_up() -> None:
    """Rapid reset: streams opened with a body to come, then reset, each in its own read;
    what waits for a deadline stays bounded, not one entry per stream for 60 s."""
    server, client = Holder(), h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    server.connection.receive_data(client.data_to_send())
    bodies = StreamBodies(timeout=60.0)
    for stream_id in range(1, 4001, 2):
        client.send_headers(stream_id, [(b":method", b"POST"), (b":path", b"/"),
                                        (b":scheme", b"http"), (b":authority", b"x")])
        server.connection.receive_data(client.data_to_send())
        server.streams[stream_id] = object()  # as Hypercorn opens one per request
        bodies.note(server, 0.0)  # type: ignore[arg-type]
        client.reset_stream(stream_id)
        server.connection.receive_data(client.data_to_send())
        del server.streams[stream_id]
    assert len(bodies._due) <= 257
