"""The task store's contract (state/tasks.py), on every backend: memory, Redis, Redis Cluster.

Two Redis backends opened by one test are two workers of one fleet. Leases are short
(0.3 s) so that a "dead" worker (one that stops heartbeating) loses its task quickly.
"""

from __future__ import annotations

import secrets

import msgspec
import pytest
import trio
from trio.testing import MockClock

from scalemcp.state.base import StateBackend
from scalemcp.state.tasks import Claim, QueueFull, RunLimits, TaskEvent, TaskRecord

from .conftest import LEASE_S, OpenBackend, workers

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

def task(**extra: object) -> TaskRecord:
    fields: dict[str, object] = dict(task_id=secrets.token_hex(16), principal="alice",
                                     request=b'{"tool":"t"}', ttl_ms=60_000,
                                     poll_interval_ms=500, lease_ms=int(LEASE_S * 1000),
                                     max_attempts=3)
    fields.update(extra)
    return TaskRecord(**fields)  # type: ignore[arg-type]



async def claim(state: StateBackend, worker: str = "w1", wait_s: float = 1.0) -> Claim:
    got = await state.tasks.claim(worker, wait_s=wait_s)
    assert got is not None
    return got


async def test_create_get_claim_finish(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            rec = task()
            await state.tasks.create(rec)
            stored = await state.tasks.get(rec.task_id)
            assert stored is not None
            assert (stored.status, stored.principal, stored.request) == (
                "working", "alice", b'{"tool":"t"}')
            assert stored.created_ms > 0
            assert stored.owner == ""
            assert await state.tasks.get("nope") is None

            held = await claim(state)
            assert (held.task_id, held.token, held.attempt) == (rec.task_id, 1, 1)
            assert held.record.request == b'{"tool":"t"}'
            assert await state.tasks.heartbeat(held) == "ok"
            assert await state.tasks.progress(held, "half way")
            assert (await state.tasks.get(rec.task_id)).status_message == "half way"  # type: ignore[union-attr]
            assert await state.tasks.finish(held, "completed", result=b'{"content":[]}')
            assert not await state.tasks.finish(held, "failed", error=b"{}")
            done = await state.tasks.get(rec.task_id)
            assert done is not None
            assert (done.status, done.result, done.error, done.terminal_writes) == (
                "completed", b'{"content":[]}', None, 1)
            assert await state.tasks.heartbeat(held) == "lost"
            assert await state.tasks.claim("w1", wait_s=0.05) is None


async def test_a_stalled_worker_is_fenced_off(open_store: OpenBackend, clock: MockClock | None
                                              ) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            rec = task()
            await one.tasks.create(rec)
            first = await claim(one, "w1")
            # w1 stalls (no heartbeat): after its lease, w2 takes the task over.
            await trio.sleep(LEASE_S * 1.5)
            second = await claim(two, "w2", wait_s=2.0)
            assert (second.token, second.attempt) == (2, 2)
            assert await one.tasks.heartbeat(first) == "lost"
            assert not await one.tasks.progress(first, "stale")
            assert not await one.tasks.finish(first, "completed", result=b'{"by":"w1"}')
            assert await two.tasks.finish(second, "completed", result=b'{"by":"w2"}')
            done = await one.tasks.get(rec.task_id)
            assert done is not None
            assert (done.result, done.terminal_writes) == (b'{"by":"w2"}', 1)


async def test_a_takeover_takes_no_more_tasks_than_the_worker_has_room_for(
        open_store: OpenBackend, clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            records = [task() for _ in range(3)]
            for rec in records:
                await one.tasks.create(rec)
            for _ in records:
                await claim(one, "w1")  # then w1 dies: nobody renews the three
            await trio.sleep(LEASE_S * 1.5)
            # w2 has one free slot: it takes over one task, and leaves the other two to
            # workers with room (w3 gets one at once, not after another lease).
            second = await two.tasks.claim("w2", wait_s=2.0, free=1)
            assert second is not None
            assert second.attempt == 2
            third = await one.tasks.claim("w3", wait_s=0.05, free=1)
            assert third is not None
            assert third.attempt == 2
            assert third.task_id != second.task_id


async def test_a_claim_cancelled_while_it_waits_takes_nothing(open_store: OpenBackend
                                                               ) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            with trio.move_on_after(0.1):  # w1 waits for a task, and goes away
                await one.tasks.claim("w1", wait_s=5.0)
            rec = task()
            await two.tasks.create(rec)
            # The task is not handed to the reader that went away (it would wait a
            # lease for a takeover): the next claim gets it at once.
            got = await two.tasks.claim("w2", wait_s=0.2)
            assert got is not None
            assert (got.task_id, got.attempt) == (rec.task_id, 1)


async def test_create_and_claim_starts_the_next_task_in_one_step(open_store: OpenBackend
                                                                ) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            alone = task()
            stored, claimed = await one.tasks.create_and_claim(alone, "w1")
            assert stored.status == "working"
            assert stored.created_ms > 0
            assert claimed is not None
            assert (claimed.task_id, claimed.token, claimed.attempt) == (alone.task_id, 1, 1)
            assert claimed.record.request == alone.request
            record = await two.tasks.get(alone.task_id)
            assert record is not None
            assert record.owner == "w1"
            assert await two.tasks.claim("w2", wait_s=0.05) is None  # not queued twice
            assert await one.tasks.finish(claimed, "completed", result=b"{}")

            # An older task waits: it is the one claimed; the new one stays queued.
            older, newer = task(), task()
            await two.tasks.create(older)
            _, first = await one.tasks.create_and_claim(newer, "w1")
            assert first is not None
            assert first.task_id == older.task_id
            second = await two.tasks.claim("w2", wait_s=1.0)
            assert second is not None
            assert second.task_id == newer.task_id


async def test_create_and_claim_on_a_full_queue_creates_and_claims_nothing(
        open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            await state.tasks.create(task(), max_active=1)
            refused = task()
            with pytest.raises(QueueFull):
                await state.tasks.create_and_claim(refused, "w1", max_active=1)
            assert await state.tasks.get(refused.task_id) is None


async def test_heartbeats_keep_the_lease(open_store: OpenBackend, clock: MockClock | None
                                         ) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            rec = task()
            await one.tasks.create(rec)
            held = await claim(one, "w1")
            for _ in range(6):
                await trio.sleep(LEASE_S / 3)
                assert await one.tasks.heartbeat(held) == "ok"
                assert await two.tasks.claim("w2", wait_s=0.01) is None
            assert await one.tasks.finish(held, "completed", result=b"{}")


async def test_a_task_not_safe_to_rerun_fails_when_its_worker_dies(
        open_store: OpenBackend, clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            rec = task(max_attempts=1)
            await one.tasks.create(rec)
            await claim(one, "w1")
            await trio.sleep(LEASE_S * 1.5)
            assert await two.tasks.claim("w2", wait_s=0.5) is None
            dead = await two.tasks.get(rec.task_id)
            assert dead is not None
            assert dead.status == "failed"
            assert dead.error is not None
            error = msgspec.json.decode(dead.error)
            assert error["code"] == -32603
            assert "stopped" in error["message"]
            assert (await two.tasks.statistics()).dead_letters >= 1


async def test_attempts_are_limited(open_store: OpenBackend, clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            rec = task(max_attempts=2)
            await state.tasks.create(rec)
            assert (await claim(state)).attempt == 1
            await trio.sleep(LEASE_S * 1.5)
            assert (await claim(state, wait_s=2.0)).attempt == 2
            await trio.sleep(LEASE_S * 1.5)
            assert await state.tasks.claim("w1", wait_s=0.5) is None
            assert (await state.tasks.get(rec.task_id)).status == "failed"  # type: ignore[union-attr]


async def test_cancel(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state, state.tasks.open_events() as events:
            queued = task()
            await state.tasks.create(queued)
            cancelled = await state.tasks.cancel(queued.task_id)
            assert cancelled is not None
            assert cancelled.status == "cancelled"
            assert await state.tasks.claim("w1", wait_s=0.05) is None  # its entry is gone

            running = task()
            await state.tasks.create(running)
            held = await claim(state)
            flagged = await state.tasks.cancel(running.task_id)
            assert flagged is not None
            assert flagged.status == "working"
            assert await state.tasks.heartbeat(held) == "cancel"
            seen = await _next_event(events, running.task_id)
            assert seen.cancel
            assert await state.tasks.finish(held, "cancelled")
            assert (await state.tasks.get(running.task_id)).status == "cancelled"  # type: ignore[union-attr]
            again = await state.tasks.cancel(running.task_id)  # terminal: nothing changes
            assert again is not None
            assert again.status == "cancelled"
            assert await state.tasks.cancel("nope") is None


async def test_a_cancelled_task_whose_worker_died_ends_cancelled(
        open_store: OpenBackend, clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            rec = task()
            await one.tasks.create(rec)
            await claim(one, "w1")
            await two.tasks.cancel(rec.task_id)
            await trio.sleep(LEASE_S * 1.5)
            assert await two.tasks.claim("w2", wait_s=0.5) is None
            assert (await two.tasks.get(rec.task_id)).status == "cancelled"  # type: ignore[union-attr]


async def test_a_full_queue_refuses_new_tasks(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            await state.tasks.create(task(), max_active=2)
            held = await claim(state)  # running counts too
            await state.tasks.create(task(), max_active=2)
            refused = task()
            with pytest.raises(QueueFull):
                await state.tasks.create(refused, max_active=2)
            assert await state.tasks.get(refused.task_id) is None  # nothing stored
            await state.tasks.finish(held, "completed", result=b"{}")
            await state.tasks.create(task(), max_active=2)  # room again


async def test_answers_given_before_the_task_existed_are_kept(open_store: OpenBackend
                                                               ) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            rec = task(answers={"user_name": b'{"action":"accept"}'})
            await state.tasks.create(rec)
            held = await claim(state)
            assert held.record.answers == {"user_name": b'{"action":"accept"}'}


async def test_park_and_answer(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            rec = task()
            await state.tasks.create(rec)
            held = await claim(state)
            assert await state.tasks.park(held, {"a": b'{"method":"x"}', "b": b'{"method":"y"}'})
            parked = await state.tasks.get(rec.task_id)
            assert parked is not None
            assert (parked.status, parked.owner, sorted(parked.input_requests)) == (
                "input_required", "", ["a", "b"])
            assert not await state.tasks.finish(held, "completed")  # parked: not running
            assert await state.tasks.claim("w1", wait_s=0.05) is None  # nobody holds it

            after = await state.tasks.answer(rec.task_id, {"a": b'{"x":1}', "zz": b"{}"})
            assert after is not None
            assert (after.status, sorted(after.input_requests), sorted(after.answers)) == (
                "input_required", ["b"], ["a"])
            assert await state.tasks.claim("w1", wait_s=0.05) is None
            after = await state.tasks.answer(rec.task_id, {"b": b'{"y":2}'})
            assert after is not None
            assert after.status == "working"
            again = await claim(state)
            assert (again.token, again.attempt) == (2, 1)  # parking is no lost attempt
            assert again.record.answers == {"a": b'{"x":1}', "b": b'{"y":2}'}
            assert again.record.input_requests == {}
            assert await state.tasks.answer("nope", {"a": b"{}"}) is None


async def test_release_hands_a_task_back(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            rec = task(max_attempts=1)
            await state.tasks.create(rec)
            held = await claim(state)
            await state.tasks.release(held)
            again = await claim(state)
            assert (again.token, again.attempt) == (2, 1)
            assert not await state.tasks.finish(held, "completed")
            assert await state.tasks.finish(again, "completed", result=b"{}")


async def test_ttl_expiry(open_store: OpenBackend, clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_store() as state:
            rec = task(ttl_ms=300)
            await state.tasks.create(rec)
            assert await state.tasks.get(rec.task_id) is not None
            await trio.sleep(0.5)
            assert await state.tasks.get(rec.task_id) is None
            assert await state.tasks.claim("w1", wait_s=0.05) is None


async def test_events_reach_every_worker(open_store: OpenBackend) -> None:
    with trio.fail_after(10):
        async with workers(open_store) as (one, two), two.tasks.open_events() as events:
            rec = task()
            await one.tasks.create(rec)
            held = await claim(one)
            await one.tasks.finish(held, "completed", result=b"{}")
            seen = await _next_event(events, rec.task_id)
            assert seen.status == "completed"
            assert not seen.cancel


async def _next_event(events: trio.MemoryReceiveChannel[TaskEvent], task_id: str) -> TaskEvent:
    async for event in events:
        if event.task_id == task_id:
            return event
    raise AssertionError("the events ended")


async def keep(state: StateBackend, held: Claim) -> None:
    """Heartbeat ``held`` until it ends."""
    beat = "ok"
    while beat == "ok":
        await trio.sleep(LEASE_S / 3)
        beat = await state.tasks.heartbeat(held)


async def test_limits_hold_tasks_back_until_a_slot_frees(open_store: OpenBackend) -> None:
    """Per principal and per tool: over a limit a task waits queued, fleet-wide, and runs
    once a task of its principal (or tool) ends; the others are not held up by it."""
    limits = RunLimits(per_principal=1, per_tool=2)
    with trio.fail_after(15):
        async with workers(open_store) as (one, two), trio.open_nursery() as beats:
            first = await one.tasks.create(task(tool="a"))
            second = await one.tasks.create(task(tool="a"))  # alice again: waits
            bob = await one.tasks.create(task(principal="bob", tool="a"))
            carol = await one.tasks.create(task(principal="carol", tool="a"))  # tool full
            dave = await one.tasks.create(task(principal="dave", tool="b"))
            running = await claim(one, "w1")
            assert running.task_id == first.task_id
            beats.start_soon(keep, one, running)
            held = two.tasks.held_back
            got = []
            for _ in range(8):  # the other worker: alice's and the full tool's wait
                c = await two.tasks.claim("w2", wait_s=0.2, limits=limits)
                if c is not None:
                    got.append(c)
                    beats.start_soon(keep, two, c)
            # w1 claimed without limits, so alice runs 1 and tool a runs 1 before w2
            assert sorted(c.task_id for c in got) == sorted([bob.task_id, dave.task_id])
            assert two.tasks.held_back > held
            for tid in (second.task_id, carol.task_id):
                rec = await two.tasks.get(tid)
                assert rec is not None
                assert (rec.status, rec.owner) == ("working", "")
            assert (await one.tasks.statistics()).queued >= 2  # both still queued
            # alice's first ends: her second may run, but tool a still runs 2 (first's
            # slot went, bob's is held): so it is the one that frees the tool too
            assert await one.tasks.finish(running, "completed", result=b"{}")
            nxt = None
            for _ in range(10):
                nxt = await two.tasks.claim("w2", wait_s=0.2, limits=limits)
                if nxt is not None:
                    break
            assert nxt is not None
            assert nxt.task_id in (second.task_id, carol.task_id)
            beats.start_soon(keep, two, nxt)
            assert await two.tasks.claim("w2", wait_s=0.3, limits=limits) is None
            for c in (*got, nxt):
                assert await two.tasks.finish(c, "completed", result=b"{}")
            last = await claim(two, "w2", wait_s=1.0)
            assert last.task_id in (second.task_id, carol.task_id)
            assert last.task_id != nxt.task_id


async def test_a_dead_workers_task_frees_its_slot(open_store: OpenBackend,
                                                  clock: MockClock | None) -> None:
    """A running task counts against the limits only while its lease runs."""
    limits = RunLimits(per_principal=1)
    with trio.fail_after(15):
        async with workers(open_store) as (one, two):
            dead = await one.tasks.create(task(max_attempts=1))
            waiting = await one.tasks.create(task())
            await claim(one, "w1")  # w1 dies: never heartbeats
            assert await two.tasks.claim("w2", wait_s=0.1, limits=limits) is None
            await trio.sleep(LEASE_S * 2)
            got = None
            for _ in range(10):
                got = await two.tasks.claim("w2", wait_s=0.3, limits=limits)
                if got is not None:
                    break
            assert got is not None
            assert got.task_id == waiting.task_id
            assert (await two.tasks.get(dead.task_id)).status == "failed"  # type: ignore[union-attr]


async def test_a_run_waiting_for_input_holds_its_task(open_store: OpenBackend,
                                                      clock: MockClock | None) -> None:
    """2025-11-25: input_required while the run waits (its lease runs on); a worker that
    dies while waiting loses the task to another, which runs it again from working."""
    with trio.fail_after(10):
        async with workers(open_store) as (one, two):
            rec = await one.tasks.create(task())
            held = await claim(one, "w1")
            assert await one.tasks.progress(held, "waiting", status="input_required")
            got = await two.tasks.get(rec.task_id)
            assert got is not None
            assert (got.status, got.status_message) == ("input_required", "waiting")
            assert await one.tasks.heartbeat(held) == "ok"
            assert await two.tasks.claim("w2", wait_s=0.05) is None  # still held
            assert await one.tasks.progress(held, "working")
            assert await one.tasks.progress(held, "again", status="input_required")
            await trio.sleep(LEASE_S * 2)  # w1 dies while waiting
            again = await claim(two, "w2")
            assert again.task_id == rec.task_id
            assert again.record.status == "working"
            assert not await one.tasks.finish(held, "completed", result=b"{}")  # fenced
            assert await two.tasks.finish(again, "completed", result=b"{}")
