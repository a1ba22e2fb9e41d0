"""Several bench processes for one run, and the worker side of that arrangement.

The parent starts ``procs`` workers (``python -m scalemcp.loadgen.procs``), each
given the config and its `Shard` as one JSON line on stdin. A worker opens its
clients, prints ``{"type": "ready"}`` and waits for a ``go`` line, so all
processes start their clocks together; it prints ``progress`` lines (a
`Progress`) about twice a second and finally one ``result`` line (a
`ProcResult`). The
parent merges the results; CPU of the workers is also read back with
``resource.getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import trio

from .config import BenchConfig, Shard, split
from .progress import Progress, merge
from .runner import ProgressFn, run_shard
from .stats import ProcResult

__all__ = ["run_procs", "worker_main"]


class WorkerInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    config: BenchConfig
    shard: Shard


class WorkerLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str
    progress: Progress | None = None
    result: ProcResult | None = None
    error: str | None = None


_line_decoder = msgspec.json.Decoder(WorkerLine)


class _Worker:
    def __init__(self, process: trio.Process, shard: Shard) -> None:
        self.process = process
        self.progress = Progress(
            phase="connecting", elapsed_s=0, ready=0, clients=shard.clients, completed=0, failed=0
        )
        self.result: ProcResult | None = None
        self.error: str | None = None
        self.announced = False


async def _read_lines(worker: _Worker, ready: trio.MemorySendChannel[int]) -> None:
    assert worker.process.stdout is not None
    buf = b""
    async for chunk in worker.process.stdout:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = _line_decoder.decode(raw)
            if line.type == "ready":
                worker.announced = True
                await ready.send(1)
            elif line.type == "progress" and line.progress is not None:
                worker.progress = line.progress
            elif line.type == "result":
                worker.result = line.result
            elif line.type == "error":
                worker.error = line.error
    if not worker.announced:
        worker.announced = True
        worker.error = worker.error or "exited before it was ready"
        await ready.send(0)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


async def run_procs(
    config: BenchConfig, *, on_progress: ProgressFn | None = None
) -> list[ProcResult]:
    """Run ``config`` in ``config.procs`` worker processes; their results, unmerged."""
    shards = split(config)
    workers: list[_Worker] = []
    send, receive = trio.open_memory_channel[int](len(shards))
    async with trio.open_nursery() as nursery:
        for shard in shards:
            command = [sys.executable, "-m", "scalemcp.loadgen.procs"]
            process = await trio.lowlevel.open_process(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_env()
            )
            worker = _Worker(process, shard)
            workers.append(worker)
            nursery.start_soon(_read_lines, worker, send)
            assert process.stdin is not None
            payload = msgspec.json.encode(WorkerInput(config=config, shard=shard))
            await process.stdin.send_all(payload + b"\n")
        if on_progress is not None:
            nursery.start_soon(_progress, workers, on_progress)
        for _ in shards:
            if not await receive.receive():
                failed = next(w.error for w in workers if w.error)
                raise RuntimeError(f"a bench worker failed: {failed}")
        for worker in workers:
            assert worker.process.stdin is not None
            await worker.process.stdin.send_all(b"go\n")
        for worker in workers:
            await worker.process.wait()
        nursery.cancel_scope.cancel()
    missing = [w.error or f"exit status {w.process.returncode}" for w in workers if not w.result]
    if missing:
        raise RuntimeError(f"bench worker(s) failed: {'; '.join(missing)}")
    return [w.result for w in workers if w.result is not None]


async def _progress(workers: list[_Worker], on_progress: ProgressFn) -> None:
    while True:
        await trio.sleep(0.5)
        on_progress(merge([w.progress for w in workers]))


def _emit(line: WorkerLine) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(line) + b"\n")
    sys.stdout.buffer.flush()


async def _worker() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buf = b""
    while b"\n" not in buf:
        chunk = await stdin.receive_some()
        if not chunk:
            return
        buf += chunk
    first, buf = buf.split(b"\n", 1)
    job = msgspec.json.decode(first, type=WorkerInput)

    async def wait_go() -> None:
        nonlocal buf
        _emit(WorkerLine(type="ready"))
        while b"go\n" not in buf:
            chunk = await stdin.receive_some()
            if not chunk:
                raise SystemExit(1)
            buf += chunk

    def progress(snapshot: Progress) -> None:
        _emit(WorkerLine(type="progress", progress=snapshot))

    try:
        result = await run_shard(job.config, job.shard, on_ready=wait_go, on_progress=progress)
    except Exception as exc:
        _emit(WorkerLine(type="error", error=f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from exc
    _emit(WorkerLine(type="result", result=result))


def worker_main() -> None:
    try:
        trio.run(_worker)
    except KeyboardInterrupt:  # the parent got the same Ctrl-C and says so
        raise SystemExit(130) from None


if __name__ == "__main__":
    worker_main()
