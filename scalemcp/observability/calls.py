"""One MCP request's observation: its log fields and, with tracing on, its server span.

The engine wraps each request in :func:`observe_call`. What it needs of the HTTP exchange
the request arrived in (the server's tracing, the transport's name) is in
:data:`exchange_var`, which the server sets around each exchange (``transport.observe``);
session-era handlers run in tasks started from the request's task, so they inherit it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from . import logs
from .metrics import INFLIGHT_REQUESTS
from .tracing import TracedCall, TracedError, Tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from prometheus_client import Gauge

__all__ = ["CallObservation", "Exchange", "ObservedCall", "exchange_var", "observe_call"]


class Exchange(Protocol):
    """What a call needs of the exchange it arrived in."""

    @property
    def tracing(self) -> Tracing | None: ...
    @property
    def transport(self) -> str: ...


class ObservedCall(TracedCall, Protocol):
    """What this module needs of one MCP request (the engine's ``Call``)."""

    @property
    def modern(self) -> bool: ...


#: The current HTTP exchange (or WebSocket), set by the server around everything it does.
exchange_var: ContextVar[Exchange | None] = ContextVar("scalemcp_exchange", default=None)


_inflight: dict[bool, Gauge] = {}


class CallObservation:
    """The context of one MCP request (see :func:`observe_call`)."""

    __slots__ = ("_call", "_inflight", "_span", "_span_cm", "_token")

    def __init__(self, call: ObservedCall) -> None:
        self._call = call
        self._span: Span | None = None
        self._span_cm: AbstractContextManager[Span] | None = None
        inflight = _inflight.get(call.modern)
        if inflight is None:  # (children kept: labels() costs more than the rest here)
            inflight = _inflight[call.modern] = INFLIGHT_REQUESTS.labels(
                "modern" if call.modern else "session")
        self._inflight = inflight

    def __enter__(self) -> CallObservation:
        call = self._call
        self._inflight.inc()
        fields = {**(logs.fields_var.get() or {}), "mcp_method": call.method,
                  "jsonrpc_id": call.request_id}
        if call.session_id and "session" not in fields:  # else hashed from the header
            fields["session"] = logs.hash_id(call.session_id)
        self._token = logs.fields_var.set(fields)
        current = exchange_var.get()
        if current is not None and current.tracing is not None:
            self._span_cm = current.tracing.call_span(call, current.transport)
            self._span = self._span_cm.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._span_cm is not None:
                self._span_cm.__exit__(*exc_info)
        finally:
            self._inflight.dec()
            logs.fields_var.reset(self._token)

    def done(self, error: TracedError | None) -> None:
        """Record the outcome (a JSON-RPC error, or None for a result)."""
        if error is not None and self._span is not None:
            Tracing.record_error(self._span, error)


def observe_call(call: ObservedCall) -> CallObservation:
    """Log fields for one MCP request and, with tracing on, its span (a context manager)."""
    return CallObservation(call)
