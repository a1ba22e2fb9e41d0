"""The standalone GET stream of a session: change notifications, resumable."""

from __future__ import annotations

import trio

from ..protocol.changes import FOR_SESSION, SUBSCRIPTIONS_CHANGED, wanted_on_session
from ..state.base import SessionRecord, StateBackend
from .http import Request
from .sse_response import follow_stream


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
) -> None:
    """Follow ``stream``; unless it is a POST stream being resumed, feed it changes too."""
    if follow_only:
        await follow_stream(req, state, session.session_id, stream, after,
                            keepalive_s=keepalive_s, retry_ms=retry_ms)
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_feed_changes, state, session, stream)
        await follow_stream(req, state, session.session_id, stream, after,
                            keepalive_s=keepalive_s, retry_ms=retry_ms)
        nursery.cancel_scope.cancel()


async def _feed_changes(state: StateBackend, session: SessionRecord, stream: str) -> None:
    """Append the changes this session wants to its GET stream.

    Changes arrive decoded (once per worker); the session's subscriptions are kept here and
    read again only when they change (a subscribe or unsubscribe on any worker publishes
    SUBSCRIPTIONS_CHANGED), not for every change.
    """
    sid = session.session_id
    subscriptions = frozenset(session.subscriptions)
    async with state.open_changes() as changes:
        async for change in changes:
            if change.method == SUBSCRIPTIONS_CHANGED:
                if change.session_id == sid:
                    record = await state.load_session(sid)
                    subscriptions = frozenset(record.subscriptions if record else ())
            elif change.method == FOR_SESSION:
                message = change.message
                if change.session_id == sid and message is not None:
                    await state.append(sid, stream, message)
            elif wanted_on_session(change, subscriptions):
                await state.append(sid, stream, change.payload)
