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
Hypercorn); one that exits 0 on its own is replaced, any other exit stops them all.
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

from .drain import Drain

__all__ = ["run_workers"]

log = logging.getLogger("scalemcp.server")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_KILL_MARGIN_S = 5.0
#: A signal within this time of the first counts as the same one, not as "hurry up".
_REPEAT_AFTER_S = 1.0


class _Drainable(Protocol):
    drain: Drain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None: ...


class _Worker:
    def __init__(self, ctx: Any, hc: HypercornConfig, sockets: Sockets) -> None:
        control, self._orders = ctx.Pipe(duplex=False)
        self.process: SpawnProcess = ctx.Process(
            target=_worker_main, kwargs={"hc": hc, "sockets": sockets, "control": control})
        self.process.daemon = hc.daemon
        self.process.start()
        control.close()

    def tell(self, order: bytes) -> None:
        with contextlib.suppress(OSError):  # it has exited already
            self._orders.send_bytes(order)

    def close(self) -> None:
        self._orders.close()


def run_workers(hc: HypercornConfig) -> int:
    """Serve ``hc.application_path`` with ``hc.workers`` processes; the exit code."""
    supervisor = _Supervisor(hc)
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
    def __init__(self, hc: HypercornConfig) -> None:
        self.hc = hc
        self.sockets = hc.create_sockets()
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.stops = 0
        self._first_stop = 0.0
        self.exit_code = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def start(self) -> None:
        for _ in range(self.hc.workers):
            self.workers.append(_Worker(self.ctx, self.hc, self.sockets))

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
        code = worker.process.exitcode or 0
        if self.stops:
            self.exit_code = self.exit_code or code
        elif code == 0:
            self.workers.append(_Worker(self.ctx, self.hc, self.sockets))
        else:
            log.error("worker %d exited with code %d: stopping", worker.process.pid, code)
            self.exit_code = code
            self.on_signal()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for sock in (*self.sockets.secure_sockets, *self.sockets.insecure_sockets):
            sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _worker_main(hc: HypercornConfig, sockets: Sockets, control: Connection) -> None:
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

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_follow_orders, control, app.drain)
        asgi: Any = app
        await worker_serve(wrap_app(asgi, hc.wsgi_max_body_size, "asgi"), hc, sockets=sockets,
                           shutdown_trigger=app.drain.wait_begun)
        nursery.cancel_scope.cancel()


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
