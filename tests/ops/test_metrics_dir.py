"""Node-wide metrics from the workers' shared files: merge rules, retirement, no double counts.

Stand-in workers (``tests/ops/metrics_worker.py``) are real processes writing through the
client's multiprocess mode; this process reads their directory as a scrape would. The
multi-process server is in test_metrics_workers.py.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio
from prometheus_client.mmap_dict import MmapedDict

from scalemcp.observability import metrics, metrics_dir

CALLS = 'scalemcp_requests_total{era="session",method="tools/call",outcome="ok"}'
ROOT = Path(__file__).resolve().parent.parent.parent


def _worker(directory: Path, worker: str, calls: int, sessions: float = 0, streams: float = 0,
            waits: tuple[float, ...] = (), *, kill: bool = False, join: bool = True) -> None:
    flags = [*(["--kill"] if kill else []), *([] if join else ["--no-join"])]
    args = [str(directory), worker, str(calls), str(sessions), str(streams),
            *map(str, waits), *flags]
    done = subprocess.run([sys.executable, "-m", "tests.ops.metrics_worker", *args], cwd=ROOT,
                          timeout=60, check=False)
    assert done.returncode == (-9 if kill else 0)


async def _scrape(directory: Path) -> str:
    spec = metrics_dir.WorkerSpec(str(directory), "9-9", "9")  # this process reads only
    node = metrics_dir.NodeMetrics(metrics.REGISTRY, lambda: None, spec, interval_s=3600)
    return (await node.render()).decode()


def _value(text: str, series: str) -> float:
    found = re.findall(rf"^{re.escape(series)} (\S+)$", text, flags=re.MULTILINE)
    assert len(found) == 1, f"{series} in:\n{text}"
    return float(found[0])


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(metrics_dir.ENV, raising=False)  # prepare_dir sets it: undone after
    path, made = metrics_dir.prepare_dir(str(tmp_path / "metrics"))
    assert path
    assert not made
    return Path(path)


async def test_counters_and_histograms_add_up_gauges_follow_their_mode(directory: Path
                                                                      ) -> None:
    _worker(directory, "0-1", 3, sessions=7, streams=2, waits=(0.0003, 2.0))
    _worker(directory, "1-2", 4, sessions=9, streams=5, waits=(0.02,), kill=True)
    text = await _scrape(directory)
    assert _value(text, CALLS) == 7  # the killed worker's counts were shared already
    assert _value(text, "scalemcp_sessions") == 9  # the same fleet-wide figure: not 16
    assert _value(text, 'scalemcp_open_streams{era="session",transport="sse"}') == 7
    bucket = 'scalemcp_redis_round_trip_seconds_bucket{le="%s",operation="load"}'
    assert _value(text, bucket % "0.0005") == 1
    assert _value(text, bucket % "0.025") == 2
    assert _value(text, bucket % "+Inf") == 3
    assert _value(text, 'scalemcp_redis_round_trip_seconds_count{operation="load"}') == 3
    assert _value(text, 'scalemcp_redis_round_trip_seconds_sum{operation="load"}') == \
        pytest.approx(2.0203)
    assert _value(text, "scalemcp_workers") == 2
    assert _value(text, "scalemcp_worker_exits_total") == 0
    assert set(re.findall(r'snapshot_age_seconds\{worker="(\d)"\}', text)) == {"0", "1"}
    assert "# TYPE scalemcp_rate_limited_total counter" in text  # described before a value
    assert not [name for name in os.listdir(directory) if "pre-" in name]  # left at join


async def test_a_retired_worker_stays_counted_once(directory: Path) -> None:
    _worker(directory, "0-1", 3, sessions=7, streams=2)
    _worker(directory, "1-2", 4, sessions=1, streams=5)
    metrics_dir.retire(str(directory), "0-1")
    assert not [name for name in os.listdir(directory) if name.endswith("_0-1.db")]
    text = await _scrape(directory)
    assert _value(text, CALLS) == 7
    assert _value(text, "scalemcp_sessions") == 1  # a dead worker's gauges go with it
    assert _value(text, 'scalemcp_open_streams{era="session",transport="sse"}') == 5
    assert _value(text, "scalemcp_workers") == 1
    _worker(directory, "0-3", 5)  # the replacement in slot 0 counts from zero
    assert _value(await _scrape(directory), CALLS) == 12
    metrics_dir.retire(str(directory), "0-3")
    text = await _scrape(directory)
    assert _value(text, CALLS) == 12
    assert _value(text, "scalemcp_worker_exits_total") == 2
    assert sorted(name for name in os.listdir(directory) if name.endswith(".db")) == [
        "counter_1-2.db", "counter_retired.db", "gauge_liveall_1-2.db",
        "gauge_livemax_1-2.db", "gauge_livesum_1-2.db", "histogram_1-2.db",
        "histogram_retired.db"]  # files do not pile up


async def test_a_worker_that_died_before_joining_leaves_nothing_behind(directory: Path
                                                                      ) -> None:
    _worker(directory, "0-1", 0, join=False)
    assert [name for name in os.listdir(directory) if "pre-" in name]
    metrics_dir.retire(str(directory), "0-1")
    assert not [name for name in os.listdir(directory) if "pre-" in name]


def _held(directory: Path, exclusive: bool) -> bool:
    """Whether someone holds the directory's lock so that this one can't be had now."""
    fd = os.open(directory / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def test_a_scrape_and_a_retirement_never_overlap(directory: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A scrape lists and reads under the shared lock; a fold reads, writes and deletes under
    the exclusive one: so a dead worker's counts are read in its files or the retired ones."""
    _worker(directory, "0-1", 3)
    phase = "scrape"
    blocked: dict[str, list[bool]] = {"scrape": [], "retire": []}
    read = MmapedDict.read_all_values_from_file

    def spy(path: str) -> object:
        # While a scrape reads, no fold may start; while a fold reads, no scrape may.
        blocked[phase].append(_held(directory, exclusive=phase == "scrape"))
        return read(path)

    monkeypatch.setattr(MmapedDict, "read_all_values_from_file", staticmethod(spy))
    await _scrape(directory)
    phase = "retire"
    metrics_dir.retire(str(directory), "0-1")
    assert blocked["scrape"]
    assert blocked["retire"]
    assert all(blocked["scrape"]), blocked
    assert all(blocked["retire"]), blocked
    assert not _held(directory, exclusive=True)  # and both let go


def test_prepare_dir_clears_what_a_previous_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics_dir.ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan = tmp_path / "tmp" / f"scalemcp-metrics-{gone.pid}-x"  # killed before cleaning up
    running = tmp_path / "tmp" / f"scalemcp-metrics-{os.getpid()}-y"
    orphan.mkdir()
    running.mkdir()
    for name in ("counter_0-1.db", "histogram_retired.db", ".db-counter-retired.tmp",
                 "keep.txt"):
        (tmp_path / name).write_bytes(b"")
    path, made = metrics_dir.prepare_dir(str(tmp_path))
    assert (path, made) == (str(tmp_path), False)
    assert sorted(os.listdir(tmp_path)) == [".lock", "keep.txt", "tmp"]
    assert os.environ[metrics_dir.ENV] == path  # what the workers started next will use
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


async def test_a_worker_refreshes_its_read_gauges_on_schedule(
        directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = metrics_dir.WorkerSpec(str(directory), "0-1", "0")
    reads: list[int] = []
    third = trio.Event()

    def read() -> None:
        reads.append(1)
        if len(reads) == 3:
            third.set()

    node = metrics_dir.NodeMetrics(metrics.REGISTRY, read, spec, interval_s=0.01)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(node.serve)
            assert len(reads) == 1  # before it reports started
            await third.wait()  # then every interval
            before = len(reads)
            await node.render()
            assert len(reads) > before  # and before each answer
            nursery.cancel_scope.cancel()


async def test_a_scrape_without_its_directory_answers_for_the_worker(
        directory: Path, caplog: pytest.LogCaptureFixture) -> None:
    _worker(directory, "0-1", 3)
    shutil.rmtree(directory)  # e.g. a cleaner emptied /tmp under a running server
    text = await _scrape(directory)
    assert "# TYPE scalemcp_requests_total counter" in text  # this process's own figures
    assert "scalemcp_workers" not in text
    assert "answers for this worker alone" in caplog.text
