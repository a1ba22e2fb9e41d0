"""``scalemcp worker MODULE:ATTR``: a process that only runs durable tasks.

It serves no MCP: it claims the app's tasks from the shared Redis backend and runs them,
so long jobs do not compete with request traffic (serving nodes then run with
``serve_tasks = false``; they still create, read and cancel tasks). SIGTERM or Ctrl-C:
it stops claiming, lets running tasks finish for ``drain_timeout_s``, then hands back
whatever still runs (another worker takes it over at once) and exits. With
``metrics_port`` it answers ``/metrics`` and the liveness and readiness paths there
(:mod:`.ops.endpoint`); readiness fails while draining and once Redis stays away.
"""

from __future__ import annotations

import logging
import secrets
import signal
from functools import partial

import trio

from .app.app import App
from .config import Config
from .engine.dispatch import Engine
from .engine.tasks import TaskService
from .ops.endpoint import serve_ops
from .preflight import ConfigError
from .state import make_state
from .state.tasks import RunLimits

__all__ = ["run_task_worker"]

log = logging.getLogger("scalemcp.worker")


async def run_task_worker(app: App, config: Config, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run ``app``'s tasks until SIGTERM or SIGINT (or until cancelled)."""
    if not config.redis.url:
        raise ConfigError("scalemcp worker needs redis_url: tasks are shared through Redis")
    state = make_state(config)
    engine = Engine(app, request_timeout_s=config.server.request_timeout_s)
    worker = str(getattr(state, "worker_id", "") or secrets.token_hex(8))
    service = TaskService(engine, state, worker=worker, lease_s=config.tasks.lease_s,
                          concurrency=config.tasks.concurrency, run_tasks=True,
                          ask_timeout_s=config.sessions.client_request_timeout_s,
                          max_active=config.tasks.max_active,
                          poll_min_interval_s=config.tasks.poll_min_interval_ms / 1000,
                          limits=RunLimits(per_principal=config.tasks.max_running_per_principal,
                             per_tool=config.tasks.max_running_per_tool))
    engine.tasks = service
    draining = False

    async def probe() -> tuple[bool, bool]:
        return not draining, await state.ready()

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with state.running(), trio.open_nursery() as nursery:
            await nursery.start(service.runner.serve)
            if config.ops.metrics_port is not None:
                binds = await nursery.start(partial(serve_ops, config, probe))
                log.info("task worker %s: /metrics and probes on %s", worker,
                         ", ".join(binds))
            log.info("task worker %s ready: %d tasks at a time, lease %.1f s", worker,
                     config.tasks.concurrency, config.tasks.lease_s)
            task_status.started()
            async for signum in signals:
                log.info("%s: no more tasks claimed; draining", signal.Signals(signum).name)
                break
            draining = True  # unready at once: no new work is routed by its readiness
            service.runner.stop_claiming()
            with trio.move_on_after(config.server.drain_timeout_s):
                await service.runner.wait_idle()
            nursery.cancel_scope.cancel()  # what still runs is handed back
    log.info("task worker %s stopped", worker)
