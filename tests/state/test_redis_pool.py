"""A connection that dies while leased gives its place back to its pool
(scalemcp/state/redis_pool.py): coredis dropped it, and a pool that lost every place
fails every command after waiting out ``pool_timeout``."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest
import trio

from scalemcp.state.redis_connect import ClientOptions, open_client, parse_url
from scalemcp.state.redis_pool import free_places
from tests.harness.redis import RedisClusterNodes, RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


async def _dies(connection: Any) -> None:
    for _ in range(1000):  # (its reader sees the server close it, soon)
        if not connection.usable:
            return
        await trio.sleep(0.01)
    raise AssertionError("the killed connection is still usable")


def _free(pool: Any, connection: Any) -> tuple[int, int]:
    """(places free in the queue ``connection`` came from, that queue's size)."""
    queue = (pool._node_pool(connection.location) if hasattr(pool, "_node_pool")
             else pool._available_connections)
    return len(queue), queue._maxsize


@pytest.mark.parametrize("kind", ["standalone", "cluster"])
async def test_a_connection_killed_while_leased_gives_its_place_back(
        kind: str, request: pytest.FixtureRequest) -> None:
    server: RedisServer | RedisClusterNodes = request.getfixturevalue(
        "redis_server" if kind == "standalone" else "redis_cluster")
    options = ClientOptions(max_connections=3, pool_timeout_s=1.0)
    async with open_client(parse_url(server.url), options) as client:
        pool: Any = client.connection_pool
        await client.ping()  # (a cluster's slot map is known from here on)
        for round_ in range(5):  # more rounds than places: a lost place shows
            connection = await pool.get_connection()
            server.command("CLIENT", "KILL", "TYPE", "normal")
            await _dies(connection)
            pool.release(connection)
            free, size = _free(pool, connection)
            assert free == size, f"round {round_}: {free} of {size} places left"
        assert await client.ping()


async def test_a_connection_cancelled_while_connecting_gives_its_place_back() -> None:
    # A listener that never accepts, its accept queue full: the kernel drops further SYNs,
    # so connecting hangs (as to a host gone silent) until the pool's timeout cancels it.
    listener = socket.socket()
    held: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            held.append(sock := socket.socket())
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
        options = ClientOptions(max_connections=3, pool_timeout_s=0.3, connect_timeout_s=5.0)
        async with open_client(parse_url(f"redis://127.0.0.1:{port}/0"), options) as client:
            pool: Any = client.connection_pool
            for round_ in range(5):  # more rounds than places: a lost place shows
                with pytest.raises(TimeoutError):
                    await client.ping()
                assert free_places(pool) == 3, f"round {round_}: {free_places(pool)} left"
    finally:
        for sock in [*held, listener]:
            sock.close()
