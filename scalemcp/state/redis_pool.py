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

It is set on the pool object, so the pool's type (what
:meth:`.redis_lane.LaneAddress.from_pool` reads) stays coredis'.
"""

from __future__ import annotations

from typing import Any

import coredis
import coredis.pool

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


def free_places(pool: Any) -> int | None:
    """How many connections ``pool`` may open or lend now, those leased aside (None: not a
    plain coredis pool)."""
    queue = getattr(pool, "_available_connections", None)
    return None if queue is None else len(queue)
