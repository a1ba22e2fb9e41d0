"""What one bench process measures, and its wire form for merging across processes.

`Recorder` is the mutable collector the clients write into while running;
`ProcResult` is its frozen snapshot, which a worker process prints as JSON
and the parent merges (`merge_results`). Latencies are integer microseconds.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from .hist import Histogram, HistogramWire

__all__ = ["ProcResult", "Recorder", "merge_results"]

_MAX_SAMPLES = 3


class ProcResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One process's measurements over its measured window."""

    clients: int
    window_start_s: float
    """``time.monotonic()`` at the end of the warmup (comparable across processes)."""
    window_end_s: float
    cpu_s: float
    """Process CPU time (user+system) spent inside the measured window."""
    cpu_total_s: float
    """Process CPU time for the whole run, setup and warmup included."""
    ops: dict[str, HistogramWire]
    errors: dict[str, int]
    error_samples: dict[str, list[str]]
    counters: dict[str, int]
    extra_hists: dict[str, HistogramWire]
    """Histograms that are not request latencies (schedule lag, listen fan-out)."""
    aborted: str | None = None
    """Why the run was cut short, if it was (the server stopped accepting connections)."""


class Recorder:
    """Collects latencies, errors and counters; see the module docstring."""

    def __init__(self) -> None:
        self.ops: dict[str, Histogram] = {}
        self.extra: dict[str, Histogram] = {}
        self.errors: Counter[str] = Counter()
        self.error_samples: dict[str, list[str]] = {}
        self.counters: Counter[str] = Counter()
        self.measuring = False
        self.completed = 0
        self.failed = 0

    def ok(self, op: str, latency_s: float) -> None:
        if not self.measuring:
            return
        hist = self.ops.get(op)
        if hist is None:
            hist = self.ops[op] = Histogram()
        hist.record(int(latency_s * 1e6))
        self.completed += 1

    def fail(self, kind: str, detail: str = "") -> None:
        if not self.measuring:
            return
        self.errors[kind] += 1
        self.failed += 1
        samples = self.error_samples.setdefault(kind, [])
        if detail and len(samples) < _MAX_SAMPLES:
            samples.append(detail[:200])

    def count(self, name: str, n: int = 1) -> None:
        if self.measuring:
            self.counters[name] += n

    def observe(self, name: str, value_s: float) -> None:
        """Record a non-request duration (e.g. schedule lag) into a named histogram."""
        if not self.measuring:
            return
        hist = self.extra.get(name)
        if hist is None:
            hist = self.extra[name] = Histogram()
        hist.record(int(value_s * 1e6))

    def snapshot(
        self,
        *,
        clients: int,
        window: tuple[float, float],
        cpu_s: float,
        cpu_total_s: float,
        aborted: str | None = None,
    ) -> ProcResult:
        return ProcResult(
            clients=clients,
            window_start_s=window[0],
            window_end_s=window[1],
            cpu_s=cpu_s,
            cpu_total_s=cpu_total_s,
            ops={name: hist.to_wire() for name, hist in self.ops.items()},
            errors=dict(self.errors),
            error_samples=dict(self.error_samples),
            counters=dict(self.counters),
            extra_hists={name: hist.to_wire() for name, hist in self.extra.items()},
            aborted=aborted,
        )


def _merge_hists(into: dict[str, Histogram], wires: dict[str, HistogramWire]) -> None:
    for name, wire in wires.items():
        hist = Histogram.from_wire(wire)
        if name in into:
            into[name].merge(hist)
        else:
            into[name] = hist


def merge_results(results: list[ProcResult]) -> ProcResult:
    """One result for several processes: counts add, windows span them all."""
    if not results:
        raise ValueError("nothing to merge")
    ops: dict[str, Histogram] = {}
    extra: dict[str, Histogram] = {}
    errors: Counter[str] = Counter()
    counters: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    for result in results:
        _merge_hists(ops, result.ops)
        _merge_hists(extra, result.extra_hists)
        errors.update(result.errors)
        counters.update(result.counters)
        for kind, details in result.error_samples.items():
            kept = samples.setdefault(kind, [])
            kept.extend(details[: _MAX_SAMPLES - len(kept)])
    return ProcResult(
        clients=sum(r.clients for r in results),
        window_start_s=min(r.window_start_s for r in results),
        window_end_s=max(r.window_end_s for r in results),
        cpu_s=sum(r.cpu_s for r in results),
        cpu_total_s=sum(r.cpu_total_s for r in results),
        ops={name: hist.to_wire() for name, hist in ops.items()},
        errors=dict(errors),
        error_samples=samples,
        counters=dict(counters),
        extra_hists={name: hist.to_wire() for name, hist in extra.items()},
        aborted=next((r.aborted for r in results if r.aborted), None),
    )
