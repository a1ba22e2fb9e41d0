"""The task runner (scalemcp/tasks/runner.py) on every backend: it runs what it claims,
stops the work when a cancellation is asked anywhere, takes over a dead worker's task after
its lease, and hands its tasks back when it shuts down.

A "dead" worker is a claim nobody renews (what a ``kill -9`` leaves); the fleet test with
real processes is tests/cluster/test_task_chaos.py.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import trio
from trio.testing import MockClock

from scalemcp.observability.metrics import REGISTRY
from scalemcp.state.base import StateBackend
from scalemcp.state.tasks import Claim, TaskRecord
from scalemcp.tasks import Outcome, TaskRunner
from tests.harness.conditions import eventually

from .conftest import LEASE_S, OpenBackend, workers

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

def task(**extra: object) -> TaskRecord:
    fields: dict[str, object] = dict(task_id=secrets.token_hex(16), request=b"{}",
                                     ttl_ms=60_000, lease_ms=int(LEASE_S * 1000),
                                     max_attempts=3)
    fields.update(extra)
    return TaskRecord(**fields)  # type: ignore[arg-type]



class Work:
    """An ``execute`` that records what it ran and how it ended."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.started: list[Claim] = []
        self.cancelled_at: float | None = None
        self.began = trio.Event()

    async def __call__(self, claim: Claim) -> Outcome:
        self.started.append(claim)
        self.began.set()
        try:
            await trio.sleep(self.seconds)
        except trio.Cancelled:
            self.cancelled_at = trio.current_time()
            raise
        return Outcome(kind="completed", result=msgspec.json.encode(
            {"by": claim.worker, "attempt": claim.attempt}))


@asynccontextmanager
async def running(state: StateBackend, work: Work, worker: str) -> AsyncIterator[TaskRunner]:
    runner = TaskRunner(state.tasks, work, worker=worker, claim_wait_s=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.serve)
        yield runner
        nursery.cancel_scope.cancel()


async def until_terminal(state: StateBackend, task_id: str) -> TaskRecord:
    while True:
        record = await state.tasks.get(task_id)
        assert record is not None
        if record.terminal:
            return record
        await trio.sleep(0.02)


async def test_runs_what_it_claims(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state, running(state, Work(), "w1"):
            rec = task()
            await state.tasks.create(rec)
            done = await until_terminal(state, rec.task_id)
            assert done.status == "completed"
            assert msgspec.json.decode(done.result or b"") == {"by": "w1", "attempt": 1}


async def test_cancel_asked_elsewhere_stops_the_work_first(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            work = Work(seconds=60)
            async with running(one, work, "w1"):
                rec = task()
                await two.tasks.create(rec)
                await work.began.wait()
                asked = trio.current_time()
                await two.tasks.cancel(rec.task_id)  # another worker of the fleet
                done = await until_terminal(two, rec.task_id)
                assert done.status == "cancelled"
                assert work.cancelled_at is not None
                # Pushed by the event, not found by a heartbeat: well within a lease.
                assert work.cancelled_at - asked < LEASE_S


async def test_a_dead_workers_task_runs_elsewhere(open_store: OpenBackend,
                                                  clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            rec = task()
            await one.tasks.create(rec)
            dead = await one.tasks.claim("dead", wait_s=1.0)  # then nobody renews it
            assert dead is not None
            died = trio.current_time()
            work = Work()
            async with running(two, work, "w2"):
                done = await until_terminal(two, rec.task_id)
            assert done.status == "completed"
            assert msgspec.json.decode(done.result or b"") == {"by": "w2", "attempt": 2}
            assert trio.current_time() - died < 2 * LEASE_S + 0.5
            assert not await one.tasks.finish(dead, "completed", result=b"{}")  # fenced
            assert (await one.tasks.get(rec.task_id)).terminal_writes == 1  # type: ignore[union-attr]


async def test_shutdown_hands_tasks_back(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            first = Work(seconds=60)
            rec = task()
            await one.tasks.create(rec)
            async with running(one, first, "w1"):
                await first.began.wait()
            # w1 stopped (its nursery cancelled): the task is queued again at once.
            handed = trio.current_time()
            async with running(two, Work(), "w2"):
                done = await until_terminal(two, rec.task_id)
            assert done.status == "completed"
            assert msgspec.json.decode(done.result or b"") == {"by": "w2", "attempt": 1}
            assert trio.current_time() - handed < LEASE_S


async def test_parks_and_resumes_with_answers(open_store: OpenBackend) -> None:
    asked = {"q": msgspec.json.encode({"method": "elicitation/create", "params": {}})}

    async def execute(claim: Claim) -> Outcome:
        if "q" not in claim.record.answers:
            return Outcome(kind="park", requests=asked)
        return Outcome(kind="completed", result=claim.record.answers["q"])

    with trio.fail_after(10):
        async with open_store() as state:
            runner = TaskRunner(state.tasks, execute, worker="w1", claim_wait_s=0.1)
            async with trio.open_nursery() as nursery:
                await nursery.start(runner.serve)
                rec = task()
                await state.tasks.create(rec)
                async def parked() -> bool:
                    record = await state.tasks.get(rec.task_id)
                    return record is not None and record.status == "input_required"

                assert await eventually(parked, "the task parked")
                assert runner.running == 0  # nobody waits for the answer
                await state.tasks.answer(rec.task_id, {"q": b'{"action":"accept"}'})
                done = await until_terminal(state, rec.task_id)
                nursery.cancel_scope.cancel()
            assert (done.status, done.result) == ("completed", b'{"action":"accept"}')


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_runner_reports_queue_depth_waits_redeliveries_and_times(
        open_store: OpenBackend) -> None:
    """What an operator watches (docs/tasks.md "Metrics"): the fleet's queue depth, from
    the store; time queued before a first claim; takeovers of a dead worker's task; time
    from creation to the terminal status written."""
    waits = sample("scalemcp_task_claim_wait_seconds_count")
    ends = sample("scalemcp_task_time_to_terminal_seconds_count", status="completed")
    redelivered = sample("scalemcp_task_redeliveries_total")
    with trio.fail_after(15):
        async with workers(open_store) as (one, two):
            orphan = task()
            await one.tasks.create(orphan)
            assert await one.tasks.claim("dead", wait_s=1.0) is not None  # never renewed
            busy = Work(seconds=60)
            runner = TaskRunner(two.tasks, busy, worker="w2", claim_wait_s=0.1,
                                concurrency=1, sample_s=0.05)
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    await one.tasks.create(task())
                await nursery.start(runner.serve)
                await busy.began.wait()  # one slot, held: the rest stay queued
                queued = (await two.tasks.statistics()).queued
                assert queued >= 2
                await eventually(lambda: sample("scalemcp_tasks_queued") == queued,
                                 "the queue gauge follows the store")
                nursery.cancel_scope.cancel()
            async with running(two, Work(), "w3"):
                await until_terminal(two, orphan.task_id)
                await eventually(lambda: sample(
                    "scalemcp_task_redeliveries_total") == redelivered + 1,
                    "the dead worker's task counted as a redelivery")
    assert sample("scalemcp_task_claim_wait_seconds_count") >= waits + 3
    assert sample("scalemcp_task_time_to_terminal_seconds_count",
                  status="completed") >= ends + 3


async def test_a_failing_listener_does_not_stop_the_runner(open_store: OpenBackend) -> None:
    """A listener's bug (a follower whose channel closed as an event came, say) is logged;
    the runner, and with it the worker's state backend, goes on."""
    heard: list[str] = []

    def broken(event: object) -> None:
        raise trio.BrokenResourceError

    with trio.fail_after(10):
        async with open_store() as state, running(state, Work(), "w1") as runner:
            runner.listen(broken)
            runner.listen(lambda event: heard.append(event.task_id))
            first, second = task(), task()
            await state.tasks.create(first)
            assert (await until_terminal(state, first.task_id)).status == "completed"
            await state.tasks.create(second)  # the runner still claims and runs
            assert (await until_terminal(state, second.task_id)).status == "completed"
            await eventually(lambda: second.task_id in heard, "later listeners still told")
