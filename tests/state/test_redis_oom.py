"""Redis at ``maxmemory`` (``noeviction``, as docs/operations.md asks): writes are refused
with OOM. What a client sees: a clear 503 + Retry-After naming the cause, for requests
that need a write (a new session, a streamed answer); stateless requests and session
requests that only read keep working; nothing crashes; once Redis has room again,
everything works without a restart."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import trio

from scalemcp import Config
from scalemcp.observability.metrics import REDIS_ERRORS
from tests.harness.asgi import open_client
from tests.harness.client import HEADERS, initialize, modern_call, start_session, tool_call
from tests.harness.redis import RedisServer
from tests.harness.sse import Event, parse_sse


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    server = RedisServer("--maxmemory-policy", "noeviction")
    yield server
    server.stop()


def used_memory(redis: RedisServer) -> int:
    for line in redis.cli("INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no used_memory in INFO")


def fill(redis: RedisServer) -> None:
    """Redis past its maxmemory: what it holds now is more than it may (refusing writes
    from then on, whatever connections come and go)."""
    assert redis.command("CONFIG", "SET", "maxmemory", str(used_memory(redis) // 2)) == b"+OK"
    assert redis.command("SET", "small", "1").startswith(b"-OOM"), "Redis has room left"


def make_room(redis: RedisServer) -> None:
    assert redis.command("CONFIG", "SET", "maxmemory", "0") == b"+OK"


async def test_redis_out_of_memory_is_a_clear_503(small_redis: RedisServer) -> None:
    from examples.quickstart import app

    config = Config.from_options(redis_url=small_redis.url, sse_keepalive_s=1.0)
    oom_before = REDIS_ERRORS.labels("oom")._value.get()
    with trio.fail_after(30):
        async with open_client(app, config) as (url, http):
            headers = await start_session(http, url)
            fill(small_redis)

            fresh = await http.post(url, json=initialize(rid=0), headers=HEADERS)
            read_only = await http.post(url, json=tool_call("add", {"a": 1, "b": 2}, 1),
                                        headers=headers)
            streamed = await http.post(url, json=tool_call("countdown", {"n": 2}, 2,
                                                           progressToken="t"), headers=headers)
            stateless = await modern_call(http, url, 3, "add", {"a": 2, "b": 3})

            make_room(small_redis)
            again = await start_session(http, url)
            after = await http.post(url, json=tool_call("countdown", {"n": 2}, 4,
                                                        progressToken="u"), headers=again)
            events = [e.message for e in sse_events_of(after)]
    assert fresh.status_code == 503, fresh.text
    assert fresh.headers["retry-after"] == "1"
    assert "out of memory" in fresh.json()["error"]["message"], fresh.text
    assert read_only.status_code == 200, read_only.text
    assert read_only.json()["result"]["structuredContent"] == {"result": 3}
    # A streamed answer cannot be written: it is answered with JSON, the request's error.
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"] == "application/json"
    error = streamed.json()["error"]
    assert (error["code"], streamed.json()["id"]) == (-32603, 2), error
    assert "out of memory" in error["message"], error
    assert stateless.status_code == 200, stateless.text
    assert REDIS_ERRORS.labels("oom")._value.get() > oom_before
    assert after.status_code == 200
    assert events[-1]["result"]["content"][0]["text"] == "liftoff", events


def sse_events_of(response: httpx.Response) -> list[Event]:
    """The events of a fully read SSE answer."""
    return parse_sse(response.text)
