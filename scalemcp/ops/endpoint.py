"""The ops endpoint of a process that serves no MCP: ``/metrics``, liveness, readiness.

``scalemcp serve`` answers these on its MCP port or on ``metrics_port``; a task worker
(``scalemcp worker``) has no MCP port, so with ``metrics_port`` set it serves them here:
its task metrics (running, claimed, redeliveries, dead letters) are the ones an operator
and an autoscaler need, and its probes tell Kubernetes a worker whose Redis is gone
(unready, after ``ready_backend_grace_s``) from a worker that is stuck (not live).
Plain HTTP on ``host:metrics_port``, on scalemcp's serving loop; every other path is 404.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig

from ..config import Config
from ..observability import metrics
from ..transport.readiness import Readiness

__all__ = ["ops_app", "serve_ops"]

log = logging.getLogger("scalemcp.ops")

#: Whether the process is serving (started, not draining), and whether its backend
#: answered a check just made.
Probe = Callable[[], Awaitable[tuple[bool, bool]]]

_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_METRICS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]


def ops_app(config: Config, probe: Probe) -> Callable[..., Awaitable[None]]:
    """The ASGI app answering ``/metrics`` and ``config``'s liveness and readiness paths."""
    liveness = frozenset(config.server.liveness_paths)
    readiness_paths = frozenset(config.server.readiness_paths)
    readiness = Readiness(config.server.ready_backend_grace_s)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            status, headers, body = 405, [*_JSON, (b"allow", b"GET, HEAD")], \
                b'{"error":"method not allowed"}'
        elif path == "/metrics":
            status, headers, body = 200, _METRICS, metrics.render()
        elif path in liveness:
            status, headers, body = 200, _JSON, b'{"status":"ok"}'
        elif path in readiness_paths:
            serving, backend_ok = await probe()
            status, body = readiness.judge(serving, backend_ok)
            headers = _JSON
        else:
            status, headers, body = 404, _JSON, b'{"error":"not found"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return app


async def serve_ops(config: Config, probe: Probe, *,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve :func:`ops_app` on ``host:metrics_port`` until cancelled."""
    from ..serving import serve

    assert config.ops.metrics_port is not None
    host = config.server.host
    hc = HypercornConfig()
    hc.bind = [f"[{host}]:{config.ops.metrics_port}" if ":" in host
               else f"{host}:{config.ops.metrics_port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = config.server.keep_alive_timeout_s
    hc.graceful_timeout = 1.0
    await serve(ops_app(config, probe), hc, settings=config.connections,
                task_status=task_status)
