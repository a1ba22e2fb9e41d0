"""The session era (2025-03-26 .. 2025-11-25): initialize, session-scoped methods, routing.

``SessionService`` takes decoded messages for one session and returns what the transport
must do: accept (202), answer with JSON, or stream. Requests run in the service's own
nursery, not the HTTP request's, because a dropped connection is not a cancellation in
this era (spec 4.3): the handler keeps running and its events stay resumable. A server
that drains lets them run on (:meth:`SessionService.wait_finished`, ``transport.drain``); one cut
short by the server's stop ends its answer with an error rather than leaving it open.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
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
    RateLimited,
)
from ..observability.metrics import RATE_LIMITED, SESSIONS_CREATED, observe_request
from ..protocol import jsonrpc, versions
from ..protocol.changes import subscriptions_changed
from ..protocol.classify import Item
from ..protocol.types import (
    CancelledParams,
    InitializeParams,
    RequestMeta,
    SetLevelParams,
    SubscribeParams,
)
from ..protocol.versions import features
from ..state.base import ANSWER_MAILBOX, CANCEL_MAILBOX, SessionRecord, StateBackend
from .call import Call, SessionScope
from .dispatch import Engine
from .inflight import Slots
from .outbox import Outbox

__all__ = ["SessionService"]

log = logging.getLogger("scalemcp.session")
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
        #: The same limit counted across the fleet too (max_inflight_fleet_wide).
        self._fleet_wide = config.limits.max_inflight_fleet_wide and state.name == "redis"

    async def _acquire_fleet_wide(self, session_id: str, n: int) -> None:
        limit = self.inflight.limit
        try:
            taken = await self.state.acquire_inflight(session_id, n, limit)
        except BaseException:
            self.inflight.release(session_id, n)
            raise
        if not taken:
            self.inflight.release(session_id, n)
            RATE_LIMITED.labels("inflight_session").inc()
            raise RateLimited(
                f"too many requests in flight for this session across the fleet (at most "
                f"{limit} at once); retry when one has finished",
                limit="inflight_session", retry_after_s=1)

    async def _release_fleet_wide(self, session_id: str) -> None:
        """Bounded and shielded: it runs as a request ends, cancelled or not."""
        with trio.move_on_after(_STOPPED_WRITE_S, shield=True), contextlib.suppress(
                BackendUnavailable):
            await self.state.release_inflight(session_id, 1)

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
        self, item: Item, principal: str | None, session_id: str | None = None
    ) -> tuple[str, bytes]:
        """Initialize a new session (or the legacy one ``session_id`` names).

        Returns the session id and the encoded InitializeResult response.
        """
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._initialize(item, principal, session_id)
        except ProtocolError as exc:
            outcome = f"error{exc.code}"
            raise
        finally:  # counted with every other request (scalemcp_requests_total)
            observe_request("session", "initialize", outcome, time.perf_counter() - started)

    async def _initialize(
        self, item: Item, principal: str | None, session_id: str | None
    ) -> tuple[str, bytes]:
        assert item.request_id is not None
        if item.error is not None:
            raise item.error
        params: InitializeParams = item.params
        if not params.protocol_version:
            raise InvalidParams("initialize needs params.protocolVersion")
        version = versions.negotiate(params.protocol_version)
        if session_id is None:  # one write: the session is created as initialize leaves it
            session_id = await self.create(principal, version, params)
        else:
            await self.state.update_session(
                session_id, protocol_version=version,
                client_capabilities=params.capabilities, client_info=params.client_info)
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.engine.app.capabilities(version),
            "serverInfo": self.engine.results.server_info(version),
        }
        if self.engine.app.instructions:
            result["instructions"] = self.engine.app.instructions
        return session_id, jsonrpc.encode_result(item.request_id, result)

    async def create(self, principal: str | None, version: str,
                     params: InitializeParams | None = None) -> str:
        """Create a session record (from ``initialize``'s params, if given); returns its id."""
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
                client_capabilities=params.capabilities if params else {},
                client_info=params.client_info if params else {},
            )
        )
        SESSIONS_CREATED.labels(version).inc()  # a negotiated version: a bounded label
        return session_id

    # -- messages inside a session ---------------------------------------------------

    async def handle_client_message(self, session: SessionRecord, item: Item) -> None:
        """Handle a notification or a response from the client."""
        sid = session.session_id
        message = item.message
        if message.is_response:
            if message.id is UNSET or message.id is None:
                return
            await self.state.deliver(sid, f"{ANSWER_MAILBOX}{message.id}",
                                     jsonrpc.encode(message))
            return
        if message.method == "notifications/initialized":
            if not session.initialized:
                await self.state.update_session(sid, initialized=True)
        elif message.method == "notifications/cancelled" and message.params is not UNSET:
            params = item.params  # None if malformed: spec 8.2 says ignore it
            if isinstance(params, CancelledParams) and params.request_id is not UNSET:
                # (the raw params: a traceparent rides in their _meta)
                await self.state.deliver(sid, f"{CANCEL_MAILBOX}{params.request_id}",
                                         bytes(message.params))

    async def start(
        self,
        session: SessionRecord,
        requests: list[Item],
        stream: str | None = None,
        *,
        granted_scopes: frozenset[str] | None = None,
    ) -> Outbox:
        """Start the requests of one POST; the outbox says how they are answered.

        With ``stream`` (legacy HTTP+SSE) every answer goes to that one stream.
        ``granted_scopes`` are the caller's, from this request's credentials.
        """
        priming = features(session.protocol_version).sse_polling
        outbox = Outbox(self.state, session.session_id, expected=len(requests),
                        priming=priming, fixed_stream=stream,
                        request_ids=[i.request_id for i in requests if i.request_id is not None])
        if self._nursery is None:
            raise InternalError("the session service is not running")
        self.inflight.acquire(session.session_id, len(requests))  # RateLimited: HTTP 429
        if self._fleet_wide:
            await self._acquire_fleet_wide(session.session_id, len(requests))
        for item in requests:
            self._nursery.start_soon(self._run, session, item, outbox, granted_scopes)
        return outbox

    async def _run(
        self,
        session: SessionRecord,
        item: Item,
        outbox: Outbox,
        granted_scopes: frozenset[str] | None,
    ) -> None:
        assert item.request_id is not None
        call = Call.of(
            item,
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
        except BackendUnavailable as exc:
            # The backend refused the answer's stream (out of memory, or out for longer
            # than writes are retried). Never let this reach the service's nursery: that
            # would stop every session of this worker. A stream not opened yet gives way
            # to a JSON answer; one already open stays without its end (it ends with its
            # epitaph if this worker is taken for dead).
            answered = True
            error = InternalError(f"the answer could not be recorded: {exc}")
            if not outbox.answer_without_backend(jsonrpc.encode_error(item.request_id, error)):
                log.warning("request %s of session %s: its answer could not be recorded: %s",
                            item.request_id, session.session_id[:8], exc)
        finally:
            self.inflight.release(session.session_id)
            if self._fleet_wide:
                await self._release_fleet_wide(session.session_id)
            self._running -= 1
            if not self._running:
                self._idle.set()
            if not answered:  # cancelled by the server's stop (or failed): say so
                await _finish_stopped(outbox, item.request_id)

    async def _answer_cancellably(
        self, session: SessionRecord, call: Call, outbox: Outbox
    ) -> bytes:
        """The answer, or the cancellation error if the client cancels the request."""
        response: bytes | None = None
        with trio.CancelScope() as cancel_scope, self.state.on_delivery(
            session.session_id, f"{CANCEL_MAILBOX}{call.request_id}",
            _canceller(cancel_scope),
        ):
            response = await self._answer(session, call, outbox)
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

        def make_scope(c: Call, meta: RequestMeta | msgspec.UnsetType) -> SessionScope:
            return SessionScope(
                c, meta, outbox.emit, self.state, outbox.drop, ask_timeout_s=timeout
            )

        return await self.engine.run(call, make_scope)

    async def _session_method(self, session: SessionRecord, call: Call) -> None:
        sid = session.session_id
        if call.method == "logging/setLevel":
            level = call.params_as(SetLevelParams).level
            await self.state.update_session(sid, log_level=level)
            return
        uri = call.params_as(SubscribeParams).uri
        if not uri:
            raise InvalidParams("params.uri is required")
        # One atomic change in the backend: two workers subscribing at once both count.
        await self.state.subscribe(sid, uri, call.method == "resources/subscribe")
        await self.state.publish_change(subscriptions_changed(sid))  # for its GET streams


async def _finish_stopped(outbox: Outbox, request_id: int | str) -> None:
    """End a request the server stopped (shielded, bounded: it runs while cancelled)."""
    error = InternalError("the server stopped before this request finished; its outcome is "
                          "unknown")
    with trio.move_on_after(_STOPPED_WRITE_S, shield=True), contextlib.suppress(
        BackendUnavailable
    ):
        await outbox.finish(jsonrpc.encode_error(request_id, error))


def _canceller(scope: trio.CancelScope) -> Callable[[bytes], None]:
    """The cancellation mailbox of a request: a client's notifications/cancelled cancels
    ``scope`` (no task waits for it)."""
    def cancel(_payload: bytes) -> None:
        log.debug("request cancelled by the client")
        scope.cancel()

    return cancel
