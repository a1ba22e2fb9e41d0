"""The task runner: claim, heartbeat, run, cancel, write, per worker.

Theory of operation
-------------------
One claim loop per worker takes a free slot (``concurrency`` of them), then a task
(``store.claim``), and starts it. Each running task has a cancel scope and a heartbeat
that renews its lease every third of it (one loop starts every task's heartbeat as it
falls due). The scope is cancelled when:

- the task's cancellation is announced (a :class:`TaskEvent` with ``cancel``, from any
  worker: a few milliseconds), or a heartbeat says ``cancel`` (the fallback); the task is
  written ``cancelled`` only after the work has stopped;
- a heartbeat says ``lost`` (the lease passed to another worker, the task expired or
  ended): nothing is written, the successor's writes stand.

When the worker shuts down, tasks still running are handed back (``store.release``)
so another worker runs them at once, without waiting for the lease to run out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import trio
from prometheus_client import Counter, Histogram

from ..errors import BackendUnavailable
from ..observability.metrics import (
    TASK_CLAIM_WAIT_SECONDS,
    TASK_DEAD_LETTERS,
    TASK_EVENTS,
    TASK_REDELIVERIES,
    TASK_RUN_SECONDS,
    TASK_TIME_TO_TERMINAL_SECONDS,
    TASKS_HELD_BACK,
    TASKS_QUEUED,
    TASKS_RUNNING,
)
from ..state.tasks import NO_LIMITS, Claim, RunLimits, TaskEvent, TaskStore

__all__ = ["Execute", "Outcome", "TaskRunner"]

log = logging.getLogger("scalemcp.tasks")

#: How long a shutting-down worker tries to hand its tasks back.
_RELEASE_S = 2.0
#: The shortest interval between a task's heartbeats; the heartbeat loop looks at least
#: this often, so that it never sleeps past a task started meanwhile.
_MIN_BEAT_S = 0.05
#: Metric children by status (``labels()`` is not free; statuses are few).
_EVENTS: dict[str, Counter] = {}
_TERMINAL: dict[str, Histogram] = {}


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What running a task came to: a final status, or questions for the client."""

    kind: Literal["completed", "failed", "park"]
    result: bytes | None = None
    error: bytes | None = None
    message: str | None = None
    requests: dict[str, bytes] = {}


Execute = Callable[[Claim], Awaitable[Outcome]]
#: Told after this worker wrote a task's new status (to push it to the task's client).
Written = Callable[[Claim, str], Awaitable[None]]
Listener = Callable[[TaskEvent], None]


class _Running:
    __slots__ = ("beat", "beat_every", "beat_scope", "cancelled", "claim", "done", "lost",
                 "scope")

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.scope = trio.CancelScope()
        self.cancelled = False
        self.lost = False
        #: The work has stopped: no more heartbeats.
        self.done = False
        self.beat_every = max(_MIN_BEAT_S, claim.record.lease_ms / 3000)
        #: When the next heartbeat is due (math.inf while one is in flight).
        self.beat = trio.current_time() + self.beat_every
        self.beat_scope = trio.CancelScope()


class TaskRunner:
    """Runs this worker's share of the fleet's tasks (``serve``) and hears every event."""

    def __init__(self, store: TaskStore, execute: Execute, *, worker: str,
                 concurrency: int = 16, claim_wait_s: float = 1.0,
                 run_tasks: bool = True, on_written: Written | None = None,
                 limits: RunLimits = NO_LIMITS, sample_s: float = 5.0) -> None:
        self.store = store
        self.execute = execute
        self.on_written = on_written
        self.worker = worker
        self.run_tasks = run_tasks
        self._slots = trio.Semaphore(concurrency)
        self._claim_wait_s = claim_wait_s
        self.limits = limits
        self._sample_s = sample_s
        self._running: dict[str, _Running] = {}
        self._listeners: set[Listener] = set()
        self._stopping = False
        self._idle = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._held_counted = store.held_back

    @property
    def running(self) -> int:
        return len(self._running)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every task event of the fleet; returns the way to stop."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Watch events and (unless ``run_tasks`` is off) run tasks, until cancelled."""
        async with self.store.open_events() as events, trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, events)
            nursery.start_soon(self._sample)
            if self.run_tasks:
                nursery.start_soon(self._claim_loop, nursery)
                nursery.start_soon(self._beat_loop, nursery)
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def wait_idle(self) -> None:
        """Until no task runs here."""
        while self._running:
            self._idle = trio.Event()
            await self._idle.wait()

    def stop_claiming(self) -> None:
        """Drain: take no more tasks (running ones finish, or are handed back at exit)."""
        self._stopping = True

    # -- claiming --------------------------------------------------------------------

    def reserve(self) -> bool:
        """Take a free slot for a task this worker may start as it creates it (then
        :meth:`start` it, or :meth:`unreserve`); False if it runs no tasks now."""
        if not self.run_tasks or self._stopping or self._nursery is None:
            return False
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            return False
        return True

    def unreserve(self) -> None:
        self._count_held()
        self._slots.release()

    def start(self, claim: Claim) -> None:
        """Run ``claim`` (claimed as its task was created) in the slot :meth:`reserve`
        took."""
        assert self._nursery is not None
        self._count_held()
        _count_claim(claim)
        self._nursery.start_soon(self._run, claim)

    async def _claim_loop(self, nursery: trio.Nursery) -> None:
        backoff = 0.1
        while True:
            await self._slots.acquire()
            started = False
            try:
                if self._stopping:
                    await trio.sleep(self._claim_wait_s)
                    continue
                claim = await self.store.claim(self.worker, wait_s=self._claim_wait_s,
                                               limits=self.limits,
                                               free=self._slots.value + 1)
                self._count_held()
                backoff = 0.1
                if claim is not None:
                    _count_claim(claim)
                    nursery.start_soon(self._run, claim)
                    started = True
            except BackendUnavailable as exc:
                log.warning("cannot claim tasks (retrying in %.1f s): %s", backoff, exc)
                await trio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
            finally:
                if not started:
                    self._slots.release()

    # -- running ---------------------------------------------------------------------

    async def _run(self, claim: Claim) -> None:
        running = _Running(claim)
        self._running[claim.task_id] = running
        TASKS_RUNNING.inc()
        began = time.perf_counter()
        settled = False
        try:
            outcome = await self._execute(running)
            if outcome is not None and not running.lost:
                await self._write(running, outcome)
            elif (running.cancelled and not running.lost
                  and await self.store.finish(claim, "cancelled", message="cancelled")):
                _count_terminal(claim, "cancelled")
                await self._told(claim, "cancelled")
            settled = True
        except BackendUnavailable as exc:
            settled = True
            log.warning("task %s: result not written (it will run again): %s",
                        claim.task_id, exc)
        finally:
            if not settled:  # shutting down (or a bug): hand the task back at once
                await self._release(claim)
            TASK_RUN_SECONDS.observe(time.perf_counter() - began)
            TASKS_RUNNING.dec()
            self._running.pop(claim.task_id, None)
            if not self._running:
                self._idle.set()
            self._slots.release()

    async def _release(self, claim: Claim) -> None:
        with trio.CancelScope(shield=True) as shield:
            shield.deadline = trio.current_time() + _RELEASE_S
            try:
                await self.store.release(claim)
            except BackendUnavailable as exc:
                log.warning("task %s not handed back (its lease will run out): %s",
                            claim.task_id, exc)

    async def _execute(self, running: _Running) -> Outcome | None:
        """The outcome, or None if the work was stopped (cancelled or lost)."""
        outcome: Outcome | None = None
        try:
            with running.scope:
                outcome = await self.execute(running.claim)
        finally:
            running.done = True
            running.beat_scope.cancel()  # (a heartbeat in flight is not waited for)
        if running.scope.cancelled_caught:
            return None
        return outcome

    # -- heartbeats ------------------------------------------------------------------

    async def _beat_loop(self, nursery: trio.Nursery) -> None:
        """Start each running task's heartbeat when it is due: one loop for all of them,
        rather than a task beside every run (most runs end before their first beat)."""
        while True:
            now = trio.current_time()
            due = now + _MIN_BEAT_S
            for running in list(self._running.values()):
                if running.done or running.lost:
                    continue
                if running.beat <= now:
                    running.beat = math.inf
                    running.beat_scope = trio.CancelScope()
                    nursery.start_soon(self._heartbeat, running)
                else:
                    due = min(due, running.beat)
            await trio.sleep_until(due)

    async def _heartbeat(self, running: _Running) -> None:
        """Renew one task's lease; stop its work if it was cancelled or lost."""
        claim = running.claim
        beat = None
        try:
            with running.beat_scope:
                beat = await self.store.heartbeat(claim)
        except BackendUnavailable as exc:
            log.warning("task %s: heartbeat failed: %s", claim.task_id, exc)
        finally:
            running.beat = trio.current_time() + running.beat_every
        if running.done:
            return
        if beat == "cancel":
            running.cancelled = True
            running.scope.cancel()
        elif beat == "lost":
            running.lost = True
            running.scope.cancel()

    async def _write(self, running: _Running, outcome: Outcome) -> None:
        claim = running.claim
        if outcome.kind == "park":
            written = await self.store.park(claim, outcome.requests)
        else:
            written = await self.store.finish(claim, outcome.kind, result=outcome.result,
                                              error=outcome.error, message=outcome.message)
        if not written:
            log.info("task %s: outcome not written (fenced: another worker holds it, or "
                     "it ended)", claim.task_id)
            return
        if outcome.kind != "park":
            _count_terminal(claim, outcome.kind)
        await self._told(claim, "input_required" if outcome.kind == "park" else outcome.kind)

    async def _told(self, claim: Claim, status: str) -> None:
        if self.on_written is None:
            return
        try:
            await self.on_written(claim, status)
        except BackendUnavailable as exc:  # a push lost: clients still see it by polling
            log.info("task %s: status %s not pushed: %s", claim.task_id, status, exc)

    # -- metrics ---------------------------------------------------------------------

    def _count_held(self) -> None:
        """Count the claims that held a task back since the last count (the claim loop's
        and those made as tasks were created)."""
        held = self.store.held_back
        if held > self._held_counted:
            TASKS_HELD_BACK.inc(held - self._held_counted)
        self._held_counted = held

    async def _sample(self) -> None:
        """Keep the fleet-wide gauges (queue depth, dead letters) fresh for /metrics."""
        while True:
            try:
                stats = await self.store.statistics()
            except BackendUnavailable:  # counted and logged by the backend; try again
                pass
            else:
                TASKS_QUEUED.set(stats.queued)
                TASK_DEAD_LETTERS.set(stats.dead_letters)
            await trio.sleep(self._sample_s)

    # -- events ----------------------------------------------------------------------

    async def _watch(self, events: trio.MemoryReceiveChannel[TaskEvent]) -> None:
        async for event in events:
            counter = _EVENTS.get(event.status)
            if counter is None:  # (statuses are few: each child is kept)
                counter = _EVENTS[event.status] = TASK_EVENTS.labels(event.status)
            counter.inc()
            if event.cancel:
                running = self._running.get(event.task_id)
                if running is not None:
                    running.cancelled = True
                    running.scope.cancel()
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # one listener's bug must not stop the worker's tasks
                    log.exception("a task event listener failed on %s", event)


def _age_s(record_ms: int) -> float:
    """Seconds since ``record_ms`` (the backend's clock; never negative on a skew)."""
    return max(0.0, time.time() - record_ms / 1000)


def _count_claim(claim: Claim) -> None:
    if claim.attempt > 1:
        TASK_REDELIVERIES.inc()
    elif claim.record.created_ms:
        TASK_CLAIM_WAIT_SECONDS.observe(_age_s(claim.record.created_ms))


def _count_terminal(claim: Claim, status: str) -> None:
    if claim.record.created_ms:
        histogram = _TERMINAL.get(status)
        if histogram is None:
            histogram = _TERMINAL[status] = TASK_TIME_TO_TERMINAL_SECONDS.labels(status)
        histogram.observe(_age_s(claim.record.created_ms))
