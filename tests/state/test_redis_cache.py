"""Client-side caching of session records (state/redis_cache.py): a cached load costs no
round trip, and what another worker changes or deletes is seen within the documented
bound (the invalidation push Redis sends as it runs the change)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio

from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend
from scalemcp.state.redis_cache import SessionCache
from tests.harness.redis import RedisServer

#: The documented bound, with room for a loaded machine: Redis pushes the invalidation as
#: it runs the change; this worker applies it one scheduling pass after the bytes arrive.
BOUND_S = 0.5


def _backend(server: RedisServer, prefix: str, **settings: Any) -> RedisBackend:
    return RedisBackend(server.url, key_prefix=prefix, **settings)


def _record(sid: str) -> SessionRecord:
    return SessionRecord(session_id=sid, protocol_version="2025-11-25", principal="alice")


async def _cached_on(state: RedisBackend, sid: str) -> SessionRecord:
    """Load twice: the first from Redis, the second from the cache (asserted)."""
    assert await state.load_session(sid) is not None
    hits = state._link.cache.hits
    record = await state.load_session(sid)
    assert record is not None
    assert state._link.cache.hits == hits + 1, "the second load was not served from the cache"
    return record


async def _until(predicate: Any) -> tuple[int, float]:
    """Scheduling passes and seconds until ``await predicate()`` holds, trying again after
    each pass (the bound under test is in passes and milliseconds, not a sleep)."""
    started, passes = trio.current_time(), 0
    with trio.fail_after(BOUND_S):
        while not await predicate():
            await trio.lowlevel.checkpoint()
            passes += 1
    return passes, trio.current_time() - started


async def test_a_session_deleted_on_another_worker_is_refused_within_the_bound(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    with trio.fail_after(10):
        a, b = _backend(redis_server, prefix), _backend(redis_server, prefix)
        async with a.running(), b.running():
            await a.create_session(_record("s"))
            await _cached_on(a, "s")
            assert await b.delete_session("s")

            async def refused() -> bool:
                return await a.load_session("s") is None

            passes, took = await _until(refused)
            print(f"\nrefused after {passes} passes, {took * 1000:.2f} ms")
            assert len(a._link.cache) == 0


async def test_a_change_made_on_another_worker_reaches_the_cached_record(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    with trio.fail_after(10):
        a, b = _backend(redis_server, prefix), _backend(redis_server, prefix)
        async with a.running(), b.running():
            await a.create_session(_record("s"))
            assert (await _cached_on(a, "s")).log_level is None
            await b.update_session("s", log_level="debug")

            async def changed() -> bool:
                record = await a.load_session("s")
                return record is not None and record.log_level == "debug"

            await _until(changed)
            await b.subscribe("s", "res://x", True)

            async def subscribed() -> bool:
                record = await a.load_session("s")
                return record is not None and record.subscriptions == ["res://x"]

            await _until(subscribed)


async def test_own_changes_are_seen_by_the_next_load_at_once(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    with trio.fail_after(10):
        a = _backend(redis_server, prefix)
        async with a.running():
            await a.create_session(_record("s"))
            await _cached_on(a, "s")
            await a.update_session("s", initialized=True)
            record = await a.load_session("s")
            assert record is not None
            assert record.initialized
            await _cached_on(a, "s")
            assert await a.delete_session("s")
            assert await a.load_session("s") is None


async def test_cached_loads_still_keep_a_used_session_alive(
    redis_server: RedisServer,
) -> None:
    """Loads served from the cache renew nothing; once the TTL falls below the idle TTL
    the next load goes to Redis and renews it: a session used every 50 ms outlives its
    0.5 s idle TTL threefold, mostly from the cache, and one left idle expires."""
    prefix = f"t{secrets.token_hex(4)}:"
    with trio.fail_after(10):
        a = _backend(redis_server, prefix, idle_ttl_s=0.5, renew_slack_s=0.2)
        async with a.running():
            await a.create_session(_record("used"))
            await a.create_session(_record("idle"))
            assert await a.load_session("idle") is not None
            for _ in range(30):
                assert await a.load_session("used") is not None
                await trio.sleep(0.05)
            assert a._link.cache.hits >= 15
            # Past idle + slack since its one load, from the cache or not.
            assert await a.load_session("idle") is None
            assert redis_server.command("EXISTS", f"{prefix}{{idle}}:s") == b":0"


async def test_a_lost_lane_takes_its_cached_records_with_it(
    redis_server: RedisServer,
) -> None:
    """Invalidations may be lost with a connection: records read on a closed lane are
    never served again; the next load reads Redis on a new one."""
    prefix = f"t{secrets.token_hex(4)}:"
    with trio.fail_after(10):
        a = _backend(redis_server, prefix)
        async with a.running():
            await a.create_session(_record("s"))
            await _cached_on(a, "s")
            lane: Any = a._link._lane
            lane.close("test: the connection is lost")
            hits = a._link.cache.hits
            record = await a.load_session("s")
            assert record is not None
            assert a._link.cache.hits == hits
            await _cached_on(a, "s")


async def test_flushing_the_database_drops_every_cached_record(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    server = RedisServer()
    try:
        with trio.fail_after(10):
            a = _backend(server, prefix)
            async with a.running():
                for sid in ("s1", "s2"):
                    await a.create_session(_record(sid))
                    await _cached_on(a, sid)
                server.command("FLUSHDB")

                async def gone() -> bool:
                    return await a.load_session("s1") is None

                await _until(gone)
                assert await a.load_session("s2") is None
    finally:
        server.stop()


# -- the cache alone (sans-IO) -------------------------------------------------------------


class _Lane:
    """What the cache reads of a lane: its push count and whether it is usable."""

    def __init__(self) -> None:
        self.pushes = 0
        self.usable = True


def test_a_record_read_before_a_push_the_reader_has_seen_is_not_kept() -> None:
    cache, lane = SessionCache(), _Lane()
    stamp = lane.pushes
    lane.pushes += 1  # an invalidation read after the reply, before the record is stored
    cache.put("k", _record("s"), lane, stamp, 0, renew_at=10.0)
    assert cache.get("k", lane, now=0.0) is None
    cache.put("k", _record("s"), lane, lane.pushes, 0, renew_at=10.0)
    assert cache.get("k", lane, now=0.0) is not None
    forgets = cache.forgets
    cache.forget("j")  # this worker changed a session while a load of it was on its way
    cache.put("j", _record("t"), lane, lane.pushes, forgets, renew_at=10.0)
    assert cache.get("j", lane, now=0.0) is None


@pytest.mark.parametrize("reason", ["renewal due", "another lane", "lane closed"])
def test_a_record_is_served_only_on_its_lane_until_its_renewal(reason: str) -> None:
    cache, lane = SessionCache(), _Lane()
    cache.put("k", _record("s"), lane, 0, 0, renew_at=10.0)
    assert cache.get("k", lane, now=9.9) is not None
    if reason == "renewal due":
        assert cache.get("k", lane, now=10.0) is None
    elif reason == "another lane":
        assert cache.get("k", _Lane(), now=0.0) is None
    else:
        lane.usable = False
        cache.put("j", _record("t"), lane, 0, 0, renew_at=10.0)
        assert cache.get("j", lane, now=0.0) is None
    assert len(cache) <= 1


def test_pushes_drop_their_keys_and_a_flush_drops_all() -> None:
    cache, lane = SessionCache(), _Lane()
    for key in ("a", "b", "c"):
        cache.put(key, _record(key), lane, 0, 0, renew_at=10.0)
    cache.on_push([b"invalidate", [b"a", b"b"]])
    cache.on_push([b"message", b"chan", b"not an invalidation"])
    assert [k for k in "abc" if cache.get(k, lane, 0.0)] == ["c"]
    cache.on_push([b"invalidate", None])
    assert len(cache) == 0


def test_the_cache_is_bounded() -> None:
    cache, lane = SessionCache(max_entries=2), _Lane()
    for key in ("a", "b", "c"):
        cache.put(key, _record(key), lane, 0, 0, renew_at=10.0)
    assert len(cache) == 2
    assert cache.get("a", lane, 0.0) is None
