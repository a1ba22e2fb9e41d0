"""A stream whose writer died ends with its epitaph (scalemcp/state/redis_liveness.py),
and nothing is appended after a stream's final event (every backend).

A worker "dies" here by leaving its ``open()`` block and losing its heartbeat key (as a
``kill -9``-ed worker's key expires); tests/cluster kills real processes.
"""

from __future__ import annotations

import logging

import pytest
import trio

from scalemcp.state.redis import RedisBackend

from .conftest import OpenBackend, Target
from .test_contract import collect, record

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

EPITAPH = b'{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"gone"}}'


async def test_nothing_follows_a_final_event(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            await state.append("s", "p", b"", epitaph=EPITAPH)
            last = await state.append("s", "p", b"result", final=True)
            assert await state.append("s", "p", b"late") == last
            assert await state.append("s", "p", b"later", final=True) == last
            seen, _, end = await collect(state, "s", "p")
            assert seen == [b"", b"result"]
            assert end.ended


async def test_dead_writers_stream_ends_with_its_epitaph(
    open_redis: OpenBackend, redis_target: Target
) -> None:
    with trio.fail_after(20):
        async with open_redis() as reader, open_redis() as late:
            assert isinstance(reader, RedisBackend)
            async with open_redis() as writer:
                assert isinstance(writer, RedisBackend)
                await writer.create_session(record("s"))
                priming = await writer.append("s", "p", b"", epitaph=EPITAPH)
                first = await writer.append("s", "p", b"progress 1")
                # The writer lives: a reader that waits finds nothing and the stream goes on.
                alive = await reader.read("s", "p", first, wait_s=0.3)
                assert (alive.events, alive.ended) == ([], False)
            redis_target.command("DEL", writer.keys.worker(writer.worker_id))

            # Without a whole wait nobody is declared dead (the writer may be starting).
            now = await reader.read("s", "p", first, wait_s=0)
            assert (now.events, now.ended) == ([], False)

            async def resume(backend: RedisBackend, results: list[list[bytes]]) -> None:
                seen, _, end = await collect(backend, "s", "p", priming, wait_s=0.3)
                assert end.ended
                results.append(seen)

            results: list[list[bytes]] = []
            async with trio.open_nursery() as nursery:  # two readers race to bury it
                nursery.start_soon(resume, reader, results)
                nursery.start_soon(resume, late, results)
            assert results == [[b"progress 1", EPITAPH]] * 2

            # A writer taken for dead that comes back cannot add a second answer.
            await late.append("s", "p", b"result", final=True)
            seen, _, _ = await collect(reader, "s", "p")
            assert seen == [b"", b"progress 1", EPITAPH]


async def test_live_writer_ends_its_own_stream(open_redis: OpenBackend) -> None:
    """The ordinary case: the final append removes the epitaph; it never shows up."""
    with trio.fail_after(10):
        async with open_redis() as writer, open_redis() as reader:
            assert isinstance(writer, RedisBackend)
            await writer.create_session(record("s"))
            await writer.append("s", "p", b"", epitaph=EPITAPH)
            await writer.append("s", "p", b"result", final=True)
            seen, _, end = await collect(reader, "s", "p", wait_s=0.3)
            assert seen == [b"", b"result"]
            assert end.ended
            assert await writer.delete_session("s")


async def test_a_starting_worker_does_not_report_a_reachable_redis_unreachable(
    open_redis: OpenBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """The health watcher starts with the first attempt to connect, not before it: a new
    worker used to log Redis "unreachable (not running)" at every start (the soak's logs
    had one per replaced worker)."""
    caplog.set_level(logging.WARNING, logger="scalemcp.state.redis")
    with trio.fail_after(10):
        async with open_redis():
            await trio.sleep(0.3)  # the watcher's first check has run
    assert [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()] == []
