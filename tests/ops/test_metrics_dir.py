"""Node-wide metrics from per-worker snapshots: merge rules, retirement, no double counts.

The multi-process run is in test_metrics_workers.py; here the pieces, with the races of
the module's theory of operation forced deterministically.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from scalemcp.observability import metrics_dir
from scalemcp.observability.exposition import Snapshot, merge, render
from scalemcp.observability.metrics import Metrics


def _registry(requests: int, sessions: float, streams: float, waited: list[float]) -> Metrics:
    registry = Metrics()
    counter = registry.counter("t_requests_total", "requests", ("method",))
    counter.labels("tools/call").inc(requests)
    registry.gauge("t_sessions", "fleet-wide", read=lambda: sessions, merge="max")
    registry.gauge("t_open_streams", "local", ("era",)).labels("session").set(streams)
    registry.gauge("t_queue", "per worker", merge="worker").labels().set(streams * 10)
    hist = registry.histogram("t_wait_seconds", "waits", buckets=(0.1, 1.0))
    for seconds in waited:
        hist.labels().observe(seconds)
    return registry


def _value(text: str, series: str) -> float:
    found = re.findall(rf"^{re.escape(series)} (\S+)$", text, flags=re.MULTILINE)
    assert len(found) == 1, f"{series} in:\n{text}"
    return float(found[0])


def _write(directory: Path, registry: Metrics, worker: str) -> Snapshot:
    snapshot = registry.snapshot(worker, worker.split("-")[0])
    metrics_dir._write(str(directory / f"w-{worker}.json"), snapshot)
    return snapshot


def test_counters_and_histograms_add_up_gauges_follow_their_rule() -> None:
    a = _registry(3, sessions=7, streams=2, waited=[0.05, 2.0]).snapshot("0-1", "0")
    b = _registry(4, sessions=9, streams=5, waited=[0.5]).snapshot("1-2", "1")
    text = render(merge([a, b])).decode()
    assert _value(text, 't_requests_total{method="tools/call"}') == 7
    assert _value(text, "t_sessions") == 9  # the same fleet-wide figure: not 16
    assert _value(text, 't_open_streams{era="session"}') == 7
    assert _value(text, 't_queue{worker="0"}') == 20
    assert _value(text, 't_queue{worker="1"}') == 50
    assert _value(text, 't_wait_seconds_bucket{le="0.1"}') == 1
    assert _value(text, 't_wait_seconds_bucket{le="1"}') == 2
    assert _value(text, 't_wait_seconds_bucket{le="+Inf"}') == 3
    assert _value(text, "t_wait_seconds_count") == 3
    assert _value(text, "t_wait_seconds_sum") == pytest.approx(2.55)
    assert "# TYPE t_wait_seconds histogram" in text


def test_a_retired_worker_stays_counted_once(tmp_path: Path) -> None:
    a, b = _registry(3, 1, 1, []), _registry(4, 1, 1, [])
    _write(tmp_path, a, "0-1")
    own = _write(tmp_path, b, "1-2")

    def total() -> float:
        families = merge(metrics_dir.read_node(str(tmp_path), own))
        return _value(render(families).decode(), 't_requests_total{method="tools/call"}')

    assert total() == 7
    metrics_dir.retire(str(tmp_path), "0-1")
    assert not (tmp_path / "w-0-1.json").exists()
    assert total() == 7
    a2 = _registry(5, 1, 1, [])  # the replacement in slot 0 counts from zero
    _write(tmp_path, a2, "0-3")
    assert total() == 12
    metrics_dir.retire(str(tmp_path), "0-3")
    assert total() == 12
    retired = metrics_dir._read(str(tmp_path / metrics_dir.RETIRED))
    assert retired is not None
    assert retired.absorbed == ["0-1", "0-3"]
    assert retired.exits == 2
    assert "t_sessions" not in retired.families  # a dead worker's gauges go with it


def test_a_worker_retired_while_a_scrape_reads_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two races: the file read, then folded; the file listed, folded, then gone."""
    _write(tmp_path, _registry(3, 1, 1, []), "0-1")
    _write(tmp_path, _registry(2, 1, 1, []), "2-5")
    own = _registry(4, 1, 1, []).snapshot("1-2", "1")
    read = metrics_dir._read
    listdir = os.listdir

    def read_then_retire(path: str) -> Snapshot | None:
        snapshot = read(path)
        if path.endswith("w-0-1.json"):
            with monkeypatch.context() as patched:
                patched.setattr(metrics_dir, "_read", read)
                metrics_dir.retire(str(tmp_path), "0-1")  # folded right after it was read
        return snapshot

    def list_then_retire(path: str) -> list[str]:
        names = listdir(path)
        if "w-2-5.json" in names:
            with monkeypatch.context() as patched:
                patched.setattr(metrics_dir, "_read", read)
                metrics_dir.retire(str(tmp_path), "2-5")  # gone before the reader opens it
        return names

    monkeypatch.setattr(metrics_dir, "_read", read_then_retire)
    monkeypatch.setattr(metrics_dir.os, "listdir", list_then_retire)
    snapshots = metrics_dir.read_node(str(tmp_path), own)
    text = render(merge(snapshots)).decode()
    assert _value(text, 't_requests_total{method="tools/call"}') == 9


def test_prepare_dir_clears_what_a_previous_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan = tmp_path / "tmp" / f"scalemcp-metrics-{gone.pid}-x"  # killed before cleaning up
    running = tmp_path / "tmp" / f"scalemcp-metrics-{os.getpid()}-y"
    orphan.mkdir()
    running.mkdir()
    (tmp_path / "w-0-1.json").write_bytes(b"{}")
    (tmp_path / metrics_dir.RETIRED).write_bytes(b"{}")
    (tmp_path / "keep.txt").write_bytes(b"mine")
    path, made = metrics_dir.prepare_dir(str(tmp_path))
    assert (path, made) == (str(tmp_path), False)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt", "tmp"]
    made_path, made = metrics_dir.prepare_dir(None)
    assert made
    assert os.path.dirname(made_path) == str(tmp_path / "tmp")
    assert not orphan.exists()
    assert running.exists()
    metrics_dir.remove_dir(made_path)
    assert not os.path.exists(made_path)
    unwritable = tmp_path / "file"
    unwritable.write_bytes(b"")
    assert metrics_dir.prepare_dir(str(unwritable / "sub")) == ("", False)  # serves anyway


async def test_a_worker_writes_on_schedule_before_each_answer_and_when_it_stops(
    tmp_path: Path,
) -> None:
    registry = _registry(1, 1, 1, [])
    counter = registry.counter("t_requests_total", "requests", ("method",)).labels("tools/call")
    spec = metrics_dir.WorkerSpec(str(tmp_path), "0-1", "0")
    node = metrics_dir.NodeMetrics(registry, spec, interval_s=3600)
    sibling = _registry(10, 1, 1, [])
    _write(tmp_path, sibling, "1-2")

    def on_disk() -> float:
        snapshot = metrics_dir._read(str(tmp_path / "w-0-1.json"))
        assert snapshot is not None
        return snapshot.families["t_requests_total"].series[0].value

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(node.serve)
            assert on_disk() == 1
            counter.inc()
            text = (await node.render()).decode()
            assert _value(text, 't_requests_total{method="tools/call"}') == 12
            assert _value(text, "scalemcp_workers") == 2
            assert _value(text, 'scalemcp_worker_snapshot_age_seconds{worker="0"}') < 1
            assert on_disk() == 2  # what the answer said is on disk before it leaves
            counter.inc()
            nursery.cancel_scope.cancel()
    assert on_disk() == 3
