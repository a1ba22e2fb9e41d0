"""Redis Cluster: a worker follows streams of many slots (one blocking XREAD per slot, up
to a cap, the rest polled), and a slot's reader is woken when it must read more."""

from __future__ import annotations

import secrets

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from scalemcp.state.base import StreamRead
from scalemcp.state.redis_layout import hash_slot
from tests.harness.conditions import eventually
from tests.harness.redis import RedisClusterNodes

from .test_contract import record

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


async def test_more_followed_slots_than_lanes(redis_cluster: RedisClusterNodes) -> None:
    from scalemcp.state.redis import RedisBackend

    prefix = f"t{secrets.token_hex(4)}:"
    # max_connections=4: one lane besides the main reader; the other slots are polled.
    reader = RedisBackend(redis_cluster.url, key_prefix=prefix, max_connections=4, block_s=0.5)
    writer = RedisBackend(redis_cluster.url, key_prefix=prefix)
    sids = [f"s{i}" for i in range(6)]
    slots = {hash_slot(f"{prefix}{{{sid}}}:x:p") for sid in sids}
    assert len(slots) == len(sids)
    assert hash_slot(reader.keys.broadcast) not in slots
    with trio.fail_after(20):
        async with reader.running(), writer.running():
            last: dict[str, str] = {}
            for sid in sids:
                await writer.create_session(record(sid))
                last[sid] = await writer.append(sid, "p", b"first")
            woken: dict[str, tuple[StreamRead, float]] = {}

            async def follow(sid: str) -> None:
                batch = await reader.read(sid, "p", last[sid], wait_s=8)
                woken[sid] = (batch, trio.current_time())

            follower = reader._follower
            async with trio.open_nursery() as nursery:
                for sid in sids:
                    nursery.start_soon(follow, sid)
                # Until the follower took every read on (a Redis round trip per slot).
                await eventually(lambda: len(follower._polled) == len(sids) - 1,
                                 "every read followed", 10)
                assert not woken, "a read did not wait"
                assert len(follower._lanes) == 2  # the main reader and one lane
                started = trio.current_time()
                for sid in sids:
                    await writer.append(sid, "p", b"second")
            for sid in sids:
                batch, at = woken[sid]
                assert [e.data for e in batch.events] == [b"second"]
                assert at - started < 1.0, sid
            # Nobody follows anything any more: the lane and the poll loop end (when their
            # blocking reads time out: real time is the point of this wait).
            for _ in range(100):
                if len(follower._lanes) == 1 and not follower._polled:
                    break
                await trio.sleep(0.1)
            assert len(follower._lanes) == 1
            assert not follower._polled


async def test_a_lane_is_woken_for_another_stream_of_its_slot(
    redis_cluster: RedisClusterNodes,
) -> None:
    from scalemcp.state.redis import RedisBackend

    prefix = f"t{secrets.token_hex(4)}:"
    a = RedisBackend(redis_cluster.url, key_prefix=prefix)
    b = RedisBackend(redis_cluster.url, key_prefix=prefix)
    with trio.fail_after(20):
        async with a.running(), b.running():
            await b.create_session(record("s"))
            first = {name: await b.append("s", name, b"0") for name in ("p1", "p2")}
            got: dict[str, list[bytes]] = {}
            p2_read = trio.Event()

            async def follow(name: str) -> None:
                batch = await a.read("s", name, first[name], wait_s=8)
                got[name] = [e.data for e in batch.events]
                if name == "p2":
                    p2_read.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow, "p1")
                await wait_all_tasks_blocked()  # the slot's lane blocks on p1 alone
                nursery.start_soon(follow, "p2")
                await wait_all_tasks_blocked()  # ... and is woken to read p2 too
                assert not got, "a read did not wait"
                started = trio.current_time()
                await b.append("s", "p2", b"two")
                with trio.fail_after(1):
                    await p2_read.wait()
                await b.append("s", "p1", b"one")
            assert trio.current_time() - started < 1.5  # not the lane's 5 s block
            assert got == {"p1": [b"one"], "p2": [b"two"]}
