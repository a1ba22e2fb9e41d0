"""One ``/metrics`` for a node of N workers: snapshot files in a per-server directory.

Theory of operation
-------------------
The supervisor behind ``scalemcp serve`` owns one directory per server (``metrics_dir``,
by default a fresh temporary directory it removes at exit; put it, or ``TMPDIR``, on a
tmpfs) and names each worker process it starts ``<slot>-<generation>``: the slot is the
worker's place, ``0``..``N-1``, kept by its replacement; the generation counts starts.

Each worker writes its whole registry to ``w-<name>.json`` every
``metrics_flush_interval_s``, when it stops, and before it answers a scrape, through a
temporary file and a rename, one write at a time: a reader sees a whole snapshot, and a
worker's file is only ever replaced by a later one. A scrape, on whichever worker it
lands, merges that worker's fresh snapshot, every other worker's file, and
``retired.json``. When a worker exits, the supervisor folds the counters and histograms
of its last file into ``retired.json`` (with the worker's name in ``absorbed``), renames
it into place, and only then deletes the worker's file.

Why counters never go backwards: whatever a scrape reports was on disk before the
answer left, and stays counted. A reader reads the worker files first and
``retired.json`` last, skipping the files of absorbed workers: a file that vanished
after the listing was folded before it was deleted, so the ``retired.json`` read later
has it; a file read and then folded is skipped. Figures counted after a worker's last
write are lost if it is killed, but no scrape ever saw them.

Staleness: the other workers' figures are at most ``metrics_flush_interval_s`` old
(``scalemcp_worker_snapshot_age_seconds`` shows it). A dead worker's gauges go with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time

import msgspec
import trio

from .exposition import Family, Series, Snapshot, fold, merge, render
from .metrics import Metrics

__all__ = ["NodeMetrics", "WorkerSpec", "joined", "prepare_dir", "remove_dir", "retire"]

log = logging.getLogger("scalemcp.server")
RETIRED = "retired.json"
_PREFIX = "scalemcp-metrics-"
#: Absorbed names kept in retired.json (a reader still holding an older file is long gone).
_ABSORBED_KEPT = 10_000
_decoder = msgspec.json.Decoder(Snapshot)
_encoder = msgspec.json.Encoder()


class WorkerSpec(msgspec.Struct, frozen=True):
    """What the supervisor tells a worker process: where to write, under what name."""

    directory: str
    worker: str
    slot: str


_joined: WorkerSpec | None = None


def join(spec: WorkerSpec) -> None:
    """Called in a worker process before the app is built (see :mod:`scalemcp.ops.workers`)."""
    global _joined
    _joined = spec


def joined() -> WorkerSpec | None:
    """This process's place in a node's metrics directory; None outside ``serve`` (or if
    the supervisor could not make one)."""
    return _joined if _joined is not None and _joined.directory else None


def _worker_file(directory: str, worker: str) -> str:
    return os.path.join(directory, f"w-{worker}.json")


def _write(path: str, snapshot: Snapshot) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp")
    with open(tmp, "wb") as f:
        f.write(_encoder.encode(snapshot))
    os.replace(tmp, path)


def _read(path: str) -> Snapshot | None:
    try:
        with open(path, "rb") as f:
            return _decoder.decode(f.read())
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        log.warning("metrics snapshot %s unreadable: %s", path, exc)
        return None


def read_node(directory: str, own: Snapshot) -> list[Snapshot]:
    """``own``, the other workers' files, then retired figures, none counted twice."""
    snapshots = [own]
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
    for name in names:
        if name.startswith("w-") and name.endswith(".json") and name[2:-5] != own.worker:
            snapshot = _read(os.path.join(directory, name))
            if snapshot is not None:
                snapshots.append(snapshot)
    retired = _read(os.path.join(directory, RETIRED))  # last: see the module docstring
    if retired is not None:
        gone = set(retired.absorbed)
        snapshots = [s for s in snapshots if s.worker not in gone]
        snapshots.append(retired)
    return snapshots


# -- the supervisor's side ----------------------------------------------------------------


def prepare_dir(path: str | None) -> tuple[str, bool]:
    """The directory to use (made if ``path`` is None) and whether it was made here.

    A given directory is emptied of snapshots a previous run left. If none can be had,
    ("", False): each worker then answers ``/metrics`` for itself alone (logged).
    """
    try:
        if path is None:
            _remove_orphans()
            return tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"), True
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name == RETIRED or name.startswith(("w-", ".w-", f".{RETIRED}")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(path, name))
    except OSError as exc:
        log.warning("no metrics directory (%s): /metrics answers for one worker at a time",
                    exc)
        return "", False
    return path, False


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
    """Fold the exited ``worker``'s counters into retired.json, then delete its file."""
    if not directory:
        return
    try:
        _retire(directory, worker)
    except OSError as exc:
        log.warning("metrics of worker %s not retired: %s", worker, exc)


def _retire(directory: str, worker: str) -> None:
    path = _worker_file(directory, worker)
    gone = _read(path) or Snapshot()  # (none if it died before its first write)
    retired_path = os.path.join(directory, RETIRED)
    retired = _read(retired_path) or Snapshot()
    folded = fold(retired, msgspec.structs.replace(gone, worker=worker))
    folded.absorbed = folded.absorbed[-_ABSORBED_KEPT:]
    _write(retired_path, folded)
    for stale in (path, os.path.join(directory, f".w-{worker}.json.tmp")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)


def remove_dir(path: str) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


# -- the worker's side --------------------------------------------------------------------


class NodeMetrics:
    """A worker's writer of its snapshot, and the node-wide answer to a scrape."""

    def __init__(self, registry: Metrics, spec: WorkerSpec, interval_s: float) -> None:
        self.registry = registry
        self.spec = spec
        self.interval_s = interval_s
        self._path = _worker_file(spec.directory, spec.worker)
        self._lock = trio.Lock()
        self._failing = False

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Write a snapshot every ``interval_s`` until cancelled, and once more then."""
        try:
            await self.flush()
            task_status.started()
            while True:
                await trio.sleep(self.interval_s)
                await self.flush()
        finally:
            with contextlib.suppress(OSError):  # the last figures of a stopping worker
                _write(self._path, self._snapshot())

    def _snapshot(self) -> Snapshot:
        return self.registry.snapshot(self.spec.worker, self.spec.slot)

    async def flush(self) -> Snapshot:
        """Write a fresh snapshot (one write at a time, so the file never goes back)."""
        async with self._lock:
            snapshot = self._snapshot()
            try:
                await trio.to_thread.run_sync(_write, self._path, snapshot)
            except OSError as exc:  # siblings see older figures until a write succeeds
                if not self._failing:
                    log.warning("cannot write metrics to %s: %s", self._path, exc)
                self._failing = True
            else:
                self._failing = False
        return snapshot

    async def render(self) -> bytes:
        own = await self.flush()
        snapshots = await trio.to_thread.run_sync(read_node, self.spec.directory, own)
        families = merge(snapshots)
        families.update(_node_families(snapshots))
        return render(families)


def _node_families(snapshots: list[Snapshot]) -> dict[str, Family]:
    now = time.time()
    live = [s for s in snapshots if s.worker]
    ages: dict[str, float] = {}
    for s in live:  # a replacement and its not yet retired predecessor share a slot
        ages[s.slot] = min(ages.get(s.slot, float("inf")), round(max(0.0, now - s.taken_at), 3))
    exits = sum(s.exits for s in snapshots)
    return {
        "scalemcp_workers": Family("gauge", "Worker processes whose figures this answer merges",
                                   series=[Series([], len(live))]),
        "scalemcp_worker_snapshot_age_seconds": Family(
            "gauge", "Age of each worker's figures in this answer (0: the one answering)",
            ["worker"], [Series([slot], ages[slot]) for slot in sorted(ages)]),
        "scalemcp_worker_exits_total": Family(
            "counter", "Worker processes that exited; their counts stay in the totals",
            series=[Series([], exits)]),
    }
