"""The final report: built from merged measurements, rendered as text, JSON or Markdown.

Latencies in the report are microseconds (``*_us``); the text and Markdown
renderings show milliseconds. ``histograms`` keeps the raw buckets so reports
can be merged or plotted later.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from .config import BenchConfig
from .hist import Histogram, HistogramWire
from .stats import ProcResult

__all__ = ["PERCENTILES", "Report", "build_report", "render_markdown", "render_text"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SATURATION = 0.9
"""CPU use per bench process above which the load generator itself is the bottleneck
(reported only when most operations succeeded: failing fast is not a measurement)."""


class Latency(msgspec.Struct, frozen=True):
    count: int
    min_us: int
    mean_us: float
    p50_us: int
    p90_us: int
    p99_us: int
    p99_9_us: int
    max_us: int

    @classmethod
    def of(cls, hist: Histogram) -> Latency:
        p = [hist.percentile(q) for q in PERCENTILES]
        return cls(hist.count, hist.min, round(hist.mean, 1), p[0], p[1], p[2], p[3], hist.max)


class ClientCpu(msgspec.Struct, frozen=True):
    cpu_s: float
    """Load-generator CPU (user+system, every bench process) inside the measured window."""
    cpu_total_s: float
    """The same over the whole run, setup and warmup included."""
    us_per_request: float
    cores_used: float
    procs: int
    saturated: bool


class Report(msgspec.Struct, frozen=True):
    started_at: str
    config: BenchConfig
    window_s: float
    requests: int
    errors: int
    throughput_rps: float
    latency: Latency
    ops: dict[str, Latency]
    errors_by_kind: dict[str, int]
    error_samples: dict[str, list[str]]
    counters: dict[str, int]
    other: dict[str, Latency]
    """Non-request timings: ``schedule_lag`` (open loop), ``listen_fanout``."""
    client_cpu: ClientCpu
    histograms: dict[str, HistogramWire]
    tools_called: dict[str, dict[str, Any]] = {}
    """Each tool the scenario called, with the arguments it sent."""
    aborted: str | None = None
    """Why the run stopped early, if it did."""
    tool: str = "scalemcp-bench/1"
    """The load generator (not a tool the bench called: see ``tools_called``)."""
    window_monotonic_s: tuple[float, float] = (0.0, 0.0)
    """The measured window in ``time.monotonic()`` seconds of this machine, for lining
    up other samples taken meanwhile (the suite's server CPU readings)."""


def build_report(
    config: BenchConfig, result: ProcResult, started_at: dt.datetime, *, procs: int
) -> Report:
    ops = {name: Histogram.from_wire(wire) for name, wire in sorted(result.ops.items())}
    overall = Histogram()
    for hist in ops.values():
        overall.merge(hist)
    window = max(result.window_end_s - result.window_start_s, 1e-9)
    errors = sum(result.errors.values())
    attempts = overall.count + errors
    cores = result.cpu_s / window
    cpu = ClientCpu(
        cpu_s=round(result.cpu_s, 4),
        cpu_total_s=round(result.cpu_total_s, 4),
        us_per_request=round(result.cpu_s / attempts * 1e6, 1) if attempts else 0.0,
        cores_used=round(cores, 3),
        procs=procs,
        saturated=cores / procs > SATURATION and overall.count > errors,
    )
    other = {name: Histogram.from_wire(wire) for name, wire in result.extra_hists.items()}
    return Report(
        started_at=started_at.isoformat(timespec="seconds"),
        config=config,
        window_s=round(window, 4),
        requests=overall.count,
        errors=errors,
        throughput_rps=round(overall.count / window, 1),
        latency=Latency.of(overall),
        ops={name: Latency.of(hist) for name, hist in ops.items()},
        errors_by_kind=dict(sorted(result.errors.items())),
        error_samples=result.error_samples,
        counters=dict(sorted(result.counters.items())),
        other={name: Latency.of(hist) for name, hist in sorted(other.items())},
        client_cpu=cpu,
        histograms={**result.ops, **{f"other:{k}": v for k, v in result.extra_hists.items()}},
        tools_called=config.tools_called(),
        aborted=result.aborted,
        window_monotonic_s=(result.window_start_s, result.window_end_s),
    )


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}" if us < 10_000 else f"{us / 1000:.1f}"


def _row(name: str, lat: Latency) -> list[str]:
    cells = [lat.p50_us, lat.p90_us, lat.p99_us, lat.p99_9_us, lat.max_us]
    return [name, str(lat.count), _ms(lat.mean_us), *(_ms(v) for v in cells)]


_HEAD = ["op", "count", "mean ms", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"]


def _rows(report: Report) -> list[list[str]]:
    rows = [_row(name, lat) for name, lat in report.ops.items()]
    if len(report.ops) > 1:
        rows.append(_row("all", report.latency))
    rows.extend(_row(f"({name})", lat) for name, lat in report.other.items())
    return rows


def _describe(report: Report) -> str:
    c = report.config
    mode = f"open loop {c.rate:g}/s" if c.rate else "closed loop"
    proto = "h2" if c.http2 else "http/1.1"
    return (
        f"{c.scenario} x {c.clients} clients ({c.era} era, {proto}, {c.client}, {mode}, "
        f"{c.procs} proc) -> {c.url}"
    )


def _tools_line(report: Report) -> str | None:
    if not report.tools_called:
        return None
    calls = [
        f"{name} {msgspec.json.encode(args).decode()}" for name, args in report.tools_called.items()
    ]
    return "tool: " + "; ".join(calls)


def _cpu_line(report: Report) -> str:
    cpu = report.client_cpu
    line = (
        f"client CPU: {cpu.us_per_request:.0f} us/request, {cpu.cores_used:.2f} cores "
        f"over {cpu.procs} proc(s)"
    )
    if cpu.saturated:
        line += "  ** load generator saturated: numbers understate the server **"
    return line


def render_text(report: Report) -> str:
    lines = [_describe(report)]
    if (tools := _tools_line(report)) is not None:
        lines.append(tools)
    if report.aborted:
        lines.append(f"stopped early: {report.aborted}")
    lines.append(
        f"{report.requests} ok, {report.errors} errors in {report.window_s:.2f} s: "
        f"{report.throughput_rps:.1f} req/s"
    )
    widths = [max(len(r[i]) for r in [_HEAD, *_rows(report)]) for i in range(len(_HEAD))]
    for row in [_HEAD, *_rows(report)]:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    if report.errors_by_kind:
        lines.append("errors: " + ", ".join(f"{k}={v}" for k, v in report.errors_by_kind.items()))
        for kind, samples in report.error_samples.items():
            lines.extend(f"  {kind}: {sample}" for sample in samples[:1])
    if report.counters:
        lines.append("counters: " + ", ".join(f"{k}={v}" for k, v in report.counters.items()))
    lines.append(_cpu_line(report))
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    out = [f"### {_describe(report)}", ""]
    if (tools := _tools_line(report)) is not None:
        out += [f"`{tools}`", ""]
    if report.aborted:
        out += [f"**Stopped early:** {report.aborted}", ""]
    out += [
        f"{report.requests} ok, {report.errors} errors in {report.window_s:.2f} s: "
        f"**{report.throughput_rps:.1f} req/s**. {_cpu_line(report)}.",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(_HEAD) - 1)) + "|",
    ]
    out.extend("| " + " | ".join(row) + " |" for row in _rows(report))
    if report.errors_by_kind:
        out += ["", "| error | count |", "|---|---:|"]
        out.extend(f"| {k} | {v} |" for k, v in report.errors_by_kind.items())
    if report.counters:
        out += ["", "| counter | value |", "|---|---:|"]
        out.extend(f"| {k} | {v} |" for k, v in report.counters.items())
    return "\n".join(out) + "\n"


def report_to_builtins(report: Report) -> Any:
    return msgspec.to_builtins(report)
