"""Following Redis streams from one worker without a connection per reader.

A worker may hold thousands of open SSE streams; a blocking XREAD per stream would hold a
Redis connection each. Instead a reader that has caught up *parks* here, and is woken in
one of two ways:

* **Local appends.** A stream this worker appended to within ``local_window_s`` (and whose
  final event it has not seen) is followed locally: the append script returns the entry
  id that preceded the new one, so a reader parked exactly there is handed the new event
  directly, with no Redis round trip; any other parked reader is told to read again.
  This is the common case: a POST's SSE answer is written by the handler on the worker
  that holds its HTTP response, and the GET stream by that worker's change feed.
* **The tail loop.** Every other parked stream (e.g. a stream resumed with Last-Event-ID
  on another worker than the one writing it) is added to the ONE blocking XREAD this
  worker runs, which also reads the worker's inbox and the fleet's broadcast stream. The
  XREAD's cursor for a stream is the lowest position a reader parked at, so nothing
  between that position and the returned entries can be missed. When a reader parks on
  a stream the XREAD in flight does not cover, the loop is woken by an entry in this
  worker's own inbox (one XADD) and issues the XREAD again with the new stream.

Bounded staleness: another worker's appends to a stream that this worker is itself
writing reach readers here when they next read from Redis, at the latest after their
``wait_s`` (the SSE keep-alive interval), because a park that times out always ends with
a read from Redis. The same bound covers a deletion whose broadcast was lost and a
session that expired while a reader waited.

Redis Cluster: one XREAD may only name keys of one slot, and each session's streams have
a slot of their own. The inbox and the broadcast stream share one hash tag, so the main
loop still reads both with one XREAD (plus followed streams that happen to share their
slot). Followed streams of other slots get a loop per slot (a *lane*: one blocking XREAD
over that slot's streams, i.e. one session's, on a connection of its own), created when a
reader parks there and ended when nobody follows the slot any more; a lane is woken by
cancelling its XREAD. Beyond ``max_lanes`` lanes, further slots are polled together by
one loop, a non-blocking XREAD per slot in one pipeline (one round trip per node) every
``poll_s``, until a lane is free again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from .base import StreamEvent, StreamRead
from .redis_layout import Id, format_id, parse_id

__all__ = ["MISSING", "Follower", "StreamState"]

log = logging.getLogger("scalemcp.state.redis")

MISSING = StreamRead([], ended=True, missing=True)

OnMessage = Callable[[str, Mapping[bytes, bytes]], None]


class _Waiter:
    __slots__ = ("after", "event", "result", "tail")

    def __init__(self, after: Id, tail: bool) -> None:
        self.after = after
        self.tail = tail
        self.event = trio.Event()
        self.result: StreamRead | None = None

    def wake(self, result: StreamRead | None) -> None:
        """Wake with ``result``, or with None: read again from Redis."""
        if not self.event.is_set():
            self.result = result
            self.event.set()


class StreamState:
    """What this worker knows of one stream, and who waits on it."""

    __slots__ = ("ended", "key", "known_last", "local_at", "local_last", "session_id",
                 "slot", "tail_at", "used_at", "waiters")

    def __init__(self, key: str, session_id: str, now: float, slot: int = 0) -> None:
        self.key = key
        self.session_id = session_id
        #: The key's Redis Cluster slot (0 for every key outside a cluster).
        self.slot = slot
        self.waiters: set[_Waiter] = set()
        #: The newest entry id known to be in the stream.
        self.known_last: Id | None = None
        self.ended = False
        #: The id of this worker's last append, and when it was made.
        self.local_last: Id | None = None
        self.local_at = -1e18
        self.tail_at = -1e18
        self.used_at = now


class _Lane:
    """One reading loop: a blocking XREAD over the followed streams of one slot (or the
    poll loop, ``slot`` None)."""

    __slots__ = ("inflight", "scope", "slot", "wake_requested")

    def __init__(self, slot: int | None) -> None:
        self.slot = slot
        #: Cursors of the XREAD in flight; None while none is.
        self.inflight: dict[str, Id] | None = None
        self.wake_requested = False
        #: Cancels the XREAD in flight (how a lane other than the main one is woken).
        self.scope: trio.CancelScope | None = None


#: XREAD of (cursors, count, block ms; 0: do not block).
XRead = Callable[[dict[str, str], int, int], Awaitable[Any]]
XReadMany = Callable[[list[dict[str, str]], int], Awaitable[list[Any]]]


class Follower:
    """Parked readers, local wake-ups, and the worker's blocking XREAD loop(s)."""

    def __init__(
        self,
        *,
        local_window_s: float = 60.0,
        tail_grace_s: float = 2.0,
        block_s: float = 5.0,
        batch: int = 200,
        slot_of: Callable[[str], int] | None = None,
        main_slot: int = 0,
        max_lanes: int = 16,
        poll_s: float = 0.1,
    ) -> None:
        self.local_window_s = local_window_s
        self.tail_grace_s = tail_grace_s
        self.block_s = block_s
        self.batch = batch
        self.streams: dict[str, StreamState] = {}
        #: Streams the tail loops read (parked readers, or readers just served).
        self._tailed: dict[str, StreamState] = {}
        #: Interrupts the main XREAD in flight (set by the backend: an XADD to its own inbox).
        self.wake: Callable[[], Awaitable[None]] | None = None
        #: Cursors of the always-read streams (inbox, broadcast), all in ``main_slot``.
        self.fixed: dict[str, Id] = {}
        self.healthy = False
        #: Set once the main loop has tried to start (whether it could or not).
        self.tried = trio.Event()
        #: A key's Redis Cluster slot; None: not a cluster, one loop reads everything.
        self.slot_of = slot_of
        self.max_lanes = max_lanes
        self.poll_s = poll_s
        self._main = _Lane(main_slot)
        #: Blocking lanes by slot: the main one, and (cluster) up to max_lanes more.
        self._lanes: dict[int, _Lane] = {main_slot: self._main}
        self._poll = _Lane(None)
        #: Slots the poll loop reads (no lane was free for them).
        self._polled: set[int] = set()
        self._poll_running = False
        #: Starts a lane's loop while :meth:`run` runs.
        self._spawn: Callable[[_Lane], None] | None = None

    # -- state ---------------------------------------------------------------------

    def state(self, key: str, session_id: str) -> StreamState:
        now = trio.current_time()
        st = self.streams.get(key)
        if st is None:
            slot = self._main.slot if self.slot_of is None else self.slot_of(key)
            st = self.streams[key] = StreamState(key, session_id, now, slot or 0)
        st.used_at = now
        return st

    @staticmethod
    def saw(st: StreamState, last: Id | None, final: bool) -> None:
        if last is not None and (st.known_last is None or last > st.known_last):
            st.known_last = last
        st.ended = st.ended or final

    def forget(self, key: str) -> None:
        st = self.streams.pop(key, None)
        self._tailed.pop(key, None)
        if st is not None:
            for waiter in list(st.waiters):
                waiter.wake(MISSING)

    def session_gone(self, session_id: str) -> None:
        """The session was deleted: its parked readers end now."""
        for key in [k for k, st in self.streams.items() if st.session_id == session_id]:
            self.forget(key)

    def prune(self) -> None:
        """Drop what is known of ended streams and of streams nobody used for a while."""
        horizon = trio.current_time() - max(self.local_window_s, 4 * self.tail_grace_s)
        stale = [k for k, st in self.streams.items() if not st.waiters and (
            st.ended or (st.used_at < horizon and st.local_at < horizon))]
        for key in stale:
            del self.streams[key]
            self._tailed.pop(key, None)

    def count_waiting(self) -> int:
        return sum(1 for st in self.streams.values() if st.waiters)

    # -- local appends and parking -------------------------------------------------

    def appended(
        self, key: str, session_id: str, prev: Id, new: Id, position: str, data: bytes,
        final: bool,
    ) -> None:
        st = self.state(key, session_id)
        self.saw(st, new, final)
        st.local_last = new
        st.local_at = st.used_at
        if not st.waiters:
            return
        event = StreamEvent(position, data)
        for waiter in list(st.waiters):
            if waiter.after == prev:
                waiter.wake(StreamRead([event], ended=final))
            elif waiter.after < new:
                waiter.wake(None)  # it missed something in between: read again

    def _locally_written(self, st: StreamState, now: float) -> bool:
        return (st.local_last is not None and not st.ended
                and now - st.local_at < self.local_window_s)

    async def park(self, st: StreamState, after: Id, wait_s: float) -> StreamRead | None:
        """Wait up to ``wait_s`` for entries after ``after``; None: read from Redis."""
        now = trio.current_time()
        tail = not self._locally_written(st, now)
        waiter = _Waiter(after, tail)
        st.waiters.add(waiter)
        st.used_at = now
        try:
            if tail:
                st.tail_at = now
                self._tailed[st.key] = st
                await self._cover(st, after)
            with trio.move_on_after(wait_s):
                await waiter.event.wait()
        finally:
            st.waiters.discard(waiter)
            if tail:
                st.tail_at = trio.current_time()  # keep following it while the reader sends
        return waiter.result

    async def _cover(self, st: StreamState, after: Id) -> None:
        """See that a loop reads ``st`` after ``after``: its slot's lane (woken if the XREAD
        in flight does not cover it), a new lane, or the poll loop."""
        lane = self._lanes.get(st.slot)
        if lane is None:
            if st.slot in self._polled or self._spawn is None:
                return  # polled within poll_s; or not running: read again after the wait
            if len(self._lanes) - 1 < self.max_lanes:
                lane = self._lanes[st.slot] = _Lane(st.slot)
                self._spawn(lane)
            else:
                self._polled.add(st.slot)
                if not self._poll_running:
                    self._spawn(self._poll)
            return
        inflight = lane.inflight
        if inflight is None or lane.wake_requested:
            return
        cursor = inflight.get(st.key)
        if cursor is None or cursor > after:
            if lane is self._main:
                if self.wake is not None:
                    lane.wake_requested = True
                    await self.wake()
            elif lane.scope is not None:
                lane.wake_requested = True
                lane.scope.cancel()

    # -- the tail loops ------------------------------------------------------------

    def _lane_of(self, st: StreamState) -> _Lane | None:
        lane = self._lanes.get(st.slot)
        if lane is None and st.slot in self._polled:
            return self._poll
        return lane

    def _issue(self, lane: _Lane) -> dict[str, Id]:
        now = trio.current_time()
        cursors = dict(self.fixed) if lane is self._main else {}
        for key, st in list(self._tailed.items()):
            if self._lane_of(st) is not lane:
                continue
            parked = [w.after for w in st.waiters if w.tail and not w.event.is_set()]
            if parked:
                cursors[key] = min(parked)
            elif (not st.ended and st.known_last is not None
                  and now - st.tail_at < self.tail_grace_s):
                cursors[key] = st.known_last  # a reader is about to park again
            else:
                del self._tailed[key]
        lane.inflight = cursors
        lane.wake_requested = False
        return cursors

    async def run(
        self,
        xread: XRead,
        start: Callable[[], Awaitable[dict[str, Id]]],
        on_message: OnMessage,
        errors: tuple[type[BaseException], ...],
        xread_many: XReadMany,
    ) -> None:
        """Read the inbox, the broadcast stream and tailed streams until cancelled.

        ``xread(cursors, count, block_ms)`` is one blocking XREAD; ``xread_many(groups,
        count)`` (cluster) one non-blocking XREAD per group of cursors, pipelined.
        """
        async with trio.open_nursery() as nursery:

            def spawn(lane: _Lane) -> None:
                if lane is self._poll:
                    self._poll_running = True
                    nursery.start_soon(self._run_poll, xread_many, on_message, errors)
                else:
                    nursery.start_soon(self._run_lane, lane, xread, on_message, errors, None)

            self._spawn = spawn
            try:
                await self._run_lane(self._main, xread, on_message, errors, start)
            finally:
                self._spawn = None
                nursery.cancel_scope.cancel()

    async def _run_lane(
        self,
        lane: _Lane,
        xread: XRead,
        on_message: OnMessage,
        errors: tuple[type[BaseException], ...],
        start: Callable[[], Awaitable[dict[str, Id]]] | None,
    ) -> None:
        """The main loop (``start`` given: runs until cancelled), or a slot's lane (ends
        when nobody follows a stream of its slot)."""
        main = lane is self._main
        backoff = 0.05
        #: After a failure (and at first) the XREAD does not block, so that a reader that
        #: works again says so at once rather than after block_s.
        ok = False
        try:
            while True:
                reply: Any = None
                try:
                    if start is not None and not self.fixed:
                        try:
                            self.fixed = await start()
                        finally:
                            self.tried.set()
                        self.healthy = True
                    cursors = self._issue(lane)
                    if not cursors:
                        return
                    with trio.CancelScope() as scope:
                        lane.scope = scope
                        reply = await xread({k: format_id(v) for k, v in cursors.items()},
                                            self.batch, int(self.block_s * 1000) if ok else 0)
                except errors as exc:
                    ok = False
                    lane.inflight = None
                    lane.scope = None
                    if not main:
                        log.debug("Redis stream reader for slot %s failed (retrying): %s",
                                  lane.slot, exc)
                    elif self.healthy:
                        log.warning("Redis stream reader failed (retrying): %s", exc)
                    if main:
                        self.healthy = False
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                finally:
                    lane.inflight = None
                    lane.scope = None
                if main:
                    self.healthy = True
                ok = True
                backoff = 0.05
                if reply:
                    self._dispatch(reply, cursors, on_message)
        finally:
            if not main and self._lanes.get(lane.slot or 0) is lane:
                del self._lanes[lane.slot or 0]

    async def _run_poll(
        self,
        xread_many: XReadMany,
        on_message: OnMessage,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        """Poll the slots no lane was free for; ends when nobody follows any of them."""
        lane = self._poll
        try:
            while True:
                self._promote()
                cursors = self._issue(lane)
                if not cursors:
                    return
                groups: dict[int, dict[str, str]] = {}
                for key, cursor in cursors.items():
                    groups.setdefault(self._tailed[key].slot, {})[key] = format_id(cursor)
                self._polled = set(groups)
                replies: list[Any] = []
                try:
                    replies = await xread_many(list(groups.values()), self.batch)
                except errors as exc:
                    log.debug("Redis stream poll failed (retrying): %s", exc)
                finally:
                    lane.inflight = None
                for reply in replies:
                    if reply:
                        self._dispatch(reply, cursors, on_message)
                await trio.sleep(self.poll_s)
        finally:
            self._poll_running = False
            self._polled.clear()

    def _promote(self) -> None:
        """Give polled slots a lane of their own while lanes are free."""
        while self._polled and self._spawn is not None and len(self._lanes) - 1 < self.max_lanes:
            slot = self._polled.pop()
            lane = self._lanes[slot] = _Lane(slot)
            self._spawn(lane)

    def _dispatch(self, reply: Mapping[Any, Any], cursors: dict[str, Id],
                  on_message: OnMessage) -> None:
        for raw_key, entries in reply.items():
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            if not entries:
                continue
            last = parse_id(entries[-1].identifier)
            if last is None:
                continue
            if key in self.fixed:
                self.fixed[key] = last
                for entry in entries:
                    try:
                        on_message(key, entry.field_values)
                    except Exception:
                        log.exception("failed to handle a message from %s", key)
                continue
            st = self.streams.get(key)
            cursor = cursors.get(key)
            if st is None or cursor is None:
                continue
            events: list[tuple[Id, StreamEvent, bool]] = []
            for entry in entries:
                entry_id = parse_id(entry.identifier)
                if entry_id is None:
                    continue
                fields = entry.field_values
                events.append((entry_id, StreamEvent(format_id(entry_id), fields.get(b"d", b"")),
                               b"f" in fields))
            self.saw(st, last, any(final for _, _, final in events))
            for waiter in list(st.waiters):
                if waiter.after < cursor:
                    continue  # parked after this XREAD was issued: the next one covers it
                mine = [(e, final) for entry_id, e, final in events if entry_id > waiter.after]
                if mine:
                    waiter.wake(StreamRead([e for e, _ in mine], ended=mine[-1][1]))
