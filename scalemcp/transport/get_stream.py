"""The standalone GET stream of a session: change notifications, resumable."""

from __future__ import annotations

import trio
from msgspec import UNSET

from ..protocol import jsonrpc
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
    sid = session.session_id
    async with state.open_changes() as changes:
        async for payload in changes:
            if await _wanted(state, sid, payload):
                await state.append(sid, stream, payload)


async def _wanted(state: StateBackend, session_id: str, payload: bytes) -> bool:
    message = jsonrpc.decode_body(payload)
    if isinstance(message, list) or message.method != "notifications/resources/updated":
        return True
    params = {} if message.params is UNSET else jsonrpc.decode_any(message.params)
    record = await state.load_session(session_id)
    return record is not None and params.get("uri") in record.subscriptions
