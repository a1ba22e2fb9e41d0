"""One client connection on scalemcp's loop: Hypercorn's protocol classes over a socket.

What it does as Hypercorn's trio ``TCPServer`` does (TLS handshake, ALPN, h11/h2/WebSocket
through ``ProtocolWrapper``, the graceful close), and where it differs, each measured
(docs/performance.md):

- **One timer per connection.** Hypercorn starts a new task (``nursery.start``, a lock) for
  the keep-alive clock every time a request ends and cancels it when the next begins. Here
  one long-lived task sleeps under a cancel scope whose deadline is moved instead.
- **Direct writes.** A write first goes straight to the socket, without a lock or a task
  switch; only what the kernel does not take at once (the client reads slowly) goes through
  the locked, blocking ``send_all``, so backpressure works as before. Empty writes (the end
  of a body with a Content-Length) cost no system call.
- **Direct reads.** A read that finds data returns it without the two scheduler round
  trips of trio's ``receive_some``; only an empty socket waits (``wait_readable``). No
  ``fail_after`` per read (Hypercorn's ``read_timeout``, unset by scalemcp): the
  connection's deadlines live in the timer. TLS connections read through ``SSLStream``.
- **A deadline on a blocked write.** A write that makes no progress for the send deadline
  closes the connection; Hypercorn waits for ever.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket

import trio

from . import seam
from .tasks import TaskGroup

__all__ = ["Connection", "ConnectionTimeouts"]

log = logging.getLogger("scalemcp.serving")

MAX_RECV = 2**16
#: Writes done without blocking in a row before the writer lets the other tasks run: a
#: response streamed to a fast reader must not hold the worker.
FAST_WRITES_PER_YIELD = 16
#: The same for reads: a client that pipelines without a pause must not hold the worker.
READY_READS_PER_YIELD = 16


class ConnectionTimeouts:
    """The deadlines of one connection's phases, in seconds (``math.inf``: none)."""

    __slots__ = ("keep_alive", "send")

    def __init__(self, *, keep_alive: float, send: float = math.inf) -> None:
        #: No request in progress: the connection closes this long after the last one.
        self.keep_alive = keep_alive
        #: A write the client does not accept any of for this long closes the connection.
        self.send = send


class Connection:
    """Serve one accepted connection until it closes (``await Connection(...).run()``)."""

    def __init__(
        self,
        app: seam.AppWrapper,
        config: seam.Config,
        context: seam.WorkerContext,
        state: seam.LifespanState,
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
        sock: socket.socket,
        timeouts: ConnectionTimeouts,
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.state = state
        self.stream = stream
        self.timeouts = timeouts
        self.protocol: seam.ProtocolWrapper
        self._ssl = isinstance(stream, trio.SSLStream)
        #: The socket written to directly (plain TCP only: TLS records go through SSLStream).
        self._sock: socket.socket | None = None if self._ssl else sock
        self._peer = sock
        self._send_lock = trio.Lock()
        self._fast_writes = 0
        self._idle = True
        self._deadline = math.inf
        self._timer: trio.CancelScope | None = None
        self._stopped = False

    async def run(self) -> None:
        alpn_protocol = "http/1.1"
        if isinstance(self.stream, trio.SSLStream):
            try:
                with trio.fail_after(self.config.ssl_handshake_timeout):
                    await self.stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError):
                await trio.aclose_forcefully(self.stream)
                return
            alpn_protocol = self.stream.selected_alpn_protocol() or "http/1.1"
        try:
            family = self._peer.family
            client = seam.parse_socket_addr(family, self._peer.getpeername())
            server = seam.parse_socket_addr(family, self._peer.getsockname())
            async with TaskGroup() as task_group:
                self.protocol = seam.ProtocolWrapper(
                    self.app, self.config, self.context, task_group,
                    seam.ConnectionState(self.state.copy()), self._ssl, client, server,
                    self.protocol_send, alpn_protocol)
                await self.protocol.initiate()
                task_group.spawn(self._watch)
                self._set_idle(True)
                try:
                    await self._read_data()
                finally:
                    self._stop_watch()
        except OSError:
            pass
        finally:
            await self._close()

    async def protocol_send(self, event: seam.Event) -> None:
        if isinstance(event, seam.RawData):
            await self._write(event.data)
        elif isinstance(event, seam.Closed):
            await self._close()
            await self.protocol.handle(seam.Closed())
        elif isinstance(event, seam.Updated):
            self._set_idle(event.idle)

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        sock = self._sock
        if sock is not None and not self._send_lock.locked():
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:  # reset by the peer, or closed here already
                await self.protocol.handle(seam.Closed())
                return
            if sent == len(data):
                self._fast_writes += 1
                if self._fast_writes >= FAST_WRITES_PER_YIELD:
                    self._fast_writes = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return
            data = data[sent:]
        self._fast_writes = 0
        async with self._send_lock:
            try:
                # Shielded (a cancelled sender must not leave half a frame) but bounded.
                with trio.CancelScope(shield=True) as scope:
                    scope.relative_deadline = self.timeouts.send
                    await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(seam.Closed())
                return
        if scope.cancelled_caught:
            log.debug("a client accepted nothing for %g s: closing its connection",
                      self.timeouts.send)
            await self._close()
            await self.protocol.handle(seam.Closed())

    async def _read_data(self) -> None:
        handle = self.protocol.handle
        if self._sock is None or self.config.read_timeout is not None:
            await self._read_stream()
            return
        sock = self._sock
        ready_reads = 0
        while True:
            try:
                data = sock.recv(MAX_RECV)
            except BlockingIOError:
                ready_reads = 0
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:
                    break
                continue
            except OSError:  # reset by the peer, or closed here
                break
            await handle(seam.RawData(data))
            if not data:
                break
            ready_reads += 1
            if ready_reads >= READY_READS_PER_YIELD:  # a client that never pauses
                ready_reads = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
        await handle(seam.Closed())

    async def _read_stream(self) -> None:
        """Hypercorn's way: through the trio stream (TLS), with ``read_timeout`` if set."""
        receive = self.stream.receive_some
        handle = self.protocol.handle
        read_timeout = self.config.read_timeout
        while True:
            try:
                if read_timeout is None:
                    data = await receive(MAX_RECV)
                else:
                    with trio.fail_after(read_timeout):
                        data = await receive(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            await handle(seam.RawData(bytes(data)))
            if not data:
                break
        await handle(seam.Closed())

    # The timer: one task per connection, its deadline moved as the phases change.

    def _set_idle(self, idle: bool) -> None:
        self._idle = idle
        if not idle:
            self._move(math.inf)
        elif self.context.terminated.is_set():
            self._move(-math.inf)  # the worker stops: an idle connection closes now
        else:
            self._move(trio.current_time() + self.timeouts.keep_alive)

    def _move(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is not None:
            self._timer.deadline = deadline

    async def _watch(self) -> None:
        terminated = self.context.terminated
        while not self._stopped:
            with trio.CancelScope(deadline=self._deadline) as self._timer:
                if terminated.is_set():
                    await trio.sleep_forever()
                else:
                    await terminated.wait()
            self._timer = None
            if self._stopped:
                return
            if self._idle and (terminated.is_set() or trio.current_time() >= self._deadline):
                with trio.CancelScope(shield=True):
                    await self.protocol.handle(seam.Closed())
                    await self.stream.aclose()
                return

    def _stop_watch(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()

    async def _close(self) -> None:
        try:
            # Gone already, or TLS (no half-close): nothing to say.
            with contextlib.suppress(trio.BrokenResourceError, AttributeError,
                                     trio.BusyResourceError, trio.ClosedResourceError):
                await self.stream.send_eof()
        finally:
            await self.stream.aclose()  # even when cancelled: the socket closes now
