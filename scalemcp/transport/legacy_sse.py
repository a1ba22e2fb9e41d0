"""The legacy HTTP+SSE transport (2024-11-05): ``GET /sse`` + ``POST /messages``.

The GET opens a session and an SSE stream whose first event (``endpoint``) names the URL
to POST to; every answer travels on that stream. The stream is a backend stream like any
other, so a POST may land on any worker; the session ends when the GET connection does.

A POST refused by a rate or in-flight limit is still answered 202 (legacy clients treat
any other status as a broken transport): the JSON-RPC error of each of its requests goes
on the stream, where the client waits for their answers.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from ..config import Config
from ..engine.session import SessionService
from ..errors import NotAcceptable, RateLimited, SessionNotFound
from ..protocol import jsonrpc, versions
from ..protocol.classify import Item, classify_post
from ..protocol.limits import MAX_SESSION_ID_CHARS
from ..protocol.sse import LEGACY_STREAM, format_event
from ..security.ratelimit import RateLimits, subject
from ..state.base import SessionRecord, StateBackend
from .http import Request, accepts
from .limits import json_limits
from .sse_response import follow_stream, send_chunk, start_sse

__all__ = ["LegacyTransport"]

STREAM = LEGACY_STREAM


class LegacyTransport:
    def __init__(self, service: SessionService, state: StateBackend, config: Config,
                 limits: RateLimits | None = None) -> None:
        self.service = service
        self.state = state
        self.config = config
        self.limits = limits

    async def get(self, req: Request, principal: str | None) -> None:
        if not accepts(req.header("accept") or "text/event-stream", "text/event-stream"):
            raise NotAcceptable("GET needs Accept: text/event-stream")
        sid = await self.service.create(principal, versions.LEGACY_SSE_VERSION)
        await self.state.append(sid, STREAM, b"")  # opens the stream; never sent
        root = req.scope.get("root_path", "")
        endpoint = f"{root}{self.config.server.messages_path}?sessionId={sid}"
        await start_sse(req)
        await send_chunk(req, format_event(endpoint.encode(), event="endpoint"))
        try:
            await follow_stream(req, self.state, sid, STREAM, None,
                                keepalive_s=self.config.sse.keepalive_s, retry_ms=None,
                                with_ids=False)
        finally:
            await self.state.delete_session(sid)

    async def post(
        self, req: Request, principal: str | None, granted_scopes: frozenset[str] | None = None
    ) -> None:
        sid = parse_qs(req.query.decode("latin-1")).get("sessionId", [""])[0]
        known = 0 < len(sid) <= MAX_SESSION_ID_CHARS
        session = await self.state.load_session(sid) if known else None
        if session is None or session.principal != principal:
            raise SessionNotFound("unknown or closed SSE session")
        body = await req.body(self.config.limits.max_body_bytes)
        items = list(classify_post(body, None, json_limits(self.config)).items)
        try:
            if self.limits is not None:
                await self.limits.check(subject(principal, req.scope), items, granted_scopes)
        except RateLimited as exc:
            await self._refuse(sid, items, exc)
        else:
            await self._handle(sid, session, items, principal, granted_scopes)
        await req.respond(202, b"Accepted", content_type="text/plain")

    async def _refuse(self, sid: str, items: list[Item], error: RateLimited) -> None:
        for item in items:
            if item.message.is_request and item.request_id is not None:
                await self.state.append(sid, STREAM, jsonrpc.encode_error(item.request_id, error))

    async def _handle(self, sid: str, session: SessionRecord, items: list[Item],
                      principal: str | None, granted_scopes: frozenset[str] | None) -> None:
        requests = []
        initialized = False
        for item in items:
            message = item.message
            if message.method == "initialize" and message.is_request:
                _, answer = await self.service.initialize(item, principal, session_id=sid)
                await self.state.append(sid, STREAM, answer)
                initialized = True
            elif message.is_request:
                requests.append(item)
            else:
                await self.service.handle_client_message(session, item)
        if requests:
            if initialized:  # the record changed: its version and capabilities
                session = await self.state.load_session(sid) or session
            try:
                await self.service.start(session, requests, stream=STREAM,
                                         granted_scopes=granted_scopes)
            except RateLimited as exc:  # too many in flight in this session
                await self._refuse(sid, requests, exc)
