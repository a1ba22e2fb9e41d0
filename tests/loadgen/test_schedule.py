"""Open- and closed-loop pacing, on trio's mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from scalemcp.loadgen.schedule import Pacer


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def run_clients(pacer: Pacer, clients: int, op_s: float) -> list[tuple[float, float]]:
    """Each client: take a slot, 'work' op_s; returns (intended, actual start) pairs."""
    taken: list[tuple[float, float]] = []

    async def client() -> None:
        while (due := await pacer.next()) is not None:
            taken.append((due, trio.current_time()))
            await trio.sleep(op_s)

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    return taken


async def test_open_loop_slots_are_fixed_when_clients_keep_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    pacer = Pacer(start=start, measure_from=start, end=start + 1.0, rate=100)
    taken = await run_clients(pacer, clients=4, op_s=0.005)
    assert [due for due, _ in taken] == pytest.approx([start + k / 100 for k in range(100)])
    assert all(actual == pytest.approx(due) for due, actual in taken)
    assert pacer.measured == 100


async def test_open_loop_keeps_its_schedule_when_the_server_stalls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    pacer = Pacer(start=start, measure_from=start, end=start + 1.0, rate=100)
    # 2 clients, 50 ms per op: capacity 40/s against 100/s offered.
    taken = await run_clients(pacer, clients=2, op_s=0.05)
    dues = [due for due, _ in taken]
    assert dues == pytest.approx([start + k / 100 for k in range(100)])
    lags = [actual - due for due, actual in taken]
    # Latency is measured from the due time, so the backlog shows up as growing lag.
    assert lags[-1] > 1.0
    assert lags == sorted(lags) or max(lags) == lags[-1]


async def test_warmup_slots_are_not_counted_against_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    pacer = Pacer(start=start, measure_from=start + 0.5, end=None, rate=100, budget=30)
    taken = await run_clients(pacer, clients=3, op_s=0.001)
    dues = [due for due, _ in taken]
    measured = [d for d in dues if d >= start + 0.5]
    assert len(measured) == 30
    assert len(dues) == 50 + 30
    assert pacer.exhausted


async def test_closed_loop_starts_at_once_and_stops_at_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    pacer = Pacer(start=start, measure_from=start, end=start + 1.0)
    taken = await run_clients(pacer, clients=2, op_s=0.125)
    assert len(taken) == 16
    assert all(due == actual for due, actual in taken)
    assert max(due for due, _ in taken) < start + 1.0


async def test_closed_loop_budget() -> None:
    start = trio.current_time()
    pacer = Pacer(start=start, measure_from=start, end=None, budget=7)
    got = [pacer.next_nowait() for _ in range(10)]
    assert sum(g is not None for g in got) == 7
    assert got[7:] == [None, None, None]


def test_bad_pacers() -> None:
    with pytest.raises(ValueError, match="rate"):
        Pacer(start=0, measure_from=0, end=1, rate=0)
    with pytest.raises(ValueError, match="end time or a budget"):
        Pacer(start=0, measure_from=0, end=None)
