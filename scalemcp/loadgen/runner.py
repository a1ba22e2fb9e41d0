"""Run one process's share of a bench: open the clients, pace them, time them.

Theory of operation: every simulated client is a task that opens its HTTP
client and runs the scenario's ``setup``; when all are ready the process
reports ready (``on_ready``, the multi-process barrier) and the clock starts.
Each operation takes an intended start time from the shared `Pacer` and is
timed from it. An operation is measured when its intended start falls inside
the window (after the warmup); warmup operations write to a throwaway
`Recorder`. When the pacer runs out, clients finish their operation in flight
(bounded by ``timeout_s``), tear down, and the window closes at the last
completion. CPU time is sampled at both ends of the window.

A server that stops accepting connections mid-run ends it: once every
operation for `UNREACHABLE_S` has failed to connect, the pacer stops handing
out slots and the result says why (``aborted``), instead of thousands of
instant failures filling the window (a closed-loop client also pauses
briefly after each refused connection, as a real client would).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

import trio

from .clients import McpLike, open_mcp_client
from .config import BenchConfig, Shard
from .errors import McpError
from .http import ConnectError, HttpError
from .progress import Phase, Progress
from .scenarios import ClientCtx, Scenario, make_scenario
from .schedule import Pacer
from .stats import ProcResult, Recorder

__all__ = ["UNREACHABLE_S", "ProgressFn", "run_shard"]

ProgressFn = Callable[[Progress], None]
"""Called about twice a second with where the run is."""
UNREACHABLE_S = 3.0
"""A run ends once operations have failed to connect (and none succeeded) this long."""
_TEARDOWN_S = 2.0
_CONNECT_BACKOFF_S = 0.1
_PROGRESS_S = 0.5


def error_kind(exc: BaseException) -> tuple[str, str]:
    """The error-kind label and detail for a failed operation."""
    if isinstance(exc, McpError):
        return exc.kind, exc.detail
    if isinstance(exc, trio.TooSlowError):
        return "timeout", "operation exceeded --timeout"
    if isinstance(exc, ConnectError):
        return "connect", str(exc)
    if isinstance(exc, HttpError):
        return "protocol", str(exc)
    return f"unexpected:{type(exc).__name__}", str(exc)


class _Run:
    def __init__(self, config: BenchConfig, shard: Shard) -> None:
        self.config = config
        self.shard = shard
        self.scenario: Scenario = make_scenario(config)
        self.rec = Recorder()
        self.rec.measuring = True
        self.warm = Recorder()
        self.warm.measuring = True
        self.ready = 0
        self.all_ready = trio.Event()
        self.go = trio.Event()
        self.pacer: Pacer | None = None
        self.op_clients_left = shard.clients - self.scenario.background_clients(shard.clients)
        self.ops_done = trio.Event()
        self.last_done = 0.0
        self.start: float | None = None
        self.failing_since: float | None = None
        """When the current run of connect failures began (``None``: connecting works)."""
        self.aborted: str | None = None

    def progress(self) -> Progress:
        """Where the run is now; see `scalemcp.loadgen.progress`."""
        pacer, now = self.pacer, trio.current_time()
        phase: Phase
        if pacer is None or self.start is None:
            phase, rec, elapsed = "connecting", self.warm, 0.0
        elif now < pacer.measure_from:
            phase, rec, elapsed = "warm-up", self.warm, now - self.start
        else:
            phase, rec, elapsed = "measuring", self.rec, now - self.start
        p99 = max((h.percentile(99) for h in rec.ops.values()), default=None)
        return Progress(
            phase=phase,
            elapsed_s=elapsed,
            ready=self.ready,
            clients=self.shard.clients,
            completed=rec.completed,
            failed=rec.failed,
            p99_us=p99 if phase == "measuring" else None,
        )

    def connect_failed(self, detail: str) -> None:
        now = trio.current_time()
        if self.failing_since is None:
            self.failing_since = now
        elif now - self.failing_since >= UNREACHABLE_S and self.aborted is None:
            self.aborted = f"the server refused connections for {UNREACHABLE_S:g} s: {detail}"
            if self.pacer is not None:
                self.pacer.stop()

    async def client(self, index: int) -> None:
        background = index < self.scenario.background_clients(self.shard.clients)
        async with open_mcp_client(self.config) as mcp:
            await self.drive(index, mcp, background)

    async def drive(self, index: int, mcp: McpLike, background: bool) -> None:
        ctx = ClientCtx(index, mcp, self.warm, self.config)
        ctx.state = "listener" if background else None
        try:
            with trio.fail_after(self.config.timeout_s):
                await self.scenario.setup(ctx)
        except (McpError, HttpError, trio.TooSlowError) as exc:
            kind, detail = error_kind(exc)
            self.rec.fail("setup:" + kind, detail)
            if background:  # a listener that could not subscribe sits the run out
                self._mark_ready()
                return
        self._mark_ready()
        await self.go.wait()
        try:
            if background:
                await self._background(ctx)
            else:
                await self._loop(ctx)
        finally:
            with trio.move_on_after(_TEARDOWN_S) as scope:
                scope.shield = True
                with contextlib.suppress(McpError, HttpError):
                    await self.scenario.teardown(ctx)

    def _mark_ready(self) -> None:
        self.ready += 1
        if self.ready == self.shard.clients:
            self.all_ready.set()

    async def _background(self, ctx: ClientCtx) -> None:
        assert self.pacer is not None
        await trio.sleep_until(self.pacer.measure_from)
        ctx.rec = self.rec
        try:
            await self.scenario.background(ctx)
        except (McpError, HttpError) as exc:
            self.rec.fail(*error_kind(exc))

    async def _loop(self, ctx: ClientCtx) -> None:
        pacer = self.pacer
        assert pacer is not None
        open_loop = pacer.rate is not None
        timeout = self.config.timeout_s
        try:
            while True:
                intended = await pacer.next()
                if intended is None:
                    break
                measured = intended >= pacer.measure_from
                rec = self.rec if measured else self.warm
                ctx.rec = rec
                if open_loop:
                    rec.observe("schedule_lag", trio.current_time() - intended)
                try:
                    with trio.fail_after(timeout):
                        name = await self.scenario.op(ctx)
                except Exception as exc:  # counted, not fatal: one odd answer must not end a run
                    kind, detail = error_kind(exc)
                    rec.fail(kind, detail)
                    if kind == "connect":
                        self.connect_failed(detail)
                        if not open_loop:  # as a real client would, not thousands a second
                            await trio.sleep(_CONNECT_BACKOFF_S)
                    # An operation that fails before any I/O never yields: without this,
                    # a closed loop of instant failures starves every other task.
                    await trio.lowlevel.checkpoint()
                else:
                    now = trio.current_time()
                    rec.ok(name, now - intended)
                    self.failing_since = None
                    if measured:
                        self.last_done = now
        finally:
            self.op_clients_left -= 1
            if self.op_clients_left <= 0:
                self.ops_done.set()


async def run_shard(
    config: BenchConfig,
    shard: Shard,
    *,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    on_progress: ProgressFn | None = None,
) -> ProcResult:
    """Run ``shard`` of ``config`` in this process and return its measurements."""
    run = _Run(config, shard)
    cpu_start = time.process_time()
    async with trio.open_nursery() as nursery:
        for index in range(shard.clients):
            nursery.start_soon(run.client, index)
        if on_progress is not None:
            nursery.start_soon(_report_progress, run, on_progress)
        with trio.fail_after(config.timeout_s + 5):
            await run.all_ready.wait()
        if on_ready is not None:
            await on_ready()
        start = run.start = trio.current_time()
        measure_from = start + config.warmup_s
        end = measure_from + config.duration_s if config.duration_s is not None else None
        run.pacer = Pacer(
            start=start, measure_from=measure_from, end=end, rate=shard.rate, budget=shard.budget
        )
        run.go.set()
        await trio.sleep_until(measure_from)
        cpu0, mono0, trio0 = time.process_time(), time.monotonic(), trio.current_time()
        if run.op_clients_left > 0:
            await run.ops_done.wait()
        cpu1, trio1 = time.process_time(), trio.current_time()
        window_end = max(run.last_done, trio0) if end is None else max(run.last_done, end)
        mono1 = mono0 + (min(window_end, trio1) - trio0)
        nursery.cancel_scope.cancel()
    return run.rec.snapshot(
        clients=shard.clients,
        window=(mono0, mono1),
        cpu_s=cpu1 - cpu0,
        cpu_total_s=time.process_time() - cpu_start,
        aborted=run.aborted,
    )


async def _report_progress(run: _Run, on_progress: ProgressFn) -> None:
    while True:
        await trio.sleep(_PROGRESS_S)
        on_progress(run.progress())
