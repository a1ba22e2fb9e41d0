"""What counting one request costs: scalemcp's metrics against the libraries that could do it.

    python bench/metrics_cost.py                      # about 30 s
    python bench/metrics_cost.py --rounds 31 --requests 20000 --json out.json

One "request" is what the server's hot path does for every MCP request today: a counter
with three labels and a histogram with two (``scalemcp_requests_total``,
``scalemcp_request_duration_seconds``, from the engine), a counter with one label
(``scalemcp_http_responses_total``, at the end of the HTTP exchange) and, with the Redis
backend, two observations on a histogram child kept by the caller (one per round trip,
``scalemcp_redis_round_trip_seconds``). Label values cycle through a few realistic ones.

Candidates, each with the same names, labels and buckets:

- ``hand-written``: the registry scalemcp had until it moved to prometheus_client (dicts of
  floats and bucket lists, snapshotted to files by each worker), its hot path kept here
  as the baseline the choice was made against;
- ``scalemcp``: :mod:`scalemcp.observability.metrics` as it is in this checkout, set up as
  in a worker of ``scalemcp serve`` (multiprocess mode, under a temporary directory);
- ``prometheus_client``: the official client, one process (values under a mutex);
- ``prometheus_client mp``: its multiprocess mode (values in mmapped files, as the workers
  of a node share them), ``labels()`` called per request; and the same with the children
  kept by the caller in a dict (what ``scalemcp`` does);
- ``otel sdk``: OpenTelemetry metrics (SDK ``MeterProvider`` read by the Prometheus
  exporter's ``PrometheusMetricReader``), attributes passed as dicts as that API takes them.

Needs the ``otel`` extra and ``opentelemetry-exporter-prometheus`` (``pip install
opentelemetry-exporter-prometheus``); without them the ``otel sdk`` rows are skipped.

Method: CPU time of this thread (``time.thread_time_ns``) for ``--requests`` requests, the
candidates interleaved round by round so that load from other programs falls on all of them
alike; the median round per candidate, minus the same loop with no metric calls. Ratios are
against ``hand-written`` in the same run.
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0)
REDIS_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 1.0, 5.0)
#: (era, method, outcome, HTTP status, seconds): what the loop cycles through.
TRAFFIC = [
    ("session", "tools/call", "ok", "200", 0.0042),
    ("session", "tools/list", "ok", "200", 0.0011),
    ("modern", "tools/call", "ok", "200", 0.0063),
    ("session", "tools/call", "error-32602", "200", 0.0009),
    ("session", "notifications/initialized", "ok", "202", 0.0004),
    ("modern", "resources/read", "ok", "200", 0.0180),
]
REDIS_SECONDS = (0.00031, 0.00047)

#: One candidate: given the traffic and whether to count Redis round trips, a function
#: that counts ``n`` requests.
Loop = Callable[[int], None]


def _cycle(n: int) -> Any:
    return itertools.islice(itertools.cycle(TRAFFIC), n)


def no_metrics(redis: bool) -> Loop:
    def loop(n: int) -> None:
        for _era, _method, _outcome, _status, _seconds in _cycle(n):
            if redis:
                for _s in REDIS_SECONDS:
                    pass
    return loop


class _Value:
    """The hand-written registry's counter child."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Buckets:
    """The hand-written registry's histogram child."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family:
    """The hand-written registry's family: children by label values, made on first use."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.children: dict[tuple[str, ...], Any] = {}
        self.make = make

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.make()
        return child


def hand_written_metrics(redis: bool) -> Loop:
    requests, http = _Family(_Value), _Family(_Value)
    durations = _Family(lambda: _Buckets(REQUEST_BUCKETS_S))
    script = _Family(lambda: _Buckets(REDIS_BUCKETS_S)).labels("load")

    def loop(n: int) -> None:
        for era, method, outcome, status, seconds in _cycle(n):
            requests.labels(era, method, outcome).inc()
            durations.labels(era, method).observe(seconds)
            http.labels(status).inc()
            if redis:
                for s in REDIS_SECONDS:
                    script.observe(s)
    return loop


def scalemcp_metrics(redis: bool) -> Loop:
    """What a worker of ``scalemcp serve`` does per request (ENV set by :func:`main`)."""
    from scalemcp.observability import metrics

    observe_request, observe_http = metrics.observe_request, metrics.observe_http
    script = metrics.REDIS_ROUND_TRIP.labels("load")

    def loop(n: int) -> None:
        for era, method, outcome, status, seconds in _cycle(n):
            observe_request(era, method, outcome, seconds)
            observe_http(int(status))
            if redis:
                for s in REDIS_SECONDS:
                    script.observe(s)
    return loop


def prometheus_metrics(redis: bool, multiprocess_dir: str | None = None,
                       kept: bool = False) -> Loop:
    from prometheus_client import CollectorRegistry, Counter, Histogram, values

    registry = CollectorRegistry()
    previous = values.ValueClass
    values.ValueClass = values.MutexValue
    if multiprocess_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
        values.ValueClass = values.MultiProcessValue(lambda: "bench")
    try:
        requests = Counter("scalemcp_requests", "MCP requests", ("era", "method", "outcome"),
                           registry=registry)
        durations = Histogram("scalemcp_request_duration_seconds", "Time to answer",
                              ("era", "method"), buckets=REQUEST_BUCKETS_S, registry=registry)
        http = Counter("scalemcp_http_responses", "HTTP responses", ("status",),
                       registry=registry)
        round_trip = Histogram("scalemcp_redis_round_trip_seconds", "Redis round trips",
                               ("operation",), buckets=REDIS_BUCKETS_S, registry=registry)
        # Children take their value class when made: make them all now, under this mode.
        for era, method, outcome, status, _ in TRAFFIC:
            requests.labels(era, method, outcome)
            durations.labels(era, method)
            http.labels(status)
        script = round_trip.labels("load")
    finally:
        values.ValueClass = previous

    def loop(n: int) -> None:
        for era, method, outcome, status, seconds in _cycle(n):
            requests.labels(era, method, outcome).inc()
            durations.labels(era, method).observe(seconds)
            http.labels(status).inc()
            if redis:
                for s in REDIS_SECONDS:
                    script.observe(s)

    # The caller keeps the children it uses in a dict: no labels() call per request.
    calls = {(era, method, outcome): (requests.labels(era, method, outcome),
                                      durations.labels(era, method))
             for era, method, outcome, _, _ in TRAFFIC}
    responses = {status: http.labels(status) for _, _, _, status, _ in TRAFFIC}

    def loop_kept(n: int) -> None:
        for era, method, outcome, status, seconds in _cycle(n):
            counter, histogram = calls[era, method, outcome]
            counter.inc()
            histogram.observe(seconds)
            responses[status].inc()
            if redis:
                for s in REDIS_SECONDS:
                    script.observe(s)
    return loop_kept if kept else loop


def otel_metrics(redis: bool) -> Loop:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    meter = provider.get_meter("bench")
    requests = meter.create_counter("scalemcp_requests", description="MCP requests")
    durations = meter.create_histogram(
        "scalemcp_request_duration", unit="s", description="Time to answer",
        explicit_bucket_boundaries_advisory=list(REQUEST_BUCKETS_S))
    http = meter.create_counter("scalemcp_http_responses", description="HTTP responses")
    round_trip = meter.create_histogram(
        "scalemcp_redis_round_trip", unit="s", description="Redis round trips",
        explicit_bucket_boundaries_advisory=list(REDIS_BUCKETS_S))
    script = {"operation": "load"}  # the caller keeps it, as it keeps a child elsewhere

    def loop(n: int) -> None:
        for era, method, outcome, status, seconds in _cycle(n):
            requests.add(1, {"era": era, "method": method, "outcome": outcome})
            durations.record(seconds, {"era": era, "method": method})
            http.add(1, {"status": status})
            if redis:
                for s in REDIS_SECONDS:
                    round_trip.record(s, script)
    return loop


def measure(loops: dict[str, Loop], n: int, rounds: int) -> dict[str, float]:
    """Median CPU ns per request of each loop, interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():
        loop(n // 10)  # warm up: first children, caches
    for _ in range(rounds):
        for name, loop in loops.items():
            started = time.thread_time_ns()
            loop(n)
            samples[name].append((time.thread_time_ns() - started) / n)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    ns = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="metrics-cost-") as mp_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = mp_dir  # scalemcp as in a worker
        try:
            importlib.import_module("opentelemetry.exporter.prometheus")
            otel = True
        except ImportError:
            otel = False
        for redis in (False, True):
            loops = {
                "(loop alone)": no_metrics(redis),
                "hand-written": hand_written_metrics(redis),
                "scalemcp": scalemcp_metrics(redis),
                "prometheus_client": prometheus_metrics(redis),
                "prometheus_client mp": prometheus_metrics(redis, mp_dir),
                "prometheus_client mp, children kept": prometheus_metrics(redis, mp_dir, True),
            }
            if otel:
                loops["otel sdk"] = otel_metrics(redis)
            median = measure(loops, ns.requests, ns.rounds)
            floor = median.pop("(loop alone)")
            ours = median["hand-written"] - floor
            for name, ns_per in median.items():
                net = ns_per - floor
                rows.append({"backend": "redis" if redis else "memory", "candidate": name,
                             "us_per_request": round(net / 1000, 3),
                             "x_hand_written": round(net / ours, 2)})
    print(f"CPU time per request for its metric calls (median of {ns.rounds} rounds of "
          f"{ns.requests} requests; load average {os.getloadavg()[0]:.2f}; "
          f"{platform.python_implementation()} {platform.python_version()})\n")
    print("| backend | candidate | us/request | x hand-written |")
    print("|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['backend']} | {row['candidate']} | {row['us_per_request']:.2f} | "
              f"{row['x_hand_written']:.2f} |")
    if ns.json:
        ns.json.write_text(json.dumps({"rows": rows, "rounds": ns.rounds,
                                       "requests": ns.requests}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
