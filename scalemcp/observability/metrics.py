"""Prometheus metrics, on the official client library (``prometheus_client``).

Every series is registered here, once, in :data:`REGISTRY` (scalemcp's own registry, not
the client's global one) and listed in ``docs/operations.md``. Names follow Prometheus
conventions (``scalemcp_`` prefix, base units, ``_total`` on counters); labels never carry
session, user or trace ids. A hot path keeps the children it uses (one per label set)
rather than calling ``labels()`` per request::

    RATE_LIMITED.labels("principal").inc()              # fine off the hot path
    _LIMITED = {kind: RATE_LIMITED.labels(kind) for kind in KINDS}   # on it

Why this library: it is the one operators and reviewers know, and its multiprocess mode
shares values between the workers of a node as they change. Its cost was measured against
the hand-written registry it replaced and OpenTelemetry's SDK (``bench/metrics_cost.py``,
table in ``docs/operations.md``): about 7 us of CPU per request more than the hand-written
registry (12 us with Redis), 1.5-1.7 % of a request's CPU; OpenTelemetry's SDK would add
about 42-60 us (8.5 %) and has no way to merge the workers of a node.

Under ``scalemcp serve`` each worker's values live in a per-server directory and
``/metrics`` on any worker answers for the whole node (:mod:`.metrics_dir`). In-process
(``scalemcp.testing``, an app mounted in another ASGI server) :func:`render` is the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from . import metrics_dir

__all__ = [
    "CLIENT_GONE",
    "CONNECTIONS",
    "CONNECTIONS_REFUSED",
    "CONNECTIONS_TIMED_OUT",
    "DURATIONS",
    "EVENT_LOOP_LAG",
    "HTTP_RESPONSES",
    "INFLIGHT_REQUESTS",
    "OPEN_STREAMS",
    "RATE_LIMITED",
    "REDIS_ERRORS",
    "REDIS_ROUND_TRIP",
    "REDIS_WRITE_RETRIES",
    "REGISTRY",
    "REQUESTS",
    "ROUTED_RECEIVED",
    "ROUTED_SENT",
    "SESSIONS",
    "SESSIONS_CREATED",
    "SHED",
    "SHED_H2",
    "SHED_LIMIT",
    "SLOW_CONSUMERS",
    "SSE_REPLAYED_EVENTS",
    "SSE_RESUMES",
    "STREAMS",
    "Timer",
    "observe_http",
    "observe_request",
    "read_at_scrape",
    "refresh",
    "render",
    "timed",
]

REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0)
REDIS_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 1.0, 5.0)

metrics_dir.share_values()  # before any series: under ``scalemcp serve``, values are shared

#: Every scalemcp series (the client's default registry is left to the app).
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "scalemcp_requests_total", "MCP requests answered, by era, method and outcome",
    ("era", "method", "outcome"), registry=REGISTRY)
DURATIONS = Histogram(
    "scalemcp_request_duration_seconds", "Time to answer an MCP request", ("era", "method"),
    buckets=REQUEST_BUCKETS_S, registry=REGISTRY)
HTTP_RESPONSES = Counter(
    "scalemcp_http_responses_total", "HTTP responses by status", ("status",), registry=REGISTRY)
SESSIONS = Gauge(
    "scalemcp_sessions", "Live sessions (Redis: the fleet's, as last seen)",
    registry=REGISTRY, multiprocess_mode="livemax")  # every worker sees the same figure
STREAMS = Gauge(
    "scalemcp_streams", "Streams this worker keeps state for (Redis: follows)",
    registry=REGISTRY, multiprocess_mode="livesum")
SESSIONS_CREATED = Counter(
    "scalemcp_sessions_created_total", "Sessions created, by negotiated protocol version",
    ("protocol_version",), registry=REGISTRY)
INFLIGHT_REQUESTS = Gauge(
    "scalemcp_inflight_requests", "MCP requests being answered now, by era", ("era",),
    registry=REGISTRY, multiprocess_mode="livesum")
OPEN_STREAMS = Gauge(
    "scalemcp_open_streams", "SSE responses and WebSockets being served now",
    ("era", "transport"), registry=REGISTRY, multiprocess_mode="livesum")
SSE_RESUMES = Counter(
    "scalemcp_sse_resumes_total", "SSE streams resumed with Last-Event-ID, by stream kind",
    ("stream",), registry=REGISTRY)
SSE_REPLAYED_EVENTS = Counter(
    "scalemcp_sse_replayed_events_total",
    "Events sent again from the backend to clients resuming a stream", ("stream",),
    registry=REGISTRY)
SLOW_CONSUMERS = Counter(
    "scalemcp_sse_slow_consumers_total",
    "SSE connections closed because the client did not read within sse_send_timeout_s",
    registry=REGISTRY)
ROUTED_SENT = Counter(
    "scalemcp_routed_messages_sent_total",
    "Client messages sent through Redis to the worker running their request, by kind",
    ("kind",), registry=REGISTRY)
ROUTED_RECEIVED = Counter(
    "scalemcp_routed_messages_received_total",
    "Client messages received through Redis and handed to a request running here, by kind",
    ("kind",), registry=REGISTRY)
REDIS_ROUND_TRIP = Histogram(
    "scalemcp_redis_round_trip_seconds",
    "Time from issuing a Redis command, script or pipeline to its reply, by operation",
    ("operation",), buckets=REDIS_BUCKETS_S, registry=REGISTRY)
REDIS_ERRORS = Counter(
    "scalemcp_redis_errors_total", "Redis operations that failed, by kind of failure",
    ("kind",), registry=REGISTRY)
REDIS_WRITE_RETRIES = Counter(
    "scalemcp_redis_write_retries_total",
    "Stream appends sent again because Redis could not be reached or its answer was lost",
    registry=REGISTRY)
SHED = Counter(
    "scalemcp_shed_total",
    "Requests refused with 503 because the worker was past its capacity, by reason",
    ("reason",), registry=REGISTRY)
SHED_H2 = Counter(
    "scalemcp_shed_h2_streams_total",
    "HTTP/2 streams shed in the serving loop before the app, by how: 503 (a canned answer) "
    "or refused_stream (RST_STREAM REFUSED_STREAM)",
    ("how",), registry=REGISTRY)
SHED_LIMIT = Gauge(
    "scalemcp_shed_limit",
    "The worker's limit of requests in flight now (load shedding; adaptive by default)",
    registry=REGISTRY, multiprocess_mode="livesum")
EVENT_LOOP_LAG = Gauge(
    "scalemcp_event_loop_lag_seconds",
    "How late the worker's event loop ran a task due to wake (worst of the last 0.2 s)",
    registry=REGISTRY, multiprocess_mode="livemax")
RATE_LIMITED = Counter(
    "scalemcp_rate_limited_total",
    "Requests refused by a limit: principal, tool (rate limits), inflight_session, "
    "inflight_principal", ("limit",), registry=REGISTRY)

CONNECTIONS = Gauge(
    "scalemcp_connections", "Client connections open now (scalemcp's serving loop)",
    registry=REGISTRY, multiprocess_mode="livesum")
CONNECTIONS_REFUSED = Counter(
    "scalemcp_connections_refused_total",
    "Connections refused as they came: worker_limit (max_connections), client_limit "
    "(max_connections_per_client)", ("reason",), registry=REGISTRY)
CONNECTIONS_TIMED_OUT = Counter(
    "scalemcp_connections_timed_out_total",
    "Connections closed by a deadline, by phase: head (head_timeout_s), body "
    "(body_timeout_s), send (send_timeout_s), idle (keep_alive_timeout_s); stream_body: "
    "HTTP/2 streams reset at body_timeout_s (the connection stays)", ("phase",),
    registry=REGISTRY)

CLIENT_GONE = Counter(
    "scalemcp_client_disconnects_total",
    "HTTP requests whose client hung up before its answer was sent in full",
    registry=REGISTRY)
TASKS_CREATED = Counter(
    "scalemcp_tasks_created_total", "Durable tasks created, by tool era (modern, session)",
    ("era",), registry=REGISTRY)
TASKS_RUNNING = Gauge(
    "scalemcp_tasks_running", "Durable tasks this worker runs now", registry=REGISTRY,
    multiprocess_mode="livesum")
TASK_RUN_SECONDS = Histogram(
    "scalemcp_task_run_seconds", "Time a worker held a task (one attempt, to its outcome)",
    buckets=(*REQUEST_BUCKETS_S, 30.0, 60.0, 300.0), registry=REGISTRY)
TASKS_HELD_BACK = Counter(
    "scalemcp_tasks_held_back_total",
    "Claims that left a queued task waiting: its principal or its tool ran the most "
    "tasks allowed (task_max_running_per_principal / _per_tool)", registry=REGISTRY)
TASK_POLLS_HELD = Counter(
    "scalemcp_task_polls_held_total",
    "tasks/get polls held (until the task changed or task_poll_min_interval_ms passed): "
    "they came sooner than that after this worker's last read of the task",
    registry=REGISTRY)
TASKS_QUEUED = Gauge(
    "scalemcp_tasks_queued", "Durable tasks waiting for a worker, fleet-wide (every worker "
    "samples the same figure every 5 s: aggregate with max)",
    registry=REGISTRY, multiprocess_mode="livemax")
TASK_DEAD_LETTERS = Gauge(
    "scalemcp_task_dead_letters", "Dead-letter records kept, fleet-wide (tasks whose workers "
    "died max_attempts times; sampled like scalemcp_tasks_queued)", registry=REGISTRY,
    multiprocess_mode="livemax")
TASK_REDELIVERIES = Counter(
    "scalemcp_task_redeliveries_total",
    "Tasks this worker took over after another worker's lease ran out (attempt 2 or later)",
    registry=REGISTRY)
TASK_CLAIM_WAIT_SECONDS = Histogram(
    "scalemcp_task_claim_wait_seconds",
    "From a task's creation to its first claim by a worker (time spent queued)",
    buckets=(*REQUEST_BUCKETS_S, 30.0, 60.0, 300.0), registry=REGISTRY)
TASK_TIME_TO_TERMINAL_SECONDS = Histogram(
    "scalemcp_task_time_to_terminal_seconds",
    "From a task's creation to the terminal status this worker wrote, by status",
    ("status",), buckets=(*REQUEST_BUCKETS_S, 30.0, 60.0, 300.0, 900.0, 3600.0),
    registry=REGISTRY)
TASK_EVENTS = Counter(
    "scalemcp_task_events_total",
    "Task status changes seen (every worker sees every change), by new status",
    ("status",), registry=REGISTRY)

# -- the per-request hooks: children kept, one dict lookup each --------------------------

_answered: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
_responses: dict[int, Counter] = {}


def observe_request(era: str, method: str, outcome: str, seconds: float) -> None:
    """Count one MCP request answered (the engine calls it for every request)."""
    children = _answered.get((era, method, outcome))
    if children is None:
        children = _answered[era, method, outcome] = (
            REQUESTS.labels(era, method, outcome), DURATIONS.labels(era, method))
    children[0].inc()
    children[1].observe(seconds)


def observe_http(status: int) -> None:
    """Count one HTTP response (the server calls it at the end of every exchange)."""
    child = _responses.get(status)
    if child is None:
        child = _responses[status] = HTTP_RESPONSES.labels(str(status))
    child.inc()


class Timer:
    """Observes how long a block took into a histogram child: ``with`` or ``async with``
    (first in an ``async with`` of several, so the round trip is timed whole)."""

    __slots__ = ("_child", "_started")

    def __init__(self, child: Histogram) -> None:
        self._child = child

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._child.observe(time.perf_counter() - self._started)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def timed(child: Histogram) -> Timer:
    return Timer(child)


# -- gauges read when they are shared -----------------------------------------------------

_readers: dict[Gauge, Callable[[], float]] = {}


def read_at_scrape(gauge: Gauge, read: Callable[[], float]) -> None:
    """Set ``gauge`` from ``read()`` before each scrape (and, under ``scalemcp serve``,
    every ``metrics_flush_interval_s`` for the sibling workers). The last one given wins."""
    _readers[gauge] = read


def refresh() -> None:
    """Set every gauge registered with :func:`read_at_scrape` from its reader."""
    for gauge, read in _readers.items():
        gauge.set(float(read()))


def render() -> bytes:
    """This process's figures in the Prometheus text format (0.0.4)."""
    refresh()
    return generate_latest(REGISTRY)
