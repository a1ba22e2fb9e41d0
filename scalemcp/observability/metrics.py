"""Prometheus metrics: a small registry per process, merged per node at scrape time.

No client library: counters, gauges and histograms in dicts, rendered on scrape. Names
follow Prometheus conventions (``scalemcp_`` prefix, base units, ``_total`` on
counters); labels never carry session, user or trace ids. Every series is listed in
``docs/operations.md``.

Register a family once, at import, and keep its children (one per label set) where the
hot path can reach them without a lookup::

    RATE_LIMITED = METRICS.counter("scalemcp_rate_limited_total", "Requests refused", ("scope",))
    RATE_LIMITED.labels("principal").inc()

Under ``scalemcp serve`` each worker process keeps its own registry and writes it to a
per-server directory; ``/metrics`` on any worker answers for the whole node (see
:mod:`.metrics_dir`). In-process (``scalemcp.testing``) the registry is the answer.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from .exposition import Family, Kind, Merge, Series, Snapshot, render

__all__ = [
    "INFLIGHT_REQUESTS",
    "METRICS",
    "OPEN_STREAMS",
    "RATE_LIMITED",
    "REDIS_ERRORS",
    "REDIS_ROUND_TRIP",
    "ROUTED_RECEIVED",
    "ROUTED_SENT",
    "SESSIONS_CREATED",
    "SSE_REPLAYED_EVENTS",
    "SSE_RESUMES",
    "Counter",
    "Gauge",
    "Histogram",
    "Metrics",
    "Value",
]

REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0)
REDIS_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 1.0, 5.0)
C = TypeVar("C")
F = TypeVar("F", bound="_Family[Any]")


class _Family(Generic[C]):
    kind: ClassVar[Kind] = "counter"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = labelnames
        self.children: dict[tuple[str, ...], C] = {}

    def labels(self, *values: str) -> C:
        """The series of these label values (made on first use; keep it if it is hot)."""
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
            child = self.children[values] = self._child()
        return child

    def _child(self) -> C:
        raise NotImplementedError

    def _series(self) -> list[Series]:
        raise NotImplementedError

    def collect(self) -> Family:
        return Family(self.kind, self.help, list(self.labelnames), self._series())


class Value:
    """One series of a counter or gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class Counter(_Family[Value]):
    kind: ClassVar[Kind] = "counter"

    def _child(self) -> Value:
        return Value()

    def inc(self, amount: float = 1.0) -> None:
        """Add to the series without labels."""
        self.labels().inc(amount)

    def _series(self) -> list[Series]:
        return [Series(list(k), c.value) for k, c in sorted(self.children.items())]


class Gauge(_Family[Value]):
    kind: ClassVar[Kind] = "gauge"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...],
                 read: Callable[[], float] | None, merge: Merge) -> None:
        super().__init__(name, help_text, labelnames)
        #: Called at scrape time instead of keeping a value (a gauge without labels).
        self.read = read
        self.merge = merge

    def _child(self) -> Value:
        return Value()

    def _series(self) -> list[Series]:
        if self.read is not None:
            return [Series([], float(self.read()))]
        return [Series(list(k), c.value) for k, c in sorted(self.children.items())]

    def collect(self) -> Family:
        family = super().collect()
        family.merge = self.merge
        return family


class _Timer:
    __slots__ = ("_child", "_started")

    def __init__(self, child: _Buckets) -> None:
        self._child = child

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self._child.observe(time.perf_counter() - self._started)

    async def __aenter__(self) -> None:  # first in an ``async with`` of several
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


class _Buckets:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def time(self) -> _Timer:
        """``with child.time(): ...`` observes how long the block took."""
        return _Timer(self)


class Histogram(_Family[_Buckets]):
    kind: ClassVar[Kind] = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...],
                 buckets: tuple[float, ...]) -> None:
        super().__init__(name, help_text, labelnames)
        self.bounds = tuple(sorted(buckets))

    def _child(self) -> _Buckets:
        return _Buckets(self.bounds)

    def _series(self) -> list[Series]:
        return [Series(list(k), c.sum, list(c.counts)) for k, c in sorted(self.children.items())]

    def collect(self) -> Family:
        family = super().collect()
        family.bounds = list(self.bounds)
        return family


class Metrics:
    """A registry: the families of one process, in registration order."""

    def __init__(self) -> None:
        self.families: dict[str, _Family[Any]] = {}
        #: Gauges read at scrape time, by name (kept for callers of the first API).
        self.gauges: dict[str, Callable[[], float]] = {}

    def counter(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Counter:
        return self._register(Counter(name, help_text, labelnames))

    def gauge(self, name: str, help_text: str, labelnames: tuple[str, ...] = (), *,
              read: Callable[[], float] | None = None, merge: Merge = "sum") -> Gauge:
        """A gauge: set through ``labels(...)``, or read at scrape time from ``read``.

        ``merge`` says how a node adds up its workers' values (see :mod:`.exposition`).
        Registering a name again returns the same gauge, with ``read`` replaced if given.
        """
        gauge = self._register(Gauge(name, help_text, labelnames, read, merge))
        if read is not None:
            gauge.read = read
        return gauge

    def histogram(self, name: str, help_text: str, labelnames: tuple[str, ...] = (), *,
                  buckets: tuple[float, ...] = REQUEST_BUCKETS_S) -> Histogram:
        return self._register(Histogram(name, help_text, labelnames, buckets))

    def _register(self, family: F) -> F:
        existing = self.families.get(family.name)
        if existing is None:
            self.families[family.name] = family
            return family
        if type(existing) is not type(family) or existing.labelnames != family.labelnames:
            raise ValueError(f"{family.name} is registered already, differently")
        return existing

    # -- the first API, kept: what the engine and the ASGI app call -----------------

    def observe_request(self, era: str, method: str, outcome: str, seconds: float) -> None:
        REQUESTS.labels(era, method, outcome).inc()
        DURATIONS.labels(era, method).observe(seconds)

    def observe_http(self, status: int) -> None:
        HTTP_RESPONSES.labels(str(status)).inc()

    # -- collection --------------------------------------------------------------------

    def snapshot(self, worker: str = "", slot: str = "") -> Snapshot:
        families = {name: family.collect() for name, family in self.families.items()}
        for name, read in self.gauges.items():
            if name not in families:
                families[name] = Family("gauge", name, series=[Series([], float(read()))])
        return Snapshot(worker=worker, slot=slot, taken_at=time.time(), families=families)

    def render(self) -> bytes:
        """This process's figures in the Prometheus text format."""
        return render(self.snapshot().families)


#: The process-wide registry (one per worker process).
METRICS = Metrics()

REQUESTS = METRICS.counter(
    "scalemcp_requests_total", "MCP requests answered, by era, method and outcome",
    ("era", "method", "outcome"))
DURATIONS = METRICS.histogram(
    "scalemcp_request_duration_seconds", "Time to answer an MCP request", ("era", "method"))
HTTP_RESPONSES = METRICS.counter(
    "scalemcp_http_responses_total", "HTTP responses by status", ("status",))
SESSIONS_CREATED = METRICS.counter(
    "scalemcp_sessions_created_total", "Sessions created, by negotiated protocol version",
    ("protocol_version",))
INFLIGHT_REQUESTS = METRICS.gauge(
    "scalemcp_inflight_requests", "MCP requests being answered now, by era", ("era",))
OPEN_STREAMS = METRICS.gauge(
    "scalemcp_open_streams", "SSE responses and WebSockets being served now",
    ("era", "transport"))
SSE_RESUMES = METRICS.counter(
    "scalemcp_sse_resumes_total", "SSE streams resumed with Last-Event-ID, by stream kind",
    ("stream",))
SSE_REPLAYED_EVENTS = METRICS.counter(
    "scalemcp_sse_replayed_events_total",
    "Events sent again from the backend to clients resuming a stream", ("stream",))
ROUTED_SENT = METRICS.counter(
    "scalemcp_routed_messages_sent_total",
    "Client messages sent through Redis to the worker running their request, by kind",
    ("kind",))
ROUTED_RECEIVED = METRICS.counter(
    "scalemcp_routed_messages_received_total",
    "Client messages received through Redis and handed to a request running here, by kind",
    ("kind",))
REDIS_ROUND_TRIP = METRICS.histogram(
    "scalemcp_redis_round_trip_seconds",
    "Time from issuing a Redis command, script or pipeline to its reply, by operation",
    ("operation",), buckets=REDIS_BUCKETS_S)
REDIS_ERRORS = METRICS.counter(
    "scalemcp_redis_errors_total", "Redis operations that failed, by kind of failure",
    ("kind",))
RATE_LIMITED = METRICS.counter(
    "scalemcp_rate_limited_total",
    "Requests refused by a limit: principal, tool (rate limits), inflight_session, "
    "inflight_principal", ("limit",))
