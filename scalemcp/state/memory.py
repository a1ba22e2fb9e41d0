"""In-process state backend: the embedded default for a single worker process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import msgspec
import trio

from .base import SessionRecord, StateStatistics, StreamEvent, StreamRead, Throttled, TokenBucket
from .buckets import MemoryBuckets
from .hub import ChangeFeed, ChangeHub
from .mailbox import Mailbox, hand_over
from .tasks import TaskStore
from .tasks_memory import MemoryTaskStore

__all__ = ["MemoryBackend"]


class _Stream:
    __slots__ = ("changed", "ended", "events", "last_used", "maxlen", "next_pos")

    def __init__(self, maxlen: int, now: float) -> None:
        #: The last ``maxlen`` events. A list, not a deque: most streams hold a few events
        #: for a long time (an idle GET stream: its priming event), and a deque's first
        #: block alone is 600 bytes.
        self.events: list[StreamEvent] = []
        self.maxlen = maxlen
        self.next_pos = 1
        self.ended = False
        self.changed = trio.Event()
        self.last_used = now

    def add(self, event: StreamEvent) -> None:
        events = self.events
        events.append(event)
        if len(events) > self.maxlen:
            del events[0]  # (a full stream: a copy of maxlen pointers per append)

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class _Session:
    __slots__ = ("last_used", "record", "streams")

    def __init__(self, record: SessionRecord, now: float) -> None:
        self.record = record
        self.streams: dict[str, _Stream] = {}
        self.last_used = now


class MemoryBackend:
    """Sessions, streams and mailboxes in this process's memory; bounded and expiring."""

    name = "memory"

    def __init__(
        self,
        *,
        idle_ttl_s: float = 3600.0,
        stream_maxlen: int = 1000,
        stream_ttl_s: float = 600.0,
        max_sessions: int = 100_000,
    ) -> None:
        self.idle_ttl_s = idle_ttl_s
        self.stream_maxlen = stream_maxlen
        self.stream_ttl_s = stream_ttl_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self._mailboxes: dict[tuple[str, str], Mailbox] = {}
        self._changes = ChangeHub()
        self._next_sweep = 0.0
        self._claims: dict[str, float] = {}
        self._buckets = MemoryBuckets()
        self._inflight: dict[str, int] = {}
        #: Durable tasks (state/tasks.py), in this process.
        self.tasks: TaskStore = MemoryTaskStore()

    # -- sessions --------------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        now = trio.current_time()
        self._sweep(now)
        self._sessions[record.session_id] = _Session(record, now)

    async def load_session(self, session_id: str) -> SessionRecord | None:
        session = self._live(session_id)
        if session is None:
            return None
        session.last_used = trio.current_time()
        return session.record

    async def update_session(self, session_id: str, **changes: Any) -> None:
        session = self._live(session_id)
        if session is not None:
            session.record = msgspec.structs.replace(session.record, **changes)

    async def subscribe(self, session_id: str, uri: str, subscribed: bool) -> None:
        session = self._live(session_id)
        if session is not None:
            current = set(session.record.subscriptions) - {uri}
            subs = sorted(current | {uri} if subscribed else current)
            session.record = msgspec.structs.replace(session.record, subscriptions=subs)

    async def delete_session(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        for stream in session.streams.values():
            stream.ended = True
            stream.wake()
        return True

    async def count_sessions(self, principal: str | None) -> int:
        oldest = trio.current_time() - self.idle_ttl_s  # expired sessions do not count
        return sum(1 for s in self._sessions.values()
                   if s.record.principal == principal and s.last_used >= oldest)

    def _live(self, session_id: str) -> _Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if trio.current_time() - session.last_used > self.idle_ttl_s:
            del self._sessions[session_id]
            return None
        return session

    def _sweep(self, now: float) -> None:
        # Amortised expiry: at most once a second, and whenever the table is full.
        if now < self._next_sweep and len(self._sessions) < self.max_sessions:
            return
        self._next_sweep = now + 1.0
        for sid in [s for s, v in self._sessions.items() if now - v.last_used > self.idle_ttl_s]:
            del self._sessions[sid]
        for session in self._sessions.values():
            stale = [k for k, st in session.streams.items()
                     if now - st.last_used > self.stream_ttl_s]
            for key in stale:
                del session.streams[key]
        while len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions, key=lambda s: self._sessions[s].last_used)
            del self._sessions[oldest]

    # -- streams ---------------------------------------------------------------------

    async def append(
        self, session_id: str, stream: str, data: bytes, *, final: bool = False,
        epitaph: bytes | None = None,
    ) -> str:
        # ``epitaph`` is not kept: this backend's streams die with the process writing them.
        session = self._sessions.get(session_id)
        now = trio.current_time()
        if session is None:
            # The session was deleted under a running request: the event has nowhere to go.
            return "0"
        st = session.streams.get(stream)
        if st is None:
            st = session.streams[stream] = _Stream(self.stream_maxlen, now)
        elif st.ended:
            return str(st.next_pos - 1)  # nothing follows a stream's final event
        position = str(st.next_pos)
        st.next_pos += 1
        st.add(StreamEvent(position, data))
        st.ended = st.ended or final
        st.last_used = now
        st.wake()
        return position

    async def read(
        self, session_id: str, stream: str, after: str | None, *, wait_s: float
    ) -> StreamRead:
        session = self._live(session_id)
        st = session.streams.get(stream) if session is not None else None
        if st is None:
            return StreamRead([], ended=True, missing=True)
        try:
            after_pos = int(after) if after is not None else 0
        except ValueError:
            return StreamRead([], ended=True, missing=True)
        events = [e for e in st.events if int(e.position) > after_pos]
        if not events and not st.ended and wait_s > 0:
            with trio.move_on_after(wait_s):
                await st.changed.wait()
            events = [e for e in st.events if int(e.position) > after_pos]
        st.last_used = trio.current_time()
        return StreamRead(events, ended=st.ended, missing=session_id not in self._sessions)

    # -- mailboxes and changes -------------------------------------------------------

    @asynccontextmanager
    async def open_mailbox(
        self, session_id: str, key: str
    ) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        send, receive = trio.open_memory_channel[bytes](64)
        self._mailboxes[(session_id, key)] = send
        try:
            yield receive
        finally:
            if self._mailboxes.get((session_id, key)) is send:
                del self._mailboxes[(session_id, key)]

    @contextmanager
    def on_delivery(
        self, session_id: str, key: str, callback: Callable[[bytes], None]
    ) -> Iterator[None]:
        self._mailboxes[(session_id, key)] = callback
        try:
            yield
        finally:
            if self._mailboxes.get((session_id, key)) is callback:
                del self._mailboxes[(session_id, key)]

    async def deliver(self, session_id: str, key: str, payload: bytes) -> bool:
        return hand_over(self._mailboxes.get((session_id, key)), payload)

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        now = trio.current_time()
        if len(self._claims) > 10_000:
            self._claims = {k: t for k, t in self._claims.items() if t > now}
        expires = self._claims.get(key)
        if expires is not None and expires > now:
            return False
        self._claims[key] = now + ttl_s
        return True

    async def acquire_inflight(self, session_id: str, n: int, limit: int) -> bool:
        held = self._inflight.get(session_id, 0)
        if held + n > limit:
            return False
        self._inflight[session_id] = held + n
        return True

    async def release_inflight(self, session_id: str, n: int) -> None:
        left = self._inflight.get(session_id, 0) - n
        if left > 0:
            self._inflight[session_id] = left
        else:
            self._inflight.pop(session_id, None)

    async def take_tokens(self, owner: str, buckets: Sequence[TokenBucket]) -> Throttled | None:
        return self._buckets.take(owner, buckets)

    async def publish_change(self, payload: bytes) -> None:
        self._changes.publish(payload)

    def open_changes(self) -> AbstractAsyncContextManager[ChangeFeed]:
        return self._changes.subscribe()

    # -- health ----------------------------------------------------------------------

    async def ready(self) -> bool:
        return True

    def statistics(self) -> StateStatistics:
        return StateStatistics(
            backend=self.name,
            sessions=len(self._sessions),
            streams=sum(len(s.streams) for s in self._sessions.values()),
            mailboxes=len(self._mailboxes),
            healthy=True,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Nothing runs in the background: the block's end forgets every session."""
        try:
            yield
        finally:
            self._sessions.clear()

