"""The process supervisor behind ``scalemcp serve``: Hypercorn trio workers that drain.

Hypercorn's own supervisor stops workers without telling the app, so ``/readyz`` could
not turn 503 and SSE streams were cut when its graceful timeout ran out. This one runs
a worker of scalemcp's own loop (:func:`scalemcp.serving.worker_serve`, or Hypercorn's
``hypercorn.trio.run.worker_serve`` with ``serving_loop=hypercorn``) on sockets the supervisor
binds, with the app's :class:`~.drain.Drain` as the shutdown trigger.

Signals: the supervisor (PID 1 in a container) turns its first SIGTERM/SIGINT/SIGHUP into a
``stop`` order and a second one (a second Ctrl-C, at least a second later: wrappers such as
``timeout`` deliver one stop twice) into ``now``, written to each worker's control pipe. A
worker obeys its pipe and its own signals alike (a terminal's Ctrl-C or systemd signal the
whole process group): the first begins the drain, a later one closes streams at once; if
the supervisor dies, the pipe's end of file begins the drain too. The supervisor waits for the
workers, and kills those still alive ``graceful_timeout`` + 5 s after the stop.

Workers start with SIGINT/SIGTERM ignored until their own handlers are in place (as with
Hypercorn); one that exits 0 on its own is replaced, and so is one killed by a signal (the
OOM killer, ``kill -9``: its streams end for their clients as the Redis backend's liveness
check decides, see ``state.redis_liveness``), unless that happens more than
:data:`_MAX_REPLACED` times within :data:`_CRASH_WINDOW_S` (a crash loop). Any other exit
(the worker failed, e.g. at startup) stops them all.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import Any, Literal, Protocol

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import LifespanFailureError

from ..config import Config
from ..observability import metrics_dir
from ..transport.drain import HARD_STOP_MARGIN_S, Drain

__all__ = ["START_FAILED", "WorkerStartError", "run_workers"]

log = logging.getLogger("scalemcp.server")

#: What serves connections in a worker (the ``serving_loop`` setting).
ServingLoop = Literal["scalemcp", "hypercorn"]
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_KILL_MARGIN_S = 5.0
#: A signal within this time of the first counts as the same one, not as "hurry up".
_REPEAT_AFTER_S = 1.0
#: Workers killed by a signal are replaced, at most this many within the window.
_MAX_REPLACED = 10
_CRASH_WINDOW_S = 60.0
#: A worker that could not start exits with this, after reporting why on its report pipe.
START_FAILED = 3


class WorkerStartError(Exception):
    """A worker could not start; the message is the reason, in one line."""


class _Drainable(Protocol):
    drain: Drain
    config: Config
    #: Set once the app has started (lifespan startup complete).
    ready: trio.Event

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None: ...


class _Worker:
    def __init__(self, ctx: Any, hc: HypercornConfig, sockets: Sockets,
                 metrics: metrics_dir.WorkerSpec, loop: ServingLoop) -> None:
        self.metrics = metrics
        control, self._orders = ctx.Pipe(duplex=False)
        self._reports: Connection
        self._reports, report = ctx.Pipe(duplex=False)
        self.process: SpawnProcess = ctx.Process(
            target=_worker_main, kwargs={"hc": hc, "sockets": sockets, "control": control,
                                         "metrics": metrics, "report": report, "loop": loop})
        #: Why it could not start, once it said so.
        self.failure: str | None = None
        self.process.daemon = hc.daemon
        self.process.start()
        control.close()
        report.close()

    @property
    def reports(self) -> Connection:
        """Readable when the worker says it is ready or why it could not start."""
        return self._reports

    def read_report(self) -> str | None:
        """``"ready"``, ``"failed: <why>"``, or None if nothing (more) was said."""
        with contextlib.suppress(OSError, EOFError):
            if self._reports.poll():
                return str(self._reports.recv_bytes(), errors="replace")
        return None

    def tell(self, order: bytes) -> None:
        with contextlib.suppress(OSError):  # it has exited already
            self._orders.send_bytes(order)

    def close(self) -> None:
        self._orders.close()
        self._reports.close()


def run_workers(hc: HypercornConfig, *, metrics_dir_path: str | None = None,
                on_ready: Callable[[list[tuple[str, int]]], None] | None = None,
                loop: ServingLoop = "scalemcp") -> int:
    """Serve ``hc.application_path`` with ``hc.workers`` processes; the exit code.

    The workers share ``metrics_dir_path`` (default: a temporary directory made and
    removed here) for node-wide ``/metrics`` (see :mod:`.metrics_dir`). A worker that
    cannot start stops them all: :class:`WorkerStartError` says why, once. ``on_ready``
    is called with the bound (host, port) addresses once the first worker serves. ``loop``
    names what serves connections in each worker (``serving_loop``).
    """
    supervisor = _Supervisor(hc, metrics_dir_path, on_ready, loop)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        supervisor.start()
        for sig in _STOP_SIGNALS:
            signal.signal(sig, supervisor.on_signal)
        code = supervisor.run()
        if supervisor.start_failure is not None:
            raise WorkerStartError(supervisor.start_failure)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.close()


class _Supervisor:
    def __init__(self, hc: HypercornConfig, metrics_dir_path: str | None = None,
                 on_ready: Callable[[list[tuple[str, int]]], None] | None = None,
                 loop: ServingLoop = "scalemcp") -> None:
        self.hc = hc
        self.loop: ServingLoop = loop
        self._on_ready = on_ready
        self.metrics_dir, self._made_metrics_dir = metrics_dir.prepare_dir(metrics_dir_path)
        self._started = 0
        self.sockets = hc.create_sockets()
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.stops = 0
        self._first_stop = 0.0
        self.exit_code = 0
        #: Why the first worker that could not start failed.
        self.start_failure: str | None = None
        self._replaced: list[float] = []  # when workers killed by a signal were replaced
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def start(self) -> None:
        for slot in range(self.hc.workers):
            self.workers.append(self._spawn(str(slot)))

    def _spawn(self, slot: str) -> _Worker:
        """A worker in ``slot``, named ``<slot>-<n>`` for the metrics it shares."""
        self._started += 1
        spec = metrics_dir.WorkerSpec(self.metrics_dir, f"{slot}-{self._started}", slot)
        return _Worker(self.ctx, self.hc, self.sockets, spec, self.loop)

    def on_signal(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """First call: workers drain; a later one: they close their streams now."""
        now = time.monotonic()
        if self.stops and now - self._first_stop < _REPEAT_AFTER_S:
            return  # the same stop, delivered twice (e.g. to the process and its group)
        self._first_stop = self._first_stop if self.stops else now
        self.stops += 1
        if self.stops == 2:
            log.info("stopping now: closing open streams")
        for worker in self.workers:
            worker.tell(b"stop" if self.stops == 1 else b"now")
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def run(self) -> int:
        kill_at: float | None = None
        while self.workers:
            timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
            ready = wait([self._wake_r, *(w.process.sentinel for w in self.workers),
                          *(w.reports for w in self.workers)], timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            for worker in self.workers:
                if worker.reports in ready:
                    self._hear(worker)
            if self.stops and kill_at is None:
                kill_at = time.monotonic() + self.hc.graceful_timeout + _KILL_MARGIN_S
                log.info("stopping: %d worker(s) draining for up to %g s (open streams then "
                         "end cleanly; clients resume elsewhere); Ctrl-C again to stop at once",
                         len(self.workers), self.hc.graceful_timeout - HARD_STOP_MARGIN_S)
                self._close_sockets()  # no worker starts any more (see _close_listeners)
            for worker in [w for w in self.workers if w.process.exitcode is not None]:
                self._exited(worker)
            if kill_at is not None and time.monotonic() >= kill_at:
                for worker in self.workers:
                    log.error("worker %d outlived the drain: killed", worker.process.pid)
                    worker.process.kill()
                    self.exit_code = self.exit_code or 1
                kill_at = math.inf  # now only wait for them to go
        return self.exit_code

    def _hear(self, worker: _Worker) -> None:
        """Read what ``worker`` reported: its start failure, or that it serves."""
        while (report := worker.read_report()) is not None:
            self._heard(worker, report)

    def _heard(self, worker: _Worker, report: str) -> None:
        if report.startswith("failed: "):
            worker.failure = report.removeprefix("failed: ")
        elif report == "ready" and self._on_ready is not None:
            on_ready, self._on_ready = self._on_ready, None  # the first worker only
            on_ready([sock.getsockname()[:2] for sock in (
                *self.sockets.secure_sockets, *self.sockets.insecure_sockets)])

    def _exited(self, worker: _Worker) -> None:
        self._hear(worker)
        self.workers.remove(worker)
        worker.close()
        metrics_dir.retire(self.metrics_dir, worker.metrics.worker)  # its counts stay counted
        code = worker.process.exitcode or 0
        if code == START_FAILED:
            reason = worker.failure or "see the log above"
            self.start_failure = self.start_failure or reason
            self.exit_code = self.exit_code or code
            if not self.stops:
                self.on_signal()
        elif self.stops:
            self.exit_code = self.exit_code or code
        elif code == 0:
            self.workers.append(self._spawn(worker.metrics.slot))
        elif code < 0 and self._may_replace():
            log.error("worker %d killed by signal %d: replaced", worker.process.pid, -code)
            self.workers.append(self._spawn(worker.metrics.slot))
        else:
            log.error("worker %d exited with code %d: stopping", worker.process.pid, code)
            self.exit_code = code
            self.on_signal()

    def _may_replace(self) -> bool:
        now = time.monotonic()
        self._replaced = [t for t in self._replaced if now - t < _CRASH_WINDOW_S]
        self._replaced.append(now)
        return len(self._replaced) <= _MAX_REPLACED

    def _close_sockets(self) -> None:
        for sock in (*self.sockets.secure_sockets, *self.sockets.insecure_sockets):
            sock.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self._close_sockets()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._made_metrics_dir:
            metrics_dir.remove_dir(self.metrics_dir)


def _worker_main(hc: HypercornConfig, sockets: Sockets, control: Connection,
                 metrics: metrics_dir.WorkerSpec | None = None,
                 report: Connection | None = None, loop: ServingLoop = "scalemcp") -> None:
    if metrics is not None:
        metrics_dir.join(metrics)  # before the app (and its Observer) is built
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(hc.backlog)
    module, _, attr = hc.application_path.partition(":")
    app: _Drainable | None = None
    try:
        app = getattr(importlib.import_module(module), attr)
        trio.run(_serve_worker, app, hc, sockets, control, report, loop)
    except Exception as exc:
        if report is not None and not getattr(app, "started", False):
            # The supervisor says it once for every worker; the traceback is for debugging.
            log.debug("worker %d could not start", os.getpid(), exc_info=True)
            report.send_bytes(b"failed: " + _start_failure(exc).encode())
            raise SystemExit(START_FAILED) from None
        # Through logging, so the traceback is formatted (and redacted) like every line.
        log.critical("worker %d failed", os.getpid(), exc_info=True)
        raise SystemExit(1) from None


def _start_failure(exc: Exception) -> str:
    if isinstance(exc, LifespanFailureError):
        text = str(exc).partition(". ")[2].strip("'")  # "Lifespan failure in startup. '<m>'"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "worker could not start: " + " ".join(text.split())


async def _serve_worker(app: _Drainable, hc: HypercornConfig, sockets: Sockets,
                        control: Connection, report: Connection | None = None,
                        loop: ServingLoop = "scalemcp") -> None:
    from hypercorn.trio.run import worker_serve as hypercorn_worker_serve
    from hypercorn.utils import wrap_app

    from ..server import shed_admission
    from ..serving import worker_serve

    stopped_accepting = trio.Event()

    async def shutdown_trigger() -> None:
        await app.drain.wait_begun()
        stopped_accepting.set()  # as this returns, Hypercorn cancels its accept loops

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_follow_orders, control, app.drain)
        nursery.start_soon(_close_listeners, stopped_accepting, sockets)
        if report is not None:
            nursery.start_soon(_report_ready, app, report)
        asgi: Any = app
        wrapped = wrap_app(asgi, hc.wsgi_max_body_size, "asgi")
        if loop == "hypercorn":
            await hypercorn_worker_serve(wrapped, hc, sockets=sockets,
                                         shutdown_trigger=shutdown_trigger)
        else:
            await worker_serve(wrapped, hc, sockets=sockets, shutdown_trigger=shutdown_trigger,
                               settings=app.config.connections,
                               admission=shed_admission(asgi))
        nursery.cancel_scope.cancel()


async def _report_ready(app: _Drainable, report: Connection) -> None:
    await app.ready.wait()
    with contextlib.suppress(OSError):  # the supervisor is gone: its pipe's end says so
        report.send_bytes(b"ready")


async def _close_listeners(stopped_accepting: trio.Event, sockets: Sockets) -> None:
    """Close this worker's copies of the listening sockets once it stops accepting.

    When every copy is closed (the supervisor closes its own on stop), the kernel refuses
    new connections, so a load balancer sends them elsewhere at once instead of leaving
    them in the listen backlog until the node exits. Hypercorn's ``raise_shutdown`` raises
    as the trigger returns, which cancels the accept loops in that same step; this task
    wakes a scheduling round later, when nothing waits on these sockets any more.
    """
    await stopped_accepting.wait()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        trio.lowlevel.notify_closing(sock)
        sock.close()


async def _follow_orders(control: Connection, drain: Drain) -> None:
    with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_orders, control, drain)
            first: float | None = None
            async for _ in signals:
                if first is None:
                    first = trio.current_time()
                    drain.begin()
                elif trio.current_time() - first >= _REPEAT_AFTER_S:
                    drain.close_now()


async def _read_orders(control: Connection, drain: Drain) -> None:
    while True:
        await trio.lowlevel.wait_readable(control.fileno())
        try:
            order = control.recv_bytes()
        except EOFError:
            log.warning("the supervisor is gone: draining")
            drain.begin()
            return
        if order == b"now":
            drain.close_now()
        else:
            drain.begin()
