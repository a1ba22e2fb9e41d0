"""The lane (state/redis_router.py): the request path's scripts go down one leased
connection; when Redis restarts, the lane is replaced."""

from __future__ import annotations

import pytest
import trio

from scalemcp.errors import BackendUnavailable
from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend
from tests.harness.redis import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


async def _load_when_back(state: RedisBackend, sid: str) -> SessionRecord | None:
    while True:
        try:
            return await state.load_session(sid)
        except BackendUnavailable:
            await trio.sleep(0.05)


async def test_the_lane_is_replaced_when_redis_restarts() -> None:
    redis = RedisServer()
    try:
        # A lane not replaced after a restart fails every load that follows.
        state = RedisBackend(redis.url, max_connections=16, pool_timeout_s=1.0,
                             connect_timeout_s=0.5, block_s=0.2)
        with trio.fail_after(40):
            async with state.running():
                for round_ in range(4):
                    sid = f"s{round_}"
                    await _retry_create(state, SessionRecord(session_id=sid,
                                                             protocol_version="2025-11-25"))
                    loaded = await _load_when_back(state, sid)
                    assert loaded is not None
                    assert loaded.session_id == sid
                    async with trio.open_nursery() as nursery:  # pipelined on the lane
                        for _ in range(20):
                            nursery.start_soon(state.load_session, sid)
                    redis.kill()
                    redis.start()
    finally:
        redis.stop()


async def _retry_create(state: RedisBackend, record: SessionRecord) -> None:
    while True:
        try:
            await state.create_session(record)
            return
        except BackendUnavailable:
            await trio.sleep(0.05)
