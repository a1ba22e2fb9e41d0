"""Redis Sentinel: the master found through the sentinels (``redis+sentinel://`` URLs), part
of the contract suite through them, and failovers that running workers survive."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import pytest
import trio

from scalemcp.errors import BackendUnavailable
from scalemcp.state.base import StateBackend
from tests.harness.redis import SentinelDeployment

from . import test_contract as contract
from .conftest import opener

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

CONTRACT: list[Callable[..., Awaitable[None]]] = [
    contract.test_session_lifecycle,
    contract.test_append_and_replay_after_position,
    contract.test_blocking_read_woken_by_append,
    contract.test_final_event_ends_the_stream,
    contract.test_deleted_session_ends_streams,
    contract.test_mailbox_delivery,
    contract.test_cancellation_mailbox,
    contract.test_changes_fan_out,
    contract.test_claim_once,
    contract.test_two_workers_mailbox,
    contract.test_two_workers_streams,
    contract.test_two_workers_blocking_read_and_deletion,
    contract.test_two_workers_changes,
]


@pytest.mark.parametrize("case", CONTRACT, ids=[c.__name__.removeprefix("test_") for c in CONTRACT])
async def test_contract_through_sentinel(
    case: Callable[..., Awaitable[None]], request: pytest.FixtureRequest
) -> None:
    # A time test takes a clock: Redis keeps real time.
    clock = {"clock": None} if "clock" in inspect.signature(case).parameters else {}
    await case(opener("redis-sentinel", request), **clock)


async def _until_written_to(deployment: SentinelDeployment, state: StateBackend, sid: str,
                            old_port: int) -> int:
    """Create ``sid`` until that works and lands on the new master; how many attempts met
    BackendUnavailable (HTTP 503) meanwhile."""
    unavailable = 0
    key = f"{state.keys.prefix}{{{sid}}}:s"  # type: ignore[attr-defined]
    while True:
        try:
            await state.create_session(contract.record(sid))
        except BackendUnavailable:
            unavailable += 1
        else:
            port = await trio.to_thread.run_sync(deployment.master_port)
            if port != old_port:
                server = deployment.replica if deployment.replica and (
                    deployment.replica.port == port) else deployment.master
                if server.cli("EXISTS", key).strip() == "1":
                    return unavailable
        await trio.sleep(0.1)


def _master_port(state: StateBackend) -> int | None:
    """The master a worker's pool connects to now (None before it asked the sentinels)."""
    client = state._link.client  # type: ignore[attr-defined]
    location = getattr(client.connection_pool, "location", None) if client else None
    return None if location is None else int(location.port)


@pytest.mark.parametrize("how", ["sentinel-failover", "master-killed"])
async def test_failover(how: str) -> None:
    """Workers keep running through a failover: 503s while there is no master, then the
    new master serves new sessions and everything written (and replicated) before."""
    from scalemcp.state.redis import RedisBackend

    deployment = await trio.to_thread.run_sync(SentinelDeployment)
    try:
        assert deployment.replica is not None
        assert deployment.sentinel is not None
        a = RedisBackend(deployment.url, key_prefix="f:", connect_timeout_s=0.5)
        b = RedisBackend(deployment.url, key_prefix="f:", connect_timeout_s=0.5)
        with trio.fail_after(45):
            async with a.running(), b.running():
                await a.create_session(contract.record("before", "alice"))
                before = [await a.append("before", "p", b"e%d" % i) for i in range(3)]
                await trio.to_thread.run_sync(deployment.wait_replicated)
                old_port = deployment.master_port()
                assert old_port == deployment.master.port

                if how == "sentinel-failover":
                    assert deployment.sentinel.command(
                        "SENTINEL", "FAILOVER", deployment.MASTER) == b"+OK"
                else:
                    deployment.master.proc.kill()
                started = trio.current_time()
                unavailable = await _until_written_to(deployment, a, "after", old_port)
                switched_s = trio.current_time() - started
                assert deployment.master_port() == deployment.replica.port
                print(f"\n{how}: new sessions work after {switched_s:.1f} s "
                      f"({unavailable} attempts answered BackendUnavailable)")
                assert switched_s < 20
                if how == "master-killed":
                    assert unavailable > 0  # nothing answers until the replica is promoted

                # What was written before is there; both workers work on the new master.
                loaded = await b.load_session("before")
                assert loaded is not None
                assert loaded.principal == "alice"
                read = await b.read("before", "p", None, wait_s=0)
                assert [e.position for e in read.events] == before
                assert await b.load_session("after") is not None
                assert await b.count_sessions("alice") == 1

                # The workers' stream readers reconnected too: routing through an inbox,
                # and a reader parked on another worker's stream, woken by its append.
                for _ in range(100):
                    if a.statistics().healthy and b.statistics().healthy:
                        break
                    await trio.sleep(0.05)
                assert a.statistics().healthy
                assert b.statistics().healthy
                # Every worker learns the move from the sentinels' +switch-master (or its
                # next check): until then a demoted master that is still reachable would
                # take its writes (the window README's Redis notes describe).
                new_port = deployment.replica.port
                for _ in range(100):
                    if _master_port(a) == new_port and _master_port(b) == new_port:
                        break
                    await trio.sleep(0.05)
                assert (_master_port(a), _master_port(b)) == (new_port, new_port)
                async with a.open_mailbox("after", "r:1") as box:
                    assert await b.deliver("after", "r:1", b"answer") is True
                    with trio.fail_after(2):
                        assert await box.receive() == b"answer"
                last = await a.append("after", "q", b"first")
                woken: list[bytes] = []

                async def reader() -> None:
                    batch = await b.read("after", "q", last, wait_s=5)
                    woken.extend(e.data for e in batch.events)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    await trio.sleep(0.2)
                    t0 = trio.current_time()
                    await a.append("after", "q", b"second")
                assert woken == [b"second"]
                assert trio.current_time() - t0 < 3.0  # woken, not timed out (wait_s=5)
                assert await a.ready()
    finally:
        await trio.to_thread.run_sync(deployment.stop)
