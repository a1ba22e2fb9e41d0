"""Keeping a coredis pool's places (``max_connections``) through Redis faults.

coredis 6's ``ConnectionPool`` holds one place per connection it may open (a queue of
``max_connections`` items, ``None`` for a place with no connection yet). A connection that
dies while leased (a blocking XREAD, a pipeline, a command in flight when the connection
is reset or times out) loses its place for good: ``release`` drops an unusable connection
without giving the place back (coredis does that only for one that dies while pooled).
A few places go with each Redis fault; a worker that lost them all waits out
``pool_timeout`` on every command ("Redis is unavailable: " with no reason, an empty
``TimeoutError``) while Redis answers, until it restarts (README "Long soak", the 565
failures after 45 faults). :func:`keep_places` makes ``release`` give the place back.

It is set on the pool object, so the pool's type (what
:meth:`.redis_lane.LaneAddress.from_pool` reads) stays coredis'.
"""

from __future__ import annotations

from typing import Any

import coredis

__all__ = ["free_places", "keep_places"]


def keep_places(pool: Any) -> None:
    """Make ``pool`` (a coredis ``ConnectionPool``, Sentinel's included) give back the place
    of a connection released dead."""
    queue = getattr(pool, "_available_connections", None)
    if not isinstance(pool, coredis.ConnectionPool) or queue is None:
        return  # another pool (a cluster's keeps a queue per node): left as it is
    plain: Any = pool  # (an attribute of the object, not of its class)

    def release(connection: Any) -> None:
        plain.statistics.connection_released(connection)
        if connection.usable:
            queue.put_nowait(connection)
        elif not queue.full():
            queue.append_nowait(None)  # it died while leased: its place is free again

    plain.release = release


def free_places(pool: Any) -> int | None:
    """How many connections ``pool`` may open or lend now, those leased aside (None: not a
    plain coredis pool)."""
    queue = getattr(pool, "_available_connections", None)
    return None if queue is None else len(queue)
