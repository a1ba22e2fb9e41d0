"""Sharing a run out over processes, and merging what they measured."""

from __future__ import annotations

import pytest

from scalemcp.loadgen.config import BenchConfig, split
from scalemcp.loadgen.hist import Histogram
from scalemcp.loadgen.stats import Recorder, merge_results


def test_split_shares_clients_rate_and_budget() -> None:
    config = BenchConfig(url="http://x/mcp", clients=10, procs=3, rate=1000.0, requests=101)
    shards = split(config)
    assert [s.clients for s in shards] == [4, 3, 3]
    assert sum(s.budget or 0 for s in shards) == 101
    assert sum(s.rate or 0 for s in shards) == pytest.approx(1000.0)
    assert [s.index for s in shards] == [0, 1, 2]


def test_split_never_makes_empty_processes() -> None:
    shards = split(BenchConfig(url="http://x/mcp", clients=2, procs=4))
    assert [s.clients for s in shards] == [1, 1]


def test_merge_results_adds_up() -> None:
    results = []
    for offset in (0, 1):
        rec = Recorder()
        rec.measuring = True
        for ms in range(1, 101):
            rec.ok("tools/call", ms / 1000)
        rec.fail("http_500", "boom")
        rec.count("progress_notifications", 3)
        results.append(
            rec.snapshot(clients=2, window=(10.0 + offset, 20.0 + offset), cpu_s=1.0, cpu_total_s=2)
        )
    merged = merge_results(results)
    hist = Histogram.from_wire(merged.ops["tools/call"])
    assert hist.count == 200
    assert 50_000 <= hist.percentile(50) <= 50_000 * (1 + 2 / 256)
    assert merged.errors == {"http_500": 2}
    assert merged.error_samples == {"http_500": ["boom", "boom"]}
    assert merged.counters == {"progress_notifications": 6}
    assert (merged.window_start_s, merged.window_end_s) == (10.0, 21.0)
    assert (merged.clients, merged.cpu_s) == (4, 2.0)


def test_recorder_ignores_everything_until_measuring() -> None:
    rec = Recorder()
    rec.ok("x", 0.1)
    rec.fail("y")
    rec.count("z")
    rec.observe("w", 0.1)
    assert (rec.completed, rec.failed, rec.ops, rec.counters) == (0, 0, {}, {})
