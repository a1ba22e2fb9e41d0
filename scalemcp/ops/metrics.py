"""Prometheus metrics in the text exposition format, kept per worker process.

No client library: a handful of counters and histograms in dicts, rendered on scrape.
Names follow Prometheus conventions (``scalemcp_`` prefix, base units, ``_total``);
labels never carry session, user or trace ids. Each worker process keeps its own
figures, so with ``--workers N`` a scrape sees one worker: run one worker per pod
when exact per-pod figures matter.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

__all__ = ["METRICS", "Metrics"]

_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS_S) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS_S, value)] += 1
        self.sum += value


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[Labels, int] = defaultdict(int)
        self.durations: dict[Labels, _Histogram] = defaultdict(_Histogram)
        self.http: dict[Labels, int] = defaultdict(int)
        self.gauges: dict[str, Callable[[], float]] = {}

    def observe_request(self, era: str, method: str, outcome: str, seconds: float) -> None:
        self.requests[(("era", era), ("method", method), ("outcome", outcome))] += 1
        self.durations[(("era", era), ("method", method))].observe(seconds)

    def observe_http(self, status: int) -> None:
        self.http[(("status", str(status)),)] += 1

    def render(self) -> bytes:
        out: list[str] = []
        out += _counter("scalemcp_requests_total", "MCP requests answered", self.requests)
        out += _counter("scalemcp_http_responses_total", "HTTP responses by status", self.http)
        name = "scalemcp_request_duration_seconds"
        out += [f"# HELP {name} Time to answer an MCP request", f"# TYPE {name} histogram"]
        for labels, hist in sorted(self.durations.items()):
            cumulative = 0
            for bound, count in zip((*_BUCKETS_S, float("inf")), hist.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f"{name}_bucket{_fmt((*labels, ('le', le)))} {cumulative}")
            out.append(f"{name}_sum{_fmt(labels)} {hist.sum}")
            out.append(f"{name}_count{_fmt(labels)} {cumulative}")
        for gauge, read in sorted(self.gauges.items()):
            out += [f"# TYPE {gauge} gauge", f"{gauge} {read()}"]
        return ("\n".join(out) + "\n").encode()


def _counter(name: str, help_text: str, values: dict[Labels, int]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    lines += [f"{name}{_fmt(labels)} {value}" for labels, value in sorted(values.items())]
    return lines


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in labels)
    return "{" + inner + "}"


#: The process-wide registry (one per worker process).
METRICS = Metrics()
