"""One client connection on scalemcp's loop: a protocol class over a socket.

What it does as Hypercorn's trio ``TCPServer`` does (TLS handshake, ALPN, h2/WebSocket
through ``ProtocolWrapper``, the graceful close), and where it differs, each measured
(docs/performance.md):

- **scalemcp's HTTP/1.1** (:class:`~.http11.HTTP11Protocol`, same events as Hypercorn's
  ``H11Protocol``) serves plain and TLS HTTP/1.1 unless ``http1_protocol`` is
  ``"hypercorn"``; ALPN ``h2`` goes to ``ProtocolWrapper`` at once, upgrades later.
- **No timer task.** Hypercorn starts a new task (``nursery.start``, a lock) for the
  keep-alive clock every time a request ends and cancels it when the next begins. Here a
  connection's deadline is a :class:`~.clock.Timer` on the worker's one clock: moving it
  writes a field, and only a deadline that passes starts a task (to close).
- **Direct writes.** A write first goes straight to the socket, without a lock or a task
  switch; only what the kernel does not take at once (the client reads slowly) goes through
  the locked, blocking ``send_all``, so backpressure works as before. Empty writes (the end
  of a body with a Content-Length) cost no system call.
- **Direct reads.** A read that finds data returns it without the two scheduler round
  trips of trio's ``receive_some``; only an empty socket waits (``wait_readable``). No
  ``fail_after`` per read (Hypercorn's ``read_timeout``, unset by scalemcp): the
  connection's deadlines live in the timer. TLS connections read through ``SSLStream``.

And the deadlines of every phase, on that one timer (:class:`Phase`): the request head
(total time from its first byte; a new connection's from the accept), the request body
(HTTP/1.1), idle keep-alive, and any write the client accepts nothing of (the send
deadline, on the blocking path only). Each closes the connection and is counted in
``scalemcp_connections_timed_out_total``. On the same timer, each HTTP/2 stream's body
deadline: a stream whose body stalls is reset, not its connection (:mod:`.h2_bodies`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import socket

import h11
import trio

from ..observability import metrics
from . import seam
from .admission import CANNOT_DELIMIT, COUNTED, Admission
from .clock import Clock
from .gate import REFUSAL, Gate, forwarded_client
from .h2_bodies import StreamBodies
from .http11 import HTTP11Protocol
from .tasks import TaskGroup

__all__ = ["Connection", "ConnectionTimeouts", "Phase", "Shared"]

log = logging.getLogger("scalemcp.serving")

MAX_RECV = 2**16
#: Writes done without blocking in a row before the writer lets the other tasks run: a
#: response streamed to a fast reader must not hold the worker.
FAST_WRITES_PER_YIELD = 16
#: The same for reads: a client that pipelines without a pause must not hold the worker.
READY_READS_PER_YIELD = 16


class Phase(enum.IntEnum):
    """Where a connection is, for its timer."""

    IDLE = 0  # between requests: keep_alive
    HEAD = 1  # a request head is arriving: head, from its first byte
    BODY = 2  # a request body is arriving (HTTP/1.1): body, from the end of the head
    BUSY = 3  # a request is being answered: no deadline but the send deadline's


class ConnectionTimeouts:
    """The deadlines of a connection's phases, in seconds (``math.inf``: none)."""

    __slots__ = ("body", "head", "keep_alive", "send")

    def __init__(self, *, keep_alive: float, head: float = math.inf, body: float = math.inf,
                 send: float = math.inf) -> None:
        self.keep_alive = keep_alive
        self.head = head
        self.body = body
        #: A write the client accepts nothing of for this long closes the connection.
        self.send = send


class Shared:
    """What every connection of a worker shares."""

    __slots__ = ("admission", "app", "clock", "config", "connections", "context", "gate",
                 "http1", "state", "timeouts")

    def __init__(self, app: seam.AppWrapper, config: seam.Config,
                 context: seam.WorkerContext, state: seam.LifespanState,
                 timeouts: ConnectionTimeouts, gate: Gate,
                 admission: Admission | None = None, clock: Clock | None = None, *,
                 http1: str = "scalemcp") -> None:
        self.app = app
        #: The worker's clock (its task runs in the worker); every connection's timer is on it.
        self.clock = clock if clock is not None else Clock()
        #: The connections being served (an ordered set), for the stop to close idle ones.
        self.connections: dict[Connection, None] = {}
        self.config = config
        self.context = context
        self.state = state
        self.timeouts = timeouts
        self.gate = gate
        #: Load shedding before the app (None: off).
        self.admission = admission
        #: What speaks HTTP/1.1: "scalemcp" (:mod:`.http11`) or "hypercorn" (H11Protocol).
        self.http1 = http1


_TIMED_OUT = {phase: metrics.CONNECTIONS_TIMED_OUT.labels(phase.name.lower())
              for phase in (Phase.IDLE, Phase.HEAD, Phase.BODY)}
_SEND_TIMED_OUT = metrics.CONNECTIONS_TIMED_OUT.labels("send")
_CLIENT_LIMIT = metrics.CONNECTIONS_REFUSED.labels("client_limit")


class Connection:
    """Serve one accepted connection until it closes (``await Connection(...).run()``)."""

    def __init__(self, shared: Shared,
                 stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
                 sock: socket.socket, *, via_proxy: bool = False) -> None:
        self.shared = shared
        self.config = shared.config
        self.context = shared.context
        self.timeouts = shared.timeouts
        self.stream = stream
        self.protocol: seam.ProtocolWrapper | HTTP11Protocol
        self._ssl = isinstance(stream, trio.SSLStream)
        #: The socket read and written directly (plain TCP: TLS goes through SSLStream).
        self._sock: socket.socket | None = None if self._ssl else sock
        self._peer = sock
        #: From a trusted proxy: count it against the client its first request names.
        self._via_proxy = via_proxy
        self._forwarded_client: str | None = None
        self._send_lock = trio.Lock()
        self._fast_writes = 0
        #: No request yet: the first head is due head_timeout after the accept.
        self._fresh = True
        self._phase = Phase.IDLE
        self._deadline = math.inf
        self._timer = shared.clock.timer(self._on_deadline)
        self._task_group: TaskGroup | None = None
        self._stopped = False
        #: HTTP/2: the stream bodies still arriving (created with the first stream).
        self._bodies: StreamBodies | None = None
        #: Requests of this connection counted in flight by the admission, until their
        #: answer begins (one at most: the next is screened once the last is answered).
        self._counted = 0
        #: Load shedding is on and this connection's HTTP/2 streams are not yet screened:
        #: looked at on each write, as an HTTP/2 protocol writes its SETTINGS before it
        #: handles any frame (ALPN h2, h2c prior knowledge or upgrade alike).
        self._screen_h2 = shared.admission is not None

    async def run(self) -> None:
        # The first request's head is due head_timeout after the accept, handshake included;
        # until its first byte the connection counts as idle (a stop closes it at once).
        self._move(trio.current_time() + self.timeouts.head)
        alpn_protocol = "http/1.1"
        if isinstance(self.stream, trio.SSLStream):
            try:
                with trio.fail_after(min(self.config.ssl_handshake_timeout,
                                         self.timeouts.head)):
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
                state = seam.ConnectionState(self.shared.state.copy())
                if alpn_protocol == "h2" or self.shared.http1 != "scalemcp":
                    self.protocol = seam.ProtocolWrapper(
                        self.shared.app, self.config, self.context, task_group, state,
                        self._ssl, client, server, self.protocol_send, alpn_protocol)
                else:
                    self.protocol = HTTP11Protocol(
                        self.shared.app, self.config, self.context, task_group, state,
                        self._ssl, client, server, self.protocol_send)
                await self.protocol.initiate()
                self._start_timer(task_group)
                try:
                    await self._read_data()
                finally:
                    self._stop_watch()
        except OSError:
            pass
        finally:
            if self._forwarded_client is not None:
                self.shared.gate.remove_client(self._forwarded_client)
            admission = self.shared.admission
            while self._counted and admission is not None:
                self._counted -= 1
                admission.done()
            try:
                await self._close()
            finally:
                # The protocol calls back into this connection (protocol_send): a cycle,
                # which would wait for a full run of the cyclic collector (rare with
                # gc_threshold raised) and hold a closed connection's memory until then.
                # Broken here, it is freed as the task ends.
                with contextlib.suppress(AttributeError):  # (none: it failed first)
                    del self.protocol

    async def protocol_send(self, event: seam.Event) -> None:
        if isinstance(event, seam.RawData):
            if self._counted and event.data and not event.data.startswith(b"HTTP/1.1 1"):
                # The answer begins (not a 100 Continue): the request counted in flight is
                # answered, or turns into a stream, which costs nothing while idle.
                self._counted -= 1
                if self.shared.admission is not None:
                    self.shared.admission.done()
            if self._screen_h2:
                self._screen_streams()
            await self._write(event.data)
        elif isinstance(event, seam.Closed):
            await self._close()
            await self.protocol.handle(seam.Closed())
        elif isinstance(event, seam.Updated):
            self._set_idle(event.idle)

    def _screen_streams(self) -> None:
        """Have the admission screen the new streams of an HTTP/2 protocol (once)."""
        protocol = self.protocol
        if isinstance(protocol, HTTP11Protocol) and protocol.fallback is None:
            return  # plain HTTP/1.1, screened on read (it may still upgrade to h2c)
        inner = _hypercorns(protocol)
        if isinstance(inner, seam.H2Protocol) and self.shared.admission is not None:
            self.shared.admission.screen_streams(inner)
            self._screen_h2 = False

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
            _SEND_TIMED_OUT.inc()
            log.debug("a client accepted nothing for %g s: closing its connection",
                      self.timeouts.send)
            await self._close()
            await self.protocol.handle(seam.Closed())

    async def _read_data(self) -> None:
        if self._sock is None or self.config.read_timeout is not None:
            await self._read_stream()
            return
        handle = self.protocol.handle
        sock = self._sock
        admission = self.shared.admission
        ready_reads = 0
        drained = False
        while True:
            if drained:
                # The last read took less than it asked for: the socket is most likely
                # empty, so wait first (a recv failing with EAGAIN is a system call and an
                # exception per request for nothing).
                drained = False
                ready_reads = 0
                if sock.fileno() < 0:
                    break  # closed meanwhile (the answer said close, or the timer did)
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:
                    break
            try:
                data = sock.recv(MAX_RECV)
            except BlockingIOError:
                drained = True
                continue
            except OSError:  # reset by the peer, or closed here
                break
            if self._via_proxy and not await self._admit_forwarded(data):
                return
            if admission is not None and self._between_requests():
                screened = await self._screen(admission, data)
                if screened is False:
                    break
                if screened is True:
                    continue
                data = screened
            await handle(seam.RawData(data))
            if not data:
                break
            self._after_read()
            if len(data) < MAX_RECV:
                drained = True
                continue
            ready_reads += 1
            if ready_reads >= READY_READS_PER_YIELD:  # a client that never pauses
                ready_reads = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
        await handle(seam.Closed())

    async def _screen(self, admission: Admission, data: bytes) -> bytes | bool:
        """``data``, read between requests (HTTP/1.1), through the admission: the bytes to
        hand to the protocol (``data`` itself unless a request was refused; ``b""`` only
        when ``data`` is the end of file, which must reach the protocol as such); True if
        nothing is left of it (a request refused whole: read on); False if the connection
        closes now (a request refused whose end is not known)."""
        taken = admission.screen(data)
        if taken is None:
            return data
        if taken == COUNTED:
            self._counted += 1
            return data
        # Past capacity: refused without h11 or the app (taken > 0: data was not b"").
        if not await self._refuse(admission, taken):
            return False
        return data[taken:] or True

    async def _refuse(self, admission: Admission, taken: int) -> bool:
        """Answer a refused request; False if the connection closes now."""
        if taken == CANNOT_DELIMIT:
            await self._write(admission.close)
            return False
        await self._write(admission.keep_alive)
        self._fresh = False
        if self._phase == Phase.IDLE:  # (else the last request is ending)
            # Later, so the timer need not move (it costs): when it fires, it sees this
            # deadline is still ahead and waits again.
            self._deadline = trio.current_time() + self.timeouts.keep_alive
        return True

    def _between_requests(self) -> bool:
        """HTTP/1.1, between requests (none yet, or the last one and its answer complete,
        even if its task has not ended yet), nothing of the next one buffered: bytes read
        now begin a new request, and an answer written now follows the last one's."""
        if isinstance(self.protocol, HTTP11Protocol) and self.protocol.fallback is None:
            return self.protocol.between_requests
        protocol = _hypercorns(self.protocol)
        if not isinstance(protocol, seam.H11Protocol):
            return False
        connection = protocol.connection
        state = connection.their_state
        return ((state is h11.IDLE or (state is h11.DONE and connection.our_state is h11.DONE))
                and not connection.trailing_data[0])

    async def _read_stream(self) -> None:
        """Through the trio stream (TLS), with Hypercorn's ``read_timeout`` if set."""
        receive = self.stream.receive_some
        handle = self.protocol.handle
        admission = self.shared.admission
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
            if self._via_proxy and not await self._admit_forwarded(data):
                return
            data = bytes(data)
            if admission is not None and self._between_requests():
                screened = await self._screen(admission, data)
                if screened is False:
                    break
                if screened is True:
                    continue
                data = screened
            await handle(seam.RawData(data))
            if not data:
                break
            self._after_read()
        await handle(seam.Closed())

    async def _admit_forwarded(self, data: bytes | bytearray) -> bool:
        """A trusted proxy's first bytes: count the client they name, or refuse it."""
        self._via_proxy = False
        gate = self.shared.gate
        client = forwarded_client(bytes(data[:MAX_RECV]), gate.trusted_proxies)
        if client is None:
            return True
        if not gate.add_client(client):
            _CLIENT_LIMIT.inc()
            if self._sock is not None:
                with contextlib.suppress(OSError):  # no room, or gone: the close says enough
                    self._sock.send(REFUSAL)
            await self._close()
            return False
        self._forwarded_client = client
        return True

    # The timer: one task per connection, its deadline moved as the phases change.

    def _after_read(self) -> None:
        """Move to the phase the bytes just handled put the connection in (HTTP/1.1)."""
        phase = self._phase
        if phase == Phase.HEAD:
            return  # its deadline runs from its first byte: more bytes do not move it
        receiving_body = _receiving_body(self.protocol)
        if receiving_body is None:
            protocol = _hypercorns(self.protocol)
            if isinstance(protocol, seam.H2Protocol):  # each stream has a body deadline
                self._note_streams(protocol)
            return
        if phase == Phase.IDLE:  # part of a head came
            if self._fresh:
                self._phase = Phase.HEAD  # still due head_timeout after the accept
            else:
                self._enter(Phase.HEAD, self.timeouts.head)
        elif receiving_body:
            if phase == Phase.BUSY:
                self._enter(Phase.BODY, self.timeouts.body)
        elif phase == Phase.BODY:
            self._enter(Phase.BUSY, math.inf)

    def _set_idle(self, idle: bool) -> None:
        if not idle:
            # A request began (its head is in): the body, if any, is seen after the read.
            self._fresh = False
            self._enter(Phase.BUSY, math.inf)
        elif self.context.terminated.is_set():
            self._phase = Phase.IDLE
            self._move(-math.inf)  # the worker stops: an idle connection closes now
        else:
            self._enter(Phase.IDLE, self.timeouts.keep_alive)

    def _enter(self, phase: Phase, timeout: float) -> None:
        self._phase = phase
        self._move(trio.current_time() + timeout)

    def _move(self, deadline: float) -> None:
        self._deadline = deadline
        if self._task_group is not None:
            self._timer.move(self._wake_at())

    def _wake_at(self) -> float:
        bodies = self._bodies
        return self._deadline if bodies is None else min(self._deadline, bodies.next_deadline)

    def _note_streams(self, protocol: seam.H2Protocol) -> None:
        bodies = self._bodies
        if bodies is None:
            bodies = self._bodies = StreamBodies(self.timeouts.body)
        if bodies.note(protocol, trio.current_time()) and self._task_group is not None:
            self._timer.move(self._wake_at())

    def _start_timer(self, task_group: TaskGroup) -> None:
        """Put the deadline on the worker's clock, now that a task can close the
        connection; a worker already stopping closes an idle one at once."""
        self._task_group = task_group
        if self._phase == Phase.IDLE and self.context.terminated.is_set():
            self._deadline = -math.inf
        self._timer.move(self._wake_at())
        self.shared.connections[self] = None

    def stop_if_idle(self) -> None:
        """The worker stops: an idle connection closes now, a busy one when it goes idle
        (:meth:`_set_idle`)."""
        if self._phase == Phase.IDLE and not self._stopped:
            self._move(-math.inf)

    def _on_deadline(self) -> None:
        """The clock's callback: the connection's deadline, or an HTTP/2 stream body's,
        passed. It must not block: what needs a task gets one."""
        if self._stopped or self._task_group is None:
            return
        now = trio.current_time()
        bodies = self._bodies
        if bodies is not None and now >= bodies.next_deadline:
            self._task_group.spawn(self._expire_bodies)
            return
        if self._phase == Phase.BUSY or now < self._deadline:
            self._timer.move(self._wake_at())  # (moved meanwhile)
            return
        if self._deadline > -math.inf:  # (-inf: the worker stops)
            _TIMED_OUT[Phase.HEAD if self._fresh else self._phase].inc()
        self._timer.cancel()  # closing: once
        self._task_group.spawn(self._expire)

    async def _expire_bodies(self) -> None:
        bodies, protocol = self._bodies, _hypercorns(self.protocol)
        if bodies is not None and isinstance(protocol, seam.H2Protocol):
            await bodies.expire(protocol, trio.current_time())
        if not self._stopped:
            self._timer.move(self._wake_at())

    async def _expire(self) -> None:
        with trio.CancelScope(shield=True):
            await self.protocol.handle(seam.Closed())
            await self.stream.aclose()

    def _stop_watch(self) -> None:
        self._stopped = True
        self._timer.cancel()
        self.shared.connections.pop(self, None)

    async def _close(self) -> None:
        try:
            # Gone already, or TLS (no half-close): nothing to say.
            with contextlib.suppress(trio.BrokenResourceError, AttributeError,
                                     trio.BusyResourceError, trio.ClosedResourceError,
                                     OSError):
                await self.stream.send_eof()
        finally:
            await self.stream.aclose()  # even when cancelled: the socket closes now


def _hypercorns(protocol: seam.ProtocolWrapper | HTTP11Protocol) -> object:
    """The Hypercorn protocol class serving the connection (None: scalemcp's HTTP/1.1)."""
    if isinstance(protocol, HTTP11Protocol):
        if protocol.fallback is None:
            return None
        protocol = protocol.fallback
    return protocol.protocol


def _receiving_body(protocol: seam.ProtocolWrapper | HTTP11Protocol) -> bool | None:
    """Whether an HTTP/1.1 request body is arriving; None: not HTTP/1.1 (h2, WebSocket
    still answer False: Hypercorn's stand-in has no request state)."""
    if isinstance(protocol, HTTP11Protocol):
        if protocol.fallback is None:
            return protocol.receiving_body
        protocol = protocol.fallback
    inner = protocol.protocol
    if not isinstance(inner, seam.H11Protocol):
        return None
    return inner.connection.their_state is h11.SEND_BODY
