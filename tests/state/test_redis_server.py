"""Two workers (the ASGI app in memory, tests/harness/asgi.py) sharing one redis-server (or
one Redis Cluster): a session moves freely between them.

Also measures what one request costs in Redis commands (``MONITOR``), and keeps it in
budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from examples.quickstart import app
from scalemcp.config import Config
from scalemcp.state.redis_layout import APPEND, LOAD_SESSION, READ, UPDATE_SESSION
from tests.harness.asgi import client_of, open_asgi
from tests.harness.client import ELICITATION, tool_call
from tests.harness.client import start_session as harness_start_session
from tests.harness.redis import RedisServer
from tests.harness.sse import Event, sse_events

from .conftest import Target

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SCRIPTS = {hashlib.sha1(source.encode()).hexdigest(): name for name, source in [
    ("load", LOAD_SESSION), ("append", APPEND), ("read", READ), ("update", UPDATE_SESSION)]}

@asynccontextmanager
async def two_servers(redis: Target) -> AsyncIterator[tuple[str, str, httpx.AsyncClient]]:
    """Two workers over ``redis``: their URLs, and a client that reaches both."""
    assert redis.command("FLUSHALL") == b"+OK"
    config = Config.from_options(redis_url=redis.url, sse_keepalive_s=2.0)
    async with (
        open_asgi(app, config, port=8001) as a,
        open_asgi(app, config, port=8002) as b,
        client_of(a, b, timeout=10) as http,
    ):
        yield a.url, b.url, http


async def start_session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    return await harness_start_session(client, url, capabilities=ELICITATION)


async def test_session_moves_between_workers(redis_target: Target) -> None:
    with trio.fail_after(20):
        async with two_servers(redis_target) as (a, b, client):
            headers = await start_session(client, a)
            answer = await client.post(b, json=tool_call("add", {"a": 2, "b": 3}, 1),
                                       headers=headers)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/json")
            assert "5" in answer.json()["result"]["content"][0]["text"]
            assert (await client.delete(b, headers=headers)).status_code == 200
            gone = await client.post(a, json=tool_call("add", {"a": 1, "b": 1}, 2), headers=headers)
            assert gone.status_code == 404


async def test_resume_on_another_worker_loses_and_repeats_nothing(
    redis_target: Target,
) -> None:
    n = 8
    with trio.fail_after(20):
        async with two_servers(redis_target) as (a, b, client):
            headers = await start_session(client, a)
            first: list[Event] = []
            body = tool_call("countdown", {"n": n}, 3, progressToken="tok")
            async with client.stream("POST", a, json=body, headers=headers) as stream:
                assert stream.headers["content-type"] == "text/event-stream"
                async for event in sse_events(stream):
                    first.append(event)
                    if len(first) == 3:  # priming + two messages, then the connection drops
                        break
            last_id = first[-1].id
            assert last_id is not None
            rest: list[Event] = []
            resume = {**headers, "accept": "text/event-stream", "last-event-id": last_id}
            async with client.stream("GET", b, headers=resume) as stream:
                assert stream.status_code == 200
                async for event in sse_events(stream):
                    rest.append(event)

            events = first + rest
            ids = [event.id for event in events]
            assert None not in ids
            assert len(set(ids)) == len(ids)
            assert len({i.partition(":")[0] for i in ids if i}) == 1  # one stream
            messages = [json.loads(event.data) for event in events if event.data]
            progress = [m["params"]["progress"] for m in messages
                        if m.get("method") == "notifications/progress"]
            logs = [m["params"]["data"] for m in messages
                    if m.get("method") == "notifications/message"]
            assert progress == list(range(1, n + 1))
            assert logs == [f"tick {n - i}" for i in range(n)]
            assert messages[-1]["id"] == 3
            assert messages[-1]["result"]["content"] == [{"type": "text", "text": "liftoff"}]


async def test_elicitation_answered_on_another_worker(redis_target: Target) -> None:
    with trio.fail_after(20):
        async with two_servers(redis_target) as (a, b, client):
            headers = await start_session(client, a)
            seen: list[dict[str, Any]] = []
            async with client.stream("POST", a, json=tool_call("ask_name", {}, 4),
                                     headers=headers) as stream:
                async for event in sse_events(stream):
                    if not event.data:
                        continue
                    message = json.loads(event.data)
                    seen.append(message)
                    if message.get("method") == "elicitation/create":
                        reply = {"jsonrpc": "2.0", "id": message["id"],
                                 "result": {"action": "accept", "content": {"name": "Ada"}}}
                        answered = await client.post(b, json=reply, headers=headers)
                        assert answered.status_code == 202
            assert seen[-1]["id"] == 4
            assert seen[-1]["result"]["content"] == [{"type": "text", "text": "Hello, Ada!"}]


async def test_cancellation_sent_to_another_worker(redis_target: Target) -> None:
    with trio.fail_after(20):
        async with two_servers(redis_target) as (a, b, client):
            headers = await start_session(client, a)
            seen: list[dict[str, Any]] = []
            body = tool_call("countdown", {"n": 20}, 5, progressToken="tok")
            async with client.stream("POST", a, json=body, headers=headers) as stream:
                async for event in sse_events(stream):
                    if not event.data:
                        continue
                    seen.append(json.loads(event.data))
                    if len(seen) == 2:
                        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                  "params": {"requestId": 5, "reason": "changed my mind"}}
                        assert (await client.post(b, json=cancel, headers=headers)).status_code \
                            == 202
            progress = [m for m in seen if m.get("method") == "notifications/progress"]
            assert len(progress) < 15
            assert seen[-1]["id"] == 5
            assert "error" in seen[-1]


# -- what a request costs in Redis ---------------------------------------------------------


_BACKGROUND = frozenset({"XREAD", "PING", "HELLO", "CLIENT"})


class Monitor:
    """Every command the redis-server runs, from ``MONITOR`` (scripts' own calls marked)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def run(self, port: int, task_status: trio.TaskStatus[None]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"MONITOR\r\n")
            buffer = b""
            started = False
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\r\n")
                for line in lines:
                    if not started and line == b"+OK":
                        started = True
                        task_status.started()
                    elif line.startswith(b"+"):
                        self.lines.append(line.decode(errors="replace"))

    def since(self, mark: int) -> dict[str, list[str]]:
        """Commands after ``mark``: sent by clients (EVALSHA named by its script; XREAD,
        heartbeat SETs and PINGs left out: the workers' own background loops, and so the
        handshake of a connection one of them opens, HELLO and CLIENT) and run inside
        scripts."""
        sent: list[str] = []
        inner: list[str] = []
        for line in self.lines[mark:]:
            _, _, rest = line.partition("] ")
            words = rest.split(" ", 2)
            name = words[0].strip('"').upper()
            if " lua]" in line:
                inner.append(name)
            elif name == "EVALSHA":
                sent.append("EVALSHA:" + SCRIPTS.get(words[1].strip('"'), "?"))
            elif name not in _BACKGROUND and not (name == "SET" and ":worker:" in words[1]):
                sent.append(name)
        return {"sent": sent, "inner": inner}


async def test_redis_commands_per_request(redis_server: RedisServer) -> None:
    """A JSON tools/call is ONE Redis command (the session load), and none once the
    worker caches the session's record; an SSE answer one per event (+ reads)."""
    monitor = Monitor()
    with trio.fail_after(20):
        async with (
            two_servers(redis_server) as (a, _, client),
            trio.open_nursery() as nursery,
        ):
            await nursery.start(monitor.run, redis_server.port)
            headers = await start_session(client, a)

            async def measure(body: dict[str, Any]) -> tuple[dict[str, list[str]], int]:
                # Real time is the point of both sleeps: what the workers do in the
                # background settles first, and commands a request causes after its
                # answer ended are counted too.
                await trio.sleep(0.2)
                mark = len(monitor.lines)
                events = 0
                async with client.stream("POST", a, json=body, headers=headers) as answer:
                    if answer.headers["content-type"] == "text/event-stream":
                        events = len([e async for e in sse_events(answer)])
                    else:
                        await answer.aread()
                await trio.sleep(0.2)
                return monitor.since(mark), events

            cold, _ = await measure(tool_call("add", {"a": 1, "b": 2}, 1))
            json_answer, _ = await measure(tool_call("add", {"a": 1, "b": 2}, 2))
            sse_answer, events = await measure(
                tool_call("countdown", {"n": 3}, 3, progressToken="t"))
            nursery.cancel_scope.cancel()
    print(f"\nRedis commands per session-era tools/call, JSON answer: {cold} (first), "
          f"{json_answer} (cached)")
    print(f"Redis commands per SSE answer ({events} events incl. priming): {sse_answer}")
    assert cold["sent"] == ["EVALSHA:load"]
    assert json_answer == {"sent": [], "inner": []}
    # No load (cached), one append per event, and reads: the first one, and one more
    # only when the reader was not parked when an event was appended (usually handed over).
    sent = sse_answer["sent"]
    assert sent.count("EVALSHA:append") == events
    assert 1 <= sent.count("EVALSHA:read") <= events // 2 + 1, sent
    assert len(sent) == events + sent.count("EVALSHA:read"), sent
