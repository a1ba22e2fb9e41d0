"""Optional OpenTelemetry tracing (the ``otel`` extra): one server span per MCP request.

Off unless ``otel_enabled`` (the caller's setting) is set or the standard environment asks for it
(``OTEL_TRACES_EXPORTER`` other than ``none``, or an ``OTEL_EXPORTER_OTLP_*ENDPOINT``);
``OTEL_SDK_DISABLED=true`` wins. While off, nothing here imports OpenTelemetry and the
request path pays one context-variable read per MCP request.

Spans follow the OpenTelemetry MCP semantic conventions: name ``{mcp.method.name}
{target}`` (``tools/call add``), kind SERVER, attributes ``mcp.method.name``,
``mcp.protocol.version``, ``mcp.session.id`` (hashed: a session id works like a
credential), ``jsonrpc.request.id``, ``gen_ai.tool.name`` / ``gen_ai.prompt.name`` /
``mcp.resource.uri``, and ``error.type`` + ``rpc.response.status_code`` for JSON-RPC errors.
The parent is the W3C trace context in the request's ``params._meta`` (``traceparent``,
``tracestate``, ``baggage``), else the HTTP request's ``traceparent`` header (or the span
of an OpenTelemetry ASGI middleware around the app); with both, the HTTP one is a link.

Client messages routed between workers through Redis (a client's response to an
elicitation, sampling or roots request, a cancellation; see ``state.redis_router``) carry
the W3C ``traceparent`` of a PRODUCER span ``route <kind>`` made where the message arrived;
the worker running the request makes a CONSUMER span ``receive <kind>`` under it, linked to
the waiting request's span, which links back. The producer's parent is the MCP context: a
``traceparent`` in the response's ``result._meta`` (a cancellation's ``params._meta``), else
the waiting request's own span (its worker records it with the mailbox), else the HTTP
request's; the HTTP one is then a link.
So the request, the answer's arrival on another node and its hand-over form one trace even
when the client propagates nothing.

If no tracer provider is configured yet (by the app, ``opentelemetry-instrument`` or a
test), one is installed from the environment: ``OTEL_SERVICE_NAME`` (default
``scalemcp``), ``OTEL_TRACES_EXPORTER`` = ``otlp`` (default; HTTP/protobuf, or gRPC with
``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``), ``console`` or ``none``.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from msgspec import UNSET

from . import logs

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["RouteTracing", "TracedCall", "TracedError", "Tracing", "current_ids", "routing",
           "tracing_enabled", "tracing_for"]

log = logging.getLogger("scalemcp.server")
_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROPAGATION_KEYS = ("traceparent", "tracestate", "baggage")


class _Carrier(msgspec.Struct):
    traceparent: str | None = None
    tracestate: str | None = None
    baggage: str | None = None


class _Params(msgspec.Struct):
    """What a span needs from a request's params; everything else is skipped unparsed."""

    meta: _Carrier | None = msgspec.field(default=None, name="_meta")
    name: str | None = None
    uri: str | None = None


_params_decoder = msgspec.json.Decoder(_Params)


class _Result(msgspec.Struct):
    meta: _Carrier | None = msgspec.field(default=None, name="_meta")


class _Response(msgspec.Struct):
    """What a routed span needs from a client's JSON-RPC response: ``result._meta``."""

    result: _Result | None = None


_response_decoder = msgspec.json.Decoder(_Response)


class TracedCall(Protocol):
    """What a span needs of one MCP request (the engine's ``Call``)."""

    @property
    def method(self) -> str: ...
    @property
    def protocol_version(self) -> str: ...
    @property
    def request_id(self) -> int | str: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def params(self) -> Any: ...


class TracedError(Protocol):
    """What a span records of a JSON-RPC error (``scalemcp.errors.ProtocolError``)."""

    @property
    def code(self) -> int: ...
    @property
    def message(self) -> str: ...


def tracing_enabled(otel_enabled: bool, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if otel_enabled:
        return True
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return exporters.strip().lower() not in ("", "none")
    return any(env.get(name) for name in _OTLP_ENDPOINTS)


def tracing_for(otel_enabled: bool) -> Tracing | None:
    """The server's tracing, or None while tracing is off (then nothing is imported)."""
    if not tracing_enabled(otel_enabled):
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning("tracing is on but OpenTelemetry is not installed: "
                    "pip install 'scalemcp[otel]'; serving without traces")
        return None
    _install_provider()
    from .._version import __version__

    logs.trace_ids = current_ids
    tracer = trace.get_tracer("scalemcp", __version__)
    global routing
    routing = RouteTracing(tracer)
    return Tracing(tracer)


def current_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id) in hex, if there is one (for log lines)."""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


class Tracing:
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def remote_parent(self, headers: Mapping[str, str]) -> Iterator[None]:
        """Continue the HTTP request's ``traceparent`` unless a span is already current."""
        from opentelemetry import context, propagate, trace

        if trace.get_current_span().get_span_context().is_valid or "traceparent" not in headers:
            yield
            return
        token = context.attach(propagate.extract(headers))
        try:
            yield
        finally:
            context.detach(token)

    @contextmanager
    def call_span(self, call: TracedCall, transport: str) -> Iterator[Span]:
        """The server span of one MCP request, current for the duration of the block."""
        from opentelemetry import propagate, trace

        params = _facts(call.params)
        parent = None
        links = []
        carrier = params.meta
        if carrier is not None and carrier.traceparent:
            values = {key: getattr(carrier, key) for key in _PROPAGATION_KEYS}
            parent = propagate.extract({k: v for k, v in values.items() if v})
            ambient = trace.get_current_span().get_span_context()
            if not trace.get_current_span(parent).get_span_context().is_valid:
                parent = None  # a malformed traceparent: keep the ambient parent
            elif ambient.is_valid:
                links.append(trace.Link(ambient))
        target = params.name if call.method in ("tools/call", "prompts/get") else None
        with self.tracer.start_as_current_span(
            f"{call.method} {target}" if target else call.method,
            context=parent, kind=trace.SpanKind.SERVER, links=links,
            attributes=_attributes(call, params, transport),
        ) as span:
            yield span

    @staticmethod
    def record_error(span: Span, error: TracedError) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", str(error.code))
        span.set_attribute("rpc.response.status_code", str(error.code))
        span.set_status(Status(StatusCode.ERROR, error.message))


def _facts(params: Any) -> _Params:
    """What a span needs from a request's params, as classification decoded them."""
    meta = getattr(params, "meta", None)
    carrier = None
    if meta is not None and meta is not UNSET:
        values = {key: getattr(meta, key, None) for key in _PROPAGATION_KEYS}
        carrier = _Carrier(**{k: v for k, v in values.items() if isinstance(v, str)})
    name, uri = getattr(params, "name", None), getattr(params, "uri", None)
    return _Params(meta=carrier, name=name if isinstance(name, str) else None,
                   uri=uri if isinstance(uri, str) else None)


def _decode(params: Any) -> _Params:
    if params is UNSET:
        return _Params()
    try:
        return _params_decoder.decode(params)
    except msgspec.MsgspecError:
        return _Params()  # a bad request: the engine answers it with an error


def _attributes(call: TracedCall, params: _Params, transport: str) -> dict[str, str]:
    attributes = {
        "mcp.method.name": call.method,
        "mcp.protocol.version": call.protocol_version,
        "jsonrpc.request.id": str(call.request_id),
        "network.transport": "tcp",
        "network.protocol.name": transport,
    }
    if call.session_id:
        attributes["mcp.session.id"] = logs.hash_id(call.session_id)
    if call.method == "tools/call" and params.name:
        attributes["gen_ai.tool.name"] = params.name
        attributes["gen_ai.operation.name"] = "execute_tool"
    elif call.method == "prompts/get" and params.name:
        attributes["gen_ai.prompt.name"] = params.name
    elif call.method == "resources/read" and params.uri:
        attributes["mcp.resource.uri"] = params.uri
    return attributes


def _install_provider() -> None:
    """A tracer provider from the environment, unless one is configured already."""
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    try:
        sdk = importlib.import_module("opentelemetry.sdk.trace")
        export = importlib.import_module("opentelemetry.sdk.trace.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
    except ImportError:
        log.warning("tracing is on but opentelemetry-sdk is not installed and no tracer "
                    "provider is configured: spans are dropped (pip install 'scalemcp[otel]')")
        return
    resource = resources.Resource.create({})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(resources.Resource({"service.name": "scalemcp"}))
    provider = sdk.TracerProvider(resource=resource)
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        exporter = _exporter(name.strip().lower(), export)
        if exporter is not None:
            provider.add_span_processor(export.BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporter(name: str, export: Any) -> Any:
    if name in ("", "none"):
        return None
    if name == "console":
        return export.ConsoleSpanExporter()
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console, none)", name)
        return None
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    kind = "grpc" if protocol == "grpc" else "http"
    package = f"opentelemetry-exporter-otlp-proto-{kind}"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
    except ImportError:
        log.warning("OTLP trace export needs %s (pip install %s): spans are dropped",
                    package, package)
        return None
    return module.OTLPSpanExporter()


class RouteTracing:
    """Spans and W3C context for client messages that Redis routes between workers.

    Only reached while tracing is on (the state layer checks :data:`routing`). Context
    travels as a ``traceparent`` in bytes: the routed entry's field, the mailbox record.
    """

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.tracer = tracer
        self._w3c = TraceContextTextMapPropagator()

    def current(self) -> bytes:
        """The current span's ``traceparent`` (b"" without a valid span)."""
        carrier: dict[str, str] = {}
        self._w3c.inject(carrier)
        return carrier.get("traceparent", "").encode()

    def waiting_span(self) -> Span | None:
        """The span of the request that opens a mailbox (it waits for the answer)."""
        from opentelemetry import trace

        span = trace.get_current_span()
        return span if span.is_recording() else None

    @contextmanager
    def send(self, kind: str, payload: bytes, owner: bytes, destination: str
             ) -> Iterator[bytes]:
        """A PRODUCER span around routing one message; yields the traceparent to carry.

        ``owner`` is the traceparent the waiting request recorded (b"" if none).
        """
        from opentelemetry import trace

        ambient = trace.get_current_span().get_span_context()
        parent = self._context(_routed_meta(kind, payload))
        if parent is None:
            parent = self._context(owner)
        links = [trace.Link(ambient)] if parent is not None and ambient.is_valid else []
        with self.tracer.start_as_current_span(
            f"route {kind}", context=parent, kind=trace.SpanKind.PRODUCER, links=links,
            attributes=_route_attributes(kind, destination, "send"),
        ):
            yield self.current()

    def received(self, kind: str, traceparent: bytes, waiting: Span | None,
                 destination: str) -> None:
        """A CONSUMER span for a routed message handed to a request running here."""
        from opentelemetry import trace

        parent = self._context(traceparent)
        if parent is None:
            return
        sent = trace.get_current_span(parent).get_span_context()
        links = [] if waiting is None else [trace.Link(waiting.get_span_context())]
        self.tracer.start_span(
            f"receive {kind}", context=parent, kind=trace.SpanKind.CONSUMER, links=links,
            attributes=_route_attributes(kind, destination, "process"),
        ).end()
        if waiting is not None:
            waiting.add_link(sent, {"mcp.route.kind": kind})

    def _context(self, traceparent: bytes | str | None) -> Any:
        """A context whose span is the remote ``traceparent``; None if absent or malformed."""
        from opentelemetry import trace

        if not traceparent:
            return None
        value = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
        context = self._w3c.extract({"traceparent": value})
        return context if trace.get_current_span(context).get_span_context().is_valid else None


#: Set while tracing is on: what ``state.redis_router`` calls (None: tracing is off).
routing: RouteTracing | None = None


def _routed_meta(kind: str, payload: bytes) -> str | None:
    """The ``traceparent`` in a routed response's ``result._meta`` or a cancellation's
    ``params._meta``."""
    if kind != "response":
        meta = _decode(payload).meta if payload else None
        return None if meta is None else meta.traceparent
    try:
        result = _response_decoder.decode(payload).result
    except msgspec.MsgspecError:
        return None
    return None if result is None or result.meta is None else result.meta.traceparent


def _route_attributes(kind: str, destination: str, operation: str) -> dict[str, str]:
    return {"messaging.system": "redis", "messaging.operation.type": operation,
            "messaging.destination.name": destination, "mcp.route.kind": kind}
