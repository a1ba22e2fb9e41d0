"""Many short Redis faults in a row (tests/harness/faults.py) while session-era calls go on:
once they stop, calls succeed again and the coredis pool has all its places.

coredis dropped the place of a connection that died while leased (a blocking XREAD, a
pipeline, a command cut by the fault); after enough faults a worker had none left and
every command waited out ``pool_timeout`` with "Redis is unavailable: " and no reason,
while Redis answered (README "Long soak"; scalemcp/state/redis_pool.py).
"""

from __future__ import annotations

import itertools

import pytest
import trio

from scalemcp.errors import BackendUnavailable
from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend
from scalemcp.state.redis_pool import free_places
from tests.harness.faults import Fault, FaultProxy
from tests.harness.redis import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

MAX_CONNECTIONS = 8
FAULTS = 40
FAULT_S = 0.3
KINDS = [Fault.BLACK_HOLE, Fault.CUT_UP, Fault.CUT_DOWN, Fault.RESET, Fault.LATENCY]


async def _session_era(state: RedisBackend, name: str, stop: trio.Event) -> None:
    """Create, load, append and read, as requests do, each bounded like a request."""
    for n in itertools.count():
        if stop.is_set():
            return
        sid = f"{name}-{n}"
        try:
            with trio.move_on_after(0.8):
                await state.create_session(SessionRecord(session_id=sid,
                                                         protocol_version="2025-11-25"))
                await state.load_session(sid)
                await state.append(sid, "s", b"event")
                await state.read(sid, "s", None, wait_s=0)
        except BackendUnavailable:
            await trio.sleep(0.05)


def _places(state: RedisBackend) -> tuple[int, int]:
    """(places free in the pool, connections leased from it)."""
    client = state._link.client
    assert client is not None
    pool = client.connection_pool
    free = free_places(pool)
    assert free is not None
    return free, pool.statistics.in_use_connections


async def test_the_pool_keeps_its_places_through_many_faults() -> None:
    redis = RedisServer()
    try:
        async with trio.open_nursery() as nursery:
            proxy = FaultProxy("127.0.0.1", redis.port)
            await nursery.start(proxy.serve)
            state = RedisBackend(proxy.url, max_connections=MAX_CONNECTIONS,
                                 pool_timeout_s=1.0, connect_timeout_s=1.0,
                                 command_timeout_s=1.5, block_s=0.5, write_retry_s=0.5)
            with trio.fail_after(120):
                async with state.running():
                    await state.create_session(SessionRecord(session_id="first",
                                                             protocol_version="2025-11-25"))
                    stop = trio.Event()
                    async with trio.open_nursery() as callers:
                        for i in range(6):
                            callers.start_soon(_session_era, state, f"c{i}", stop)
                        for fault in itertools.islice(itertools.cycle(KINDS), FAULTS):
                            proxy.set(fault, latency_s=1.2)
                            await trio.sleep(FAULT_S)
                            proxy.set(Fault.PASS)
                            await trio.sleep(FAULT_S)
                        stop.set()

                    # Calls succeed again within a few seconds of the last fault...
                    with trio.fail_after(10):
                        while True:
                            try:
                                await state.create_session(SessionRecord(
                                    session_id="after", protocol_version="2025-11-25"))
                                loaded = await state.load_session("after")
                                break
                            except BackendUnavailable:
                                await trio.sleep(0.1)
                    assert loaded is not None
                    # ... and every place of the pool is either free or leased (the reader's
                    # XREAD), none lost: a pool that lost them fails every call, later.
                    for _ in range(100):  # (a connection may be opening meanwhile)
                        if sum(_places(state)) == MAX_CONNECTIONS:
                            break
                        await trio.sleep(0.1)
                    free, leased = _places(state)
                    assert free + leased == MAX_CONNECTIONS, (free, leased)
                    # Redis holds no more of the worker's connections than the pool's and
                    # the lane.
                    clients = redis.cli("CLIENT", "LIST").count("name=scalemcp-")
                    assert clients <= MAX_CONNECTIONS + 1, clients
            nursery.cancel_scope.cancel()
    finally:
        redis.stop()
