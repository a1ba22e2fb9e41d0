"""Fleet-wide in-flight counts (``max_inflight_fleet_wide``): two backends on one Redis
are two workers of a fleet; a session's requests count on both, a dead worker's count is
forgotten, deletion drops the count. The memory backend counts in its one process."""

from __future__ import annotations

import secrets

import trio

from scalemcp import Config
from scalemcp.state.redis import RedisBackend
from tests.harness.asgi import client_of, open_asgi
from tests.harness.client import start_session, tool_call
from tests.harness.redis import RedisServer

from .conftest import OpenBackend, Target
from .test_contract import record


async def test_inflight_counts_across_workers(open_redis: OpenBackend,
                                              redis_target: Target) -> None:
    with trio.fail_after(20):
        async with open_redis() as a, open_redis() as b:
            await a.create_session(record("s"))
            assert await a.acquire_inflight("s", 2, 3)
            assert await b.acquire_inflight("s", 1, 3)
            assert not await b.acquire_inflight("s", 1, 3)  # 3 in flight: the limit
            assert not await a.acquire_inflight("s", 1, 3)
            assert await a.acquire_inflight("other", 3, 3)  # per session
            await a.release_inflight("s", 1)
            assert await b.acquire_inflight("s", 1, 3)
            assert not await a.acquire_inflight("s", 1, 3)


async def test_a_dead_workers_count_is_forgotten(open_redis: OpenBackend,
                                                 redis_target: Target) -> None:
    with trio.fail_after(20):
        async with open_redis() as a:
            assert isinstance(a, RedisBackend)
            await a.create_session(record("s"))
            key = a.keys.inflight("s")
            # A worker killed while it ran 3 requests of the session: its count stays...
            assert await a.acquire_inflight("s", 3, 3)
            await a.release_inflight("s", 3)
            with a._link.redis() as client:
                await client.hset(key, {"deadbeefdeadbeef": "3"})
            # ...but it has no heartbeat: the refusal checks, forgets it, and counts anew.
            assert await a.acquire_inflight("s", 2, 3)
            assert not await a.acquire_inflight("s", 2, 3)


async def test_memory_backend_counts_in_process(open_backend: OpenBackend,
                                                backend_kind: str) -> None:
    async with open_backend() as state:
        assert await state.acquire_inflight("s", 2, 2)
        assert not await state.acquire_inflight("s", 1, 2)
        await state.release_inflight("s", 2)
        assert await state.acquire_inflight("s", 2, 2)


async def test_a_session_over_two_workers_gets_its_limit_once(
        redis_server: RedisServer) -> None:
    """Two workers (two apps on one Redis): with a limit of 1, a session's call running on
    one makes its next call on the other a 429; per worker (the default) both would run."""
    from examples.quickstart import app

    config = Config.from_options(redis_url=redis_server.url, max_inflight_per_session=1,
                                 max_inflight_fleet_wide=True,
                                 redis_key_prefix=f"t{secrets.token_hex(4)}:")
    with trio.fail_after(30):
        async with (open_asgi(app, config, port=81) as one,
                    open_asgi(app, config, port=82) as two,
                    client_of(one, two) as http):
            headers = await start_session(http, one.url)
            call = tool_call("countdown", {"n": 10}, 1, progressToken="p")
            async with http.stream("POST", one.url, json=call, headers=headers) as running:
                assert running.status_code == 200
                refused = await http.post(two.url, json=tool_call("add", {"a": 1, "b": 1}, 2),
                                          headers=headers)
                await running.aread()
            after = await http.post(two.url, json=tool_call("add", {"a": 1, "b": 1}, 3),
                                    headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "across the fleet" in refused.json()["error"]["message"]
    assert after.status_code == 200, after.text
