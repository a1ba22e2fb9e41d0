"""The two hooks the server calls: one per HTTP exchange (or WebSocket), one per MCP request.

:meth:`Observer.exchange` wraps everything the ASGI app does for one connection-level
request: it binds the log fields (request id, hashed session id), continues the caller's
trace context, makes the server's :class:`~.drain.Drain` the one streams watch, counts the
exchange in ``scalemcp_open_streams`` while it streams (:func:`stream_opened`), and at the
end writes the access-log line. :func:`observe_call` wraps one MCP request in the engine:
log fields for the call and, with tracing on, its server span. Session-era handlers run in
tasks started from the request's task, so they inherit all of it.

:meth:`Observer.serve` runs for the server's lifetime: under ``scalemcp serve`` it shares
this worker's metrics with its siblings, and :meth:`Observer.metrics` answers ``/metrics``
for the whole node (see :mod:`.metrics_dir`).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import trio

from . import logs, metrics_dir
from .drain import Drain, drain_var
from .metrics import INFLIGHT_REQUESTS, METRICS, OPEN_STREAMS, Value
from .tracing import Tracing, tracing_for

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..config import Config
    from ..engine.call import Call
    from ..errors import ProtocolError

__all__ = ["CallObservation", "HttpExchange", "Observer", "note", "observe_call",
           "stream_opened"]

access_log = logging.getLogger("scalemcp.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class HttpExchange(Protocol):
    method: str
    path: str
    headers: dict[str, str]
    status: int


class _Exchange:
    """One exchange's context: entered around everything the app does for it."""

    __slots__ = ("_req", "_span_parent", "_started", "_tokens", "era", "mcp_method",
                 "observer", "stream", "transport")

    def __init__(self, observer: Observer, req: HttpExchange, era: str | None,
                 transport: str) -> None:
        self.observer = observer
        self._req = req
        self.era = era
        self.mcp_method: str | None = None
        self.transport = transport
        self._span_parent: AbstractContextManager[None] | None = None
        #: The open-streams gauge this exchange counts in while it streams.
        self.stream: Value | None = None

    def __enter__(self) -> None:
        self._started = time.perf_counter()
        headers = self._req.headers
        fields = {"request_id": _request_id(headers)}
        sid = headers.get("mcp-session-id")
        if sid:
            fields["session"] = logs.hash_id(sid)
        self._tokens = (_current.set(self), logs.fields_var.set(fields),
                        drain_var.set(self.observer.drain))
        if self.observer.tracing is not None:
            self._span_parent = self.observer.tracing.remote_parent(headers)
            self._span_parent.__enter__()
        if self.transport == "websocket":
            self.stream = OPEN_STREAMS.labels(self.era or "session", "websocket")
            self.stream.inc()

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.transport == "http" and self._req.status:
                METRICS.observe_http(self._req.status)
            if self.observer.access_log and self.transport == "http":
                _log_access(self._req, self, time.perf_counter() - self._started)
        finally:
            if self.stream is not None:
                self.stream.dec()
            if self._span_parent is not None:
                self._span_parent.__exit__(None, None, None)
            current, fields, drain = self._tokens
            drain_var.reset(drain)
            logs.fields_var.reset(fields)
            _current.reset(current)


_current: ContextVar[_Exchange | None] = ContextVar("scalemcp_exchange", default=None)


class Observer:
    """Logs, traces and drain for one server (an :class:`~scalemcp.transport.asgi.ASGIApp`)."""

    def __init__(self, config: Config) -> None:
        self.access_log = config.ops.access_log
        self.tracing = tracing_for(config)
        self.drain = Drain(config.server.drain_timeout_s)
        self._eras = {config.server.sse_path: "legacy", config.server.messages_path: "legacy"}
        self._endpoint = config.server.path
        spec = metrics_dir.joined()
        self.node_metrics = None if spec is None else metrics_dir.NodeMetrics(
            METRICS, spec, config.ops.metrics_flush_interval_s)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Share this worker's metrics with its siblings (under ``scalemcp serve``)."""
        if self.node_metrics is None:
            task_status.started()
            return
        await self.node_metrics.serve(task_status=task_status)

    async def metrics(self) -> bytes:
        """The ``/metrics`` body: the node's figures, or this process's outside ``serve``."""
        if self.node_metrics is None:
            return METRICS.render()
        return await self.node_metrics.render()

    def exchange(self, req: HttpExchange, transport: str = "http") -> AbstractContextManager[None]:
        """Serve ``req`` (an HTTP request, or a WebSocket with ``transport="websocket"``)."""
        era = self._eras.get(req.path)
        if era is None and req.path == self._endpoint and req.method != "POST":
            era = "session"  # GET stream, DELETE, WebSocket; POSTs say with note()
        return _Exchange(self, req, era, transport)

    def websocket(self, scope: Mapping[str, Any]) -> AbstractContextManager[None]:
        """Serve one WebSocket connection (no access-log line)."""
        return self.exchange(_Handshake(scope), transport="websocket")


class _Handshake:
    __slots__ = ("headers", "method", "path", "status")

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.method = "GET"
        self.path: str = scope["path"]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in scope.get("headers", ())}
        self.status = 101


def stream_opened() -> None:
    """Count the current exchange in ``scalemcp_open_streams`` until it ends (SSE)."""
    current = _current.get()
    if current is not None and current.stream is None:
        current.stream = OPEN_STREAMS.labels(current.era or "session", "sse")
        current.stream.inc()


def note(era: str, message: object) -> None:
    """Tell the access log this POST's era and MCP method (``batch`` for a batch)."""
    current = _current.get()
    if current is None:
        return
    current.era = era
    method = "batch" if isinstance(message, list) else getattr(message, "method", None)
    current.mcp_method = method if isinstance(method, str) else None


class CallObservation:
    """The context of one MCP request (see :func:`observe_call`)."""

    __slots__ = ("_call", "_inflight", "_span", "_span_cm", "_token")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._span: Span | None = None
        self._span_cm: AbstractContextManager[Span] | None = None
        self._inflight = INFLIGHT_REQUESTS.labels("modern" if call.modern else "session")

    def __enter__(self) -> CallObservation:
        call = self._call
        self._inflight.inc()
        fields = {**(logs.fields_var.get() or {}), "mcp_method": call.method,
                  "jsonrpc_id": call.request_id}
        if call.session_id and "session" not in fields:  # else hashed from the header
            fields["session"] = logs.hash_id(call.session_id)
        self._token = logs.fields_var.set(fields)
        current = _current.get()
        if current is not None and current.observer.tracing is not None:
            self._span_cm = current.observer.tracing.call_span(call, current.transport)
            self._span = self._span_cm.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._span_cm is not None:
                self._span_cm.__exit__(*exc_info)
        finally:
            self._inflight.dec()
            logs.fields_var.reset(self._token)

    def done(self, error: ProtocolError | None) -> None:
        """Record the outcome (a JSON-RPC error, or None for a result)."""
        if error is not None and self._span is not None:
            Tracing.record_error(self._span, error)


def observe_call(call: Call) -> CallObservation:
    """Log fields for one MCP request and, with tracing on, its span (a context manager)."""
    return CallObservation(call)


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return secrets.token_hex(8)


def _log_access(req: HttpExchange, current: _Exchange, seconds: float) -> None:
    fields: dict[str, Any] = {"http_method": req.method, "path": req.path,
                              "status": req.status, "duration_s": round(seconds, 6)}
    if current.era:
        fields["era"] = current.era
    if current.mcp_method:
        fields["mcp_method"] = current.mcp_method
    access_log.info("%s %s %d %.1f ms", req.method, req.path, req.status, seconds * 1000,
                    extra={"fields": fields})

