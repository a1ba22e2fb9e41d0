"""MCP over WebSocket at the endpoint (subprotocol ``mcp``): one JSON-RPC message per frame.

Session semantics are those of the session era: ``initialize`` opens a session, and every
message the server sends for it (answers, notifications, server->client requests) goes
through one backend stream that this connection follows, as legacy HTTP+SSE does. The
session ends with the connection.

Close codes: 1003 for binary frames, 1008 for a refused handshake (Origin, subprotocol),
1009 for an oversize frame; malformed JSON gets a JSON-RPC error frame and the connection
stays usable, as does a request refused by a rate or in-flight limit (its JSON-RPC error).
"""

from __future__ import annotations

import secrets
from typing import Any

import trio

from ..config import Config
from ..engine.session import SessionService
from ..errors import InvalidRequest, ProtocolError, RateLimited
from ..protocol import jsonrpc
from ..protocol.classify import classify_post
from ..protocol.sse import WEBSOCKET_STREAM
from ..security.origin import OriginPolicy
from ..security.ratelimit import RateLimits, subject
from ..state.base import SessionRecord, StateBackend
from .drain import Drain, when_closing
from .limits import json_limits

__all__ = ["WebSocketTransport"]

SUBPROTOCOL = "mcp"


class _Connection:
    def __init__(
        self, send: Any, principal: str | None, granted_scopes: frozenset[str] | None
    ) -> None:
        self._send = send
        self.principal = principal
        self.granted_scopes = granted_scopes
        self.session: SessionRecord | None = None
        self.stream = WEBSOCKET_STREAM + secrets.token_hex(8)
        #: Whom rate limits count this connection's requests against.
        self.subject = "anonymous"
        self.closed = False  # nothing may be sent after the close frame

    async def send_text(self, data: bytes) -> None:
        if not self.closed:
            await self._send({"type": "websocket.send", "text": data.decode()})

    async def close(self, code: int, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


class WebSocketTransport:
    def __init__(
        self, service: SessionService, state: StateBackend, config: Config, origins: OriginPolicy,
        limits: RateLimits | None = None,
    ) -> None:
        self.service = service
        self.state = state
        self.config = config
        self.origins = origins
        self.limits = limits

    async def serve(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        principal: str | None = None,
        granted_scopes: frozenset[str] | None = None,
        drain: Drain | None = None,
    ) -> None:
        """Serve one connection; ``principal`` and its scopes come from the handshake."""
        if (await receive())["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if SUBPROTOCOL not in scope.get("subprotocols", []) or not self.origins.permits(
            headers.get("origin")
        ):
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        conn = _Connection(send, principal, granted_scopes)
        conn.subject = subject(principal, scope)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(when_closing, drain, conn.close, 1001,
                                   "server shutting down")
                await self._read_loop(receive, conn, nursery)
                nursery.cancel_scope.cancel()
        finally:
            if conn.session is not None:
                with trio.CancelScope(shield=True):
                    await self.state.delete_session(conn.session.session_id)

    async def _read_loop(self, receive: Any, conn: _Connection, nursery: trio.Nursery) -> None:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if text is None:
                await conn.close(1003, "MCP messages are JSON text frames")
                return
            data = text.encode()
            if len(data) > self.config.limits.max_body_bytes:
                await conn.close(1009, f"frame exceeds {self.config.limits.max_body_bytes} bytes")
                return
            try:
                await self._handle(data, conn, nursery)
            except ProtocolError as exc:
                await conn.send_text(jsonrpc.encode_error(None, exc))

    async def _handle(self, data: bytes, conn: _Connection, nursery: trio.Nursery) -> None:
        items = classify_post(data, None, json_limits(self.config)).items
        if self.limits is not None:
            try:
                await self.limits.check(conn.subject, items, conn.granted_scopes)
            except RateLimited as exc:
                for item in items:
                    if item.message.is_request and item.request_id is not None:
                        await conn.send_text(jsonrpc.encode_error(item.request_id, exc))
                return
        for item in items:
            message = item.message
            if message.method == "initialize" and message.is_request:
                if conn.session is not None:
                    raise InvalidRequest("this connection's session is already initialized")
                sid, answer = await self.service.initialize(item, conn.principal)
                conn.session = await self.state.load_session(sid)
                await self.state.append(sid, conn.stream, answer)
                nursery.start_soon(self._follow, conn, sid)
                continue
            if conn.session is None:
                raise InvalidRequest("send initialize first")
            if message.is_request:
                try:
                    await self.service.start(conn.session, [item], stream=conn.stream,
                                             granted_scopes=conn.granted_scopes)
                except RateLimited as exc:  # too many in flight in this session
                    await conn.send_text(jsonrpc.encode_error(item.request_id, exc))
            else:
                await self.service.handle_client_message(conn.session, item)

    async def _follow(self, conn: _Connection, session_id: str) -> None:
        after: str | None = None
        while True:
            batch = await self.state.read(session_id, conn.stream, after,
                                          wait_s=self.config.sse.keepalive_s)
            for event in batch.events:
                if event.data:
                    await conn.send_text(event.data)
                after = event.position
            if batch.missing:
                await conn.close(1001, "session ended")
                return
