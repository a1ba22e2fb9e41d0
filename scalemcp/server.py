"""Running an app under Hypercorn's trio worker: config mapping, binding, workers."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
from typing import Any

from hypercorn.config import Config as HypercornConfig

from .app.app import App
from .config import Config
from .ops.drain import HARD_STOP_MARGIN_S
from .security.gate import check_auth_config
from .security.principal import Authenticator
from .security.ratelimit import parse_tool_rates
from .transport.asgi import ASGIApp

__all__ = ["ConfigError", "asgi_app", "hypercorn_config", "load_app", "run"]


class ConfigError(Exception):
    """A setting or argument that cannot work; the message says how to fix it."""


def asgi_app(
    app: App, config: Config | None = None, *, authenticator: Authenticator | None = None
) -> ASGIApp:
    """The ASGI application serving ``app`` (memory backend unless configured otherwise).

    ``authenticator`` replaces the one ``config.auth`` would build.
    """
    config = config or Config()
    state = None
    if config.redis_url:
        from .state.redis import RedisBackend  # optional dependency

        state = RedisBackend.from_config(config)
    return ASGIApp(app, config, state, authenticator)


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
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.workers = config.workers
    hc.worker_class = "trio"
    hc.loglevel = config.log_level.upper()
    hc.errorlog = logging.getLogger("hypercorn.error")  # no handler of its own: ours formats it
    hc.accesslog = None
    hc.keep_alive_timeout = config.keep_alive_timeout_s
    # Oversized header blocks are refused while parsing (h11: 431; h2: the connection
    # ends); the app checks the same limit, and the header count, on what gets through.
    hc.h11_max_incomplete_size = config.max_header_bytes
    hc.h2_max_header_list_size = config.max_header_bytes
    hc.websocket_ping_interval = config.sse_keepalive_s
    # SSE streams end cleanly drain_timeout_s after SIGTERM; what is left is cancelled later.
    hc.graceful_timeout = config.drain_timeout_s + HARD_STOP_MARGIN_S
    # The app's lifespan shutdown lets session-era calls run up to that same hard stop.
    hc.shutdown_timeout = hc.graceful_timeout + HARD_STOP_MARGIN_S
    if config.certfile or config.keyfile:
        if not (config.certfile and config.keyfile):
            raise ConfigError("HTTPS needs both --certfile and --keyfile")
        hc.certfile = config.certfile
        hc.keyfile = config.keyfile
        hc.alpn_protocols = ["h2", "http/1.1"]
    if config.metrics_port is not None:
        # Plain HTTP even when the MCP port serves TLS: probes and scrapers stay simple.
        metrics_bind = f"{host}:{config.metrics_port}"
        if hc.ssl_enabled:
            hc.insecure_bind = [metrics_bind]
        else:
            hc.bind.append(metrics_bind)
    return hc


def check_config(config: Config) -> None:
    try:
        check_auth_config(config)
        parse_tool_rates(config.rate_limit_tools)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if config.workers > 1 and not config.redis_url and not config.stateless_only:
        raise ConfigError(
            f"--workers {config.workers} needs --redis-url: the memory backend keeps sessions "
            "inside one process, so other workers could not serve or resume them"
        )
    if (config.workers > 1 or config.redis_url) and not config.state_keys:
        raise ConfigError(
            "a multi-worker deployment needs --state-keys (or SCALEMCP_STATE_KEYS): the "
            "fleet-wide key that signs requestState, so any worker can verify what another "
            "issued; generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    if config.metrics_port is not None and config.metrics_port == config.port:
        raise ConfigError(f"--metrics-port {config.metrics_port} is the MCP port: give the "
                          "metrics listener a port of its own, or leave it unset")
    if config.port != 0:
        _check_port_free(config.host, config.port)
    if config.metrics_port is not None:
        _check_port_free(config.host, config.metrics_port)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run(target: str, config: Config) -> None:
    """Serve ``target`` (MODULE:ATTR) until interrupted."""
    check_config(config)
    load_app(target)  # fail fast, in the parent, on a bad module path
    from .ops.workers import run_workers

    hc = hypercorn_config(config)
    hc.application_path = "scalemcp._worker:application"
    os.environ["SCALEMCP_APP"] = target
    os.environ["SCALEMCP_RESOLVED_CONFIG"] = _encode_config(config)
    # Hypercorn's trio workers, draining on SIGTERM, sharing their metrics.
    exit_code = run_workers(hc, metrics_dir_path=config.metrics_dir)
    if exit_code:
        raise SystemExit(exit_code)


def _encode_config(config: Config) -> str:
    import msgspec

    return msgspec.json.encode(config).decode()
