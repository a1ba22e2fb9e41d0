"""Streamable HTTP, session era (spec section 4): POST, GET and DELETE on the endpoint."""

from __future__ import annotations

import secrets

from ..config import Config
from ..engine.session import SessionService
from ..errors import InvalidRequest, UnsupportedVersion
from ..protocol import versions
from ..protocol.jsonrpc import Message
from ..protocol.limits import MAX_SESSION_ID_CHARS
from ..protocol.sse import parse_event_id
from ..state.base import SessionRecord, StateBackend
from .get_stream import serve_get_stream
from .http import Request, accepts
from .sse_response import follow_stream, start_sse

__all__ = ["SessionTransport"]

SESSION_HEADER = "mcp-session-id"


class SessionTransport:
    def __init__(self, service: SessionService, state: StateBackend, config: Config) -> None:
        self.service = service
        self.state = state
        self.config = config

    def _retry_ms(self, session: SessionRecord) -> int | None:
        return self.config.sse.retry_ms if session.protocol_version >= "2025-11-25" else None

    async def post(
        self,
        req: Request,
        decoded: Message | list[Message],
        principal: str | None,
        granted_scopes: frozenset[str] | None = None,
    ) -> None:
        messages = decoded if isinstance(decoded, list) else [decoded]
        if not messages:
            raise InvalidRequest("an empty batch is not a JSON-RPC message")
        inits = [m for m in messages if m.method == "initialize"]
        if inits:
            if len(messages) > 1:
                raise InvalidRequest("initialize must be the only message in its POST")
            session_id, body = await self.service.initialize(inits[0], principal)
            await req.respond_json(200, body, [(b"mcp-session-id", session_id.encode())])
            return
        session = await self.load(req, principal)
        if session is None:
            return
        if isinstance(decoded, list) and not versions.allows_batches(session.protocol_version):
            raise InvalidRequest(
                f"JSON-RPC batches are not allowed in protocol version "
                f"{session.protocol_version} (only 2025-03-26)"
            )
        requests = [m for m in messages if m.is_request]
        for message in messages:
            if not message.is_request:
                await self.service.accept(session, message)
        if not requests:
            await req.respond(202)
            return
        outbox = await self.service.start(session, requests, granted_scopes=granted_scopes)
        await outbox.decided.wait()
        sid_header = [(b"mcp-session-id", session.session_id.encode())]
        if outbox.stream is None:
            results = outbox.results
            body = results[0] if not isinstance(decoded, list) else b"[" + b",".join(results) + b"]"
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
            await req.respond_error(406, InvalidRequest("GET needs Accept: text/event-stream"))
            return
        session = await self.load(req, principal)
        if session is None:
            return
        sid = session.session_id
        last = req.header("last-event-id")
        if last is not None:
            parsed = parse_event_id(last)
            if parsed is None:
                await req.respond_error(400, InvalidRequest("Last-Event-ID is not one of ours"))
                return
            stream, after = parsed
        else:
            stream, after = "g" + secrets.token_hex(8), None
            await self.state.append(sid, stream, b"")
        await start_sse(req, [(b"mcp-session-id", sid.encode())])
        await serve_get_stream(
            req, self.state, session, stream, after,
            keepalive_s=self.config.sse.keepalive_s,
            retry_ms=self._retry_ms(session),
            follow_only=stream.startswith("p"),
        )

    async def delete(self, req: Request, principal: str | None) -> None:
        session = await self.load(req, principal)
        if session is None:
            return
        await self.state.delete_session(session.session_id)
        await req.respond(200)

    async def load(self, req: Request, principal: str | None) -> SessionRecord | None:
        """The request's session, or None after answering 400/404 for it."""
        version = req.header("mcp-protocol-version")
        if version is not None and version not in versions.ALL_VERSIONS:
            await req.respond_error(400, UnsupportedVersion(
                f"unsupported MCP-Protocol-Version {version!r}",
                {"supported": list(versions.ALL_VERSIONS), "requested": version}))
            return None
        sid = req.header(SESSION_HEADER)
        if sid is None:
            await req.respond_error(
                400, InvalidRequest("missing Mcp-Session-Id header; send initialize first")
            )
            return None
        session = await self.state.load_session(sid) if len(sid) <= MAX_SESSION_ID_CHARS else None
        if session is None or session.principal != principal:
            await req.respond_error(
                404, InvalidRequest("unknown or expired session; initialize a new one")
            )
            return None
        return session

