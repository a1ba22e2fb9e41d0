"""A TCP proxy between workers and Redis that fails on demand: for Redis fault tests and
the soak.

    proxy = FaultProxy("127.0.0.1", redis.port)        # in Trio: nursery.start(proxy.serve)
    with ThreadedFaultProxy(redis.port) as proxy:       # or in a thread, for blocking tests
        proxy.set(Fault.BLACK_HOLE)                     # switched at runtime, any time
        proxy.set(Fault.LATENCY, latency_s=0.2)
        proxy.set(Fault.PASS)

Faults (each applies to the connections open now and to new ones):

* ``LATENCY``: every chunk is delivered ``latency_s`` late, in both directions (order kept).
* ``BLACK_HOLE``: connections are accepted and nothing sent either way arrives: what a
  dead host or a silent network partition looks like (nothing answers, nothing is
  refused). As over TCP, what was sent is held, not dropped: a connection still open
  when the fault ends delivers it then, in order (a TCP stream never loses bytes in its
  middle; dropping some would corrupt the Redis protocol, which no network does).
* ``RESET``: a connection that carries a command gets the first half of the chunk
  through to Redis, then both sides are reset (RST): a command cut mid-way, possibly
  applied by Redis with its reply lost.
* ``CUT_UP`` / ``CUT_DOWN``: one direction is held (to Redis / back from Redis); the
  other still flows, so commands may be applied with their replies lost (the client
  gives up on them and closes the connection).

The proxy counts connections, resets and bytes (forwarded, held by a fault);
``reset_all()`` resets what is open now.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

__all__ = ["Fault", "FaultProxy", "ThreadedFaultProxy"]

_CHUNK = 65536


class Fault(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    BLACK_HOLE = "black-hole"
    RESET = "reset"
    CUT_UP = "cut-up"
    CUT_DOWN = "cut-down"


@dataclass
class Counts:
    connections: int = 0
    resets: int = 0
    held_bytes: int = 0
    forwarded_bytes: int = 0


@dataclass(eq=False)
class _Pair:
    client: trio.SocketStream
    server: trio.SocketStream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


def _hard_close(stream: trio.SocketStream) -> None:
    """Close with SO_LINGER 0: the peer gets a RST, not a FIN."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


class FaultProxy:
    """Listens on ``127.0.0.1`` (a port of its own), forwards to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.fault = Fault.PASS
        self.latency_s = 0.0
        self.port = 0
        self.counts = Counts()
        self._pairs: set[_Pair] = set()
        self._switched = trio.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def set(self, fault: Fault, *, latency_s: float = 0.0) -> None:
        """Switch to ``fault`` (in the proxy's Trio run: ThreadedFaultProxy.set from
        elsewhere)."""
        self.latency_s = latency_s
        self.fault = fault
        switched, self._switched = self._switched, trio.Event()
        switched.set()  # held directions look again
        if fault is Fault.RESET:
            self.reset_all()

    def reset_all(self) -> None:
        """Reset every connection open now (both sides get a RST)."""
        for pair in list(self._pairs):
            self._reset(pair)

    def _reset(self, pair: _Pair) -> None:
        if pair in self._pairs:
            self._pairs.discard(pair)
            self.counts.resets += 1
            _hard_close(pair.client)
            _hard_close(pair.server)
            pair.scope.cancel()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.counts.connections += 1
        try:
            server = await trio.open_tcp_stream(*self.target)
        except OSError:
            _hard_close(client)
            return
        pair = _Pair(client, server)
        self._pairs.add(pair)
        try:
            with pair.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, pair, client, server, True)
                    nursery.start_soon(self._pump, pair, server, client, False)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # a side closed or was reset: this connection is over
        finally:
            self._pairs.discard(pair)
            for stream in (client, server):
                if stream.socket.fileno() != -1:
                    stream.socket.close()

    async def _pump(self, pair: _Pair, source: trio.SocketStream, sink: trio.SocketStream,
                    upstream: bool) -> None:
        """One direction. Delays go through a channel so that latency does not throttle."""
        send, receive = trio.open_memory_channel[tuple[float, bytes]](1000)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._deliver, receive, sink)
            async with send:
                while True:
                    data = await source.receive_some(_CHUNK)
                    if not data:
                        pair.scope.cancel()  # a side closed: close the other too
                        return
                    if self._blocks(upstream):
                        self.counts.held_bytes += len(data)
                        while self._blocks(upstream):  # held (reading stops: TCP backs up)
                            await self._switched.wait()
                    fault = self.fault
                    if fault is Fault.RESET and upstream:
                        half = data[: max(1, len(data) // 2)]
                        await sink.send_all(half)
                        self._reset(pair)
                        return
                    due = trio.current_time() + (self.latency_s if fault is Fault.LATENCY
                                                 else 0.0)
                    await send.send((due, data))

    def _blocks(self, upstream: bool) -> bool:
        fault = self.fault
        return fault is Fault.BLACK_HOLE or (fault is Fault.CUT_UP and upstream) or (
            fault is Fault.CUT_DOWN and not upstream)

    async def _deliver(self, receive: trio.MemoryReceiveChannel[tuple[float, bytes]],
                       sink: trio.SocketStream) -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                await sink.send_all(data)
                self.counts.forwarded_bytes += len(data)


class ThreadedFaultProxy:
    """A :class:`FaultProxy` run by Trio in a thread of its own, for blocking tests."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.proxy = FaultProxy(host, port)
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.proxy.serve)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def counts(self) -> Counts:
        return self.proxy.counts

    def set(self, fault: Fault, *, latency_s: float = 0.0) -> None:
        """Switch the fault; returns once the proxy's thread has (callable from anywhere,
        a Trio run in another thread included)."""
        self._in_proxy(lambda: self.proxy.set(fault, latency_s=latency_s))

    def _in_proxy(self, fn: Callable[[], None]) -> None:
        assert self._token is not None
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._token.run_sync_soon(run)
        if not done.wait(10):
            raise RuntimeError("the fault proxy did not answer")

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")

    def stop(self) -> None:
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            stop = self._stop
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(stop.set)
        self._thread.join(10)

    @contextmanager
    def running(self) -> Iterator[ThreadedFaultProxy]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def __enter__(self) -> ThreadedFaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
