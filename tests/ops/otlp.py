"""An OTLP/HTTP trace collector inside the test: Hypercorn on port 0, spans kept in memory.

Servers under test export to it with the standard exporter
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<url>``, protobuf over HTTP); a test waits for the
spans it expects, woken by each export (no polling).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.stub_server import serving


@dataclass(frozen=True)
class Exported:
    service: str
    span: Span

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def links(self) -> list[str]:
        return [link.span_id.hex() for link in self.span.links]


class Collector:
    def __init__(self) -> None:
        self.spans: list[Exported] = []
        self.url = ""
        self._news = trio.Event()

    async def __call__(self, scope: dict[str, Any], body: bytes, send: Any) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value
                          for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans += [Exported(attributes.get("service.name", ""), span)
                               for span in scope_spans.spans]
        self._news.set()
        self._news = trio.Event()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-protobuf")]})
        await send({"type": "http.response.body",
                    "body": ExportTraceServiceResponse().SerializeToString()})

    async def wait_for(self, done: Callable[[list[Exported]], bool]) -> list[Exported]:
        """The spans, once ``done(spans)`` holds (the caller bounds the wait)."""
        while not done(self.spans):
            await self._news.wait()
        return self.spans

    def named(self, name: str) -> Exported:
        found = [s for s in self.spans if s.span.name == name]
        assert len(found) == 1, [(s.service, s.span.name) for s in self.spans]
        return found[0]


@asynccontextmanager
async def open_collector() -> AsyncIterator[Collector]:
    collector = Collector()
    async with serving(collector) as base:
        collector.url = base + "/v1/traces"
        yield collector
