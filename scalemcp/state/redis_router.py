"""Routing between workers for the Redis backend: mailboxes, changes, the inbox.

``r:`` mailbox keys (a client's response to a server->client request) are *owned*:
opening one records ``key -> worker id`` in Redis with a TTL; ``deliver`` on any worker
looks the owner up and XADDs the payload to that worker's inbox stream, or hands it over
in memory if this worker holds the mailbox. ``deliver`` is False when nobody owns it.

``c:`` keys (cancellations) are opened for EVERY request and used rarely, so they stay
local: no round trip to open or close one, and they are callbacks (``on_delivery``).
``deliver`` hands a cancellation over in memory if this worker holds the mailbox, and
otherwise broadcasts it to every worker and returns True (whoever holds it acts; one for
a finished request is ignored, as the spec requires of cancellations).

Changes are handed to this worker's listeners at once and broadcast to the others.

Observability: :class:`Link` times every script (``scalemcp_redis_round_trip_seconds``)
and counts the failures it maps (``scalemcp_redis_errors_total``); routed messages are
counted both ways, and while tracing is on they carry a W3C ``traceparent`` (entry field
``tp``; an owner record is then ``<worker> <traceparent>``), see ``observability.tracing``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from typing import Any, Final

import anyio
import coredis
import coredis.exceptions
import trio
from coredis.tokens import PureToken

from ..errors import BackendUnavailable
from ..observability import tracing
from ..observability.metrics import (
    REDIS_ERRORS,
    REDIS_ROUND_TRIP,
    ROUTED_RECEIVED,
    ROUTED_SENT,
    Timer,
    timed,
)
from .base import CANCEL_MAILBOX, SessionRecord
from .hub import ChangeFeed, ChangeHub
from .mailbox import Mailbox, hand_over
from .redis_cache import SessionCache
from .redis_connect import ERRORS, RedisClient, forget_connections
from .redis_lane import Lane, LaneAddress, open_lane
from .redis_layout import Keys
from .resp import Arg

__all__ = ["ERRORS", "NO_LANE", "Link", "Router"]

log = logging.getLogger("scalemcp.state.redis")

INBOX_MAXLEN = 1000
BROADCAST_MAXLEN = 10_000
_SENT = {kind: ROUTED_SENT.labels(kind) for kind in ("response", "cancel")}
_RECEIVED = {kind: ROUTED_RECEIVED.labels(kind) for kind in ("response", "cancel")}
_NO_FIELDS: dict[str, bytes] = {}
_UNTRACED = nullcontext(_NO_FIELDS)  # stateless: shared by every untraced route


#: What :meth:`Link.command` and :meth:`Link.blocking` return for a client without lanes.
NO_LANE: Final = object()

#: Scripts that change nothing a second run would change again (loading a session renews
#: its TTL, which a second run only renews again).
_READ_ONLY = frozenset({"load", "read"})


class Link:
    """The client and its scripts while the backend runs; Redis errors mapped at the edge."""

    def __init__(self, scripts: dict[str, str]) -> None:
        self.client: RedisClient | None = None
        #: Why there is no client (None: the backend is not running).
        self.down_reason: str | None = None
        self._sources = scripts
        self._shas = {name: hashlib.sha1(source.encode()).hexdigest()
                      for name, source in scripts.items()}
        self._round_trips = {name: REDIS_ROUND_TRIP.labels(name) for name in scripts}
        #: Where lanes run while the client does (set and cleared with ``client``).
        self.nursery: trio.Nursery | None = None
        #: The connection scripts are sent on, and the client it was opened for.
        self._lane: Lane | _Leased | None = None
        self._lane_client: Any = None
        self._opening = trio.Lock()  # (taken only to open a lane, never per call)
        self._open_attempts = 0
        self._open_failure: str | None = None
        #: Session records read with tracking on the lane (:mod:`.redis_cache`).
        self.cache = SessionCache()
        #: Lanes of their own for blocking reads (a blocked command holds its connection,
        #: so it cannot share the pipelined lane), by purpose, and their clients.
        self._blocking: dict[str, tuple[Any, Lane]] = {}

    @contextmanager
    def redis(self) -> Iterator[RedisClient]:
        """The client; Redis failures inside the block become BackendUnavailable."""
        client = self.client
        if client is None:
            REDIS_ERRORS.labels("unavailable").inc()
            raise BackendUnavailable(self.down_reason or "the Redis state backend is not running")
        try:
            yield client
        except ERRORS as exc:
            self.failed(exc)
            forget_connections(client, exc)
            if isinstance(exc, coredis.exceptions.ResponseError) and "READONLY" in str(exc):
                self._drop_lane()  # it reached a demoted master: the next call reconnects
            if error_kind(exc) == "oom":
                raise BackendUnavailable(f"Redis is out of memory (maxmemory): {exc}") from exc
            raise BackendUnavailable(f"Redis is unavailable: {exc or type(exc).__name__}") from exc
        except RuntimeError as exc:
            # coredis' pool, torn down by a connection failure while this command ran
            # (the backend reconnects): a Redis fault like the others, not a server bug.
            if "pool" not in str(exc).lower():
                raise
            REDIS_ERRORS.labels("connection").inc()
            raise BackendUnavailable("Redis is unavailable: the connection pool closed") from exc

    async def load_scripts(self, client: RedisClient) -> None:
        """Load every script once, so that no request pays for a NOSCRIPT answer."""
        if isinstance(client, coredis.RedisCluster):
            for source in self._sources.values():
                await client.script_load(source)  # to every node
            return
        async with client.pipeline(transaction=False) as pipe:
            for source in self._sources.values():
                pipe.script_load(source)

    async def script(self, client: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA (one round trip), loading the script on a NOSCRIPT answer.

        Sent down the lane (:meth:`_evalsha`) rather than through coredis' command layers,
        whose retry, pooling and transform work is most of the client's CPU per call.
        """
        started = time.perf_counter()  # (no timer object: this is every request's path)
        try:
            return await self._evalsha(client, self._shas[name], keys, args)
        except coredis.exceptions.NoScriptError:
            # The lane's server has not seen the script (a promoted replica, a restart, a
            # SCRIPT FLUSH). EVAL runs and caches it on that very server: loading it through
            # the client could reach another one (the pool may resolve the master anew).
            return await self._evalsha(client, self._shas[name], keys, args,
                                       source=self._sources[name])
        except coredis.exceptions.ConnectionError:
            if name not in _READ_ONLY:
                raise
            # A pooled connection the server had closed (after a Sentinel failover the
            # demoted master drops its clients): a read-only script is safe to send once
            # more, on another connection, instead of failing the request.
            REDIS_ERRORS.labels("connection").inc()
            try:
                return await self._evalsha(client, self._shas[name], keys, args)
            except coredis.exceptions.NoScriptError:  # the other connection: a new master
                return await self._evalsha(client, self._shas[name], keys, args,
                                           source=self._sources[name])
        finally:
            self._round_trips[name].observe(time.perf_counter() - started)

    def cached(self, key: str) -> SessionRecord | None:
        """The record of session key ``key`` as last read on the current lane, if Redis
        has not said since that it changed and it needs no renewal yet (no round trip)."""
        lane = self._lane
        if type(lane) is not Lane or self._lane_client is not self.client:
            return None
        lane.take_ready()  # (invalidations already here first: a deletion is seen at once)
        if lane.closed is not None:
            return None
        return self.cache.get(key, lane, trio.current_time())

    async def script_tracked(self, client: Any, name: str, keys: list[str],
                             args: list[Any]) -> tuple[Any, Lane | None, int]:
        """As :meth:`script`, with the keys it reads tracked on the lane: the reply, and
        the lane and its push count at the reply (for :meth:`SessionCache.put`), or None
        and 0 where there is no tracking lane (Sentinel, Cluster, an old Redis)."""
        lane = self._lane if self._lane_client is client else None
        if lane is None or not lane.usable:
            lane = await self._open_lane(client)
        if type(lane) is not Lane or not lane.tracking:
            return await self.script(client, name, keys, args), None, 0
        started = time.perf_counter()
        try:
            reply, stamp = await lane.call_tracked(b"EVALSHA", self._shas[name], len(keys),
                                                   *keys, *args)
        except coredis.exceptions.NoScriptError:
            reply, stamp = await lane.call_tracked(b"EVAL", self._sources[name], len(keys),
                                                   *keys, *args)
        except coredis.exceptions.ConnectionError:
            if name not in _READ_ONLY:
                raise
            REDIS_ERRORS.labels("connection").inc()  # (sent once more, as script does)
            return await self.script(client, name, keys, args), None, 0
        finally:
            self._round_trips[name].observe(time.perf_counter() - started)
        return reply, lane, stamp

    async def hgetall(self, client: Any, key: str) -> dict[bytes, bytes]:
        """HGETALL down the lane, as :meth:`script` (a task poll's one read)."""
        lane = self._lane if self._lane_client is client else None
        if lane is None or not lane.usable:
            lane = await self._open_lane(client)
            if lane is None:
                return dict(await client.hgetall(key))
        return dict(await lane.call(b"HGETALL", key))

    async def command(self, client: Any, *args: Arg) -> Any:
        """One command down the shared lane, as :meth:`hgetall`; :data:`NO_LANE` if this
        client has none (a cluster): the caller then sends it through ``client``."""
        lane = self._lane if self._lane_client is client else None
        if lane is None or not lane.usable:
            lane = await self._open_lane(client)
            if lane is None:
                return NO_LANE
        return await lane.call(*args)

    async def blocking(self, client: Any, purpose: str, block_ms: int, *args: Arg) -> Any:
        """A blocking read (XREAD or XREADGROUP with ``BLOCK block_ms``) on a lane of its
        own for ``purpose``; :data:`NO_LANE` if the client's server cannot have one (a
        cluster, a Sentinel master): the caller then sends it through ``client``.

        The reply is raw RESP3 (:mod:`.resp`). A call cancelled while it waits closes its
        lane, so that Redis hands nothing more (a queue entry) to a reader that is gone.
        """
        held = self._blocking.get(purpose)
        lane = held[1] if held is not None and held[0] is client else None
        if lane is None or not lane.usable:
            pool: Any = getattr(client, "connection_pool", None)
            address = LaneAddress.from_pool(pool)
            if address is None or self.nursery is None or isinstance(client,
                                                                    coredis.RedisCluster):
                return NO_LANE
            if held is not None:
                held[1].close("replaced")
            lane = await open_lane(self.nursery,
                                   address.waiting(block_ms / 1000))
            self._blocking[purpose] = (client, lane)
        try:
            return await lane.call(*args)
        except trio.Cancelled:
            lane.close("a blocking read was cancelled")
            raise

    async def _evalsha(self, client: Any, sha: str, keys: list[str], args: list[Any], *,
                       source: str | None = None) -> Any:
        """EVALSHA on the lane (one connection every script call is pipelined on).

        A standalone Redis gets scalemcp's own lane (:mod:`.redis_lane`: about a third of
        the client CPU per call of a coredis connection, see ``docs/performance.md``); a
        Sentinel master, which moves, a connection leased from coredis' pool (coredis
        connections multiplex too). A cluster (slots on many nodes) goes through the client.
        With ``source``, EVAL instead (the server answered NOSCRIPT).
        """
        lane = self._lane if self._lane_client is client else None
        if lane is None or not lane.usable:
            lane = await self._open_lane(client)
            if lane is None:
                if source is not None:
                    return await client.eval(source, keys=keys, args=args)
                return await client.evalsha(sha, keys=keys, args=args)
        if source is not None:
            return await lane.call(b"EVAL", source, len(keys), *keys, *args)
        return await lane.call(b"EVALSHA", sha, len(keys), *keys, *args)

    async def _open_lane(self, client: Any) -> Any:
        """A lane to ``client``'s server (None: this client has no lane).

        Callers that queued while an attempt failed share its failure instead of each
        trying in turn (N queued callers would otherwise wait N connect timeouts)."""
        tried = self._open_attempts
        async with self._opening:
            lane = self._lane if self._lane_client is client else None
            if lane is not None and lane.usable:
                return lane  # opened meanwhile
            if self._open_attempts != tried and self._open_failure is not None:
                raise coredis.exceptions.ConnectionError(self._open_failure)
            self._open_attempts += 1
            self._open_failure = None
            try:
                return await self._replace_lane(client)
            except Exception as exc:  # (not a cancellation: the next caller tries itself)
                self._open_failure = f"no connection to Redis: {exc or type(exc).__name__}"
                raise

    async def _replace_lane(self, client: Any) -> Any:
        old, old_client = self._lane, self._lane_client
        self._lane = self._lane_client = None
        if isinstance(old, _Leased) and old_client is not None:
            _return_slot(old_client.connection_pool, old.connection)
        pool: Any = getattr(client, "connection_pool", None)
        if isinstance(client, coredis.RedisCluster) or not hasattr(pool, "get_connection"):
            return None
        address = LaneAddress.from_pool(pool)
        lane: Lane | _Leased
        if address is not None and self.nursery is not None:
            lane = await open_lane(self.nursery, address, tracking=True)
            # The old lane's entries are dead with it (pushes may have been lost).
            self.cache.clear()
            lane.on_push = self.cache.on_push
        else:
            connection = await pool.get_connection()
            if not hasattr(connection, "create_request"):  # another coredis: no lane
                pool.release(connection)
                return None
            lane = _Leased(connection)
        self._lane, self._lane_client = lane, client
        return lane

    def _drop_lane(self) -> None:
        lane = self._lane
        if isinstance(lane, Lane):
            lane.close("the lane reached a read-only replica")
        elif isinstance(lane, _Leased):
            lane.connection.invalidate("it reached a read-only replica")

    @staticmethod
    def failed(exc: BaseException) -> None:
        """Count a Redis failure met outside :meth:`redis` (the worker's stream reader)."""
        REDIS_ERRORS.labels(error_kind(exc)).inc()

    @staticmethod
    def timed(operation: str) -> Timer:
        """``with link.timed("op"):`` around one command, or first in ``async with
        link.timed("op"), client.pipeline() as pipe:``: the round trip it takes."""
        return timed(REDIS_ROUND_TRIP.labels(operation))


class _Leased:
    """A connection leased from a coredis pool, used as a lane (Sentinel)."""

    __slots__ = ("call", "connection")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.call = connection.create_request

    @property
    def usable(self) -> bool:
        return bool(self.connection.usable)


def _return_slot(pool: Any, connection: Any) -> None:
    """Give a dead lane's place back to its pool (coredis frees the place of a connection
    that dies while pooled, not of one that dies while leased)."""
    if connection.usable:
        pool.release(connection)
        return
    queue = getattr(pool, "_available_connections", None)
    if queue is not None and not queue.full():
        queue.append_nowait(None)


_KINDS: dict[type[BaseException], str] = {}


def error_kind(exc: BaseException) -> str:
    """A bounded label for a Redis failure (timeout, connection, auth, cluster, ...)."""
    if isinstance(exc, coredis.exceptions.ResponseError) and "OOM" in str(exc):
        return "oom"  # maxmemory reached (the type alone does not say it)
    kind = _KINDS.get(type(exc))
    if kind is None:
        e = coredis.exceptions
        kind = ("timeout" if isinstance(exc, TimeoutError)
                else "auth" if isinstance(exc, e.AuthenticationError | e.AuthorizationError)
                else "cluster" if isinstance(exc, e.RedisClusterError | e.RedisClusterException)
                else "sentinel" if isinstance(exc, e.SentinelError)
                else "connection" if isinstance(exc, e.ConnectionError | OSError
                                                | anyio.BrokenResourceError
                                                | anyio.ClosedResourceError | anyio.EndOfStream)
                else "response" if isinstance(exc, e.ResponseError)
                else "other")
        _KINDS[type(exc)] = kind
    return kind


class Router:
    """This worker's mailboxes and change listeners, and what reaches them via Redis."""

    def __init__(self, link: Link, keys: Keys, worker: str, *, mailbox_ttl_ms: int,
                 on_deleted: Callable[[str], None]) -> None:
        self._link = link
        self._keys = keys
        self._worker = worker.encode()
        self.inbox = keys.inbox(worker)
        self._mailbox_ttl_ms = mailbox_ttl_ms
        self._on_deleted = on_deleted
        self.mailboxes: dict[tuple[str, str], Mailbox] = {}
        #: While tracing: the span of the request waiting at each owned mailbox.
        self._waiting: dict[tuple[str, str], Any] = {}
        self._changes = ChangeHub()

    # -- mailboxes -------------------------------------------------------------------

    @asynccontextmanager
    async def open_mailbox(
        self, session_id: str, key: str
    ) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        send, receive = trio.open_memory_channel[bytes](64)
        owned = not key.startswith(CANCEL_MAILBOX)
        self.mailboxes[(session_id, key)] = send
        record = self._worker
        hooks = tracing.routing
        if owned and hooks is not None:  # the waiting request's context, for the sender
            self._waiting[(session_id, key)] = hooks.waiting_span()
            context = hooks.current()
            record = record + b" " + context if context else record
        try:
            if owned:
                with self._link.redis() as client, self._link.timed("mailbox_open"):
                    await client.set(self._keys.mailbox(session_id, key), record,
                                     px=self._mailbox_ttl_ms)
            yield receive
        finally:
            if self.mailboxes.get((session_id, key)) is send:
                del self.mailboxes[(session_id, key)]
                self._waiting.pop((session_id, key), None)
            if owned:
                await self._release(session_id, key, record)

    async def _release(self, session_id: str, key: str, record: bytes) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            try:
                with self._link.redis() as client:
                    await self._link.script(client, "release",
                                            [self._keys.mailbox(session_id, key)], [record])
            except BackendUnavailable as exc:
                log.debug("mailbox record left to expire: %s", exc)

    @contextmanager
    def on_delivery(
        self, session_id: str, key: str, callback: Callable[[bytes], None]
    ) -> Iterator[None]:
        """A local mailbox (``c:`` keys only: nothing is recorded in Redis)."""
        assert key.startswith(CANCEL_MAILBOX), key
        self.mailboxes[(session_id, key)] = callback
        try:
            yield
        finally:
            if self.mailboxes.get((session_id, key)) is callback:
                del self.mailboxes[(session_id, key)]

    def deliver_local(self, session_id: str, key: str, payload: bytes) -> bool:
        return hand_over(self.mailboxes.get((session_id, key)), payload)

    async def deliver(self, session_id: str, key: str, payload: bytes) -> bool:
        if (session_id, key) in self.mailboxes:
            return self.deliver_local(session_id, key, payload)
        with self._link.redis() as client:
            if key.startswith(CANCEL_MAILBOX):
                with _route("cancel", payload, b"", "broadcast") as extra:
                    await self.push(client, self._keys.broadcast, BROADCAST_MAXLEN, 0, b"x",
                                    s=session_id.encode(), k=key.encode(), p=payload, **extra)
                _SENT["cancel"].inc()
                return True
            with self._link.timed("mailbox_owner"):
                record = await client.get(self._keys.mailbox(session_id, key))
            owner, _, context = (record or b"").partition(b" ")
            if not owner or owner == self._worker:
                return False
            with _route("response", payload, context, "inbox") as extra:
                await self.push(client, self._keys.inbox(owner.decode()), INBOX_MAXLEN,
                                self._mailbox_ttl_ms, b"m", s=session_id.encode(),
                                k=key.encode(), p=payload, **extra)
            _SENT["response"].inc()
            return True

    # -- changes ---------------------------------------------------------------------

    async def publish_change(self, payload: bytes) -> None:
        self._local_change(payload)
        with self._link.redis() as client:
            await self.push(client, self._keys.broadcast, BROADCAST_MAXLEN, 0, b"c", p=payload)

    def _local_change(self, payload: bytes) -> None:
        self._changes.publish(payload)

    def open_changes(self) -> AbstractAsyncContextManager[ChangeFeed]:
        return self._changes.subscribe()

    # -- the inbox and the broadcast stream ------------------------------------------

    async def push(self, client: Any, key: str, maxlen: int, ttl_ms: int, kind: bytes,
                   **fields: bytes) -> None:
        """XADD a message (kind ``t``, origin ``o``, ``fields``) to an inbox or broadcast."""
        args: list[Any] = [maxlen, ttl_ms, b"t", kind, b"o", self._worker]
        for name, value in fields.items():
            args += (name.encode(), value)
        await self._link.script(client, "push", [key], args)

    def push_deleted(self, pipe: Any, session_id: str) -> None:
        """Queue the broadcast of a deletion on a pipeline."""
        pipe.xadd(self._keys.broadcast, {b"t": b"d", b"o": self._worker, b"s": session_id.encode()},
                  trim_strategy=PureToken.MAXLEN, threshold=BROADCAST_MAXLEN,
                  trim_operator=PureToken.APPROXIMATELY)

    async def wake(self) -> None:
        """Interrupt this worker's blocking XREAD (an entry in its own inbox)."""
        with self._link.redis() as client:
            await self.push(client, self.inbox, INBOX_MAXLEN, self._mailbox_ttl_ms, b"w")

    def on_message(self, key: str, fields: Any) -> None:
        """One entry read from this worker's inbox or from the broadcast stream."""
        kind = fields.get(b"t")
        if key == self.inbox:
            if kind == b"m":
                self._received("response", fields)
            return
        if fields.get(b"o") == self._worker:
            return  # our own broadcast, already acted on here
        if kind == b"c":
            self._local_change(fields[b"p"])
        elif kind == b"d":
            self._on_deleted(fields[b"s"].decode())
        elif kind == b"x":
            self._received("cancel", fields)

    def _received(self, kind: str, fields: Any) -> None:
        """A routed client message: to its mailbox here, if a request here holds it."""
        mailbox = (fields[b"s"].decode(), fields[b"k"].decode())
        waiting = self._waiting.get(mailbox)
        if not self.deliver_local(*mailbox, fields[b"p"]):
            return  # (a cancellation for another worker, or a request already over)
        _RECEIVED[kind].inc()
        hooks = tracing.routing
        context = fields.get(b"tp")
        if hooks is not None and context:
            hooks.received(kind, context, waiting, "inbox" if kind == "response" else "broadcast")


def _route(kind: str, payload: bytes, owner: bytes, destination: str
           ) -> AbstractContextManager[dict[str, bytes]]:
    """While tracing: a span around routing one message, and the ``tp`` field to carry."""
    hooks = tracing.routing
    if hooks is None:
        return _UNTRACED
    return _traced_route(hooks, kind, payload, owner, destination)


@contextmanager
def _traced_route(hooks: tracing.RouteTracing, kind: str, payload: bytes, owner: bytes,
                  destination: str) -> Iterator[dict[str, bytes]]:
    with hooks.send(kind, payload, owner, destination) as context:
        yield {"tp": context} if context else _NO_FIELDS
