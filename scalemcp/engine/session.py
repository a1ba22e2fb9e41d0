"""The session era (2025-03-26 .. 2025-11-25): initialize, session-scoped methods, routing.

``SessionService`` takes decoded messages for one session and returns what the transport
must do: accept (202), answer with JSON, or stream. Requests run in the service's own
nursery, not the HTTP request's, because a dropped connection is not a cancellation in
this era (spec 4.3): the handler keeps running and its events stay resumable. A server
that drains lets them run on (:meth:`SessionService.wait_finished`, ``ops.drain``); one cut
short by the server's stop ends its answer with an error rather than leaving it open.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from typing import Any

import msgspec
import trio
from msgspec import UNSET

from ..config import Config
from ..errors import (
    BackendUnavailable,
    InternalError,
    InvalidParams,
    InvalidRequest,
    ProtocolError,
)
from ..ops.metrics import SESSIONS_CREATED
from ..protocol import jsonrpc, versions
from ..protocol.jsonrpc import Message
from ..protocol.types import (
    CancelledParams,
    InitializeParams,
    RequestMeta,
    SetLevelParams,
    SubscribeParams,
)
from ..state.base import SessionRecord, StateBackend
from .call import Call, SessionScope
from .dispatch import Engine, decode_params
from .inflight import Slots
from .outbox import Outbox

__all__ = ["SessionService"]

log = logging.getLogger("scalemcp.session")
_cancelled_decoder = msgspec.json.Decoder(CancelledParams)
_SESSION_METHODS = frozenset({"logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
#: How long a request cut short by the server's stop may take to write its error.
_STOPPED_WRITE_S = 2.0


class SessionService:
    def __init__(self, engine: Engine, state: StateBackend, config: Config) -> None:
        self.engine = engine
        self.state = state
        self.config = config
        self._nursery: trio.Nursery | None = None
        self._running = 0
        self._idle = trio.Event()
        #: Requests of one session running on this worker (engine/inflight.py).
        self.inflight = Slots(config.limits.max_inflight_per_session, "session")

    async def wait_finished(self) -> None:
        """Return once no request handler runs (counting those started meanwhile)."""
        while self._running:
            if self._idle.is_set():
                self._idle = trio.Event()
            await self._idle.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery that request handlers run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # -- initialize ------------------------------------------------------------------

    async def initialize(
        self, message: Message, principal: str | None, session_id: str | None = None
    ) -> tuple[str, bytes]:
        """Initialize a new session (or the legacy one ``session_id`` names).

        Returns the session id and the encoded InitializeResult response.
        """
        assert message.id is not UNSET
        assert message.id is not None
        params = decode_params(message.params, InitializeParams)
        if not params.protocol_version:
            raise InvalidParams("initialize needs params.protocolVersion")
        version = versions.negotiate(params.protocol_version)
        if session_id is None:
            session_id = await self.create(principal, version)
        await self.state.update_session(
            session_id,
            protocol_version=version,
            client_capabilities=params.capabilities,
            client_info=params.client_info,
        )
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.engine.app.capabilities(),
            "serverInfo": self.engine.results.server_info(version),
        }
        if self.engine.app.instructions:
            result["instructions"] = self.engine.app.instructions
        return session_id, jsonrpc.encode_result(message.id, result)

    async def create(self, principal: str | None, version: str) -> str:
        """Create an empty session record; returns its id."""
        if principal is not None:
            # Bounded: a principal cannot pile up sessions without end.
            count = await self.state.count_sessions(principal)
            if count >= self.config.sessions.max_sessions_per_principal:
                raise InvalidRequest("too many open sessions for this principal")
        session_id = secrets.token_urlsafe(24)
        await self.state.create_session(
            SessionRecord(
                session_id=session_id,
                protocol_version=version,
                principal=principal,
                created_at=time.time(),
            )
        )
        SESSIONS_CREATED.labels(version).inc()  # a negotiated version: a bounded label
        return session_id

    # -- messages inside a session ---------------------------------------------------

    async def accept(self, session: SessionRecord, message: Message) -> None:
        """Handle a notification or a response from the client."""
        sid = session.session_id
        if message.is_response:
            if message.id is UNSET or message.id is None:
                return
            await self.state.deliver(sid, f"r:{message.id}", jsonrpc.encode(message))
            return
        if message.method == "notifications/initialized":
            if not session.initialized:
                await self.state.update_session(sid, initialized=True)
        elif message.method == "notifications/cancelled" and message.params is not UNSET:
            try:
                params = _cancelled_decoder.decode(message.params)
            except msgspec.MsgspecError:
                return  # spec 8.2: ignore malformed cancellations
            if params.request_id is not UNSET:  # (params: for a traceparent in _meta)
                await self.state.deliver(sid, f"c:{params.request_id}", bytes(message.params))

    async def start(
        self,
        session: SessionRecord,
        requests: list[Message],
        stream: str | None = None,
        *,
        granted_scopes: frozenset[str] | None = None,
    ) -> Outbox:
        """Start the requests of one POST; the outbox says how they are answered.

        With ``stream`` (legacy HTTP+SSE) every answer goes to that one stream.
        ``granted_scopes`` are the caller's, from this request's credentials.
        """
        priming = session.protocol_version >= "2025-11-25"
        outbox = Outbox(self.state, session.session_id, expected=len(requests),
                        priming=priming, fixed_stream=stream,
                        request_ids=[m.id for m in requests if isinstance(m.id, int | str)])
        if self._nursery is None:
            raise InternalError("the session service is not running")
        self.inflight.acquire(session.session_id, len(requests))  # RateLimited: HTTP 429
        for message in requests:
            self._nursery.start_soon(self._run, session, message, outbox, granted_scopes)
        return outbox

    async def _run(
        self,
        session: SessionRecord,
        message: Message,
        outbox: Outbox,
        granted_scopes: frozenset[str] | None,
    ) -> None:
        assert message.id is not UNSET
        assert message.id is not None
        assert message.method is not UNSET
        call = Call(
            request_id=message.id,
            method=message.method,
            params=message.params,
            protocol_version=session.protocol_version,
            client_capabilities=session.client_capabilities,
            session_id=session.session_id,
            principal=session.principal,
            log_level=session.log_level or "info",
            granted_scopes=granted_scopes,
        )
        self._running += 1
        answered = False
        try:
            response = await self._answer_cancellably(session, call, outbox)
            await outbox.finish(response)
            answered = True
        finally:
            self.inflight.release(session.session_id)
            self._running -= 1
            if not self._running:
                self._idle.set()
            if not answered:  # cancelled by the server's stop (or failed): say so
                await _finish_stopped(outbox, message.id)

    async def _answer_cancellably(
        self, session: SessionRecord, call: Call, outbox: Outbox
    ) -> bytes:
        """The answer, or the cancellation error if the client cancels the request."""
        response: bytes | None = None
        with trio.CancelScope() as cancel_scope:
            async with (
                self.state.open_mailbox(session.session_id, f"c:{call.request_id}") as box,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(_cancel_on_message, box, cancel_scope)
                response = await self._answer(session, call, outbox)
                nursery.cancel_scope.cancel()
        if response is None:
            response = jsonrpc.encode_error(
                call.request_id, ProtocolError("request cancelled by the client")
            )
        return response

    async def _answer(self, session: SessionRecord, call: Call, outbox: Outbox) -> bytes:
        if call.method in _SESSION_METHODS:
            try:
                await self._session_method(session, call)
            except ProtocolError as exc:
                return jsonrpc.encode_error(call.request_id, exc)
            return jsonrpc.encode_result(call.request_id, {})
        if call.method == "initialize":
            return jsonrpc.encode_error(
                call.request_id, InvalidRequest("this session is already initialized")
            )
        timeout = self.config.sessions.client_request_timeout_s

        def scopes(c: Call, meta: RequestMeta | msgspec.UnsetType) -> SessionScope:
            return SessionScope(
                c, meta, outbox.emit, self.state, outbox.drop, ask_timeout_s=timeout
            )

        return await self.engine.run(call, scopes)

    async def _session_method(self, session: SessionRecord, call: Call) -> None:
        sid = session.session_id
        if call.method == "logging/setLevel":
            level = decode_params(call.params, SetLevelParams).level
            await self.state.update_session(sid, log_level=level)
            return
        uri = decode_params(call.params, SubscribeParams).uri
        if not uri:
            raise InvalidParams("params.uri is required")
        current = (await self.state.load_session(sid) or session).subscriptions
        if call.method == "resources/subscribe":
            subs = sorted({*current, uri})
        else:
            subs = [u for u in current if u != uri]
        await self.state.update_session(sid, subscriptions=subs)


async def _finish_stopped(outbox: Outbox, request_id: int | str) -> None:
    """End a request the server stopped (shielded, bounded: it runs while cancelled)."""
    error = InternalError("the server stopped before this request finished; its outcome is "
                          "unknown")
    with trio.move_on_after(_STOPPED_WRITE_S, shield=True), contextlib.suppress(
        BackendUnavailable
    ):
        await outbox.finish(jsonrpc.encode_error(request_id, error))


async def _cancel_on_message(
    box: trio.MemoryReceiveChannel[bytes], scope: trio.CancelScope
) -> None:
    await box.receive()
    log.debug("request cancelled by the client")
    scope.cancel()
