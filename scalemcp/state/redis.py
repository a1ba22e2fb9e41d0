"""Redis state backend: sessions, SSE event logs, routing and fan-out for a fleet of workers.

Layout (every key of a session under the hash tag ``{<session-id>}``): see
:mod:`scalemcp.state.redis_layout`. Following streams without a connection per reader:
see :mod:`scalemcp.state.redis_streams`.

Round trips
-----------
The client, not Redis, is the budget (coredis: about 250 us of client CPU per round
trip; the request path's own lane, :mod:`.redis_lane`: a few tens), so each operation on
the request path is ONE command, a Lua script where several steps are needed:
``load_session`` (HGETALL + renew TTL, the record returned as one msgpack map; a record
this worker read before and Redis has not invalidated since costs none, see
:mod:`.redis_cache`),
``append`` (XADD + caps + TTLs, returning the previous entry id), ``read`` (XRANGE,
or the last entry to tell ended/missing).
A session-era ``tools/call`` answered with JSON costs one round trip (the load), or none
when the session's record is cached.

Mailboxes and changes
---------------------
See :mod:`scalemcp.state.redis_router`: ``r:`` mailboxes are owned (``key -> worker``
in Redis, delivered through the owner's inbox stream); ``c:`` mailboxes (cancellations)
stay local and are reached by a broadcast, keeping round trips off every request.

Each worker runs ONE background XREAD loop (in :meth:`RedisBackend.running`) over its inbox,
the broadcast stream (changes, deletions, cancellations) and the streams it follows for
readers parked on other workers' streams.

Deletion
--------
``delete_session`` deletes the session's keys (appends and reads check the session
record, so nothing is written or served for it afterwards), ends parked readers on this
worker at once and broadcasts the deletion: readers parked on other workers end as soon
as their loop reads the broadcast (one XREAD round trip, milliseconds), and at the
latest after their ``wait_s`` (the SSE keep-alive interval), because a timed-out wait
always ends with a read from Redis. The same ``wait_s`` bound applies when a session
expires from idleness while a reader waits.

Deployments
-----------
Standalone (``redis://``, ``rediss://``, ``unix://``), Sentinel (``redis[s]+sentinel://``)
and Cluster (``redis[s]+cluster://``): see :mod:`scalemcp.state.redis_connect`. On a
cluster every script and multi-key command touches one session's keys (one slot), the
fleet-wide keys are used one at a time (pipelines are split by node), and the worker's
reader runs one XREAD per slot it follows (see :mod:`scalemcp.state.redis_streams`).
While Redis cannot be reached (a failover, a cluster that cannot be discovered yet)
operations raise BackendUnavailable (HTTP 503) and the backend keeps reconnecting.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from typing import Any, cast

import coredis
import coredis.exceptions
import msgspec
import trio
from coredis.tokens import PureToken

from ..config import Config
from ..errors import BackendUnavailable
from ..observability.metrics import REDIS_WRITE_RETRIES
from .base import SessionRecord, StateStatistics, StreamRead, Throttled, TokenBucket
from .hub import ChangeFeed
from .redis_buckets import TAKE_TOKENS, bucket_key, take_args, throttled
from .redis_connect import ClientOptions, RedisClient, open_client, parse_url
from .redis_layout import (
    APPEND,
    BURY,
    DELETE_INFO,
    INFLIGHT_RETURN,
    INFLIGHT_TAKE,
    LOAD_SESSION,
    PUSH,
    READ,
    RELEASE_MAILBOX,
    SUBSCRIBE,
    UPDATE_SESSION,
    Id,
    Keys,
    decode_entries,
    decode_record,
    encode_fields,
    format_id,
    hash_slot,
    parse_id,
)
from .redis_liveness import Liveness
from .redis_router import ERRORS, Link, Router
from .redis_streams import MISSING, Follower
from .redis_tasks import TASK_SCRIPTS, RedisTaskStore
from .tasks import TaskStore

__all__ = ["RedisBackend"]

#: Answers of a Redis that works but refuses, for now, what a retry may get through.
_PASSING_REFUSALS = ("READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def _redis_failure(raised: BaseException) -> BaseException:
    """The Redis failure in ``raised`` (a group of them, possibly nested); anything else
    in a group (a cancellation, a bug) is raised again."""
    if not isinstance(raised, BaseExceptionGroup):
        return raised
    matched, rest = raised.split(ERRORS)
    if rest is not None or matched is None:
        raise raised
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _retryable(exc: BackendUnavailable) -> bool:
    """Whether a write may succeed if sent again soon: Redis was unreachable or its answer
    was lost (not: out of memory, a script error, or a wrong key type)."""
    cause = exc.__cause__
    if isinstance(cause, coredis.exceptions.ResponseError):
        return any(word in str(cause) for word in _PASSING_REFUSALS)
    return True

log = logging.getLogger("scalemcp.state.redis")

_READ_BATCH = 1000
#: A client that worked this long before it failed is reconnected without backing off.
_STEADY_S = 5.0
_SWEEP_BATCH = 500


class RedisBackend:
    """The :class:`~scalemcp.state.base.StateBackend` for many workers, over Redis.

    Use ``async with backend.running():`` (the ASGI lifespan does);
    operations raise :class:`~scalemcp.errors.BackendUnavailable` while Redis cannot be
    reached or the backend is not running.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "smcp:",
        idle_ttl_s: float = 3600.0,
        stream_maxlen: int = 1000,
        stream_ttl_s: float = 600.0,
        max_sessions: int = 100_000,
        mailbox_ttl_s: float = 360.0,
        connect_timeout_s: float = 2.0,
        command_timeout_s: float = 10.0,
        block_s: float | None = None,
        max_connections: int = 64,
        pool_timeout_s: float = 5.0,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_check_hostname: bool = True,
        worker_ttl_s: float = 15.0,
        write_retry_s: float = 10.0,
        task_lease_s: float = 3.0,
        renew_slack_s: float | None = None,
    ) -> None:
        self.target = parse_url(url)
        if block_s is None:
            block_s = min(5.0, command_timeout_s / 2)
        if block_s >= command_timeout_s:
            raise ValueError("block_s must be shorter than command_timeout_s")
        self.url = url
        self.keys = Keys(key_prefix)
        self.idle_ttl_ms = max(1, int(idle_ttl_s * 1000))
        #: A load renews the TTL to idle + slack once it is below idle: between renewals a
        #: cached record is served with no round trip (see redis_cache). 0: every load renews.
        if renew_slack_s is None:
            renew_slack_s = min(60.0, idle_ttl_s / 10)
        self.renew_slack_ms = max(0, int(renew_slack_s * 1000))
        self.stream_maxlen = stream_maxlen
        self.stream_ttl_ms = max(1, int(stream_ttl_s * 1000))
        self.max_sessions = max_sessions
        self.mailbox_ttl_ms = max(1, int(mailbox_ttl_s * 1000))
        self._connect_timeout_s = connect_timeout_s
        #: How often reachability is checked, to log when Redis goes away and comes back.
        self._health_check_s = max(1.0, 2 * connect_timeout_s)
        #: This process's identity: mailbox owner records and inbox name use it.
        self.worker_id = secrets.token_hex(8)
        self._options = ClientOptions(
            max_connections=max_connections, connect_timeout_s=connect_timeout_s,
            socket_timeout_s=command_timeout_s, pool_timeout_s=pool_timeout_s,
            ca_file=ca_file, cert_file=cert_file, key_file=key_file,
            tls_check_hostname=tls_check_hostname, client_name=f"scalemcp-{self.worker_id}",
        )
        self._link = Link({
            "load": LOAD_SESSION, "update": UPDATE_SESSION, "subscribe": SUBSCRIBE,
            "append": APPEND, "read": READ,
            "delete": DELETE_INFO, "release": RELEASE_MAILBOX, "push": PUSH, "bury": BURY,
            "take": TAKE_TOKENS, "inflight_take": INFLIGHT_TAKE,
            "inflight_return": INFLIGHT_RETURN, **TASK_SCRIPTS,
        })
        self._redis = self._link.redis
        self._script = self._link.script
        if self.target.mode == "cluster":
            # A lane holds a connection of its node while it blocks: leave most for requests.
            self._follower = Follower(block_s=block_s, slot_of=hash_slot,
                                      main_slot=hash_slot(self.keys.broadcast),
                                      max_lanes=max(1, max_connections // 4))
        else:
            self._follower = Follower(block_s=block_s)
        self._router = Router(self._link, self.keys, self.worker_id,
                              mailbox_ttl_ms=self.mailbox_ttl_ms,
                              on_deleted=self._follower.session_gone)
        self._follower.wake = self._router.wake
        #: Heartbeats; a stream whose writer has none ends with its epitaph (see the module).
        self._liveness = Liveness(self._link, self.keys, self.worker_id, ttl_s=worker_ttl_s)
        self._sessions_seen = 0
        self._appends = 0
        self._write_retry_s = write_retry_s
        #: Durable tasks (state/tasks.py): a hash each and a Streams consumer group.
        self.tasks: TaskStore = RedisTaskStore(self._link, key_prefix,
                                    reclaim_idle_ms=int(task_lease_s * 1000),
                                    block_ms=int(block_s * 1000))

    @classmethod
    def from_config(cls, config: Config) -> RedisBackend:
        if not config.redis.url:
            raise ValueError("the Redis backend needs redis_url")
        return cls(
            config.redis.url,
            key_prefix=config.redis.key_prefix,
            idle_ttl_s=config.sessions.session_idle_ttl_s,
            stream_maxlen=config.sse.stream_maxlen,
            stream_ttl_s=config.sse.stream_ttl_s,
            max_sessions=config.sessions.max_sessions,
            mailbox_ttl_s=config.sessions.client_request_timeout_s + 60.0,
            connect_timeout_s=config.redis.connect_timeout_s,
            command_timeout_s=config.redis.socket_timeout_s,
            max_connections=config.redis.max_connections,
            pool_timeout_s=config.redis.pool_timeout_s,
            ca_file=config.redis.ca_file,
            cert_file=config.redis.cert_file,
            key_file=config.redis.key_file,
            tls_check_hostname=config.redis.tls_check_hostname,
            # A dead worker's streams end within 3 keep-alive intervals (redis_liveness).
            worker_ttl_s=max(3.0, 2 * config.sse.keepalive_s),
            write_retry_s=config.redis.write_retry_s,
            task_lease_s=config.tasks.lease_s,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def _serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                     ) -> None:
        """Connect and run the worker's stream reader and upkeep, until cancelled.

        Reports started once the client exists, or after a first failed attempt to create
        it (a cluster whose slot map cannot be fetched): it keeps trying meanwhile, and
        operations raise BackendUnavailable until it succeeds.
        """
        started = False
        backoff = 0.1
        opened_at = math.inf
        async with trio.open_nursery() as upkeep:
            upkeep.start_soon(self._upkeep)
            while True:
                try:
                    async with open_client(self.target, self._options) as client:
                        self._link.client = client
                        self._link.down_reason = None
                        opened_at = trio.current_time()
                        try:
                            async with trio.open_nursery() as nursery:
                                self._link.nursery = nursery  # (the lane runs here)
                                nursery.start_soon(
                                    self._follower.run, self._xread, self._cursors,
                                    self._router.on_message, ERRORS, self._xread_many)
                                await nursery.start(self._liveness.run)
                                if not started:
                                    started = True
                                    # Watched from the first attempt on: before it, a new
                                    # worker would report Redis unreachable (not running).
                                    upkeep.start_soon(self._watch_health)
                                    if not self._follower.fixed:
                                        with trio.move_on_after(2 * self._connect_timeout_s):
                                            await self._follower.tried.wait()
                                    task_status.started()
                                await trio.sleep_forever()
                        finally:
                            self._link.client = None
                            self._link.nursery = None
                except BaseException as raised:
                    if not isinstance(raised, (*ERRORS, BaseExceptionGroup)):
                        raise
                    # coredis' pool runs its connections in a task group: a connection
                    # failing there ends the whole client with the failure grouped. That
                    # is a Redis fault like the others: reconnect, never stop the backend
                    # (a stopped backend would answer 503 until the worker restarts).
                    exc = _redis_failure(raised)
                    reason = str(exc) or type(exc).__name__
                    self._link.down_reason = f"Redis is unavailable: {reason}"
                    log.warning("lost the connection to Redis at %s (reconnecting): %s",
                                self.target, reason)
                    if trio.current_time() - opened_at > _STEADY_S:
                        backoff = 0.1  # it had been working: reconnect promptly
                if not started:
                    started = True
                    upkeep.start_soon(self._watch_health)
                    task_status.started()
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Connect and run the stream reader and upkeep for the duration of the block."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._serve)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    # -- sessions --------------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        sid = record.session_id
        key = self.keys.session(sid)
        principal_key = self.keys.principal(record.principal)
        deadline = time.time() + self.idle_ttl_ms / 1000
        with self._redis() as client:
            async with self._link.timed("create_session"), client.pipeline(
                transaction=False
            ) as pipe:
                pipe.delete([key])
                pipe.hset(key, encode_fields(msgspec.structs.asdict(record)))
                pipe.pexpire(key, self.idle_ttl_ms + self.renew_slack_ms)  # (as a load renews)
                pipe.zadd(self.keys.sessions, {sid: deadline})
                pipe.zadd(principal_key, {sid: deadline})
                pipe.pexpire(principal_key, 2 * self.idle_ttl_ms)
                card = pipe.zcard(self.keys.sessions)
            self._sessions_seen = await card
            if self._sessions_seen > self.max_sessions:
                await self._evict(client)

    async def load_session(self, session_id: str) -> SessionRecord | None:
        key = self.keys.session(session_id)
        cached = self._link.cached(key)
        if cached is not None:
            return cached
        with self._redis() as client:
            sent_at, forgets = trio.current_time(), self._link.cache.forgets
            reply, lane, stamp = await self._link.script_tracked(
                client, "load", [key], [self.idle_ttl_ms, self.renew_slack_ms])
        if not reply:
            return None
        record = decode_record(reply[0])
        if record is not None and lane is not None:
            # (TTLs count from when Redis ran the script, after sent_at: an early bound.)
            renew_at = sent_at + (reply[1] - self.idle_ttl_ms) / 1000
            self._link.cache.put(key, record, lane, stamp, forgets, renew_at)
        return record

    async def update_session(self, session_id: str, **changes: Any) -> None:
        if not changes:
            return
        args: list[Any] = []
        for name, value in encode_fields(changes).items():
            args += (name, value)
        key = self.keys.session(session_id)
        with self._redis() as client:
            await self._script(client, "update", [key], args)
        self._link.cache.forget(key)  # (Redis's push may come after the next load)

    async def subscribe(self, session_id: str, uri: str, subscribed: bool) -> None:
        key = self.keys.session(session_id)
        with self._redis() as client:
            await self._script(client, "subscribe", [key], [uri, "1" if subscribed else ""])
        self._link.cache.forget(key)

    async def delete_session(self, session_id: str) -> bool:
        key, names_key = self.keys.session(session_id), self.keys.stream_set(session_id)
        legacy_key = self.keys.legacy_stream_set(session_id)
        with self._redis() as client:
            info = await self._script(client, "delete", [key, names_key, legacy_key], [])
            if info is None:
                self._link.cache.forget(key)
                return False
            packed, names = info
            names = set(names)
            principal = msgspec.msgpack.decode(packed) if packed else None
            streams = [self.keys.stream(session_id, n.decode()) for n in names]
            streams += [self.keys.epitaph(session_id, n.decode()) for n in names]
            streams.append(self.keys.inflight(session_id))
            async with self._link.timed("delete_session"), client.pipeline(
                transaction=False
            ) as pipe:
                pipe.delete([key, names_key, legacy_key, *streams])
                pipe.zrem(self.keys.sessions, [session_id])
                pipe.zrem(self.keys.principal(principal if isinstance(principal, str) else None),
                          [session_id])
                self._router.push_deleted(pipe, session_id)
        self._link.cache.forget(key)
        self._follower.session_gone(session_id)
        self._sessions_seen = max(0, self._sessions_seen - 1)
        return True

    async def count_sessions(self, principal: str | None) -> int:
        with self._redis() as client:
            # Sweep every expired entry: each is swept once, so the cost is amortised over
            # the sessions created, and abandoned sessions never count against the limit.
            return await self._sweep(client, self.keys.principal(principal), batches=10_000)

    async def _sweep(self, client: RedisClient, key: str, *, batches: int = 4) -> int:
        """Drop expired sessions from a session index; returns how many remain.

        Scores are the expiry times known when last looked at; sessions renewed since
        are rescored from their TTL, expired ones removed. At most ``batches`` rounds of
        ``_SWEEP_BATCH`` (two round trips each), so a burst of abandoned sessions is
        cleared by a few sweeps rather than counted against a principal's limit.
        """
        for _ in range(batches):
            now = time.time()
            due = await client.zrangebyscore(key, 0, now, offset=0, count=_SWEEP_BATCH)
            sids = [m.decode() for m in cast(tuple[bytes, ...], due)]
            if not sids:
                break
            async with client.pipeline(transaction=False) as pipe:
                ttls = [pipe.pttl(self.keys.session(sid)) for sid in sids]
            alive: dict[str | bytes, float] = {}
            dead: list[str] = []
            for sid, ttl in zip(sids, ttls, strict=True):
                remaining = await ttl
                if remaining == -2:
                    dead.append(sid)
                else:
                    alive[sid] = now + (remaining if remaining > 0 else self.idle_ttl_ms) / 1000
            async with client.pipeline(transaction=False) as pipe:
                if alive:
                    pipe.zadd(key, alive)
                if dead:
                    pipe.zrem(key, dead)
            if len(sids) < _SWEEP_BATCH:
                break
        return await client.zcard(key)

    async def _evict(self, client: RedisClient) -> None:
        """Over ``max_sessions``: forget expired sessions, then the least recently renewed."""
        remaining = await self._sweep(client, self.keys.sessions)
        excess = remaining - self.max_sessions
        if excess > 0:
            popped = await client.zpopmin(self.keys.sessions, excess)
            for member in cast(tuple[tuple[bytes, float], ...], popped or ()):
                sid = member[0].decode()
                log.warning("max_sessions (%d) reached: evicting session %s",
                            self.max_sessions, sid[:8])
                await self.delete_session(sid)
        self._sessions_seen = max(0, remaining - max(0, excess))

    # -- streams ---------------------------------------------------------------------

    async def append(
        self, session_id: str, stream: str, data: bytes, *, final: bool = False,
        epitaph: bytes | None = None,
    ) -> str:
        key = self.keys.stream(session_id, stream)
        keys = [self.keys.session(session_id), key, self.keys.stream_set(session_id),
                self.keys.epitaph(session_id, stream)]
        self._appends += 1
        token = b"%s.%x" % (self._liveness.worker, self._appends)
        args = [data, b"1" if final else b"", self.stream_maxlen, self.stream_ttl_ms, stream,
                epitaph or b"", self._liveness.worker, token, b""]
        give_up = trio.current_time() + self._write_retry_s
        backoff = 0.05
        while True:
            try:
                with self._redis() as client:
                    reply = await self._script(client, "append", keys, args)
                break
            except BackendUnavailable as exc:
                # Redis unreachable, or its answer lost: the same append again, once Redis
                # answers, so a stream loses nothing while Redis blinks. A retry finds the
                # token of an attempt that was applied, so nothing is appended twice.
                if not _retryable(exc) or trio.current_time() + backoff > give_up:
                    raise
                REDIS_WRITE_RETRIES.inc()
                args[-1] = b"1"
                await trio.sleep(backoff)
                backoff = min(2 * backoff, 0.5)
        if reply is None:
            return "0"  # the session is gone: the event has nowhere to go
        if len(reply) == 1:  # ended (e.g. with our epitaph), or appended by an earlier try
            ended_at: str = reply[0].decode()
            return ended_at
        prev, new = parse_id(reply[0]) or (0, 0), parse_id(reply[1])
        assert new is not None
        position: str = reply[1].decode()
        self._follower.appended(key, session_id, prev, new, position, data, final)
        return position

    async def read(
        self, session_id: str, stream: str, after: str | None, *, wait_s: float
    ) -> StreamRead:
        start: Id | None = None
        if after is not None:
            start = parse_id(after)
            if start is None:
                return MISSING
        key = self.keys.stream(session_id, stream)
        follower = self._follower
        st = follower.streams.get(key)
        if (wait_s > 0 and start is not None and st is not None and not st.ended
                and st.known_last == start):
            # Caught up with what this worker knows: wait without asking Redis first.
            parked = await follower.park(st, start, wait_s)
            if parked is not None:
                return parked
            return await self._read_now(session_id, stream, start, check_writer=True)
        result = await self._read_now(session_id, stream, start)
        if result.events or result.ended or wait_s <= 0:
            return result
        st = follower.state(key, session_id)
        parked = await follower.park(st, start or (0, 0), wait_s)
        if parked is not None:
            return parked
        return await self._read_now(session_id, stream, start, check_writer=True)

    async def _read_now(self, session_id: str, stream: str, start: Id | None,
                        check_writer: bool = False) -> StreamRead:
        """Read from Redis. With ``check_writer`` (after a whole wait brought nothing), a
        stream whose writer has no heartbeat is ended with its epitaph (redis_liveness)."""
        key = self.keys.stream(session_id, stream)
        keys = [self.keys.session(session_id), key, self.keys.epitaph(session_id, stream)]
        begin = "-" if start is None else "(" + format_id(start)
        with self._redis() as client:
            reply = await self._script(client, "read", keys,
                                       [begin, _READ_BATCH, self.stream_ttl_ms])
            writer = reply[2] if reply[0] == 1 and len(reply) > 2 else None
            if check_writer and writer and await self._liveness.gone(writer):
                log.warning("worker %s is gone: ending its stream %s with its epitaph",
                            writer.decode(errors="replace"), key)
                reply = await self._script(client, "bury", keys, [
                    begin, _READ_BATCH, self.stream_maxlen, self.stream_ttl_ms])
        if reply[0] == 0:
            self._follower.forget(key)
            return MISSING
        st = self._follower.state(key, session_id)
        if reply[0] == 1:
            last, final = decode_entries([reply[1]])
            self._follower.saw(st, parse_id(last[0].position), final)
            return StreamRead([], ended=final)
        events, final = decode_entries(reply[1])
        if events:  # (BURY may find nothing new: its writer ended it just in time)
            self._follower.saw(st, parse_id(events[-1].position), final)
        return StreamRead(events, ended=final)

    # -- mailboxes and changes (see redis_router) -----------------------------------

    def open_mailbox(
        self, session_id: str, key: str
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[bytes]]:
        return self._router.open_mailbox(session_id, key)

    def on_delivery(
        self, session_id: str, key: str, callback: Callable[[bytes], None]
    ) -> AbstractContextManager[None]:
        return self._router.on_delivery(session_id, key, callback)

    async def deliver(self, session_id: str, key: str, payload: bytes) -> bool:
        return await self._router.deliver(session_id, key, payload)

    async def publish_change(self, payload: bytes) -> None:
        await self._router.publish_change(payload)

    def open_changes(self) -> AbstractAsyncContextManager[ChangeFeed]:
        return self._router.open_changes()

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        with self._redis() as client, self._link.timed("claim"):
            return bool(await client.set(self.keys.claim(key), b"1", condition=PureToken.NX,
                                         px=max(1, int(ttl_s * 1000))))

    async def acquire_inflight(self, session_id: str, n: int, limit: int) -> bool:
        """One script; on a refusal, the counts of workers with no heartbeat (killed while
        they ran requests of the session) are forgotten and the script tried once more."""
        key = self.keys.inflight(session_id)
        args = [self._liveness.worker, n, limit, self.idle_ttl_ms]
        with self._redis() as client:
            reply = await self._script(client, "inflight_take", [key], args)
            if reply == 1:
                return True
            workers = [w for w in reply[::2] if w != self._liveness.worker]
            dead = [w for w in workers if await self._liveness.gone(w)]
            if not dead:
                return False
            await client.hdel(key, dead)
            return bool(await self._script(client, "inflight_take", [key], args) == 1)

    async def release_inflight(self, session_id: str, n: int) -> None:
        with self._redis() as client:
            await self._script(client, "inflight_return", [self.keys.inflight(session_id)],
                               [self._liveness.worker, n])

    async def take_tokens(self, owner: str, buckets: Sequence[TokenBucket]) -> Throttled | None:
        """One EVALSHA over the owner's buckets (see :mod:`.redis_buckets`)."""
        if not buckets:
            return None
        keys = [bucket_key(self.keys.prefix, owner, b.name) for b in buckets]
        with self._redis() as client:
            reply = await self._script(client, "take", keys, take_args(buckets))
        return throttled(reply, buckets)

    # -- the worker's reader ---------------------------------------------------------

    async def _xread(self, streams: dict[str, str], count: int, block_ms: int) -> Any:
        client = self._link.client
        if client is None:
            raise coredis.exceptions.ConnectionError("not connected")
        try:
            return await client.xread(streams, count=count, block=block_ms or None)
        except ERRORS as exc:  # (the reader retries; counted in scalemcp_redis_errors_total)
            self._link.failed(exc)
            raise

    async def _xread_many(self, groups: list[dict[str, str]], count: int) -> list[Any]:
        """One non-blocking XREAD per group (each of one slot), in one pipeline."""
        client = self._link.client
        if client is None:
            raise coredis.exceptions.ConnectionError("not connected")
        async with self._link.timed("xread_many"), client.pipeline(transaction=False) as pipe:
            replies = [pipe.xread(group, count=count) for group in groups]
        return [await reply for reply in replies]

    async def _cursors(self) -> dict[str, Id]:
        """Where the reader starts: its new inbox from the start, broadcasts from now.

        Run when the reader starts (again until it succeeds), so it also loads the
        scripts; a Redis that forgets them later answers NOSCRIPT once per script.
        """
        client = self._link.client
        if client is None:
            raise coredis.exceptions.ConnectionError("not connected")
        await self._link.load_scripts(client)
        last = await client.xrevrange(self.keys.broadcast, "+", "-", count=1)
        start = parse_id(last[0].identifier) if last else None
        return {self._router.inbox: (0, 0), self.keys.broadcast: start or (0, 0)}

    async def _upkeep(self) -> None:
        """Forget idle local stream state (every 10 s); sweep expired sessions out of the
        fleet-wide index and refresh the session count (every idle TTL, 1 to 60 s)."""
        prune_every = 10.0
        sweep_every = min(60.0, max(1.0, self.idle_ttl_ms / 1000))
        next_prune = trio.current_time() + prune_every
        next_sweep = trio.current_time() + min(prune_every, sweep_every)
        while True:
            await trio.sleep_until(min(next_prune, next_sweep))
            now = trio.current_time()
            if now >= next_prune:
                self._follower.prune()
                next_prune = now + prune_every
            if now >= next_sweep:
                next_sweep = now + sweep_every
                try:
                    with self._redis() as client:
                        self._sessions_seen = await self._sweep(
                            client, self.keys.sessions, batches=1000)
                except BackendUnavailable as exc:
                    log.debug("session count not refreshed: %s", exc)

    # -- health ----------------------------------------------------------------------

    async def ready(self) -> bool:
        return await self._unreachable() is None

    async def _unreachable(self) -> str | None:
        """Why Redis does not answer a PING now, or None if it does."""
        try:
            with (self._redis() as client, trio.fail_after(self._connect_timeout_s),
                  self._link.timed("ping")):
                await client.ping()
        except BackendUnavailable as exc:
            return str(exc)
        except trio.TooSlowError:
            return f"no answer to PING within {self._connect_timeout_s:g} s"
        return None

    async def _watch_health(self) -> None:
        """Say when Redis becomes unreachable (why, and what happens meanwhile) and when
        it answers again: otherwise a worker that cannot reach it at start is silent."""
        every = self._health_check_s
        down_since: float | None = None
        while True:
            reason = await self._unreachable()
            now = trio.current_time()
            if reason is not None and down_since is None:
                down_since = now
                log.warning("Redis at %s is unreachable (%s); checking again every %g s; "
                            "until it answers, /readyz and session-era requests get 503",
                            self.target, reason, every)
            elif reason is None and down_since is not None:
                log.warning("Redis at %s answers again after %.1f s", self.target,
                            now - down_since)
                down_since = None
            await trio.sleep(every)

    def statistics(self) -> StateStatistics:
        return StateStatistics(
            backend=self.name,
            sessions=self._sessions_seen,
            streams=len(self._follower.streams),
            mailboxes=len(self._router.mailboxes),
            healthy=self._link.client is not None and self._follower.healthy,
        )
