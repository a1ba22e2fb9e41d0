"""The worker's clock: connection deadlines as timers on one task (scalemcp/serving/clock.py).

Trio's mock clock (autojump) makes the times exact: a timer fires when, and only when,
its deadline has passed.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from scalemcp.serving.clock import Clock

Mock = trio.testing.MockClock


@pytest.fixture
def mock() -> Mock:
    return trio.testing.MockClock(autojump_threshold=0)


@asynccontextmanager
async def running() -> AsyncIterator[Clock]:
    clock = Clock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clock.run)
        yield clock
        nursery.cancel_scope.cancel()


class Fired:
    def __init__(self) -> None:
        self.at: list[float] = []

    def __call__(self) -> None:
        self.at.append(trio.current_time())


async def test_a_timer_fires_once_at_its_deadline(mock: Mock) -> None:
    fired = Fired()
    async with running() as worker_clock:
        worker_clock.timer(fired).move(trio.current_time() + 5)
        await trio.sleep(4.9)
        assert fired.at == []
        await trio.sleep(10)
    assert fired.at == [pytest.approx(5)]


async def test_a_deadline_moved_later_many_times_fires_at_the_last_one(mock: Mock) -> None:
    fired = Fired()
    async with running() as worker_clock:
        timer = worker_clock.timer(fired)
        for _ in range(200):  # a busy keep-alive connection: a request every 0.1 s
            last = trio.current_time() + 1.0
            timer.move(last)
            await trio.sleep(0.1)
        entries = worker_clock.statistics()
        await trio.sleep(5)
    assert fired.at == [pytest.approx(last)]
    assert entries <= 2  # moving later writes a field: no entry per move


async def test_a_deadline_moved_earlier_fires_early_and_inf_never(mock: Mock) -> None:
    early, never = Fired(), Fired()
    async with running() as worker_clock:
        timer = worker_clock.timer(early)
        timer.move(trio.current_time() + 60)
        timer.move(trio.current_time() + 2)
        busy = worker_clock.timer(never)
        busy.move(trio.current_time() + 1)
        busy.move(math.inf)  # a request began: no deadline
        await trio.sleep(100)
    assert early.at == [pytest.approx(2)]
    assert never.at == []


async def test_minus_inf_fires_at_once_and_a_cancelled_timer_never(mock: Mock) -> None:
    now, cancelled = Fired(), Fired()
    async with running() as worker_clock:
        timer = worker_clock.timer(cancelled)
        timer.move(trio.current_time() + 1)
        timer.cancel()
        worker_clock.timer(now).move(-math.inf)
        await trio.sleep(0.01)
        assert now.at == [pytest.approx(0)]
        await trio.sleep(5)
    assert cancelled.at == []


async def test_timers_fire_in_deadline_order(mock: Mock) -> None:
    order: list[int] = []
    async with running() as worker_clock:
        for n in (3, 1, 2):
            worker_clock.timer(lambda n=n: order.append(n)).move(trio.current_time() + n)
        await trio.sleep(5)
    assert order == [1, 2, 3]


async def test_a_cancelled_timers_stale_entry_does_not_keep_its_owner(mock: Mock) -> None:
    class Owner:
        def on_deadline(self) -> None:
            raise AssertionError("cancelled: must not fire")

    async with running() as worker_clock:
        owner = Owner()
        timer = worker_clock.timer(owner.on_deadline)
        timer.move(trio.current_time() + 75)  # the keep-alive deadline of a closed connection
        timer.cancel()
        ref = weakref.ref(owner)
        del owner
        gc.collect()
        assert ref() is None
        assert worker_clock.statistics() == 1  # its entry waits, holding the Timer only
        await trio.sleep(100)
        assert worker_clock.statistics() == 0
