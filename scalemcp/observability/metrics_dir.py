"""One ``/metrics`` for a node of N workers: prometheus_client's multiprocess mode.

Theory of operation
-------------------
The supervisor behind ``scalemcp serve`` owns one directory per server (``metrics_dir``,
by default a fresh temporary directory it removes at exit; put it, or ``TMPDIR``, on a
tmpfs), names it in ``PROMETHEUS_MULTIPROC_DIR`` for the workers it starts, and names each
worker ``<slot>-<generation>``: the slot is the worker's place, ``0``..``N-1``, kept by its
replacement; the generation counts starts.

In a worker, every counter, gauge and histogram value lives in a memory-mapped file of
that directory (``counter_<worker>.db``, ...), written as it changes: the official
client's multiprocess mode, with the worker's name instead of its pid as the file suffix
(:func:`join`; until then a worker writes nothing worth keeping, under ``pre-<pid>``).
Gauges that are read rather than set (live sessions, streams) are set every
``metrics_flush_interval_s`` and before a scrape. A scrape, on whichever worker it lands,
merges every file of the directory with the client's own merge (counters and histograms
add up; gauges by their mode: ``livesum``, or ``livemax`` where every worker sees the same
fleet-wide figure) and adds the node's own series (``scalemcp_workers``, ...).

When a worker exits, the supervisor folds its counters and histograms into
``counter_retired.db`` and ``histogram_retired.db`` (written whole, then renamed into
place), counts the exit there, and deletes the worker's files. A fold holds the
directory's lock exclusively and a scrape reads under the shared lock, so a scrape sees a
dead worker's counts either in its files or in the retired ones, never both or neither:
counters never go backwards, and files do not pile up however often workers are replaced.
Nothing is lost when a worker is killed: its values were in the shared files already.
A dead worker's gauges go with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import msgspec
import trio
from prometheus_client import CollectorRegistry, Gauge, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["NodeMetrics", "WorkerSpec", "join", "joined", "prepare_dir", "remove_dir",
           "retire", "share_values"]

log = logging.getLogger("scalemcp.server")
#: The client reads its directory from this variable (set for the workers only).
ENV = "PROMETHEUS_MULTIPROC_DIR"
RETIRED = "retired"
_LOCK = ".lock"
_PREFIX = "scalemcp-metrics-"
_PRE_JOIN = "pre-"
_EXITS = "scalemcp_worker_exits"
_EXITS_HELP = "Worker processes that exited; their counts stay in the totals"
#: Each worker's last refresh (Unix time), by slot: the age series is made from it.
_REFRESHED = "scalemcp_worker_refreshed_at"


class WorkerSpec(msgspec.Struct, frozen=True):
    """What the supervisor tells a worker process: where to write, under what name."""

    directory: str
    worker: str
    slot: str


_identity = f"{_PRE_JOIN}{os.getpid()}"
_joined: WorkerSpec | None = None
_refreshed: Gauge | None = None


def _process_identity() -> str:
    return _identity


def share_values() -> None:
    """In a worker of ``scalemcp serve`` (:data:`ENV` set), keep values in its directory,
    under this process's name. Called before any series is made (``metrics`` does)."""
    if os.environ.get(ENV):
        values.ValueClass = values.MultiProcessValue(_process_identity)


def join(spec: WorkerSpec) -> None:
    """Called in a worker process before the app is built (see :mod:`scalemcp.ops.workers`):
    from now on its values are the files named after ``spec.worker``."""
    global _identity, _joined, _refreshed
    if not spec.directory or os.environ.get(ENV) != spec.directory:
        return  # no shared directory: this worker answers /metrics for itself
    before, _identity, _joined = _identity, spec.worker, spec
    _refreshed = Gauge(_REFRESHED, "Last refresh of each worker's gauges", ("worker",),
                       registry=None, multiprocess_mode="liveall")
    _refreshed.labels(spec.slot).set(time.time())  # files under the new name, values re-read
    _remove(spec.directory, before)


def joined() -> WorkerSpec | None:
    """This process's place in a node's metrics directory; None outside ``serve`` (or if
    the supervisor could not make one)."""
    return _joined


def _files(directory: str, worker: str) -> list[str]:
    suffix = f"_{worker}.db"
    try:
        return [os.path.join(directory, name) for name in os.listdir(directory)
                if name.endswith(suffix)]
    except FileNotFoundError:
        return []


def _remove(directory: str, worker: str) -> None:
    for path in _files(directory, worker):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _locked(directory: str, *, exclusive: bool) -> Iterator[None]:
    fd = os.open(os.path.join(directory, _LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- the supervisor's side ----------------------------------------------------------------


def prepare_dir(path: str | None) -> tuple[str, bool]:
    """The directory to use (made if ``path`` is None) and whether it was made here.

    A given directory is emptied of the files a previous run left. The workers started
    from now on find it in :data:`ENV`. If none can be had, ("", False): each worker then
    answers ``/metrics`` for itself alone (logged).
    """
    try:
        if path is None:
            _remove_orphans()
            path, made = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"), True
        else:
            made = False
            os.makedirs(path, exist_ok=True)
            for name in os.listdir(path):
                if name.endswith(".db") or name.startswith(".db-") or name == _LOCK:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(path, name))
        open(os.path.join(path, _LOCK), "ab").close()  # writable, or say so now
    except OSError as exc:
        log.warning("no metrics directory (%s): /metrics answers for one worker at a time",
                    exc)
        return "", False
    os.environ[ENV] = path  # inherited by the workers, read before their first series
    return path, made


def _remove_orphans() -> None:
    """Remove default directories whose supervisor is gone (killed before it cleaned up)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name.removeprefix(_PREFIX).partition("-")[0]
        if name.startswith(_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's
    return True


def retire(directory: str, worker: str) -> None:
    """Fold the exited ``worker``'s counters into the retired files, then delete its files."""
    if not directory:
        return
    try:
        with _locked(directory, exclusive=True):
            for kind in ("counter", "histogram"):
                _fold(directory, kind, worker)
            _remove(directory, worker)
            _remove_dead_pre_join(directory)
    except OSError as exc:
        log.warning("metrics of worker %s not retired: %s", worker, exc)


def _fold(directory: str, kind: str, worker: str) -> None:
    """``<kind>_retired.db`` plus ``<kind>_<worker>.db``, key by key (values add up)."""
    retired = os.path.join(directory, f"{kind}_{RETIRED}.db")
    totals: dict[str, float] = defaultdict(float)
    for path in (retired, os.path.join(directory, f"{kind}_{worker}.db")):
        with contextlib.suppress(FileNotFoundError):
            for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(path):
                totals[key] += value
    if kind == "counter":
        totals[mmap_key(_EXITS, _EXITS + "_total", [], [], _EXITS_HELP)] += 1
    tmp = os.path.join(directory, f".db-{kind}-{RETIRED}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    written = MmapedDict(tmp)
    try:
        for key, value in totals.items():
            written.write_value(key, value, 0.0)
    finally:
        written.close()
    os.replace(tmp, retired)


def _remove_dead_pre_join(directory: str) -> None:
    """Files of workers that died before :func:`join` (they hold nothing counted)."""
    for name in os.listdir(directory):
        stem = name.rpartition("_")[2].removesuffix(".db")
        pid = stem.removeprefix(_PRE_JOIN)
        if name.endswith(".db") and stem.startswith(_PRE_JOIN) and pid.isdigit() \
                and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


def remove_dir(path: str) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


# -- the worker's side --------------------------------------------------------------------


class NodeMetrics:
    """A worker's refresher of its read gauges, and the node-wide answer to a scrape."""

    def __init__(self, registry: CollectorRegistry, refresh: Callable[[], None],
                 spec: WorkerSpec, interval_s: float) -> None:
        self.spec = spec
        self.interval_s = interval_s
        self._registry = registry
        self._refresh = refresh
        self._scrape = CollectorRegistry(auto_describe=False)
        self._scrape.register(_NodeCollector(spec.directory, registry))
        self._failing = False

    def refresh(self) -> None:
        """Set this worker's read gauges now (and when it last did, for the age series)."""
        self._refresh()
        if _refreshed is not None:
            _refreshed.labels(self.spec.slot).set(time.time())

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Refresh every ``interval_s`` until cancelled."""
        self.refresh()
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            self.refresh()

    async def render(self) -> bytes:
        """The node's figures; this worker's alone while the directory cannot be read."""
        self.refresh()
        try:
            text = await trio.to_thread.run_sync(generate_latest, self._scrape)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot read the metrics of %s (%s): /metrics answers for this "
                            "worker alone until it can", self.spec.directory, exc)
            self._failing = True
            return generate_latest(self._registry)
        self._failing = False
        return text


class _NodeCollector:
    """Every worker's files, merged; the node's own series; every family described."""

    def __init__(self, directory: str, registry: Collector) -> None:
        self.directory = directory
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        with _locked(self.directory, exclusive=False):
            paths = [os.path.join(self.directory, name) for name in os.listdir(self.directory)
                     if name.endswith(".db")]
            merged = {m.name: m for m in MultiProcessCollector.merge(paths, accumulate=True)}
        refreshed = merged.pop(_REFRESHED, None)
        exits = merged.pop(_EXITS, None)
        for family in self.registry.collect():  # described even before a first value
            yield merged.pop(family.name, None) or Metric(family.name, family.documentation,
                                                          family.type)
        yield from merged.values()  # an app's own prometheus_client series, if any
        yield from _node_families(refreshed, exits)


def _node_families(refreshed: Metric | None, exits: Metric | None) -> Iterator[Metric]:
    now = time.time()
    ages: dict[str, float] = {}
    workers = set()
    for sample in refreshed.samples if refreshed is not None else []:
        workers.add(sample.labels["pid"])  # the client's name for the file suffix
        slot = sample.labels["worker"]  # a replacement and a dead predecessor share a slot
        ages[slot] = min(ages.get(slot, float("inf")), round(max(0.0, now - sample.value), 3))
    yield GaugeMetricFamily("scalemcp_workers",
                            "Worker processes whose figures this answer merges", len(workers))
    age = GaugeMetricFamily("scalemcp_worker_snapshot_age_seconds",
                            "Age of each worker's read gauges in this answer (0: the one "
                            "answering)", labels=["worker"])
    for slot in sorted(ages):
        age.add_metric([slot], ages[slot])
    yield age
    total = sum(s.value for s in exits.samples) if exits is not None else 0.0
    yield CounterMetricFamily(_EXITS, _EXITS_HELP, total)
