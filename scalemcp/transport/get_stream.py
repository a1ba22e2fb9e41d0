"""The standalone GET stream of a session: change notifications, resumable.

A GET stream is a stream in the state backend that the client follows
(:func:`~.sse_response.follow_stream`); the changes its session wants are appended to it,
so a client that reconnects with ``Last-Event-ID`` misses none. One :class:`ChangeFeeder`
per worker does the appending for every GET stream open on it: one subscription to the
worker's changes, no task per stream.
"""

from __future__ import annotations

import collections
import logging

import trio

from ..errors import BackendUnavailable
from ..protocol.changes import FOR_SESSION, SUBSCRIPTIONS_CHANGED, Change, wanted_on_session
from ..state.base import SessionRecord, StateBackend
from .http import Request
from .sse_response import follow_stream

__all__ = ["ChangeFeeder", "serve_get_stream"]

log = logging.getLogger("scalemcp.transport")
#: Appends in flight at once while one change fans out (Redis: round trips in parallel).
_FAN_OUT = 64


class ChangeFeeder:
    """Appends each change to the GET streams of the sessions that want it.

    A session's subscriptions are kept here and read again only when they change (a
    subscribe or unsubscribe on any worker publishes SUBSCRIPTIONS_CHANGED), not for
    every change. Changes arrive decoded, once per worker.
    """

    def __init__(self, state: StateBackend) -> None:
        self.state = state
        #: session id -> {stream name: how many followers of it are open here}
        self._streams: dict[str, dict[str, int]] = {}
        self._subscriptions: dict[str, frozenset[str]] = {}

    def add(self, session: SessionRecord, stream: str) -> None:
        """Feed ``stream`` of ``session`` until :meth:`remove` (a method pair, not a context
        manager: nothing per open stream but the counts)."""
        sid = session.session_id
        streams = self._streams.get(sid)
        if streams is None:
            streams = self._streams[sid] = {}
            self._subscriptions[sid] = frozenset(session.subscriptions)
        streams[stream] = streams.get(stream, 0) + 1

    def remove(self, session_id: str, stream: str) -> None:
        streams = self._streams.get(session_id)
        if streams is None:
            return
        left = streams.get(stream, 0) - 1
        if left > 0:
            streams[stream] = left
        else:
            streams.pop(stream, None)
        if not streams:
            del self._streams[session_id]
            self._subscriptions.pop(session_id, None)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Run for the server's lifetime."""
        async with self.state.open_changes() as changes:
            task_status.started()
            async for change in changes:
                if change.method == SUBSCRIPTIONS_CHANGED:
                    await self._reload(change)
                elif change.method == FOR_SESSION:
                    await self._for_session(change)
                else:
                    await self._fan_out(change)

    async def _reload(self, change: Change) -> None:
        sid = change.session_id
        if sid is None or sid not in self._streams:
            return
        try:
            record = await self.state.load_session(sid)
        except BackendUnavailable as exc:  # (the streams keep the subscriptions they had)
            log.warning("subscriptions of a session not read again: %s", exc)
            return
        if sid in self._streams:
            self._subscriptions[sid] = frozenset(record.subscriptions if record else ())

    async def _for_session(self, change: Change) -> None:
        """A message for one session (a task's status, 2025-11-25): to its GET streams here."""
        sid, message = change.session_id, change.message
        if sid is None or message is None:
            return
        for stream in list(self._streams.get(sid, ())):
            try:
                await self.state.append(sid, stream, message)
            except BackendUnavailable as exc:  # the client's tasks/get still tells
                log.warning("%s not appended to a GET stream: %s", change.method, exc)

    async def _fan_out(self, change: Change) -> None:
        targets = collections.deque(
            (sid, stream) for sid, streams in self._streams.items()
            if wanted_on_session(change, self._subscriptions.get(sid, frozenset()))
            for stream in streams)

        async def append() -> None:
            while targets:
                sid, stream = targets.popleft()
                try:
                    await self.state.append(sid, stream, change.payload)
                except BackendUnavailable as exc:  # a hint lost: clients re-list anyway
                    log.warning("%s not appended to a GET stream: %s", change.method, exc)

        if len(targets) <= 1:
            await append()
            return
        async with trio.open_nursery() as nursery:
            for _ in range(min(_FAN_OUT, len(targets))):
                nursery.start_soon(append)


async def serve_get_stream(
    req: Request,
    state: StateBackend,
    session: SessionRecord,
    stream: str,
    after: str | None,
    *,
    keepalive_s: float,
    retry_ms: int | None,
    follow_only: bool,
    feeder: ChangeFeeder,
) -> None:
    """Follow ``stream``; unless it is a POST stream being resumed, feed it changes too."""
    if follow_only:
        await follow_stream(req, state, session.session_id, stream, after,
                            keepalive_s=keepalive_s, retry_ms=retry_ms)
        return
    feeder.add(session, stream)
    try:
        await follow_stream(req, state, session.session_id, stream, after,
                            keepalive_s=keepalive_s, retry_ms=retry_ms)
    finally:
        feeder.remove(session.session_id, stream)
