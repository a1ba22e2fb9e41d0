"""Streamable HTTP, session era (spec section 4): POST, GET and DELETE on the endpoint.

Every refusal is raised (a :class:`~scalemcp.errors.WireError` carrying its status); the
ASGI app renders it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from ..config import Config
from ..engine.session import SessionService
from ..errors import (
    InvalidRequest,
    NotAcceptable,
    SessionNotFound,
    SessionRequired,
    UnsupportedVersion,
)
from ..protocol import versions
from ..protocol.classify import Post
from ..protocol.limits import MAX_SESSION_ID_CHARS
from ..protocol.sse import GET_STREAM, POST_STREAM, parse_event_id
from ..protocol.versions import features
from ..state.base import SessionRecord, StateBackend
from .get_stream import ChangeFeeder, serve_get_stream
from .http import Request, accepts
from .sse_response import follow_stream, start_sse

__all__ = ["SessionTransport"]

SESSION_HEADER = "mcp-session-id"


class SessionTransport:
    def __init__(self, service: SessionService, state: StateBackend, config: Config) -> None:
        self.service = service
        self.state = state
        self.config = config
        #: Appends changes to this worker's GET streams (run by the app's lifespan).
        self.feeder = ChangeFeeder(state)

    def _retry_ms(self, session: SessionRecord) -> int | None:
        return self.config.sse.retry_ms if features(session.protocol_version).sse_polling else None

    async def post(
        self,
        req: Request,
        post: Post,
        principal: str | None,
        granted_scopes: frozenset[str] | None = None,
    ) -> None:
        items = post.items
        inits = [i for i in items if i.method == "initialize"]
        if inits:
            if len(items) > 1:
                raise InvalidRequest("initialize must be the only message in its POST")
            if inits[0].request_id is None:
                raise InvalidRequest("initialize must be a request, with an id")
            session_id, body = await self.service.initialize(inits[0], principal)
            await req.respond_json(200, body, [(b"mcp-session-id", session_id.encode())])
            return
        session = await self.load(req.headers, principal)
        if post.batch and not features(session.protocol_version).batches:
            raise InvalidRequest(
                f"JSON-RPC batches are not allowed in protocol version "
                f"{session.protocol_version} (only 2025-03-26)"
            )
        requests = [i for i in items if i.message.is_request]
        for item in items:
            if not item.message.is_request:
                await self.service.handle_client_message(session, item)
        if not requests:
            await req.respond(202)
            return
        outbox = await self.service.start(session, requests, granted_scopes=granted_scopes)
        await outbox.decided.wait()
        sid_header = [(b"mcp-session-id", session.session_id.encode())]
        if outbox.stream is None:
            results = outbox.results
            body = b"[" + b",".join(results) + b"]" if post.batch else results[0]
            await req.respond_json(200, body, sid_header)
            return
        await start_sse(req, sid_header)
        await follow_stream(
            req, self.state, session.session_id, outbox.stream, None,
            keepalive_s=self.config.sse.keepalive_s,
            retry_ms=self._retry_ms(session),
            drop=outbox.drop_connection,
        )

    async def get(self, req: Request, principal: str | None) -> None:
        if not accepts(req.header("accept"), "text/event-stream"):
            raise NotAcceptable("GET needs Accept: text/event-stream")
        session = await self.load(req.headers, principal)
        sid = session.session_id
        last = req.header("last-event-id")
        if last is not None:
            parsed = parse_event_id(last)
            if parsed is None:
                raise InvalidRequest("Last-Event-ID is not one of ours")
            stream, after = parsed
        else:
            stream, after = GET_STREAM + secrets.token_hex(8), None
            await self.state.append(sid, stream, b"")
        await start_sse(req, [(b"mcp-session-id", sid.encode())])
        await serve_get_stream(
            req, self.state, session, stream, after,
            keepalive_s=self.config.sse.keepalive_s,
            retry_ms=self._retry_ms(session),
            follow_only=stream.startswith(POST_STREAM),
            feeder=self.feeder,
        )

    async def delete(self, req: Request, principal: str | None) -> None:
        session = await self.load(req.headers, principal)
        await self.state.delete_session(session.session_id)
        await req.respond(200)

    async def load(self, headers: Mapping[str, str], principal: str | None) -> SessionRecord:
        """The request's session; raises what refuses the request if there is none."""
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in versions.ALL_VERSIONS:
            raise UnsupportedVersion(
                f"unsupported MCP-Protocol-Version {version!r}",
                {"supported": list(versions.ALL_VERSIONS), "requested": version})
        sid = headers.get(SESSION_HEADER)
        if sid is None:
            raise SessionRequired("missing Mcp-Session-Id header; send initialize first")
        session = await self.state.load_session(sid) if len(sid) <= MAX_SESSION_ID_CHARS else None
        if session is None or session.principal != principal:
            raise SessionNotFound("unknown or expired session; initialize a new one")
        return session
