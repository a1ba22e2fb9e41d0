"""The task store on Redis: a hash per task, a Streams consumer group as the queue.

Keys (one hash tag, so every script touches one Cluster slot)::

    <prefix>{tasks}:t:<id>   hash: the task (fields in redis_tasks_lua), TTL = the task's
    <prefix>{tasks}:q        stream: the queue, entries {t: id}; consumer group ``w``
    <prefix>{tasks}:ev       stream: task events {t, s, c}, capped; every worker tails it
    <prefix>{tasks}:dead     stream: dead letters {t, a}, capped
    <prefix>{tasks}:run:p:<principal>, <prefix>{tasks}:run:t:<tool>
                             zsets: running tasks by lease end (the RunLimits counts)

A claim is ``XAUTOCLAIM`` (entries whose consumer has not renewed them for a lease: its
worker died or stalled; no more than the claiming worker has free slots for) then
``XREADGROUP`` (new entries: the CLAIM script, or a blocking read on a lane of its own
when the queue is empty), and for each entry the START script, which decides on the task
hash: run it (a new fencing token, an attempt counted), end it (cancelled, or failed as a
dead letter), or leave it (its lease is still held). A heartbeat renews the lease in the
hash and the entry's idle time (``XCLAIM ... JUSTID``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import msgspec
import trio

from ..errors import BackendUnavailable
from .redis_router import NO_LANE, Link
from .redis_tasks_lua import (
    ANSWER,
    CANCEL,
    CLAIM,
    CREATE,
    CREATE_CLAIM,
    FINISH,
    GROUP,
    HEARTBEAT,
    PARK,
    PROGRESS,
    RELEASE,
    START,
)
from .tasks import (
    NO_LIMITS,
    Beat,
    Claim,
    QueueFull,
    RunLimits,
    RunStatus,
    TaskEvent,
    TaskRecord,
    TaskStatistics,
    TaskStatus,
)
from .tasks_memory import dead_worker_error

__all__ = ["TASK_SCRIPTS", "RedisTaskStore", "decode_task"]

log = logging.getLogger("scalemcp.state.redis")

TASK_SCRIPTS = {
    "t_create": CREATE, "t_start": START, "t_beat": HEARTBEAT, "t_progress": PROGRESS,
    "t_park": PARK, "t_answer": ANSWER, "t_finish": FINISH, "t_release": RELEASE,
    "t_cancel": CANCEL, "t_group": GROUP, "t_claim": CLAIM, "t_create_claim": CREATE_CLAIM,
}
_GROUP = "w"
_EVENT_BUFFER = 1000
_EVENT_BATCH = 500
_RECLAIM_BATCH = 16
#: A claim that held a task back waits this long before it looks again: the entry it put
#: back is at once the next one to read.
_HELD_BACK_PAUSE_S = 0.05


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode()


def decode_task(task_id: str, fields: dict[bytes, bytes]) -> TaskRecord:
    """The record in a task hash (HGETALL)."""
    get = fields.get
    requests = {k[2:].decode(): v for k, v in fields.items() if k.startswith(b"q:")}
    answers = {k[2:].decode(): v for k, v in fields.items() if k.startswith(b"a:")}
    principal = get(b"pr")
    message = get(b"sm")
    return TaskRecord(
        task_id=task_id,
        principal=None if principal is None else principal.decode(),
        request=get(b"rq") or b"",
        status=_s(get(b"st")) or "working",  # type: ignore[arg-type]
        status_message=message.decode() if message else None,
        created_ms=int(get(b"cr") or 0), updated_ms=int(get(b"up") or 0),
        ttl_ms=int(get(b"ttl") or 0), poll_interval_ms=int(get(b"pi") or 0),
        lease_ms=int(get(b"ls") or 0), max_attempts=int(get(b"ma") or 1),
        attempts=int(get(b"at") or 0), token=int(get(b"tk") or 0),
        owner=_s(get(b"ow")), cancel_requested=get(b"cx") == b"1",
        result=get(b"rs"), error=get(b"er"),
        input_requests=requests, answers=answers,
        terminal_writes=int(get(b"tw") or 0), tool=_s(get(b"tl")),
    )


#: A stream entry: its id and its fields.
Entry = tuple[str, dict[bytes, bytes]]
Entries = list[Entry]  # (the store's ``list`` method hides the builtin in its class)


def _fields(record: TaskRecord) -> list[Any]:
    """The hash fields CREATE writes besides its own."""
    fields: list[Any] = ["rq", record.request, "ttl", record.ttl_ms,
                         "pi", record.poll_interval_ms, "ls", record.lease_ms,
                         "ma", record.max_attempts, "tl", record.tool]
    if record.principal is not None:
        fields += ["pr", record.principal]
    if record.status_message:
        fields += ["sm", record.status_message]
    for key, answer in record.answers.items():  # gathered before the task existed
        fields += [f"a:{key}", answer]
    return fields


def _created(record: TaskRecord, reply: Any, max_active: int) -> TaskRecord:
    """The record as CREATE stored it, or QueueFull."""
    if _s(reply[0]) == "full":
        raise QueueFull(f"{max_active} tasks are waiting or running")
    created = int(reply[1])
    return msgspec.structs.replace(record, status="working", created_ms=created,
                                   updated_ms=created, token=0, attempts=0, owner="")


def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisTaskStore:
    """:class:`~scalemcp.state.tasks.TaskStore` over the backend's :class:`Link`."""

    def __init__(self, link: Link, prefix: str, *, reclaim_idle_ms: int = 3000,
                 block_ms: int = 1000) -> None:
        self._link = link
        self._tag = f"{prefix}{{tasks}}"
        self.queue = f"{self._tag}:q"
        self.events = f"{self._tag}:ev"
        self.dead = f"{self._tag}:dead"
        #: An entry not renewed for this long is taken over (the default lease).
        self.reclaim_idle_ms = reclaim_idle_ms
        # Between takeover checks a claim blocks at most half a lease, so a dead worker's
        # task waits at most 1.5 leases (plus a heartbeat) for another worker.
        self._block_ms = max(1, min(block_ms, reclaim_idle_ms // 2))
        self._group_ready = False
        #: Entries taken over (XAUTOCLAIM) and not started yet: they are this worker's
        #: now, so each is started as a slot frees, not left for another lease to pass.
        self._taken: deque[tuple[str, str]] = deque()
        self._next_reclaim = 0.0
        self.held_back = 0
        self._limits = NO_LIMITS

    def key(self, task_id: str) -> str:
        return f"{self._tag}:t:{task_id}"

    def index(self, principal: str | None) -> str:
        """The principal's tasks (a zset), under the tasks' hash tag."""
        owner = "-" if principal is None else hashlib.blake2b(
            principal.encode(), digest_size=12).hexdigest()
        return f"{self._tag}:p:{owner}"

    def _keys(self, task_id: str) -> list[str]:
        return [self.key(task_id), self.queue, self.events]

    async def _run(self, name: str, task_id: str, args: list[Any],
                   extra: list[str] | None = None) -> Any:
        with self._link.redis() as client:
            return await self._link.script(client, name, [*self._keys(task_id), *(extra or [])],
                                           args)

    # -- the task's life -------------------------------------------------------------

    async def create(self, record: TaskRecord, *, max_active: int = 0) -> TaskRecord:
        reply = await self._run("t_create", record.task_id,
                                [record.task_id, record.ttl_ms, max_active,
                                 *_fields(record)],
                                [self.index(record.principal)])
        return _created(record, reply, max_active)

    async def create_and_claim(self, record: TaskRecord, worker: str, *,
                               max_active: int = 0, limits: RunLimits = NO_LIMITS
                               ) -> tuple[TaskRecord, Claim | None]:
        await self._ensure_group()
        reply = await self._run("t_create_claim", record.task_id,
                                [record.task_id, record.ttl_ms, max_active, worker, _GROUP,
                                 f"{self._tag}:t:", dead_worker_error(),
                                 limits.per_principal, limits.per_tool, *_fields(record)],
                                [self.index(record.principal), self.dead])
        created = _created(record, reply, max_active)
        claimed = reply[2]
        if int(claimed[0]) == -2:
            self.held_back += 1
        return created, self._claimed(worker, claimed) if int(claimed[0]) == 1 else None

    async def get(self, task_id: str) -> TaskRecord | None:
        with self._link.redis() as client, self._link.timed("t_get"):
            fields = await self._link.hgetall(client, self.key(task_id))
        return decode_task(task_id, fields) if fields else None

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        with self._link.redis() as client:
            await self._link.script(client, "t_group", [self.queue], [_GROUP])
        self._group_ready = True

    async def _start(self, worker: str, task_id: str, entry: str) -> Claim | None:
        limits = self._limits
        reply = await self._run("t_start", task_id,
                                [task_id, entry, worker, _GROUP, dead_worker_error(),
                                 limits.per_principal, limits.per_tool],
                                [self.dead])
        if int(reply[0]) == -2:
            self.held_back += 1
        return self._claimed(worker, reply) if int(reply[0]) == 1 else None

    @staticmethod
    def _claimed(worker: str, reply: Any) -> Claim:
        """START's (or CLAIM's) reply: {1, token, attempt, HGETALL, id, entry}."""
        task_id, entry = _s(reply[4]), _s(reply[5])
        record = decode_task(task_id, _pairs(reply[3]))
        return Claim(task_id=task_id, token=int(reply[1]), attempt=int(reply[2]),
                     worker=worker, record=record, entry=entry)

    async def _take(self, worker: str, entries: Entries) -> Claim | None:
        for entry_id, fields in entries:
            named = fields.get(b"t")
            if named is not None:
                self._taken.append((named.decode(), entry_id))
        while self._taken:
            task_id, entry_id = self._taken.popleft()
            claim = await self._start(worker, task_id, entry_id)
            if claim is not None:
                return claim
        return None

    async def claim(self, worker: str, *, wait_s: float, limits: RunLimits = NO_LIMITS,
                    free: int = 1) -> Claim | None:
        await self._ensure_group()
        self._limits = limits
        held = self.held_back
        claim = await self._take(worker, [])
        if claim is not None:
            return claim
        now = trio.current_time()
        if now >= self._next_reclaim:  # (a lease is seconds: no need to look every claim)
            self._next_reclaim = now + self.reclaim_idle_ms / 4000
            claim = await self._take(worker, await self._reclaim(worker, free))
            if claim is not None:
                return claim
        try:
            with self._link.redis() as client:  # the next new entry, started: one round trip
                reply = await self._link.script(client, "t_claim",
                                                [self.queue, self.events, self.dead],
                                                [worker, _GROUP, f"{self._tag}:t:",
                                                 dead_worker_error(), limits.per_principal,
                                                 limits.per_tool])
        except BackendUnavailable as exc:
            if "NOGROUP" in str(exc):  # Redis lost its data (a restart): make it again
                self._group_ready = False
            raise
        if int(reply[0]) == 1:
            return self._claimed(worker, reply)
        if int(reply[0]) == -2:
            self.held_back += 1
        if self.held_back != held:  # what it put back would be read at once: pause
            await trio.sleep(min(wait_s, _HELD_BACK_PAUSE_S))
            return None
        block = max(1, int(min(wait_s, self._block_ms / 1000) * 1000))
        try:
            got = await self._wait_new(worker, block)
        except BackendUnavailable as exc:
            if "NOGROUP" in str(exc):  # Redis lost its data (a restart): make it again
                self._group_ready = False
            raise
        claim = await self._take(worker, got)
        if claim is None and self.held_back != held:
            await trio.sleep(min(wait_s, _HELD_BACK_PAUSE_S))
        return claim

    async def _reclaim(self, worker: str, free: int) -> Entries:
        """Take over entries whose lease ran out (XAUTOCLAIM), no more than ``free``:
        each taken is this worker's to start, and another worker with free slots could
        start what this one has no room for."""
        count = max(1, min(free, _RECLAIM_BATCH))
        with self._link.redis() as client, self._link.timed("t_reclaim"):
            reply = await self._link.command(client, b"XAUTOCLAIM", self.queue, _GROUP,
                                             worker, self.reclaim_idle_ms, b"0-0",
                                             b"COUNT", count)
            if reply is NO_LANE:
                reclaimed = await client.xautoclaim(self.queue, _GROUP, worker,
                                                    self.reclaim_idle_ms, "0-0", count=count)
                return _coredis_entries(reclaimed[1] if reclaimed else ())
        return _raw_entries(reply[1])

    async def _wait_new(self, worker: str, block_ms: int) -> Entries:
        """The next new entry for ``worker`` (XREADGROUP BLOCK), on a lane of its own."""
        with self._link.redis() as client:
            reply = await self._link.blocking(
                client, "claim", block_ms, b"XREADGROUP", b"GROUP", _GROUP, worker,
                b"COUNT", 1, b"BLOCK", block_ms, b"STREAMS", self.queue, b">")
            if reply is NO_LANE:
                got = await client.xreadgroup(_GROUP, worker, {self.queue: ">"}, count=1,
                                              block=block_ms)
                return _coredis_entries((got or {}).get(self.queue.encode(), ()))
        return _read_entries(reply, self.queue)

    async def heartbeat(self, claim: Claim) -> Beat:
        reply = await self._run("t_beat", claim.task_id,
                                [claim.token, claim.worker, _GROUP, claim.entry,
                                 claim.task_id])
        beat = reply.decode() if isinstance(reply, bytes) else str(reply)
        return "cancel" if beat == "cancel" else "ok" if beat == "ok" else "lost"

    async def progress(self, claim: Claim, message: str, *,
                       status: RunStatus = "working") -> bool:
        return bool(await self._run("t_progress", claim.task_id,
                                    [claim.token, claim.task_id, message, status]))

    async def park(self, claim: Claim, requests: dict[str, bytes]) -> bool:
        pairs = [x for key, value in requests.items() for x in (key, value)]
        return bool(await self._run("t_park", claim.task_id,
                                    [claim.token, claim.task_id, _GROUP, claim.entry, *pairs]))

    async def answer(self, task_id: str, responses: dict[str, bytes]) -> TaskRecord | None:
        pairs = [x for key, value in responses.items() for x in (key, value)]
        if not await self._run("t_answer", task_id, [task_id, *pairs]):
            return None
        return await self.get(task_id)

    async def finish(
        self, claim: Claim, status: TaskStatus, *, result: bytes | None = None,
        error: bytes | None = None, message: str | None = None,
    ) -> bool:
        return bool(await self._run(
            "t_finish", claim.task_id,
            [claim.token, claim.task_id, _GROUP, claim.entry, status, result or b"",
             error or b"", message or ""]))

    async def release(self, claim: Claim) -> None:
        await self._run("t_release", claim.task_id,
                        [claim.token, claim.task_id, _GROUP, claim.entry])

    async def cancel(self, task_id: str) -> TaskRecord | None:
        if not await self._run("t_cancel", task_id, [task_id, _GROUP]):
            return None
        return await self.get(task_id)

    async def list(self, principal: str | None, *, limit: int = 100) -> list[TaskRecord]:
        index = self.index(principal)
        with self._link.redis() as client, self._link.timed("t_list"):
            ids = [_s(cast(bytes, i)) for i in await client.zrevrange(index, 0, limit * 2)]
            async with client.pipeline(transaction=False) as pipe:
                replies = [pipe.hgetall(self.key(i)) for i in ids]
            found = [(i, dict(await reply)) for i, reply in zip(ids, replies, strict=True)]
            gone = [i for i, fields in found if not fields]
            if gone:
                await client.zrem(index, gone)
        return [decode_task(i, fields) for i, fields in found if fields][:limit]

    async def statistics(self) -> TaskStatistics:
        with self._link.redis() as client:
            queued = await client.xlen(self.queue)
            dead = await client.xlen(self.dead)
        return TaskStatistics(queued=queued, running=0, dead_letters=dead)

    # -- events ----------------------------------------------------------------------

    @asynccontextmanager
    async def open_events(self) -> AsyncIterator[trio.MemoryReceiveChannel[TaskEvent]]:
        send, receive = trio.open_memory_channel[TaskEvent](_EVENT_BUFFER)
        started = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tail, send, started)
            await started.wait()
            try:
                async with receive:
                    yield receive
            finally:
                nursery.cancel_scope.cancel()

    async def _tail(self, send: trio.MemorySendChannel[TaskEvent], started: trio.Event) -> None:
        """Follow the event stream from now on, reconnecting while Redis is away."""
        cursor: str | None = None
        async with send:
            while True:
                try:
                    if cursor is None:
                        with self._link.redis() as client:
                            last = await client.xrevrange(self.events, "+", "-", count=1)
                        cursor = _s(last[0].identifier) if last else "0-0"
                        started.set()
                    got = await self._read_events(cursor)
                except BackendUnavailable as exc:
                    log.debug("task events: %s", exc)
                    started.set()
                    await trio.sleep(0.5)
                    continue
                for entry_id, fields in got:
                    cursor = entry_id
                    event = TaskEvent(_s(fields.get(b"t")), _s(fields.get(b"s")),
                                      fields.get(b"c") == b"1")
                    with contextlib.suppress(trio.WouldBlock):  # a listener that lags
                        send.send_nowait(event)                # loses events, not Redis

    async def _read_events(self, cursor: str) -> Entries:
        """Events after ``cursor`` (XREAD BLOCK), on a lane of their own."""
        with self._link.redis() as client:
            reply = await self._link.blocking(
                client, "task events", self._block_ms, b"XREAD", b"COUNT", _EVENT_BATCH,
                b"BLOCK", self._block_ms, b"STREAMS", self.events, cursor)
            if reply is NO_LANE:
                got = await client.xread({self.events: cursor}, count=_EVENT_BATCH,
                                         block=self._block_ms)
                return _coredis_entries((got or {}).get(self.events.encode(), ()))
        return _read_entries(reply, self.events)



def _read_entries(reply: Any, stream: str) -> Entries:
    """The entries of ``stream`` in a raw XREAD / XREADGROUP reply (RESP3: a map of
    stream to entries; None when the block ran out)."""
    if not reply:
        return []
    return _raw_entries(reply.get(stream.encode(), ()))


def _raw_entries(entries: Any) -> Entries:
    """Raw entries ``[id, [field, value, ...]]``; a deleted one (None, or no fields) is
    skipped, as coredis skips it."""
    out: list[Entry] = []
    for entry in entries or ():
        if entry and entry[1] is not None:
            flat = entry[1]
            out.append((entry[0].decode(),
                        {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}))
    return out


def _coredis_entries(entries: Any) -> Entries:
    """coredis' entries (a cluster, a Sentinel master: no lane) as :data:`Entry`."""
    return [(_s(e.identifier), dict(e.field_values or {})) for e in entries or ()]
