"""The lane: one connection to a standalone Redis that every request's script shares.

Theory of operation
-------------------
A caller packs its command, appends the bytes to the outgoing buffer and its task to
the FIFO of waiters (one synchronous step, so both stay in the same order), and sleeps
until the reader wakes it with its reply: no lock, no event, no task per call. The
writer task sends whatever has accumulated in one write, so concurrent requests are
pipelined; the reader task parses every reply a read brought and wakes their waiters in
order. A waiter cancelled meanwhile is skipped (its reply is read and dropped).

When the connection fails (reset, EOF, a garbled reply) or no reply byte comes for
``reply_timeout_s`` while calls wait, the lane is closed: every waiting call fails
(``coredis.exceptions.ConnectionError`` or ``TimeoutError``, which the backend maps to
503 like any Redis fault) and the next call opens a new lane (:class:`.redis_router.Link`).

The handshake is coredis' own (``HELLO 3`` with AUTH, ``SELECT``, ``CLIENT SETNAME``),
with the parameters of the coredis client's pool, so the lane reaches the same server
as the same user, TLS included; replies are RESP3 as coredis reads them (:mod:`.resp`).
Measured in process (``bench/asgi_cost.py``), see ``docs/performance.md``.

Client-side caching: a lane opened with ``tracking`` also sends ``CLIENT TRACKING ON OPTIN
NOLOOP``, so the keys read by a :meth:`Lane.call_tracked` command are tracked, and Redis
pushes an invalidation (RESP3 ``>``, on this connection, after any reply it owes first) when
another connection changes or deletes one, or it expires (changes made on the lane itself
are not pushed: its owner knows them); :attr:`Lane.on_push` hears it. Pushes are counted,
so a caller can tell whether one came between its reply and now (:meth:`Lane.call_tracked`).
"""

from __future__ import annotations

import copy
import math
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import coredis.exceptions
import outcome
import trio
from coredis.parser import Parser

from .resp import INCOMPLETE, Arg, ErrorReply, ProtocolError, Push, ReplyReader, pack_command

__all__ = ["Lane", "LaneAddress", "open_lane"]

_RECEIVE_BYTES = 256 * 1024
_READY_READS_PER_YIELD = 8
_ERRORS = Parser()  # maps an error reply to coredis' exception for it, as coredis does
_CACHING = pack_command([b"CLIENT", b"CACHING", b"YES"])


class LaneAddress:
    """Where and as whom a lane connects (from a coredis pool: :meth:`from_pool`)."""

    __slots__ = ("client_name", "connect_timeout_s", "db", "host", "password", "path",
                 "port", "reply_timeout_s", "ssl_context", "username")

    def __init__(self, *, host: str | None = None, port: int = 6379, path: str | None = None,
                 db: int = 0, username: str | None = None, password: str | None = None,
                 client_name: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 2.0, reply_timeout_s: float = 10.0) -> None:
        self.host, self.port, self.path, self.db = host, port, path, db
        self.username, self.password, self.client_name = username, password, client_name
        self.ssl_context = ssl_context
        self.connect_timeout_s, self.reply_timeout_s = connect_timeout_s, reply_timeout_s

    @classmethod
    def from_pool(cls, pool: object) -> LaneAddress | None:
        """The address of a plain coredis pool's server (None: not a plain pool, e.g.
        Sentinel's, whose master moves: that one keeps coredis' own connections)."""
        if type(pool) is not coredis.ConnectionPool or pool.location is None:
            return None
        kwargs = pool.connection_kwargs
        location: Any = pool.location
        common: dict[str, Any] = {
            "db": kwargs.get("db") or 0, "username": kwargs.get("username"),
            "password": kwargs.get("password"), "client_name": kwargs.get("client_name"),
            "ssl_context": kwargs.get("ssl_context"),
            "connect_timeout_s": kwargs.get("connect_timeout") or 2.0,
            "reply_timeout_s": kwargs.get("stream_timeout") or 10.0,
        }
        if hasattr(location, "path"):
            return cls(path=location.path, **common)
        return cls(host=location.host, port=location.port, **common)

    def waiting(self, block_s: float) -> LaneAddress:
        """This address for a lane that sends blocking reads of up to ``block_s``: a
        reply is due that much later."""
        other = copy.copy(self)
        other.reply_timeout_s = self.reply_timeout_s + block_s
        return other


class _Waiter:
    __slots__ = ("stamp", "task")

    def __init__(self, task: trio.lowlevel.Task | None) -> None:
        self.task = task
        self.stamp = 0  # the lane's push count when the reply was read


class Lane:
    """A connection many tasks call at once (:meth:`call`); see the module docstring."""

    def __init__(self, stream: trio.abc.Stream, sock: socket.socket | None,
                 reply_timeout_s: float) -> None:
        self._stream = stream
        #: The socket read and written directly (plain TCP or Unix: TLS goes through
        #: the stream), which spares trio's stream two scheduler passes per read and write.
        self._sock = sock
        self._reply_timeout_s = reply_timeout_s
        self._out: list[bytes] = []
        self._waiters: deque[_Waiter] = deque()
        self._reader = ReplyReader()
        self._wake: trio.Event | None = None
        #: Why the lane is closed (None while it is usable).
        self.closed: str | None = None
        self._ready_reads = 0
        self._watch = trio.CancelScope()  # its deadline: a reply is due (inf: none is)
        self._nursery: trio.Nursery | None = None
        #: Whether Redis tracks the keys :meth:`call_tracked` reads (see the module).
        self.tracking = False
        #: Called with every push Redis sends (from the reader task: it must not block).
        self.on_push: Callable[[Push], None] | None = None
        #: How many pushes came so far.
        self.pushes = 0

    @property
    def usable(self) -> bool:
        return self.closed is None

    async def call(self, *args: Arg) -> Any:
        """Send a command and return its reply; an error reply raises coredis' exception
        for it, a lost connection ``coredis.exceptions.ConnectionError``."""
        reply, _ = await self._call(pack_command(args), False)
        return reply

    async def call_tracked(self, *args: Arg) -> tuple[Any, int]:
        """As :meth:`call`, with the keys the command reads tracked (if :attr:`tracking`):
        the reply, and :attr:`pushes` as it was when the reply was read. A reply cached
        while ``pushes`` still has that value has seen every invalidation sent after it."""
        if not self.tracking:
            return await self._call(pack_command(args), False)
        return await self._call(pack_command(args), True)

    async def _call(self, data: bytes, tracked: bool) -> tuple[Any, int]:
        if self.closed is not None:
            raise coredis.exceptions.ConnectionError(self.closed)
        if tracked:  # (CLIENT CACHING YES applies to the next command: sent together)
            self._out.append(_CACHING)
        self._out.append(data)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()
        waiter = _Waiter(trio.lowlevel.current_task())
        if not self._waiters:
            self._watch.deadline = trio.current_time() + self._reply_timeout_s
        if tracked:
            self._waiters.append(_Waiter(None))  # (its +OK is read and dropped)
        self._waiters.append(waiter)

        def abort(_: Any) -> trio.lowlevel.Abort:
            waiter.task = None  # the reply, when it comes, is dropped
            return trio.lowlevel.Abort.SUCCEEDED

        reply = await trio.lowlevel.wait_task_rescheduled(abort)
        if isinstance(reply, ErrorReply):
            raise _ERRORS.parse_error(reply.message)
        return reply, waiter.stamp

    # -- the connection's two tasks ----------------------------------------------------

    async def _serve(self, *, task_status: trio.TaskStatus[Lane]) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write)
                nursery.start_soon(self._read)
                task_status.started(self)
        finally:
            self._close("the lane to Redis was closed")
            await trio.aclose_forcefully(self._stream)

    async def _write(self) -> None:
        try:
            while True:
                if not self._out:
                    self._wake = wake = trio.Event()
                    await wake.wait()
                    continue
                data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
                self._out.clear()
                if self._sock is None:
                    await self._stream.send_all(data)
                else:
                    await _send_all(self._sock, data)
        except Exception as exc:  # (a reset: the reader sees it too, whichever is first)
            self._close(f"lost the connection to Redis: {exc or type(exc).__name__}")

    async def _read(self) -> None:
        receive = self._stream.receive_some if self._sock is None else self._receive
        try:
            with self._watch:
                self._watch.deadline = math.inf if not self._waiters else self._watch.deadline
                while True:
                    self._take(await receive(_RECEIVE_BYTES))
            if self._watch.cancelled_caught and self.closed is None:
                self._close(f"no answer from Redis within {self._reply_timeout_s:g} s",
                            timeout=True)
        except Exception as exc:  # (a reset, EOF, or not RESP: the lane cannot go on)
            self._close(f"lost the connection to Redis: {exc or type(exc).__name__}")

    def _take(self, data: bytes | bytearray) -> None:
        """Parse what came and hand it out: replies to their waiters, pushes to
        :attr:`on_push`. Raises what ends the lane (EOF, not RESP, an unasked reply)."""
        if not data:
            raise trio.BrokenResourceError("Redis closed the connection")
        reader, waiters = self._reader, self._waiters
        reader.feed(data)
        while (reply := reader.next_reply()) is not INCOMPLETE:
            if type(reply) is Push:
                self.pushes += 1
                if self.on_push is not None:
                    self.on_push(reply)
                continue
            if not waiters:
                raise trio.BrokenResourceError("a reply no command asked for")
            waiter = waiters.popleft()
            if waiter.task is not None:
                waiter.stamp = self.pushes
                trio.lowlevel.reschedule(waiter.task, outcome.Value(reply))
        self._watch.deadline = (
            trio.current_time() + self._reply_timeout_s if waiters else math.inf)

    def take_ready(self) -> None:
        """Read now, without waiting, what Redis has already sent (a plain socket only):
        a caller about to trust a cached record sees every invalidation that reached this
        host before it. Safe beside the reader task, which holds no unparsed bytes
        whenever it waits. A failure closes the lane."""
        sock = self._sock
        if sock is None or self.closed is not None:
            return
        try:
            while True:
                try:
                    data = sock.recv(_RECEIVE_BYTES)
                except BlockingIOError:
                    return
                self._take(data)
                if len(data) < _RECEIVE_BYTES:
                    return
        except Exception as exc:
            self._close(f"lost the connection to Redis: {exc or type(exc).__name__}")

    async def _receive(self, size: int) -> bytes:
        """What the socket holds (waiting for it if nothing); yields to other tasks
        now and then when bytes keep coming, so a busy lane starves nobody (before a
        read, so the reader never waits holding bytes :meth:`take_ready` could overtake)."""
        sock = self._sock
        assert sock is not None
        while True:
            if self._ready_reads >= _READY_READS_PER_YIELD:
                self._ready_reads = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
            try:
                data = sock.recv(size)
            except BlockingIOError:
                self._ready_reads = 0
                await trio.lowlevel.wait_readable(sock)
                continue
            self._ready_reads += 1
            return data

    def close(self, reason: str) -> None:
        """Close the lane: waiting calls fail, later ones too (open another)."""
        self._close(reason)

    def _close(self, reason: str, *, timeout: bool = False) -> None:
        """Fail every waiting call and stop the lane's tasks (once; later calls no-op)."""
        if self.closed is not None:
            return
        self.closed = reason
        while self._waiters:
            task = self._waiters.popleft().task
            if task is not None:
                error: Exception = (TimeoutError(reason) if timeout
                                    else coredis.exceptions.ConnectionError(reason))
                trio.lowlevel.reschedule(task, outcome.Error(error))
        self._out.clear()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()


async def open_lane(nursery: trio.Nursery, address: LaneAddress, *,
                    tracking: bool = False) -> Lane:
    """Connect and shake hands (bounded by ``connect_timeout_s``), then run the lane in
    ``nursery`` until it closes. Raises what a failing Redis raises (OSError, TimeoutError,
    coredis' errors for a refused handshake). With ``tracking``, asks for client-side
    caching (see the module); a Redis that refuses it (before 6.0) gives a lane without."""
    try:
        with trio.fail_after(address.connect_timeout_s):
            stream, sock = await _connect(address)
            try:
                tracked = await _handshake(stream, address, tracking)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
    except trio.TooSlowError:
        raise TimeoutError(f"Redis did not answer within {address.connect_timeout_s:g} s "
                           "(connecting)") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:  # e.g. TLS refused
        cause = exc.__cause__ or exc
        raise coredis.exceptions.ConnectionError(
            f"no connection to Redis: {cause or type(cause).__name__}") from exc
    except ProtocolError as exc:  # something else listens there (a typo in the URL)
        raise coredis.exceptions.ConnectionError(
            f"what answers at the Redis address does not speak RESP ({exc})") from exc
    lane = Lane(stream, sock, address.reply_timeout_s)
    lane.tracking = tracked
    started: Lane = await nursery.start(lane._serve)
    return started


async def _connect(address: LaneAddress) -> tuple[trio.abc.Stream, socket.socket | None]:
    """The stream to Redis, and its socket if it is plain (not TLS)."""
    targets: list[tuple[int, Any]]
    if address.path is not None:
        targets = [(socket.AF_UNIX, address.path)]
    else:
        assert address.host is not None
        infos = await trio.socket.getaddrinfo(address.host, address.port,
                                              type=socket.SOCK_STREAM)
        targets = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
    error: OSError = OSError(f"{address.host or address.path}: no address to connect to")
    for family, sockaddr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            connecting = trio.socket.from_stdlib_socket(sock)
            await connecting.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        stream = trio.SocketStream(connecting)  # (sets TCP_NODELAY)
        if address.ssl_context is None:
            return stream, sock
        tls = trio.SSLStream(stream, address.ssl_context, server_hostname=address.host)
        return tls, None
    raise error


async def _handshake(stream: trio.abc.Stream, address: LaneAddress, tracking: bool) -> bool:
    """HELLO 3 (with AUTH), SELECT, CLIENT SETNAME (and CLIENT TRACKING): sent at once,
    replies checked in order. Returns whether tracking is on."""
    hello: list[Arg] = [b"HELLO", 3]
    if address.username or address.password:
        hello += [b"AUTH", address.username or "default", address.password or b""]
    commands = [hello]
    if address.db:
        commands.append([b"SELECT", address.db])
    if address.client_name:
        commands.append([b"CLIENT", b"SETNAME", address.client_name])
    if tracking:
        commands.append([b"CLIENT", b"TRACKING", b"ON", b"OPTIN", b"NOLOOP"])
    await stream.send_all(b"".join(pack_command(c) for c in commands))
    reader = ReplyReader()
    for i, _ in enumerate(commands):
        while (reply := reader.next_reply()) is INCOMPLETE:
            data = await stream.receive_some(_RECEIVE_BYTES)
            if not data:
                raise coredis.exceptions.ConnectionError("Redis closed the connection "
                                                         "during the handshake")
            reader.feed(data)
        if isinstance(reply, ErrorReply):
            if tracking and i == len(commands) - 1:
                return False  # (an old Redis: no client-side caching, nothing else lost)
            raise _ERRORS.parse_error(reply.message)
    return tracking


async def _send_all(sock: socket.socket, data: bytes) -> None:
    """Write ``data`` straight to the socket, waiting only while it would block."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            sent = 0
        view = view[sent:]
        if view:
            await trio.lowlevel.wait_writable(sock)
