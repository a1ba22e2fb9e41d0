"""One point: a series at one client count, with the server's CPU time over the
measured window."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import msgspec

from scalemcp.loadgen.cli import run
from scalemcp.loadgen.config import BenchConfig

from .paths import TICKS
from .procs import Running, busy_ticks, cpu_ticks, descendants, other_load
from .series import Series


class Sampler:
    """Reads the CPU ticks of the server's processes, Redis and every core every 50 ms."""

    def __init__(self, pids: list[int], redis_pid: int | None, period_s: float = 0.05) -> None:
        self.pids = pids
        self.redis_pid = redis_pid
        self.period_s = period_s
        self.samples: list[tuple[float, int, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        server = sum(cpu_ticks(pid) for pid in self.pids)
        redis = cpu_ticks(self.redis_pid) if self.redis_pid else 0
        self.samples.append((time.monotonic(), server, redis, *busy_ticks()))

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def at(self, t: float) -> tuple[float, float, float, float]:
        """Server, Redis, all-core task and interrupt CPU seconds at monotonic time ``t``
        (interpolated between samples)."""
        samples = self.samples
        before = max((s for s in samples if s[0] <= t), default=samples[0], key=lambda s: s[0])
        after = min((s for s in samples if s[0] >= t), default=samples[-1], key=lambda s: s[0])
        span = after[0] - before[0]
        f = (t - before[0]) / span if span > 0 else 0.0
        return tuple(  # type: ignore[return-value]
            (before[i] + f * (after[i] - before[i])) / TICKS for i in (1, 2, 3, 4)
        )


def measure(s: Series, srv: Running, clients: int, ns: argparse.Namespace) -> dict[str, Any]:
    procs = ns.procs if clients >= 256 else 1
    settings = {
        "url": f"http://127.0.0.1:{srv.port}{s.path}",
        "era": s.era,
        "scenario": s.scenario,
        "clients": clients,
        "duration_s": ns.duration,
        "warmup_s": ns.warmup,
        "timeout_s": 30,
        "procs": procs,
        "steps": s.steps,
    }
    config = msgspec.convert(settings, BenchConfig)
    pids = descendants(srv.proc.pid)
    with Sampler(pids, srv.redis.pid if srv.redis else None) as sampler:
        report = run(config)
    w0, w1 = report.window_monotonic_s
    window = max(w1 - w0, 1e-9)
    s0, r0, b0, i0 = sampler.at(w0)
    s1, r1, b1, i1 = sampler.at(w1)
    server_s, redis_s, busy_s = s1 - s0 + r1 - r0, r1 - r0, b1 - b0
    attempts = max(report.requests + report.errors, 1)
    client = report.client_cpu
    lat = report.latency
    return {
        "series": s.name,
        "clients": clients,
        "procs": procs,
        "throughput_rps": report.throughput_rps,
        "requests": report.requests,
        "errors": report.errors,
        "errors_by_kind": report.errors_by_kind,
        "error_samples": report.error_samples,
        "counters": report.counters,
        "p50_ms": lat.p50_us / 1000,
        "p90_ms": lat.p90_us / 1000,
        "p99_ms": lat.p99_us / 1000,
        "p99_9_ms": lat.p99_9_us / 1000,
        "window_s": round(window, 4),
        "server_cpu_s": round(server_s, 4),
        "server_us_per_request": round(server_s / attempts * 1e6, 1),
        "server_cores": round(server_s / window, 3),
        "redis_us_per_request": round(redis_s / attempts * 1e6, 1) if srv.redis else None,
        "server_processes": len(pids) + (1 if srv.redis else 0),
        "client_us_per_request": client.us_per_request,
        "client_cores": client.cores_used,
        "client_saturated": client.saturated,
        "other_cores": round(max(busy_s - server_s - client.cpu_s, 0.0) / window, 3),
        "irq_cores": round((i1 - i0) / window, 3),
        "report": {k: v for k, v in msgspec.to_builtins(report).items() if k != "histograms"},
    }


class Quiet:
    """Waits for the rest of the machine to go quiet before a point, within a budget.

    Other programs on the machine take cores from the server and the load generator;
    throughput then drops though CPU per request hardly moves. Before each point this
    measures what other tasks use for 0.5 s and waits (checking again every 0.5 s) while
    it is above ``threshold`` cores, at most ``max_wait_s`` per point and ``budget_s`` over
    the run; a point that still saw more than ``retry_above`` cores of other work is run
    once more, and the less disturbed of the two is kept.
    """

    def __init__(self, threshold: float, max_wait_s: float, budget_s: float) -> None:
        self.threshold = threshold
        self.retry_above = threshold + 0.1
        self.max_wait_s = max_wait_s
        self.budget_s = budget_s
        self.spent_s = 0.0

    def wait(self, exclude: list[int]) -> float:
        started = time.monotonic()
        load = other_load(exclude, 0.5)
        while (load > self.threshold and time.monotonic() - started < self.max_wait_s
               and self.spent_s + time.monotonic() - started < self.budget_s):
            load = other_load(exclude, 0.5)
        self.spent_s += max(time.monotonic() - started - 0.5, 0.0)
        return round(load, 3)

    def can_retry(self, point: dict[str, Any], seconds: float) -> bool:
        if point["other_cores"] <= self.retry_above or self.spent_s + seconds > self.budget_s:
            return False
        self.spent_s += seconds
        return True


def measure_quietly(
    s: Series, srv: Running, clients: int, ns: argparse.Namespace, quiet: Quiet
) -> dict[str, Any]:
    exclude = descendants(srv.proc.pid) + ([srv.redis.pid] if srv.redis else [])
    before = quiet.wait(exclude)
    point = measure(s, srv, clients, ns)
    point["other_cores_before"] = before
    if quiet.can_retry(point, ns.duration + ns.warmup + 1):
        before = quiet.wait(exclude)
        again = measure(s, srv, clients, ns)
        again["other_cores_before"] = before
        keep, drop = sorted((point, again), key=lambda p: p["other_cores"])
        keep["retried"] = {k: drop[k] for k in ("throughput_rps", "server_us_per_request",
                                                "other_cores")}
        point = keep
    return point

