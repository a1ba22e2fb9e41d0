"""The task store of one process (the memory backend): the contract of ``state/tasks.py``.

Leases and TTLs are kept on Trio's clock (tests run it as a mock clock); the times a client
sees (``createdAt``) are wall-clock milliseconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import trio

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

__all__ = ["MemoryTaskStore", "dead_worker_error"]

_EVENT_BUFFER = 1000


def dead_worker_error() -> bytes:
    """The JSON-RPC error of a task whose worker died once too often (a dead letter)."""
    message = ("the worker running this task stopped, and the tool's retry policy allows "
               "no further attempt")
    return msgspec.json.encode({"code": -32603, "message": message})


def now_ms() -> int:
    return int(time.time() * 1000)


class MemoryTaskStore:
    def __init__(self) -> None:
        self._records: dict[str, TaskRecord] = {}
        self._queue: deque[str] = deque()
        self._lease_until: dict[str, float] = {}
        self._expires: dict[str, float] = {}
        self._wakeup = trio.Event()
        self._listeners: set[trio.MemorySendChannel[TaskEvent]] = set()
        self._dead_letters = 0
        self.held_back = 0

    # -- reading ---------------------------------------------------------------------

    def _live(self, task_id: str) -> TaskRecord | None:
        record = self._records.get(task_id)
        if record is not None and self._expires[task_id] <= trio.current_time():
            self._forget(task_id)
            return None
        return record

    def _forget(self, task_id: str) -> None:
        self._records.pop(task_id, None)
        self._expires.pop(task_id, None)
        self._lease_until.pop(task_id, None)

    async def get(self, task_id: str) -> TaskRecord | None:
        record = self._live(task_id)
        return None if record is None else msgspec.structs.replace(record)

    async def list(self, principal: str | None, *, limit: int = 100) -> list[TaskRecord]:
        await trio.lowlevel.checkpoint()
        mine = [r for r in list(self._records.values())
                if r.principal == principal and self._live(r.task_id) is not None]
        mine.sort(key=lambda r: r.created_ms, reverse=True)
        return [msgspec.structs.replace(r) for r in mine[:limit]]

    async def statistics(self) -> TaskStatistics:
        running = sum(1 for r in self._records.values() if r.owner)
        return TaskStatistics(queued=len(self._queue), running=running,
                              dead_letters=self._dead_letters)

    # -- writing ---------------------------------------------------------------------

    def _publish(self, record: TaskRecord, *, cancel: bool = False) -> None:
        event = TaskEvent(record.task_id, record.status, cancel)
        for channel in list(self._listeners):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:  # a listener that lags loses events, not the store
                pass
            except trio.BrokenResourceError:
                self._listeners.discard(channel)

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = trio.Event()

    def _enqueue(self, task_id: str) -> None:
        self._queue.append(task_id)
        self._wake()

    async def create(self, record: TaskRecord, *, max_active: int = 0) -> TaskRecord:
        if max_active and len(self._queue) + len(self._lease_until) >= max_active:
            raise QueueFull(f"{max_active} tasks are waiting or running")
        stamp = now_ms()
        stored = msgspec.structs.replace(record, status="working", created_ms=stamp,
                                         updated_ms=stamp, token=0, attempts=0, owner="")
        self._records[record.task_id] = stored
        self._expires[record.task_id] = trio.current_time() + record.ttl_ms / 1000
        self._enqueue(record.task_id)
        await trio.lowlevel.checkpoint()
        return msgspec.structs.replace(stored)

    async def create_and_claim(self, record: TaskRecord, worker: str, *,
                               max_active: int = 0, limits: RunLimits = NO_LIMITS
                               ) -> tuple[TaskRecord, Claim | None]:
        stored = await self.create(record, max_active=max_active)
        return stored, self._next(worker, limits)

    def _holds(self, claim: Claim) -> TaskRecord | None:
        record = self._live(claim.task_id)
        if record is None or record.token != claim.token:
            return None
        if record.status != "working" and not (record.status == "input_required"
                                               and record.owner):
            return None
        return record

    def _end(self, record: TaskRecord, status: TaskStatus, *, result: bytes | None = None,
             error: bytes | None = None, message: str | None = None) -> None:
        record.status = status
        record.result, record.error = result, error
        if message is not None:
            record.status_message = message
        record.input_requests = {}
        record.owner = ""
        record.updated_ms = now_ms()
        record.terminal_writes += 1
        self._lease_until.pop(record.task_id, None)
        self._publish(record)
        self._wake()  # a slot of its principal and its tool is free

    def _over(self, record: TaskRecord, limits: RunLimits) -> bool:
        now = trio.current_time()
        running = [r for task_id, until in self._lease_until.items() if until > now
                   and task_id != record.task_id
                   and (r := self._records.get(task_id)) is not None]
        return bool(
            (limits.per_principal and sum(r.principal == record.principal for r in running)
             >= limits.per_principal)
            or (limits.per_tool and sum(r.tool == record.tool for r in running)
                >= limits.per_tool))

    def _start(self, task_id: str, worker: str, limits: RunLimits) -> Claim | None:
        """The claim script's logic (redis_tasks.START): run, end, or leave the task."""
        record = self._live(task_id)
        if (record is None or record.terminal
                or (record.status == "input_required" and not record.owner)):  # parked
            return None
        if record.cancel_requested:
            self._end(record, "cancelled", message="cancelled")
            return None
        if record.owner and self._lease_until.get(task_id, 0.0) > trio.current_time():
            return None
        if record.attempts >= record.max_attempts:
            self._dead_letters += 1
            self._end(record, "failed", error=dead_worker_error(),
                      message="the worker running this task stopped")
            return None
        if self._over(record, limits):  # back to the end of the queue
            record.owner = ""
            self._lease_until.pop(task_id, None)
            self._queue.append(task_id)
            self.held_back += 1
            return None
        record.status = "working"
        record.attempts += 1
        record.token += 1
        record.owner = worker
        record.updated_ms = now_ms()
        self._lease_until[task_id] = trio.current_time() + record.lease_ms / 1000
        return Claim(task_id=task_id, token=record.token, attempt=record.attempts,
                     worker=worker, record=msgspec.structs.replace(record))

    def _next(self, worker: str, limits: RunLimits) -> Claim | None:
        now = trio.current_time()
        queued = len(self._queue)  # each looked at once: a held-back one goes back
        for task_id, until in list(self._lease_until.items()):
            if until <= now:
                claim = self._start(task_id, worker, limits)
                if claim is not None:
                    return claim
        for _ in range(min(queued, len(self._queue))):
            claim = self._start(self._queue.popleft(), worker, limits)
            if claim is not None:
                return claim
        return None

    async def claim(self, worker: str, *, wait_s: float, limits: RunLimits = NO_LIMITS,
                    free: int = 1) -> Claim | None:
        del free  # (one task at a time is taken over here: never more than one slot)
        await trio.lowlevel.checkpoint()
        deadline = trio.current_time() + wait_s
        while True:
            claim = self._next(worker, limits)
            if claim is not None or trio.current_time() >= deadline:
                return claim
            # Woken by a new entry, or in time to see the earliest lease run out.
            wake = min([deadline, *self._lease_until.values()])
            with trio.move_on_at(max(wake, trio.current_time() + 0.001)):
                await self._wakeup.wait()

    async def heartbeat(self, claim: Claim) -> Beat:
        await trio.lowlevel.checkpoint()
        record = self._holds(claim)
        if record is None:
            return "lost"
        self._lease_until[claim.task_id] = trio.current_time() + record.lease_ms / 1000
        return "cancel" if record.cancel_requested else "ok"

    async def progress(self, claim: Claim, message: str, *,
                       status: RunStatus = "working") -> bool:
        await trio.lowlevel.checkpoint()
        record = self._holds(claim)
        if record is None:
            return False
        record.status = status
        record.status_message = message
        record.updated_ms = now_ms()
        self._publish(record)
        return True

    async def park(self, claim: Claim, requests: dict[str, bytes]) -> bool:
        await trio.lowlevel.checkpoint()
        record = self._holds(claim)
        if record is None:
            return False
        record.status = "input_required"
        record.input_requests = dict(requests)
        record.owner = ""
        record.attempts = max(0, record.attempts - 1)  # it ended well: not a lost attempt
        record.updated_ms = now_ms()
        self._lease_until.pop(claim.task_id, None)
        self._publish(record)
        self._wake()
        return True

    async def answer(self, task_id: str, responses: dict[str, bytes]) -> TaskRecord | None:
        await trio.lowlevel.checkpoint()
        record = self._live(task_id)
        if record is None:
            return None
        if record.status == "input_required":
            taken = {k: v for k, v in responses.items() if k in record.input_requests}
            if taken:
                record.answers = {**record.answers, **taken}
                record.input_requests = {k: v for k, v in record.input_requests.items()
                                         if k not in taken}
                record.updated_ms = now_ms()
                if not record.input_requests:
                    record.status = "working"
                    self._enqueue(task_id)
                self._publish(record)
        return msgspec.structs.replace(record)

    async def finish(
        self, claim: Claim, status: TaskStatus, *, result: bytes | None = None,
        error: bytes | None = None, message: str | None = None,
    ) -> bool:
        await trio.lowlevel.checkpoint()
        record = self._holds(claim)
        if record is None:
            return False
        self._end(record, status, result=result, error=error, message=message)
        return True

    async def release(self, claim: Claim) -> None:
        await trio.lowlevel.checkpoint()
        record = self._holds(claim)
        if record is None:
            return
        record.owner = ""
        record.attempts = max(0, record.attempts - 1)
        self._lease_until.pop(claim.task_id, None)
        self._enqueue(claim.task_id)

    async def cancel(self, task_id: str) -> TaskRecord | None:
        await trio.lowlevel.checkpoint()
        record = self._live(task_id)
        if record is None:
            return None
        if not record.terminal:
            if record.owner:
                record.cancel_requested = True
                self._publish(record, cancel=True)
            else:  # queued or parked: nobody runs it, so it ends now
                self._end(record, "cancelled", message="cancelled")
        return msgspec.structs.replace(record)

    @asynccontextmanager
    async def open_events(self) -> AsyncIterator[trio.MemoryReceiveChannel[TaskEvent]]:
        send, receive = trio.open_memory_channel[TaskEvent](_EVENT_BUFFER)
        self._listeners.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._listeners.discard(send)
            send.close()

