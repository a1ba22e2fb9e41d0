"""scalemcp's own lane to Redis (state/redis_lane.py) against a real redis-server: replies
as coredis reads them, many calls pipelined on one connection, AUTH as an ACL user with a
db and a client name, and faults (a reset mid-command, a silent server, a cancelled call)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import coredis
import coredis.exceptions
import pytest
import trio

from scalemcp.errors import BackendUnavailable
from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend
from scalemcp.state.redis_lane import Lane, LaneAddress, open_lane
from scalemcp.state.redis_router import Link
from tests.harness.faults import Fault, FaultProxy
from tests.harness.redis import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    redis = RedisServer()
    yield redis
    redis.stop()


@asynccontextmanager
async def _lane(address: LaneAddress) -> AsyncIterator[Lane]:
    async with trio.open_nursery() as nursery:
        yield await open_lane(nursery, address)
        nursery.cancel_scope.cancel()


def _address(port: int, **more: Any) -> LaneAddress:
    return LaneAddress(host="127.0.0.1", port=port, **more)


SCRIPTS = [
    "return false", "return true", "return nil", "return 7", "return 'text'",
    "return {1, 'a', {false, 'b'}, {}}", "return redis.status_reply('FINE')",
    "return redis.call('HGETALL', KEYS[1])", "return {ARGV[1], ARGV[2]}",
]


@pytest.mark.parametrize("source", SCRIPTS)
async def test_the_lane_reads_a_script_reply_as_coredis_does(server: RedisServer,
                                                             source: str) -> None:
    server.command("HSET", "lane:h", "f1", "v1", "f2", "v2")
    client: coredis.Redis[bytes] = coredis.Redis.from_url(server.url, decode_responses=False)
    with trio.fail_after(10):
        async with client, _lane(_address(server.port)) as lane:
            sha = await client.script_load(source)
            args = (b"EVALSHA", sha, 1, "lane:h", b"x\r\ny", 12)
            connection = await client.connection_pool.get_connection()
            try:
                theirs = await connection.create_request(*args)
            finally:
                client.connection_pool.release(connection)
            assert await lane.call(*args) == theirs


async def test_many_concurrent_calls_share_one_connection_each_with_its_reply(
        server: RedisServer) -> None:
    got: dict[int, Any] = {}
    with trio.fail_after(10):
        async with _lane(_address(server.port, client_name="lane-many")) as lane:
            async def one(i: int) -> None:
                got[i] = await lane.call(b"ECHO", b"n%d" % i)

            async with trio.open_nursery() as nursery:
                for i in range(500):
                    nursery.start_soon(one, i)
            clients = (await lane.call(b"CLIENT", b"LIST")).decode()
    assert got == {i: b"n%d" % i for i in range(500)}
    assert clients.count("name=lane-many") == 1


async def test_error_replies_raise_coredis_errors_and_the_lane_goes_on(
        server: RedisServer) -> None:
    with trio.fail_after(10):
        async with _lane(_address(server.port)) as lane:
            with pytest.raises(coredis.exceptions.NoScriptError):
                await lane.call(b"EVALSHA", "0" * 40, 0)
            with pytest.raises(coredis.exceptions.ResponseError, match="unknown command"):
                await lane.call(b"NOSUCHCOMMAND")
            assert await lane.call(b"PING") == b"PONG"
            assert lane.usable


async def test_an_acl_user_a_db_and_a_client_name_are_those_asked_for() -> None:
    redis = RedisServer(password="admin-pw")
    try:
        redis.command("ACL", "SETUSER", "lanes", "on", ">lane-pw", "~*", "+@all")
        address = _address(redis.port, username="lanes", password="lane-pw", db=3,
                           client_name="lane-acl")
        with trio.fail_after(10):
            async with _lane(address) as lane:
                assert await lane.call(b"ACL", b"WHOAMI") == b"lanes"
                assert await lane.call(b"CLIENT", b"GETNAME") == b"lane-acl"
                await lane.call(b"SET", b"in-db-3", b"1")
            assert redis.cli("-n", "3", "EXISTS", "in-db-3").strip() == "1"
            assert redis.cli("-n", "0", "EXISTS", "in-db-3").strip() == "0"
            for wrong in ({"password": "nope"}, {"username": "nobody"}):
                bad = _address(redis.port, **{"username": "lanes", "password": "lane-pw",
                                              **wrong})
                async with trio.open_nursery() as nursery:
                    with pytest.raises(coredis.exceptions.AuthenticationError):
                        await open_lane(nursery, bad)
    finally:
        redis.stop()


async def test_a_reset_mid_command_fails_the_waiting_calls_and_the_lane_reopens(
        server: RedisServer) -> None:
    proxy = FaultProxy("127.0.0.1", server.port)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            state = RedisBackend(proxy.url, connect_timeout_s=1.0, block_s=0.2)
            async with state.running():
                await state.create_session(SessionRecord(session_id="r1",
                                                         protocol_version="2025-11-25"))
                assert await state.load_session("r1") is not None
                failed: list[BaseException] = []

                lane = state._link._lane
                assert isinstance(lane, Lane)  # scalemcp's own, for a standalone Redis

                async def blocked() -> None:  # waits on the lane until the reset
                    try:
                        await lane.call(b"BLPOP", b"nothing", 5)
                    except coredis.exceptions.ConnectionError as exc:
                        failed.append(exc)

                async with trio.open_nursery() as calls:
                    for _ in range(10):
                        calls.start_soon(blocked)
                    await trio.sleep(0.3)
                    before = proxy.counts.resets
                    proxy.reset_all()
                    assert proxy.counts.resets > before
                assert len(failed) == 10  # every waiting call failed, none hung
                loaded = None
                while loaded is None:  # the backend reconnects; a new lane serves the load
                    try:
                        loaded = await state.load_session("r1")
                    except BackendUnavailable:
                        await trio.sleep(0.05)
                assert loaded.session_id == "r1"
                assert state._link._lane is not lane
                assert state._link._lane is not None
                assert state._link._lane.usable
            nursery.cancel_scope.cancel()


async def test_the_reset_fault_fails_calls_cleanly_and_the_next_call_reconnects(
        server: RedisServer) -> None:
    proxy = FaultProxy("127.0.0.1", server.port)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            async with _lane(_address(proxy.port)) as lane:
                assert await lane.call(b"PING") == b"PONG"
                proxy.set(Fault.RESET)  # the next command is cut half-way, then reset
                outcomes: list[BaseException] = []

                async def one() -> None:
                    try:
                        await lane.call(b"ECHO", b"x" * 1000)
                    except coredis.exceptions.ConnectionError as exc:
                        outcomes.append(exc)

                async with trio.open_nursery() as calls:
                    for _ in range(20):
                        calls.start_soon(one)
                assert len(outcomes) == 20
                assert not lane.usable
                with pytest.raises(coredis.exceptions.ConnectionError):
                    await lane.call(b"PING")  # a closed lane refuses at once
            proxy.set(Fault.PASS)
            async with _lane(_address(proxy.port)) as again:
                assert await again.call(b"PING") == b"PONG"
            nursery.cancel_scope.cancel()


async def test_a_silent_server_times_the_calls_out_and_closes_the_lane(
        server: RedisServer) -> None:
    proxy = FaultProxy("127.0.0.1", server.port)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            async with _lane(_address(proxy.port, reply_timeout_s=0.3)) as lane:
                assert await lane.call(b"PING") == b"PONG"
                proxy.set(Fault.BLACK_HOLE)
                started = trio.current_time()
                with pytest.raises(TimeoutError, match=r"no answer from Redis within 0\.3 s"):
                    await lane.call(b"PING")
                assert trio.current_time() - started < 2
                assert not lane.usable
            proxy.set(Fault.PASS)
            nursery.cancel_scope.cancel()


async def test_a_cancelled_call_leaves_the_next_reply_to_its_own_caller(
        server: RedisServer) -> None:
    with trio.fail_after(10):
        async with _lane(_address(server.port)) as lane:
            with trio.move_on_after(0.2) as scope:
                await lane.call(b"BLPOP", b"lane:empty", 1)  # answered (nil) after 1 s
            assert scope.cancelled_caught
            assert await lane.call(b"ECHO", b"mine") == b"mine"
            assert lane.usable


async def test_a_unix_socket_lane_and_a_tcp_lane_reach_the_same_server(tmp_path: Any) -> None:
    path = f"{tmp_path}/redis.sock"
    redis = RedisServer("--unixsocket", path, "--unixsocketperm", "700")
    try:
        with trio.fail_after(10):
            async with _lane(LaneAddress(path=path, db=2)) as lane:
                await lane.call(b"SET", b"via-unix", b"yes")
            async with _lane(_address(redis.port, db=2)) as lane:
                assert await lane.call(b"GET", b"via-unix") == b"yes"
    finally:
        redis.stop()


def test_the_address_is_the_coredis_pool_s_and_sentinel_keeps_coredis() -> None:
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        "redis://app:p%40ss@10.1.2.3:6390/4", decode_components=True, client_name="w1",
        connect_timeout=1.5, stream_timeout=7.0)
    address = LaneAddress.from_pool(client.connection_pool)
    assert address is not None
    assert (address.host, address.port, address.db) == ("10.1.2.3", 6390, 4)
    assert (address.username, address.password, address.client_name) == ("app", "p@ss", "w1")
    assert (address.connect_timeout_s, address.reply_timeout_s) == (1.5, 7.0)
    assert address.ssl_context is None
    unix = LaneAddress.from_pool(coredis.Redis.from_url("unix:///run/r.sock?db=1")
                                 .connection_pool)
    assert unix is not None
    assert (unix.path, unix.db) == ("/run/r.sock", 1)
    sentinel: coredis.Sentinel[bytes] = coredis.Sentinel([("127.0.0.1", 26379)])
    assert LaneAddress.from_pool(sentinel.primary_for("m").connection_pool) is None


async def test_calls_queued_behind_a_failing_connect_share_its_failure(
        server: RedisServer) -> None:
    # A Redis that accepts connections and never answers: each attempt to open the lane
    # takes the whole connect timeout. Ten calls waiting for the same attempt must fail
    # with it, not each try in turn (ten timeouts, one after the other).
    proxy = FaultProxy("127.0.0.1", server.port)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            proxy.set(Fault.BLACK_HOLE)
            client: coredis.Redis[bytes] = coredis.Redis.from_url(
                proxy.url, decode_responses=False, connect_timeout=1.0)
            link = Link({"ping": "return 1"})
            link.nursery = nursery
            failures: list[BaseException] = []

            async def one() -> None:
                try:
                    await link.script(client, "ping", [], [])
                except (TimeoutError, coredis.exceptions.ConnectionError) as exc:
                    failures.append(exc)

            async with client:
                started = trio.current_time()
                async with trio.open_nursery() as calls:
                    for _ in range(10):
                        calls.start_soon(one)
                assert len(failures) == 10
                assert trio.current_time() - started < 5.0  # one timeout (1 s), not ten
                proxy.set(Fault.PASS)
                assert await link.script(client, "ping", [], []) == 1  # and then it reconnects
            nursery.cancel_scope.cancel()


async def test_an_address_where_something_else_answers_is_a_connection_error() -> None:
    async def not_redis(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, not_redis, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            with pytest.raises(coredis.exceptions.ConnectionError, match="does not speak RESP"):
                await open_lane(nursery, _address(port))
            nursery.cancel_scope.cancel()
