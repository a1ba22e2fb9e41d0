"""The process supervisor behind ``scalemcp serve``: Hypercorn trio workers that drain.

Hypercorn's own supervisor stops workers without telling the app, so ``/readyz`` could
not turn 503 and SSE streams were cut when its graceful timeout ran out. This one runs
the same worker (``hypercorn.trio.run.worker_serve`` on sockets the supervisor binds) with
the app's :class:`~.drain.Drain` as the shutdown trigger.

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
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import Any, Protocol

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets

from . import metrics_dir
from .drain import Drain

__all__ = ["run_workers"]

log = logging.getLogger("scalemcp.server")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_KILL_MARGIN_S = 5.0
#: A signal within this time of the first counts as the same one, not as "hurry up".
_REPEAT_AFTER_S = 1.0
#: Workers killed by a signal are replaced, at most this many within the window.
_MAX_REPLACED = 10
_CRASH_WINDOW_S = 60.0


class _Drainable(Protocol):
    drain: Drain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None: ...


class _Worker:
    def __init__(self, ctx: Any, hc: HypercornConfig, sockets: Sockets,
                 metrics: metrics_dir.WorkerSpec) -> None:
        self.metrics = metrics
        control, self._orders = ctx.Pipe(duplex=False)
        self.process: SpawnProcess = ctx.Process(
            target=_worker_main, kwargs={"hc": hc, "sockets": sockets, "control": control,
                                         "metrics": metrics})
        self.process.daemon = hc.daemon
        self.process.start()
        control.close()

    def tell(self, order: bytes) -> None:
        with contextlib.suppress(OSError):  # it has exited already
            self._orders.send_bytes(order)

    def close(self) -> None:
        self._orders.close()


def run_workers(hc: HypercornConfig, *, metrics_dir_path: str | None = None) -> int:
    """Serve ``hc.application_path`` with ``hc.workers`` processes; the exit code.

    The workers share ``metrics_dir_path`` (default: a temporary directory made and
    removed here) for node-wide ``/metrics`` (see :mod:`.metrics_dir`).
    """
    supervisor = _Supervisor(hc, metrics_dir_path)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        supervisor.start()
        for sig in _STOP_SIGNALS:
            signal.signal(sig, supervisor.on_signal)
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.close()


class _Supervisor:
    def __init__(self, hc: HypercornConfig, metrics_dir_path: str | None = None) -> None:
        self.hc = hc
        self.metrics_dir, self._made_metrics_dir = metrics_dir.prepare_dir(metrics_dir_path)
        self._started = 0
        self.sockets = hc.create_sockets()
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.stops = 0
        self._first_stop = 0.0
        self.exit_code = 0
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
        return _Worker(self.ctx, self.hc, self.sockets, spec)

    def on_signal(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """First call: workers drain; a later one: they close their streams now."""
        now = time.monotonic()
        if self.stops and now - self._first_stop < _REPEAT_AFTER_S:
            return  # the same stop, delivered twice (e.g. to the process and its group)
        self._first_stop = self._first_stop if self.stops else now
        self.stops += 1
        for worker in self.workers:
            worker.tell(b"stop" if self.stops == 1 else b"now")
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def run(self) -> int:
        kill_at: float | None = None
        while self.workers:
            timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
            ready = wait([self._wake_r, *(w.process.sentinel for w in self.workers)], timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if self.stops and kill_at is None:
                kill_at = time.monotonic() + self.hc.graceful_timeout + _KILL_MARGIN_S
                log.info("stopping: %d worker(s) draining", len(self.workers))
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

    def _exited(self, worker: _Worker) -> None:
        self.workers.remove(worker)
        worker.close()
        metrics_dir.retire(self.metrics_dir, worker.metrics.worker)  # its counts stay counted
        code = worker.process.exitcode or 0
        if self.stops:
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
                 metrics: metrics_dir.WorkerSpec | None = None) -> None:
    if metrics is not None:
        metrics_dir.join(metrics)  # before the app (and its Observer) is built
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(hc.backlog)
    module, _, attr = hc.application_path.partition(":")
    try:
        app: _Drainable = getattr(importlib.import_module(module), attr)
        trio.run(_serve_worker, app, hc, sockets, control)
    except Exception:
        # Through logging, so the traceback is formatted (and redacted) like every line.
        log.critical("worker %d failed", os.getpid(), exc_info=True)
        raise SystemExit(1) from None


async def _serve_worker(app: _Drainable, hc: HypercornConfig, sockets: Sockets,
                        control: Connection) -> None:
    from hypercorn.trio.run import worker_serve
    from hypercorn.utils import wrap_app

    stopped_accepting = trio.Event()

    async def shutdown_trigger() -> None:
        await app.drain.wait_begun()
        stopped_accepting.set()  # as this returns, Hypercorn cancels its accept loops

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_follow_orders, control, app.drain)
        nursery.start_soon(_close_listeners, stopped_accepting, sockets)
        asgi: Any = app
        await worker_serve(wrap_app(asgi, hc.wsgi_max_body_size, "asgi"), hc, sockets=sockets,
                           shutdown_trigger=shutdown_trigger)
        nursery.cancel_scope.cancel()


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
