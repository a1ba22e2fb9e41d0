"""Keeping a coredis pool's places (``max_connections``) through Redis faults.

coredis 6's ``ConnectionPool`` holds one place per connection it may open (a queue of
``max_connections`` items, ``None`` for a place with no connection yet). A connection that
dies while leased (a blocking XREAD, a pipeline, a command in flight when the connection
is reset or times out) loses its place for good: ``release`` drops an unusable connection
without giving the place back (coredis does that only for one that dies while pooled).
A few places go with each Redis fault; a worker that lost them all waits out
``pool_timeout`` on every command ("Redis is unavailable: " with no reason, an empty
``TimeoutError``) while Redis answers, until it restarts (README "Long soak", the 565
failures after 45 faults). A cluster's pool (a queue per node) drops them the same way.
:func:`keep_places` makes ``release`` give the place back.

A plain pool also loses the place of a connection whose attempt is cancelled while TCP
connects (a host that drops SYNs, a Redis whose accept queue is full): ``pool_timeout``
or the caller's deadline cancels it, and coredis gives the place back only for an attempt
that fails. :func:`keep_places` replaces its ``get_connection`` by one that gives it back.

It is set on the pool object, so the pool's type (what
:meth:`.redis_lane.LaneAddress.from_pool` reads) stays coredis'.
"""

from __future__ import annotations

from typing import Any

import anyio
import coredis
import coredis.pool
from coredis._telemetry import get_telemetry_provider

__all__ = ["free_places", "keep_places"]


def keep_places(pool: Any) -> None:
    """Make ``pool`` (a coredis ``ConnectionPool``, Sentinel's included, or a cluster's,
    with a queue per node) give back the place of a connection released dead."""
    plain: Any = pool  # (the attribute is set on the object, not on its class)
    if isinstance(pool, coredis.pool.ClusterConnectionPool):
        def queue_of(connection: Any) -> Any:
            return plain._node_pool(connection.location)
    elif isinstance(pool, coredis.ConnectionPool) and hasattr(pool, "_available_connections"):
        def queue_of(connection: Any) -> Any:
            return plain._available_connections
    else:
        return  # another coredis: left as it is
    wrap = getattr(pool, "_ConnectionPool__wrap_connection", None)
    if wrap is not None and not isinstance(pool, coredis.pool.ClusterConnectionPool):
        plain.get_connection = _get_connection(plain, wrap)

    def release(connection: Any) -> None:
        plain.statistics.connection_released(connection)
        queue = queue_of(connection)
        if queue.full():
            return  # (coredis' cluster pool ignores a surplus connection too)
        if connection.usable:
            queue.put_nowait(connection)
        else:
            queue.append_nowait(None)  # it died while leased: its place is free again

    plain.release = release


def _get_connection(pool: Any, wrap: Any) -> Any:
    """coredis' ``ConnectionPool.get_connection`` (6.x), the place given back whatever ends
    an attempt to connect (its own gives it back only for a failed one)."""
    queue = pool._available_connections
    telemetry = get_telemetry_provider()

    async def get_connection(**_: Any) -> Any:
        with telemetry.capture_connection_wait_time(pool), anyio.fail_after(pool.timeout):
            connection = await queue.get()
            if connection is None or not connection.reusable:
                if connection is not None:
                    connection.invalidate()
                try:
                    with telemetry.capture_connection_create_time(pool):
                        connection = await pool._construct_connection()
                        error = await pool.task_group.start(wrap, connection)
                except BaseException:
                    if not queue.full():
                        queue.append_nowait(None)  # cancelled while connecting
                    raise
                if error:
                    queue.append_nowait(None)
                    raise error
                pool.statistics.connection_created(connection)
                pool._online_connections.add(connection)
            pool.statistics.connection_leased(connection)
            return connection

    return get_connection


def free_places(pool: Any) -> int | None:
    """How many connections ``pool`` may open or lend now, those leased aside (None: not a
    plain coredis pool)."""
    queue = getattr(pool, "_available_connections", None)
    return None if queue is None else len(queue)
