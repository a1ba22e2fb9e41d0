"""Session records cached by a worker while Redis tracks them for it (client-side caching).

Theory of operation
-------------------
A session-era request starts with a session load. On Redis that is a script (renew the
idle TTL, return the record); most loads of a busy session find what the last one found,
so a worker keeps the records it read, and a load that finds one costs no round trip.

Two things keep a cached record true:

* **Invalidation.** The record is read on the worker's lane with client tracking on
  (:meth:`.redis_lane.Lane.call_tracked`): once any connection changes, deletes or
  expires the key, Redis pushes an invalidation down the lane and the entry goes. A
  record whose reply came before a push that was read before it was stored is not
  stored at all (the push may be about it): the lane's push count is the stamp. An entry
  belongs to the lane it was read on; a lane that closes (reconnect, failover) takes its
  entries with it, since pushes may have been lost with it. Changes made on the lane itself
  are not pushed (NOLOOP: the load's own renewal would otherwise invalidate what it read):
  this worker forgets what it changes (:meth:`SessionCache.forget`), and a load sent
  before any forget is not stored after it.
* **Renewal.** The load script renews the TTL to ``idle + slack`` once it is below
  ``idle`` (and only then: a renewal is a write, which invalidates the key for every
  worker tracking it). Until the TTL would drop below ``idle``, a cached record is served
  without renewing; after that the next load goes to Redis and renews. So a session lives
  at least ``idle_ttl_s`` and at most ``idle_ttl_s + slack`` after its last use.

Staleness bound: a deletion (or an update) made on another worker is seen here as soon as
Redis's invalidation push has reached this host: Redis sends it as it runs the deleting
command, and before trusting a cached record a load reads whatever the lane's socket holds
(:meth:`.redis_lane.Lane.take_ready`, one non-blocking ``recv``). So a request that reaches
this worker after the deletion was acknowledged is refused, unless it overtook the push on
the way (Redis writes its replies and pushes of one event-loop turn microseconds apart;
across hosts, the network's reordering). Updates this worker makes itself are forgotten
here at once. On TLS (no plain socket to read) the push is read by the lane's reader task:
one scheduling pass of this worker later.
"""

from __future__ import annotations

from typing import Any

from .base import SessionRecord

__all__ = ["SessionCache"]


class _Entry:
    __slots__ = ("lane", "record", "renew_at")

    def __init__(self, record: SessionRecord, lane: Any, renew_at: float) -> None:
        self.record, self.lane, self.renew_at = record, lane, renew_at


class SessionCache:
    """Records by session key, each valid on the lane it was read on until ``renew_at``
    (trio time) or until Redis says the key changed (:meth:`on_push`)."""

    def __init__(self, *, max_entries: int = 65_536) -> None:
        self._entries: dict[str, _Entry] = {}
        self._max_entries = max_entries
        self.hits = 0
        self.invalidations = 0
        #: Counts forgets: a load stores its record only if none happened since it was sent.
        self.forgets = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, lane: Any, now: float) -> SessionRecord | None:
        """The cached record of ``key`` if it was read on ``lane`` (the current, usable
        lane) and needs no renewal yet; None otherwise."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.lane is not lane or now >= entry.renew_at:
            del self._entries[key]
            return None
        self.hits += 1
        return entry.record

    def put(self, key: str, record: SessionRecord, lane: Any, stamp: int, forgets: int,
            renew_at: float) -> None:
        """Keep ``record``, read on ``lane`` when its push count was ``stamp``, sent when
        :attr:`forgets` was ``forgets``; not kept if a push or a forget came since (either
        may be about this key) or the lane closed."""
        if lane.pushes != stamp or self.forgets != forgets or not lane.usable:
            return
        entries = self._entries
        if len(entries) >= self._max_entries and key not in entries:
            del entries[next(iter(entries))]  # the oldest read (Redis still tracks it: harmless)
        entries[key] = _Entry(record, lane, renew_at)

    def forget(self, key: str) -> None:
        """After this worker changed ``key`` (Redis does not push its own changes back)."""
        self.forgets += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop everything (a new lane: the old one's entries are void anyway)."""
        self._entries.clear()

    def on_push(self, push: list[Any]) -> None:
        """A push from the lane: ``[b"invalidate", [key, ...]]`` drops those keys;
        ``[b"invalidate", None]`` (FLUSHDB, FLUSHALL) drops everything."""
        if len(push) < 2 or push[0] != b"invalidate":
            return
        self.invalidations += 1
        keys = push[1]
        if keys is None:
            self._entries.clear()
            return
        for key in keys:
            self._entries.pop(key.decode(errors="replace"), None)
