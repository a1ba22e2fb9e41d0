"""Running an app under Hypercorn's trio worker: config mapping, binding, workers."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

from hypercorn.config import Config as HypercornConfig

from .app.app import App
from .config import Config
from .config.options import load_config
from .observability.logs import configure_logging
from .preflight import ConfigError, check_config
from .security.principal import Authenticator
from .serving.admission import Admission
from .transport.asgi import ASGIApp
from .transport.drain import HARD_STOP_MARGIN_S

__all__ = ["ConfigError", "asgi_app", "endpoint_url", "hypercorn_config", "load_app", "run"]

log = logging.getLogger("scalemcp.server")


def asgi_app(
    app: App, config: Config | None = None, *, authenticator: Authenticator | None = None
) -> ASGIApp:
    """The ASGI application serving ``app`` (memory backend unless configured otherwise).

    ``authenticator`` replaces the one ``config.auth.mode`` would build.
    """
    return ASGIApp(app, config or Config(), authenticator=authenticator)


def shed_admission(app: ASGIApp) -> Admission | None:
    """Load shedding in the serving loop for ``app``'s shedder (None: shedding is off)."""
    if not app.shedder.enabled:
        return None
    app.shedder.screened = True  # HTTP/1.1 requests: counted and shed by the loop
    return Admission(app.shedder, app.ops_paths, app.shed_body)


def load_app(target: str) -> App:
    """Import ``module:attr`` (the current directory is on the path, as with uvicorn)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"app must be given as MODULE:ATTR, e.g. examples.quickstart:app, "
                          f"not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, App):
        raise ConfigError(f"{target} is a {type(obj).__name__}, not a scalemcp.App")
    return obj


def hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
    hc.bind = [f"{host}:{config.server.port}"]
    hc.workers = config.server.workers
    hc.worker_class = "trio"
    hc.loglevel = config.ops.log_level.upper()
    hc.errorlog = logging.getLogger("hypercorn.error")  # no handler of its own: ours formats it
    hc.accesslog = None
    hc.keep_alive_timeout = config.server.keep_alive_timeout_s
    hc.backlog = config.connections.backlog
    # Oversized header blocks are refused while parsing (h11: 431; h2: the connection
    # ends); the app checks the same limit, and the header count, on what gets through.
    hc.h11_max_incomplete_size = config.limits.max_header_bytes
    hc.h2_max_header_list_size = config.limits.max_header_bytes
    hc.websocket_ping_interval = config.sse.keepalive_s
    # Hypercorn gathers a WebSocket message's frames before the app sees it: bound that by
    # the app's own limit (its default, 16 MiB, would be buffered per connection first).
    hc.websocket_max_message_size = config.limits.max_body_bytes
    # SSE streams end cleanly drain_timeout_s after SIGTERM; what is left is cancelled later.
    hc.graceful_timeout = config.server.drain_timeout_s + HARD_STOP_MARGIN_S
    # The app's lifespan shutdown lets session-era calls run up to that same hard stop.
    hc.shutdown_timeout = hc.graceful_timeout + HARD_STOP_MARGIN_S
    if config.server.certfile and config.server.keyfile:
        hc.certfile = config.server.certfile
        hc.keyfile = config.server.keyfile
        hc.alpn_protocols = ["h2", "http/1.1"]
    if config.ops.metrics_port is not None:
        # Plain HTTP even when the MCP port serves TLS: probes and scrapers stay simple.
        metrics_bind = f"{host}:{config.ops.metrics_port}"
        if hc.ssl_enabled:
            hc.insecure_bind = [metrics_bind]
        else:
            hc.bind.append(metrics_bind)
    return hc


def run(app: App | str, config: Config | None = None, **options: Any) -> None:
    """Serve ``app`` (a :class:`~scalemcp.App`, or ``"MODULE:ATTR"``) until interrupted.

    Settings: ``config``, else ``options`` by their option names (``port=8080``) over the
    ``SCALEMCP_*`` environment and the defaults. Every worker process imports the app:
    an App defined in a script must be served from under ``if __name__ == "__main__":``.
    Raises :class:`ConfigError` (one line) for settings that cannot work.
    """
    if config is None:
        try:
            config = load_config(options, named_by="option")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    elif options:
        raise TypeError("give either config or options, not both")
    target = app if isinstance(app, str) else _target_of(app)
    if isinstance(app, App) or not logging.getLogger().handlers:
        configure_logging(config.ops.log_level, config.ops.log_format)  # from Python
    check_config(config)
    load_app(target)  # fail fast, in the parent, on a bad module path
    from .ops.workers import WorkerStartError, run_workers

    hc = hypercorn_config(config)
    hc.application_path = "scalemcp._worker:application"
    os.environ["SCALEMCP_APP"] = target
    os.environ["SCALEMCP_RESOLVED_CONFIG"] = _encode_config(config)
    # Trio workers (scalemcp's loop or Hypercorn's), draining on SIGTERM, sharing metrics.
    try:
        exit_code = run_workers(hc, metrics_dir_path=config.ops.metrics_dir,
                                on_ready=lambda binds: log_serving(target, config, binds),
                                loop=config.connections.serving_loop)
    except WorkerStartError as exc:
        raise ConfigError(str(exc)) from None
    log.info("stopped" + (f" (exit code {exit_code})" if exit_code else ""))
    if exit_code:
        raise SystemExit(exit_code)


def _target_of(app: App) -> str:
    """``MODULE:ATTR`` naming ``app``, so the worker processes can import it."""
    for module_name, module in list(sys.modules.items()):
        if module_name == "__mp_main__":
            continue
        for attr, value in list(vars(module).items()):
            if value is app:
                return f"{module_name}:{attr}"
    raise ConfigError(f"cannot find the App {app.name!r} in any module: define it at the top "
                      "level of a module (workers import it from there)")


def endpoint_url(config: Config, bound: tuple[str, int] | None = None) -> str:
    """The MCP endpoint's URL as a client on this machine would write it."""
    host, port = bound or (config.server.host, config.server.port)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    scheme = "https" if config.server.certfile else "http"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}{config.server.path}"


def log_serving(target: str, config: Config, binds: list[tuple[str, int]]) -> None:
    """The one start-up line a person reads: what is served where, and how to stop it."""
    server = config.server
    workers = f"{server.workers} worker{'s' if server.workers > 1 else ''}"
    backend = ("no backend (stateless only)" if server.stateless_only and not config.redis.url
               else "Redis backend" if config.redis.url else "memory backend")
    legacy = "" if server.stateless_only else f", legacy HTTP+SSE at {server.sse_path}"
    # The URL stands alone between spaces, so scripts can take it from the line.
    log.info("serving %s at %s with %s (%s%s); Ctrl-C to stop", target,
             endpoint_url(config, binds[0] if binds else None), workers, backend, legacy)


def _encode_config(config: Config) -> str:
    import msgspec

    return msgspec.json.encode(config).decode()
