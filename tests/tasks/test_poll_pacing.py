"""Backpressure on tasks/get (engine/task_polls.py), both wires, in memory: a client polling
every 5 ms costs about one store read per interval and task, still sees the task end as
its event arrives (not at the interval's end), and is answered at once for a terminal
task; a client polling at pollIntervalMs is never held; the memory it takes is bounded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trio

import scalemcp
from scalemcp.engine.task_polls import PollPacer
from scalemcp.observability.metrics import TASK_POLLS_HELD
from scalemcp.state.tasks import TaskEvent, TaskRecord
from scalemcp.transport.asgi import ASGIApp
from tests.harness.asgi import client_of, open_asgi, open_client
from tests.harness.client import Session, Stateless
from tests.harness.redis import RedisServer

app = scalemcp.App("poll-pacing", version="1.0")


@app.tool(task=scalemcp.TaskPolicy(ttl_s=60, poll_interval_s=10))
async def work(ctx: scalemcp.Context, seconds: float = 0.0) -> str:
    """Reports progress (an event), sleeps, answers. Asks for polls 10 s apart."""
    await ctx.report_progress(1, 2, "half")
    await trio.sleep(seconds)
    return "worked"


@app.tool(task=scalemcp.TaskPolicy(ttl_s=60, poll_interval_s=0.25))
async def quick(seconds: float = 0.0) -> str:
    """Sleeps, answers. Asks for polls 250 ms apart."""
    await trio.sleep(seconds)
    return "worked"

EXT = "io.modelcontextprotocol/tasks"


def served(**options: Any) -> tuple[ASGIApp, Counter[str]]:
    """The app, with its task store's reads counted by task id."""
    asgi = scalemcp.asgi_app(app, scalemcp.Config.from_options(task_lease_s=0.5, **options))
    assert asgi.tasks is not None
    store = asgi.tasks.store
    reads: Counter[str] = Counter()
    read = store.get

    async def counted(task_id: str) -> TaskRecord | None:
        reads[task_id] += 1
        return await read(task_id)

    store.get = counted  # type: ignore[method-assign]
    return asgi, reads


class Modern:
    """The 2026-07-28 wire: create, then tasks/get."""

    def __init__(self, http: httpx.AsyncClient, url: str, tool: str = "work") -> None:
        self.c = Stateless(http, url, capabilities={"extensions": {EXT: {}}})
        self.tool = tool

    async def create(self, seconds: float) -> str:
        body = (await self.c.call("tools/call", {"name": self.tool, "arguments": {
            "seconds": seconds}}, self.tool)).json()
        assert body["result"]["resultType"] == "task", body
        task_id: str = body["result"]["taskId"]
        return task_id

    async def status(self, task_id: str) -> str:
        body = (await self.c.call("tasks/get", {"taskId": task_id}, task_id)).json()
        status: str = body["result"]["status"]
        return status


class Legacy(Modern):
    """The 2025-11-25 wire: a session, ``params.task``, then tasks/get."""

    def __init__(self, http: httpx.AsyncClient, url: str, tool: str = "work") -> None:
        self.s = Session(http, url)
        self.tool = tool

    async def create(self, seconds: float) -> str:
        if not self.s.session_id:
            await self.s.initialize()
        answer = await self.s.call("tools/call", {"name": self.tool, "arguments": {
            "seconds": seconds}, "task": {"ttl": 60_000}})
        task_id: str = answer["result"]["task"]["taskId"]
        return task_id

    async def status(self, task_id: str) -> str:
        status: str = (await self.s.call("tasks/get", {"taskId": task_id}))["result"]["status"]
        return status


Wire = Callable[[httpx.AsyncClient, str], Modern]


async def poll_until_ended(client: Modern, task_id: str, every_s: float) -> int:
    """Poll every ``every_s`` until the task ends; how many polls."""
    polls = 0
    while True:
        polls += 1
        if await client.status(task_id) in ("completed", "failed", "cancelled"):
            return polls
        await trio.sleep(every_s)


async def fast_poller(wire: Wire, interval_ms: int) -> tuple[int, int]:
    """A 1 s task polled every 5 ms: (store reads of it, polls)."""
    asgi, reads = served(task_poll_min_interval_ms=interval_ms)
    async with open_client(asgi) as (url, http):
        client = wire(http, url)
        task_id = await client.create(1.0)
        polls = await poll_until_ended(client, task_id, 0.005)
        return reads[task_id], polls


async def test_a_fast_poller_costs_a_read_per_interval() -> None:
    """Held to 250 ms: a client polling every 5 ms for a 1 s task costs about one read per
    250 ms (after a burst of two; its progress event, its end and a read that is not a
    poll may add one each), where without pacing each of its polls is a read."""
    for wire in (Modern, Legacy):
        with trio.fail_after(30):
            paced_reads, paced_polls = await fast_poller(wire, 250)
            free_reads, free_polls = await fast_poller(wire, 0)
        assert free_reads >= free_polls
        assert paced_reads <= 2 + 4 + 3, (wire.__name__, paced_reads, paced_polls)
        assert paced_reads >= paced_polls  # (each poll answered: held, not refused)
        assert free_reads > 2 * paced_reads, (wire.__name__, free_reads, paced_reads)


async def test_a_held_poll_wakes_when_the_task_ends() -> None:
    """Held for up to 10 s (the setting and the tool's pollInterval), a client polling
    every 5 ms sees the task's end through its event, long before the hold's deadline."""
    asgi, reads = served(task_poll_min_interval_ms=10_000)
    async with open_client(asgi) as (url, http):
        client = Modern(http, url)
        task_id = await client.create(0.3)
        assert await client.status(task_id) == "working"
        held = TASK_POLLS_HELD._value.get()
        with trio.fail_after(5):
            while (status := await client.status(task_id)) == "working":
                pass
        assert status == "completed"
        assert TASK_POLLS_HELD._value.get() > held
        # a terminal task: every poll answered at once and read, none held
        held = TASK_POLLS_HELD._value.get()
        before = reads[task_id]
        for _ in range(5):
            assert await client.status(task_id) == "completed"
        assert reads[task_id] == before + 5
        assert TASK_POLLS_HELD._value.get() == held


async def test_a_client_polling_at_poll_interval_is_never_held() -> None:
    """The setting is 1 s, the tool asks for 250 ms: a client polling every 250 ms
    (counted from each answer, as clients do) is answered at once, every time."""
    asgi, reads = served(task_poll_min_interval_ms=1000)
    async with open_client(asgi) as (url, http):
        client = Legacy(http, url, "quick")
        held = TASK_POLLS_HELD._value.get()
        task_id = await client.create(0.8)
        polls = await poll_until_ended(client, task_id, 0.25)  # the tool's pollInterval
        assert polls >= 3
        assert TASK_POLLS_HELD._value.get() == held
        assert reads[task_id] >= polls


async def test_held_polls_are_per_principal_and_memory_is_bounded() -> None:
    pacer = PollPacer(10.0, capacity=3)
    record = TaskRecord(task_id="t0", principal="alice", poll_interval_ms=60_000)
    for _ in range(2):  # (the burst: two polls at once)
        await pacer.pace("alice", "t0")
        pacer.read(pacer.reading("alice", "t0"), "t0", record)
    with trio.move_on_after(0.05) as waited:
        await pacer.pace("alice", "t0")  # held: 10 s to go, no event
    assert waited.cancelled_caught
    with trio.fail_after(1):
        await pacer.pace("bob", "t0")  # another principal's poll is not held by alice's
        pacer.on_event(TaskEvent("t0", "working"))
        await pacer.pace("alice", "t0")  # changed since the read: at once
    for n in range(1, 6):
        pacer.reading("alice", f"t{n}")
    assert len(pacer) == 3
    done = TaskRecord(task_id="t5", principal="alice", status="completed")
    pacer.read(pacer.reading("alice", "t5"), "t5", done)
    with trio.fail_after(1):
        await pacer.pace("alice", "t5")  # terminal: forgotten, never held
    assert len(pacer) == 2


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_held_poll_wakes_on_another_workers_event(redis: RedisServer) -> None:
    """On Redis, a node that runs no tasks holds a fast poller's polls (10 s); the worker
    running the task ends it, and the held poll hears that through the event stream."""
    polling = scalemcp.Config.from_options(redis_url=redis.url, serve_tasks=False,
                                           task_poll_min_interval_ms=10_000)
    running = scalemcp.Config.from_options(redis_url=redis.url, task_lease_s=0.5)
    with trio.fail_after(20):
        async with (open_asgi(app, polling, port=8001) as a,
                    open_asgi(app, running, port=8002) as b,
                    client_of(a, b, timeout=15) as http):
            client = Modern(http, a.url)
            task_id = await client.create(0.5)
            held = TASK_POLLS_HELD._value.get()
            with trio.fail_after(5):  # (the hold's deadline is 10 s away)
                polls = await poll_until_ended(client, task_id, 0.005)
            assert await client.status(task_id) == "completed"
            assert polls >= 3
            assert TASK_POLLS_HELD._value.get() > held
