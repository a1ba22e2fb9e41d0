"""bench/redis_census.py: the soak's count of Redis keys by kind, against a real Redis
written by a real backend (so a change of the key layout that the census does not know
shows up here, as keys of an unknown kind)."""

from __future__ import annotations

import trio

from bench.redis_census import census, kind
from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend
from tests.harness.redis import RedisServer


def test_kinds_mask_what_varies() -> None:
    assert kind(b"smcp:{Xb48hXN519}:x:p84ccc6ba", b"smcp:") == "{sid}:x:*"
    assert kind(b"smcp:{bus}:inbox:03e9c14a21354ddb", b"smcp:") == "{bus}:inbox:*"
    assert kind(b"smcp:{s1}:xz", b"smcp:") == "{sid}:xz"
    assert kind(b"other:{t1}:queue:0123456789abcdef", b"smcp:") == "other:{*}:queue:*"


async def test_census_of_a_backend_s_keys() -> None:
    redis = RedisServer()
    try:
        backend = RedisBackend(redis.url)
        with trio.fail_after(20):
            async with backend.running():
                for sid in ("a", "b"):
                    await backend.create_session(SessionRecord(
                        session_id=sid, protocol_version="2025-11-25", principal=None))
                    for n in range(3):
                        await backend.append(sid, f"p{n}", b"x" * 100, final=True)
                taken = await trio.to_thread.run_sync(census, redis.port)
        assert taken["{sid}:x:*"]["keys"] == 6
        assert taken["{sid}:xz"]["keys"] == taken["{sid}:s"]["keys"] == 2
        assert taken["{sid}:x:*"]["bytes"] > 6 * 100
        known = {"{sid}:x:*", "{sid}:xz", "{sid}:s", "sessions", "principal:*", "worker:*",
                 "{bus}:inbox:*", "{bus}:broadcast"}
        assert set(taken) <= known, set(taken) - known
    finally:
        redis.stop()
