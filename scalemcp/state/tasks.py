"""Durable tasks: the records, and the store every backend implements.

Theory of operation
-------------------
A *task* is a record (status, who owns it, what to run, its result) with a TTL from its
creation, and a *queue entry* that a worker claims. ``create`` writes both at once, so a
``get`` on any worker resolves as soon as ``create`` returns.

Claiming gives a worker a *lease* (``lease_s``, seconds) and a *fencing token*: the
record's token is incremented by every claim, and every write a worker makes afterwards
(progress, park, finish) names its token and is refused if the record moved on. A worker
that stalls past its lease, or dies, loses the task to the next ``claim`` on any worker;
the old worker's writes then fail, so at most one result is ever written. Terminal states
(``completed``, ``failed``, ``cancelled``) never change.

Each claim counts an *attempt*; a run that ends well without a result (it parked for
input, or was handed back at shutdown) gives its attempt back. A task whose attempts reach
``max_attempts`` and whose worker disappears again ends ``failed`` (a dead letter) instead
of running once more; a tool not safe to re-run has ``max_attempts = 1``: its task fails
at once when its worker dies.

A running task that needs the client's answers is *parked* (``input_required``): its lease
and queue entry are released, so no worker holds it while it waits. ``answer`` records
responses to outstanding requests; when none is outstanding any more the task is queued
again and the next claim runs it with every answer so far.

``cancel`` ends a queued or parked task at once; a running one is flagged, the flag is
announced (an event) and returned by the running worker's next heartbeat; that worker stops
the work and only then writes ``cancelled``. A worker that died while a cancellation was
pending has its task end ``cancelled`` on the next claim.

Every change of status is published as a :class:`TaskEvent` that every worker sees.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Final, Literal, Protocol

import msgspec
import trio

__all__ = [
    "NO_LIMITS",
    "TERMINAL",
    "Beat",
    "Claim",
    "QueueFull",
    "RunLimits",
    "RunStatus",
    "TaskEvent",
    "TaskRecord",
    "TaskStatistics",
    "TaskStatus",
    "TaskStore",
]

TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
#: What a running task's own writes may set: ``input_required`` while its run waits,
#: still holding the task, for the client's answer (2025-11-25 requests to the client).
RunStatus = Literal["working", "input_required"]
TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})
#: What a heartbeat learns: keep going, stop because a cancellation was asked, or stop
#: because the task is no longer this worker's (fenced, expired, ended).
Beat = Literal["ok", "cancel", "lost"]


class TaskRecord(msgspec.Struct, kw_only=True):
    """One task. Times are milliseconds since the epoch (the backend's clock)."""

    task_id: str
    #: Who may see it (None without authentication).
    principal: str | None = None
    #: What to run (the engine's encoded call); opaque to the store.
    request: bytes = b""
    status: TaskStatus = "working"
    status_message: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    ttl_ms: int = 60_000
    poll_interval_ms: int = 1000
    #: A claim's lease; a worker renews it by heartbeats.
    lease_ms: int = 3000
    max_attempts: int = 1
    attempts: int = 0
    token: int = 0
    #: The worker holding the lease ("" when queued or parked).
    owner: str = ""
    cancel_requested: bool = False
    #: The final result (JSON), with ``completed`` (and a ``cancelled`` one may keep none).
    result: bytes | None = None
    #: The JSON-RPC error (JSON), with ``failed``.
    error: bytes | None = None
    #: Outstanding requests to the client, by key (JSON of ``{method, params}``).
    input_requests: dict[str, bytes] = {}
    #: The client's answers so far, by key (JSON).
    answers: dict[str, bytes] = {}
    #: The tool it runs (what the per-tool limit of :class:`RunLimits` counts).
    tool: str = ""
    #: How many terminal writes were made (never more than 1: fencing's witness).
    terminal_writes: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's hold on a task: its writes name ``token``."""

    task_id: str
    token: int
    attempt: int
    worker: str
    record: TaskRecord
    #: The queue entry (the backend's; Redis: the stream entry id).
    entry: str = ""


class TaskEvent(msgspec.Struct, frozen=True):
    """A change of a task, seen by every worker: a new status, or a cancellation asked."""

    task_id: str
    status: str
    cancel: bool = False


class QueueFull(Exception):
    """``create`` refused: the fleet already holds ``max_active`` tasks waiting or running."""


class RunLimits(msgspec.Struct, frozen=True):
    """Most tasks running at once (fleet-wide) per principal and per tool; 0: no limit.

    A task over a limit is not refused: a claim that finds it *holds it back* (it goes
    back to the end of the queue and another task is tried), so it waits queued until
    a task of its principal or tool ends. Tasks without a principal (no authentication)
    share one."""

    per_principal: int = 0
    per_tool: int = 0


NO_LIMITS: Final = RunLimits()


class TaskStatistics(msgspec.Struct, frozen=True):
    queued: int
    running: int
    dead_letters: int


class TaskStore(Protocol):
    """Where tasks live; one contract for every backend (``tests/state/test_tasks.py``)."""

    async def create(self, record: TaskRecord, *, max_active: int = 0) -> TaskRecord:
        """Store ``record`` (status ``working``), queue it and set its TTL, atomically;
        the record as stored (its creation time set). With ``max_active``, raises
        :class:`QueueFull` (and stores nothing) if that many tasks wait or run already."""

    async def create_and_claim(self, record: TaskRecord, worker: str, *,
                               max_active: int = 0, limits: RunLimits = NO_LIMITS
                               ) -> tuple[TaskRecord, Claim | None]:
        """:meth:`create`, then (in the same round trip) :meth:`claim` for ``worker``
        without waiting: the next task, this one unless older ones wait. For a worker
        with a free slot: a short task starts without a trip through the queue."""

    async def get(self, task_id: str) -> TaskRecord | None:
        """The task, or None if unknown or expired."""

    #: How many times a claim held a task back for ``limits`` (the metrics read it).
    held_back: int

    async def claim(self, worker: str, *, wait_s: float, limits: RunLimits = NO_LIMITS,
                    free: int = 1) -> Claim | None:
        """The next queued task, or one whose worker's lease ran out, for ``worker``;
        waits up to ``wait_s`` for one. A claim that ends the task instead (a dead
        letter, a pending cancellation) returns None for that task and looks further;
        a task over ``limits`` is held back (see :class:`RunLimits`). ``free``: how many
        tasks the caller could start now (this one included); tasks taken over from a
        dead worker are taken no more than that many at a time."""

    async def heartbeat(self, claim: Claim) -> Beat:
        """Renew the lease."""

    async def progress(self, claim: Claim, message: str, *,
                       status: RunStatus = "working") -> bool:
        """Set the status message of a running task, and its status: ``input_required``
        while the run waits for the client (still holding the task: its lease runs on,
        unlike :meth:`park`), ``working`` again after; False if fenced."""

    async def park(self, claim: Claim, requests: dict[str, bytes]) -> bool:
        """``input_required`` with ``requests`` outstanding; the lease is released."""

    async def answer(self, task_id: str, responses: dict[str, bytes]) -> TaskRecord | None:
        """Record answers to outstanding requests (others are ignored); queue the task
        again once nothing is outstanding. None if the task is unknown."""

    async def finish(
        self, claim: Claim, status: TaskStatus, *, result: bytes | None = None,
        error: bytes | None = None, message: str | None = None,
    ) -> bool:
        """Write the terminal ``status``; False (nothing written) if fenced or terminal."""

    async def release(self, claim: Claim) -> None:
        """Hand a running task back (drain): queued again, its attempt not counted."""

    async def cancel(self, task_id: str) -> TaskRecord | None:
        """Ask for cancellation (see the module); the record after, None if unknown."""

    def open_events(self) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[TaskEvent]]:
        """Every task event from now on, from every worker."""

    async def list(self, principal: str | None, *, limit: int = 100) -> list[TaskRecord]:
        """The live tasks of ``principal``, newest first (2025-11-25's ``tasks/list``)."""

    async def statistics(self) -> TaskStatistics: ...
