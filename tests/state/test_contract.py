"""One contract for every state backend (memory, redis, redis on a Redis Cluster), and the
Redis fleet behaviours.

Each test runs against every backend (``open_backend`` is parametrized); the tests at the
end run two Redis backends ("workers") that share one redis-server or one cluster.

A test about time (idle TTLs, claims) takes the ``clock`` fixture: mock time on the memory
backend, so its sleeps cost nothing; real time on Redis, whose TTLs run on its own clock.
A test that needs a read to be waiting before it writes waits for every task to block
(``wait_all_tasks_blocked``) and checks that the read has not returned.
"""

from __future__ import annotations

import json

import pytest
import trio
from trio.testing import MockClock, wait_all_tasks_blocked

from scalemcp.errors import BackendUnavailable
from scalemcp.state.base import SessionRecord, StateBackend, StreamRead
from tests.harness.ports import refused_port

from .conftest import OpenBackend, Target

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def record(session_id: str, principal: str | None = None, **extra: object) -> SessionRecord:
    return SessionRecord(session_id=session_id, protocol_version="2025-11-25",
                         principal=principal, **extra)  # type: ignore[arg-type]


async def collect(state: StateBackend, sid: str, stream: str, after: str | None = None,
                  *, wait_s: float = 2.0) -> tuple[list[bytes], str | None, StreamRead]:
    """Read until the stream ends; the data, the last position and the last read."""
    seen: list[bytes] = []
    while True:
        batch = await state.read(sid, stream, after, wait_s=wait_s)
        for event in batch.events:
            seen.append(event.data)
            after = event.position
        if batch.ended or batch.missing:
            return seen, after, batch


# -- sessions ---------------------------------------------------------------------------


async def test_session_lifecycle(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            rec = record("s1", "alice", client_capabilities={"elicitation": {"form": {}}},
                         client_info={"name": "c", "version": "1"}, created_at=12.5)
            await state.create_session(rec)
            assert await state.load_session("s1") == rec
            assert await state.load_session("nope") is None

            await state.update_session("s1", initialized=True, log_level="debug",
                                       subscriptions=["a://1", "b://2"])
            loaded = await state.load_session("s1")
            assert loaded is not None
            assert loaded.initialized
            assert loaded.log_level == "debug"
            assert loaded.subscriptions == ["a://1", "b://2"]
            assert loaded.client_capabilities == {"elicitation": {"form": {}}}
            assert loaded.principal == "alice"
            assert loaded.created_at == 12.5

            await state.update_session("nope", initialized=True)  # no error, no revival
            assert await state.load_session("nope") is None

            assert await state.delete_session("s1") is True
            assert await state.load_session("s1") is None
            assert await state.delete_session("s1") is False


async def test_subscribe_and_unsubscribe_one_uri_at_a_time(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s1", subscriptions=["a://1"]))
            await state.subscribe("s1", "c://3", True)
            await state.subscribe("s1", "b://2", True)
            await state.subscribe("s1", "b://2", True)  # twice: still once
            await state.subscribe("s1", "a://1", False)
            await state.subscribe("s1", "z://never", False)
            loaded = await state.load_session("s1")
            assert loaded is not None
            assert loaded.subscriptions == ["b://2", "c://3"]
            await state.subscribe("gone", "a://1", True)  # an unknown session: nothing
            assert await state.load_session("gone") is None


async def test_idle_ttl_expires_and_load_renews(open_backend: OpenBackend,
                                               clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_backend(idle_ttl_s=0.5) as state:
            await state.create_session(record("kept"))
            await state.create_session(record("idle"))
            for _ in range(4):  # 0.8 s in all, beyond the TTL, renewed by every load
                await trio.sleep(0.2)
                assert await state.load_session("kept") is not None
            assert await state.load_session("idle") is None
            await state.update_session("idle", initialized=True)
            assert await state.load_session("idle") is None


async def test_count_sessions_per_principal(open_backend: OpenBackend,
                                           clock: MockClock | None) -> None:
    with trio.fail_after(10):
        # The TTL leaves a1's renewals (every 0.25 s) ample margin on a loaded machine.
        async with open_backend(idle_ttl_s=2.0) as state:
            for i in range(3):
                await state.create_session(record(f"a{i}", "alice"))
            await state.create_session(record("b0", "bob"))
            await state.create_session(record("n0", None))
            assert await state.count_sessions("alice") == 3
            assert await state.count_sessions("bob") == 1
            assert await state.count_sessions(None) == 1
            assert await state.count_sessions("carol") == 0
            await state.delete_session("a0")
            assert await state.count_sessions("alice") == 2
            # Idle sessions stop counting; a renewed one keeps counting.
            for _ in range(10):
                await trio.sleep(0.25)
                await state.load_session("a1")
            assert await state.count_sessions("alice") == 1
            assert await state.count_sessions("bob") == 0


async def test_max_sessions_evicts_the_oldest(open_backend: OpenBackend,
                                             clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_backend(max_sessions=3) as state:
            for i in range(5):
                await state.create_session(record(f"s{i}"))
                await trio.sleep(0.01)
            assert await state.load_session("s0") is None
            assert await state.load_session("s1") is None
            for i in (2, 3, 4):
                assert await state.load_session(f"s{i}") is not None
            assert await state.count_sessions(None) == 3


# -- streams ----------------------------------------------------------------------------


async def test_append_and_replay_after_position(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            positions = [await state.append("s", "p1", b"e%d" % i) for i in range(5)]
            assert len(set(positions)) == 5
            everything = await state.read("s", "p1", None, wait_s=0)
            assert [e.data for e in everything.events] == [b"e%d" % i for i in range(5)]
            assert [e.position for e in everything.events] == positions
            assert not everything.ended
            assert not everything.missing
            rest = await state.read("s", "p1", positions[1], wait_s=0)
            assert [e.data for e in rest.events] == [b"e2", b"e3", b"e4"]
            caught_up = await state.read("s", "p1", positions[-1], wait_s=0)
            assert caught_up.events == []
            assert not caught_up.ended
            assert not caught_up.missing
            # Streams are separate logs.
            await state.append("s", "p2", b"other")
            again = await state.read("s", "p1", positions[-1], wait_s=0)
            assert again.events == []
            assert [e.data for e in (await state.read("s", "p2", None, wait_s=0)).events] == [
                b"other"]


async def test_blocking_read_woken_by_append(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            first = await state.append("s", "p", b"first")
            result: list[StreamRead] = []

            async def reader() -> None:
                result.append(await state.read("s", "p", first, wait_s=5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await wait_all_tasks_blocked()
                assert not result, "the read did not wait"
                started = trio.current_time()
                await state.append("s", "p", b"second")
            assert trio.current_time() - started < 1.0
            assert [e.data for e in result[0].events] == [b"second"]


async def test_read_waits_then_returns_nothing(open_backend: OpenBackend,
                                              clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            last = await state.append("s", "p", b"x")
            started = trio.current_time()
            batch = await state.read("s", "p", last, wait_s=0.3)
            assert 0.25 <= trio.current_time() - started < 2.0
            assert batch.events == []
            assert not batch.ended
            assert not batch.missing


async def test_concurrent_appends_are_read_once_in_order(open_backend: OpenBackend) -> None:
    with trio.fail_after(20):
        async with open_backend() as state:
            await state.create_session(record("s"))
            await state.append("s", "p", b"start")
            written: list[bytes] = []

            async def writer(name: str) -> None:
                for i in range(15):
                    data = f"{name}{i}".encode()
                    await state.append("s", "p", data)
                    written.append(data)
                    await trio.sleep(0.001 * (i % 3))  # real time: uneven interleaving

            async with trio.open_nursery() as nursery:
                seen: list[bytes] = []

                async def follower() -> None:
                    after = None
                    while len(seen) < 46:
                        batch = await state.read("s", "p", after, wait_s=2)
                        for event in batch.events:
                            seen.append(event.data)
                            after = event.position

                nursery.start_soon(follower)
                async with trio.open_nursery() as writers:
                    for name in "abc":
                        writers.start_soon(writer, name)
            assert seen[0] == b"start"
            assert sorted(seen[1:]) == sorted(written)
            everything = await state.read("s", "p", None, wait_s=0)
            assert [e.data for e in everything.events] == seen


async def test_final_event_ends_the_stream(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            first = await state.append("s", "p", b"progress")
            last = await state.append("s", "p", b"result", final=True)
            batch = await state.read("s", "p", first, wait_s=5)
            assert [e.data for e in batch.events] == [b"result"]
            assert batch.ended
            started = trio.current_time()
            after_end = await state.read("s", "p", last, wait_s=5)
            assert trio.current_time() - started < 1.0  # an ended stream never waits
            assert after_end.events == []
            assert after_end.ended
            assert not after_end.missing
            seen, _, end = await collect(state, "s", "p")
            assert seen == [b"progress", b"result"]
            assert end.ended


async def test_blocked_read_sees_the_final_event(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            first = await state.append("s", "p", b"")
            result: list[StreamRead] = []

            async def reader() -> None:
                result.append(await state.read("s", "p", first, wait_s=5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await wait_all_tasks_blocked()
                assert not result, "the read did not wait"
                await state.append("s", "p", b"done", final=True)
            assert [e.data for e in result[0].events] == [b"done"]
            assert result[0].ended


async def test_missing_streams(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            position = await state.append("s", "p", b"x")
            for sid, stream, after in [("s", "unknown", None), ("nope", "p", None),
                                       ("s", "p", "not-a-position")]:
                started = trio.current_time()
                batch = await state.read(sid, stream, after, wait_s=5)
                assert trio.current_time() - started < 1.0
                assert batch.missing
                assert batch.ended
                assert batch.events == []
            assert not (await state.read("s", "p", position, wait_s=0)).missing


async def test_deleted_session_ends_streams(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            last = await state.append("s", "p", b"x")
            result: list[StreamRead] = []

            async def reader() -> None:
                result.append(await state.read("s", "p", last, wait_s=8))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await wait_all_tasks_blocked()
                assert not result, "the read did not wait"
                started = trio.current_time()
                assert await state.delete_session("s")
            assert trio.current_time() - started < 1.0
            assert result[0].missing
            assert result[0].ended
            assert (await state.read("s", "p", None, wait_s=0)).missing
            # A handler still running after the deletion writes nowhere.
            assert await state.append("s", "p", b"late") == "0"
            assert (await state.read("s", "p", None, wait_s=0)).missing


async def test_idle_expiry_ends_streams(open_backend: OpenBackend,
                                       clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_backend(idle_ttl_s=0.4) as state:
            await state.create_session(record("s"))
            await state.append("s", "p", b"x")
            await trio.sleep(0.6)
            assert (await state.read("s", "p", None, wait_s=0)).missing


async def test_stream_retention_is_capped(open_backend: OpenBackend) -> None:
    with trio.fail_after(20):
        async with open_backend(stream_maxlen=10) as state:
            await state.create_session(record("s"))
            for i in range(250):
                await state.append("s", "p", b"%d" % i)
            kept = [e.data for e in (await state.read("s", "p", None, wait_s=0)).events]
            # Exactly the cap in memory; Redis trims whole nodes (MAXLEN ~): a bit more.
            assert 10 <= len(kept) <= 10 + 150
            assert kept == [b"%d" % i for i in range(250 - len(kept), 250)]


# -- mailboxes and changes ---------------------------------------------------------------


async def test_mailbox_delivery(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            assert await state.deliver("s", "r:1", b"nobody") is False
            async with state.open_mailbox("s", "r:1") as box:
                assert await state.deliver("s", "r:1", b"answer") is True
                assert await box.receive() == b"answer"
                assert await state.deliver("s", "r:other", b"x") is False
            assert await state.deliver("s", "r:1", b"too late") is False


async def test_cancellation_mailbox(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            async with state.open_mailbox("s", "c:7") as box:
                assert await state.deliver("s", "c:7", b"") is True
                assert await box.receive() == b""


async def test_cancellation_callback(open_backend: OpenBackend) -> None:
    """A cancellation mailbox held by a callback: called at once on delivery, not after."""
    got: list[bytes] = []
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.create_session(record("s"))
            with state.on_delivery("s", "c:8", got.append):
                assert state.statistics().mailboxes == 1
                assert await state.deliver("s", "c:8", b"why") is True
                assert got == [b"why"]
            assert state.statistics().mailboxes == 0
            await state.deliver("s", "c:8", b"too late")
            assert got == [b"why"]


def note(method: str, **params: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode()


async def test_changes_fan_out(open_backend: OpenBackend) -> None:
    """Every listener gets each change, decoded once into a Change; what is not a
    notification is dropped."""
    c1 = note("notifications/resources/updated", uri="res://1")
    c2 = note("notifications/tools/list_changed")
    with trio.fail_after(10):
        async with open_backend() as state:
            await state.publish_change(c1)
            async with state.open_changes() as one, state.open_changes() as two:
                await state.publish_change(c1)
                await state.publish_change(b"not JSON-RPC")
                await state.publish_change(c2)
                for listener in (one, two):
                    first, second = await listener.receive(), await listener.receive()
                    assert (first.payload, first.uri) == (c1, "res://1")
                    assert (second.method, second.payload) == (
                        "notifications/tools/list_changed", c2)
            await state.publish_change(c2)  # nobody listens: no error


async def test_claim_once(open_backend: OpenBackend,
                         clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            assert await state.claim_once("k", 0.3) is True
            assert await state.claim_once("k", 0.3) is False
            assert await state.claim_once("other", 0.3) is True
            await trio.sleep(0.5)
            assert await state.claim_once("k", 0.3) is True


async def test_ready_and_statistics(open_backend: OpenBackend, backend_kind: str) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            assert await state.ready()
            await state.create_session(record("s"))
            await state.append("s", "p", b"x")
            async with state.open_mailbox("s", "r:1"):
                stats = state.statistics()
            assert stats.backend == backend_kind.partition("-")[0]
            assert stats.healthy
            assert stats.sessions == 1
            assert stats.streams >= 1
            assert stats.mailboxes == 1


# -- Redis: two workers sharing one redis-server (or one cluster) ------------------------


async def test_two_workers_mailbox(open_redis: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_redis() as a, open_redis() as b:
            await a.create_session(record("s"))
            async with a.open_mailbox("s", "r:srv-1") as box:
                assert await b.deliver("s", "r:srv-1", b"from b") is True
                assert await box.receive() == b"from b"
            assert await b.deliver("s", "r:srv-1", b"closed") is False
            async with a.open_mailbox("s", "c:9") as cancel:
                assert await b.deliver("s", "c:9", b"") is True  # broadcast
                assert await cancel.receive() == b""
            called = trio.Event()
            with a.on_delivery("s", "c:10", lambda _payload: called.set()):
                assert await b.deliver("s", "c:10", b"") is True  # broadcast
                await called.wait()


async def test_two_workers_subscribing_at_once_lose_nothing(open_redis: OpenBackend) -> None:
    """Subscriptions of one session from two workers at once: every one survives (each is
    one atomic change in Redis, not a read-modify-write of the whole list)."""
    with trio.fail_after(20):
        async with open_redis() as a, open_redis() as b:
            await a.create_session(record("s"))
            uris = [f"res://{i}" for i in range(40)]
            async with trio.open_nursery() as nursery:
                for i, uri in enumerate(uris):
                    nursery.start_soon((a if i % 2 else b).subscribe, "s", uri, True)
            loaded = await b.load_session("s")
            assert loaded is not None
            assert sorted(loaded.subscriptions) == sorted(uris)
            async with trio.open_nursery() as nursery:
                for i, uri in enumerate(uris[:20]):
                    nursery.start_soon((b if i % 2 else a).subscribe, "s", uri, False)
            loaded = await a.load_session("s")
            assert loaded is not None
            assert sorted(loaded.subscriptions) == sorted(uris[20:])


async def test_two_workers_streams(open_redis: OpenBackend) -> None:
    with trio.fail_after(15):
        async with open_redis() as a, open_redis() as b:
            await a.create_session(record("s"))
            first = await a.append("s", "p", b"")
            assert [e.data for e in (await b.read("s", "p", None, wait_s=0)).events] == [b""]

            async def produce() -> None:
                for i in range(40):
                    await a.append("s", "p", b"%d" % i, final=i == 39)
                    if i % 7 == 0:  # real time: bursts, so the reader parks in between
                        await trio.sleep(0.02)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                seen, _, end = await collect(b, "s", "p", first)
            assert seen == [b"%d" % i for i in range(40)]
            assert end.ended


async def test_two_workers_blocking_read_and_deletion(open_redis: OpenBackend) -> None:
    with trio.fail_after(15):
        async with open_redis() as a, open_redis() as b:
            await a.create_session(record("s"))
            last = await a.append("s", "p", b"x")
            result: list[StreamRead] = []
            woken = trio.Event()

            async def reader() -> None:
                result.append(await b.read("s", "p", last, wait_s=8))
                woken.set()
                result.append(await b.read("s", "p", result[0].events[-1].position, wait_s=8))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await wait_all_tasks_blocked()
                assert not result, "the read did not wait"
                started = trio.current_time()
                await a.append("s", "p", b"woken")
                await woken.wait()
                assert trio.current_time() - started < 1.0
                await wait_all_tasks_blocked()
                assert len(result) == 1, "the second read did not wait"
                started = trio.current_time()
                assert await a.delete_session("s")
            assert trio.current_time() - started < 1.0
            assert [e.data for e in result[0].events] == [b"woken"]
            assert result[1].missing


async def test_two_workers_changes(open_redis: OpenBackend) -> None:
    with trio.fail_after(10):
        async with (
            open_redis() as a,
            open_redis() as b,
            b.open_changes() as one,
            b.open_changes() as two,
            a.open_changes() as own,
        ):
            await wait_all_tasks_blocked()  # b's reader follows the broadcast stream
            change = note("notifications/prompts/list_changed")
            await a.publish_change(change)
            assert (await one.receive()).payload == change
            assert (await two.receive()).payload == change
            assert (await own.receive()).payload == change
            with trio.move_on_after(0.3):
                await own.receive()
                pytest.fail("a worker must see its own change once")


async def test_two_workers_count_sessions(open_redis: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_redis() as a, open_redis() as b:
            await a.create_session(record("s1", "alice"))
            await b.create_session(record("s2", "alice"))
            assert await a.count_sessions("alice") == await b.count_sessions("alice") == 2
            assert await b.load_session("s1") is not None


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:{port}/0",
    "redis+cluster://127.0.0.1:{port},127.0.0.1:{port}",
    "redis+sentinel://127.0.0.1:{port}/mymaster/0",
], ids=["standalone", "cluster", "sentinel"])
async def test_unreachable_redis_is_backend_unavailable(url: str) -> None:
    from scalemcp.state.redis import RedisBackend

    with refused_port() as port, trio.fail_after(10):
        state = RedisBackend(url.format(port=port), connect_timeout_s=0.5, write_retry_s=0.5)
        async with state.running():
            assert await state.ready() is False
            with pytest.raises(BackendUnavailable):
                await state.load_session("s")
            with pytest.raises(BackendUnavailable):
                await state.append("s", "p", b"x")
            assert not state.statistics().healthy


async def test_scripts_are_reloaded_when_redis_forgot_them(
    open_redis: OpenBackend, redis_target: Target
) -> None:
    with trio.fail_after(10):
        async with open_redis() as state:
            await state.create_session(record("s"))
            assert redis_target.command("SCRIPT", "FLUSH") == b"+OK"
            assert await state.load_session("s") is not None
            position = await state.append("s", "p", b"x")
            assert [e.position for e in (await state.read("s", "p", None, wait_s=0)).events] == [
                position]


async def test_from_config_with_an_acl_user_in_the_url(redis_target: Target) -> None:
    from scalemcp.config import Config
    from scalemcp.state.redis import RedisBackend

    # A password with URL-reserved characters, %-encoded in the URL (as the chart says).
    assert redis_target.command("ACL", "SETUSER", "smcp", "on", ">s3c@r/t", "~*", "&*",
                                "+@all") == b"+OK"
    url = redis_target.url.replace("://", "://smcp:s3c%40r%2Ft@", 1)
    with trio.fail_after(10):
        state = RedisBackend.from_config(Config.from_options(
            redis_url=url, session_idle_ttl_s=5.0, redis_max_connections=7,
            redis_connect_timeout_s=1.5, redis_socket_timeout_s=4.0,
            redis_pool_timeout_s=3.0))
        assert state.idle_ttl_ms == 5000
        options = state._options
        assert (options.max_connections, options.connect_timeout_s, options.socket_timeout_s,
                options.pool_timeout_s) == (7, 1.5, 4.0, 3.0)
        assert state._follower.block_s == 2.0  # half the socket timeout
        async with state.running():
            assert await state.ready()
            await state.create_session(record("acl-session"))
            assert await state.load_session("acl-session") is not None
            assert await state.delete_session("acl-session")
        wrong = RedisBackend(url.replace("s3c%40r", "wrong"))
        async with wrong.running():
            assert await wrong.ready() is False
            with pytest.raises(BackendUnavailable):
                await wrong.load_session("acl-session")
