"""Many idle streams on one worker, each told of one change (the CI-sized version of
bench/idle_streams.py): session-era GET streams and 2026-07-28 ``subscriptions/listen``
streams, all open at once; one tool publishes a tools list_changed notification; every
stream gets it exactly once; the server's drain then ends them all. Correctness only:
times are measured by the bench, not asserted here.
"""

from __future__ import annotations

import json
from contextlib import aclosing

import httpx
import pytest
import trio

import scalemcp
from tests.harness.asgi import open_asgi
from tests.harness.client import Stateless, start_session, tool_call
from tests.harness.sse import Event, sse_events

STREAMS = 300  # half GET streams, half listen streams
LIST_CHANGED = "notifications/tools/list_changed"

app = scalemcp.App("fan-out")


@app.tool
async def touch(ctx: scalemcp.Context) -> str:
    """Tell every listener that the tools changed."""
    await ctx.notify_tools_changed()
    return "ok"


class Told:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.open = 0
        self.opened = trio.Event()
        self.counts: dict[int, int] = {}
        self.all_told = trio.Event()
        self.ended = 0

    def heard(self, stream: int, event: Event) -> None:
        message = json.loads(event.data) if event.data else {}
        if message.get("method") == LIST_CHANGED:
            self.counts[stream] = self.counts.get(stream, 0) + 1
            if len(self.counts) == self.expected:
                self.all_told.set()


async def follow(response: httpx.Response, stream: int, told: Told) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    told.open += 1
    if told.open == told.expected:
        told.opened.set()
    async with aclosing(sse_events(response)) as events:
        async for event in events:
            told.heard(stream, event)
    told.ended += 1


async def open_get(http: httpx.AsyncClient, url: str, stream: int, told: Told) -> None:
    headers = await start_session(http, url)
    get_headers = {**headers, "accept": "text/event-stream"}
    async with http.stream("GET", url, headers=get_headers) as response:
        await follow(response, stream, told)


async def open_listen(http: httpx.AsyncClient, url: str, stream: int, told: Told) -> None:
    modern = Stateless(http, url)
    body = modern.request("subscriptions/listen",
                          {"notifications": {"toolsListChanged": True}}, rid=stream)
    async with http.stream("POST", url, json=body,
                           headers=modern.headers("subscriptions/listen")) as response:
        await follow(response, stream, told)


@pytest.mark.parametrize("keepalive_s", [0.2])
async def test_every_open_stream_is_told_once_and_ended_by_the_drain(keepalive_s: float
                                                                    ) -> None:
    config = scalemcp.Config.from_options(sse_keepalive_s=keepalive_s, drain_timeout_s=0.5)
    told = Told(STREAMS)
    with trio.fail_after(60):
        async with (open_asgi(app, config) as served,
                    served.client(timeout=30, limits=httpx.Limits(max_connections=None))
                    as http):
            async with trio.open_nursery() as nursery:
                for i in range(STREAMS):
                    opener = open_get if i % 2 else open_listen
                    nursery.start_soon(opener, http, served.url, i, told)
                await told.opened.wait()
                await trio.sleep(3 * keepalive_s)  # idle: keepalives only, nobody told
                assert told.counts == {}
                headers = await start_session(http, served.url)
                answer = await http.post(served.url, json=tool_call("touch", {}, 7),
                                         headers=headers)
                assert answer.status_code == 200
                assert answer.json()["result"]["content"][0]["text"] == "ok"
                await told.all_told.wait()
                await trio.sleep(3 * keepalive_s)  # nothing told twice
                assert set(told.counts) == set(range(STREAMS))
                assert set(told.counts.values()) == {1}
                served.asgi.drain.begin()  # the server drains: every stream ends, cleanly
            assert told.ended == STREAMS


class Spawned(trio.abc.Instrument):
    def __init__(self) -> None:
        self.names: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.names.append(task.name)


async def test_an_idle_stream_sending_keepalives_starts_no_task_of_its_own() -> None:
    """Its send deadline is a timer on the app's clock, not a watcher task per stream."""
    config = scalemcp.Config.from_options(sse_keepalive_s=0.1)
    told = Told(10)
    with trio.fail_after(30):
        async with (open_asgi(app, config) as served,
                    served.client(timeout=30) as http):
            spawned = Spawned()
            trio.lowlevel.add_instrument(spawned)
            try:
                async with trio.open_nursery() as nursery:
                    for i in range(told.expected):
                        opener = open_get if i % 2 else open_listen
                        nursery.start_soon(opener, http, served.url, i, told)
                    await told.opened.wait()
                    await trio.sleep(0.5)  # keepalives go out, each under its deadline
                    nursery.cancel_scope.cancel()
            finally:
                trio.lowlevel.remove_instrument(spawned)
    guards = [name for name in spawned.names if "send_guard" in name.lower()]
    assert guards == []
    assert len(spawned.names) >= told.expected  # it saw the streams' own tasks start
