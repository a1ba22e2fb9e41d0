"""The two hooks the server calls: one per HTTP exchange (or WebSocket), one per MCP request.

:meth:`Observer.exchange` wraps everything the ASGI app does for one connection-level
request: it binds the log fields (request id, hashed session id), continues the caller's
trace context, makes the server's :class:`~.drain.Drain` the one streams watch, counts the
exchange in ``scalemcp_open_streams`` while it streams (:func:`stream_opened`), and at the
end writes the access-log line. The engine's per-request hook, log fields and a span for
each MCP request, is :func:`scalemcp.observability.calls.observe_call`; it finds the
exchange here through :data:`~scalemcp.observability.calls.exchange_var`.

:meth:`Observer.serve` runs for the server's lifetime: under ``scalemcp serve`` it shares
this worker's metrics with its siblings, and :meth:`Observer.metrics` answers ``/metrics``
for the whole node (see :mod:`scalemcp.observability.metrics_dir`).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, cast

import trio
from prometheus_client import Gauge

from ..observability import logs, metrics, metrics_dir
from ..observability.calls import exchange_var
from ..observability.logs import redact_url
from ..observability.metrics import OPEN_STREAMS
from ..observability.tracing import Tracing, tracing_for
from .drain import Drain

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["HttpExchange", "Observer", "label_exchange", "log_worker_started", "stream_opened"]

access_log = logging.getLogger("scalemcp.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class HttpExchange(Protocol):
    method: str
    path: str
    status: int

    @property
    def headers(self) -> Mapping[str, str]: ...


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
        self.stream: Gauge | None = None

    def __enter__(self) -> None:
        self._started = time.perf_counter()
        headers = self._req.headers
        fields = {"request_id": _request_id(headers)}
        sid = headers.get("mcp-session-id")
        if sid:
            fields["session"] = _hashed_session(sid)
        self._tokens = (exchange_var.set(self), logs.fields_var.set(fields))
        if self.observer.tracing is not None:
            self._span_parent = self.observer.tracing.remote_parent(headers)
            self._span_parent.__enter__()
        if self.transport == "websocket":
            self.stream = OPEN_STREAMS.labels(self.era or "session", "websocket")
            self.stream.inc()

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.transport == "http" and self._req.status:
                metrics.observe_http(self._req.status)
            if self.observer.access_log and self.transport == "http":
                _log_access(self._req, self, time.perf_counter() - self._started)
        finally:
            if self.stream is not None:
                self.stream.dec()
            if self._span_parent is not None:
                self._span_parent.__exit__(None, None, None)
            current, fields = self._tokens
            logs.fields_var.reset(fields)
            exchange_var.reset(current)

    @property
    def tracing(self) -> Tracing | None:
        return self.observer.tracing


def _current() -> _Exchange | None:
    return cast("_Exchange | None", exchange_var.get())


class Observer:
    """Logs, traces and drain for one server (an :class:`~scalemcp.transport.asgi.ASGIApp`)."""

    def __init__(self, config: Config) -> None:
        self.access_log = config.ops.access_log
        self.tracing = tracing_for(config.ops.otel_enabled)
        self.drain = Drain(config.server.drain_timeout_s)
        self._eras = {config.server.sse_path: "legacy", config.server.messages_path: "legacy"}
        self._endpoint = config.server.path
        spec = metrics_dir.joined()
        self.node_metrics = None if spec is None else metrics_dir.NodeMetrics(
            metrics.REGISTRY, metrics.refresh, spec, config.ops.metrics_flush_interval_s)

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
            return metrics.render()
        return await self.node_metrics.render()

    def exchange(self, req: HttpExchange, transport: str = "http") -> AbstractContextManager[None]:
        """Serve ``req`` (an HTTP request, or a WebSocket with ``transport="websocket"``)."""
        era = self._eras.get(req.path)
        if era is None and req.path == self._endpoint and req.method != "POST":
            era = "session"  # GET stream, DELETE, WebSocket; POSTs say with label_exchange()
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
    current = _current()
    if current is not None and current.stream is None:
        current.stream = OPEN_STREAMS.labels(current.era or "session", "sse")
        current.stream.inc()


def label_exchange(era: str, message: object) -> None:
    """Tell the access log this POST's era and MCP method (``batch`` for a batch)."""
    current = _current()
    if current is None:
        return
    current.era = era
    method = "batch" if isinstance(message, list) else getattr(message, "method", None)
    current.mcp_method = method if isinstance(method, str) else None


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    # Unique, not secret: this process's random prefix and a counter (no urandom call).
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFF:08x}"


_ID_PREFIX = secrets.token_hex(4)
_ids = itertools.count(1)
#: Session ids hashed for the logs, kept: a session's requests hash it once.
_hashes: dict[str, str] = {}


def _hashed_session(sid: str) -> str:
    hashed = _hashes.get(sid)
    if hashed is None:
        if len(_hashes) >= 4096:
            _hashes.clear()
        hashed = _hashes[sid] = logs.hash_id(sid)
    return hashed


def _log_access(req: HttpExchange, current: _Exchange, seconds: float) -> None:
    fields: dict[str, Any] = {"http_method": req.method, "path": req.path,
                              "status": req.status, "duration_s": round(seconds, 6)}
    if current.era:
        fields["era"] = current.era
    if current.mcp_method:
        fields["mcp_method"] = current.mcp_method
    access_log.info("%s %s %d %.1f ms", req.method, req.path, req.status, seconds * 1000,
                    extra={"fields": fields})


def log_worker_started(config: Config, backend: str, tracing: bool) -> None:
    """The line each worker writes once it serves (the Redis URL without its password)."""
    where = f" at {redact_url(config.redis.url)}" if config.redis.url else ""
    logging.getLogger("scalemcp.server").info(
        "worker %d ready: %s backend%s; drain %.1f s; tracing %s", os.getpid(), backend,
        where, config.server.drain_timeout_s, "on" if tracing else "off")
