"""Start-up checks, run once in the parent process before any worker starts.

Everything that can be checked without serving is checked here, so that a setting that
cannot work stops ``scalemcp serve`` with one line naming it, instead of a traceback in
every worker. :class:`ConfigError` carries that line.
"""

from __future__ import annotations

import importlib.util
import socket
import ssl

from .config import Config
from .security.gate import check_auth_config
from .security.ratelimit import parse_tool_rates
from .state.redis_url import parse_url

__all__ = ["ConfigError", "check_config"]

_KEY_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"


class ConfigError(Exception):
    """A setting or argument that cannot work; the message says how to fix it."""


def check_config(config: Config) -> None:
    """Raise :class:`ConfigError` for the first setting that cannot work."""
    _check_extras(config)
    try:
        check_auth_config(config)
        parse_tool_rates(config.limits.rate_limit_tools)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # an API keys, JWKS or secret file that cannot be read
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    _check_fleet(config)
    _check_tls(config)
    metrics_port = config.ops.metrics_port
    if metrics_port is not None and metrics_port == config.server.port:
        raise ConfigError(f"--metrics-port {metrics_port} is the MCP port: give the metrics "
                          "listener a port of its own, or leave it unset")
    if config.server.port != 0:
        _check_port_free(config.server.host, config.server.port)
    if metrics_port is not None:
        _check_port_free(config.server.host, metrics_port)


def _check_fleet(config: Config) -> None:
    server = config.server
    if server.workers > 1 and not config.redis.url and not server.stateless_only:
        raise ConfigError(
            f"--workers {server.workers} needs --redis-url: the memory backend keeps sessions "
            "inside one process, so other workers could not serve or resume them")
    if (server.workers > 1 or config.redis.url) and not config.request_state.keys:
        raise ConfigError(
            "a multi-worker deployment needs --state-keys (or SCALEMCP_STATE_KEYS): the "
            "fleet-wide key that signs requestState, so any worker can verify what another "
            f"issued; {_KEY_HINT}")
    if config.redis.url:
        try:
            parse_url(config.redis.url)
        except ValueError as exc:
            raise ConfigError(f"--redis-url: {exc}") from None
        for flag, path in (("--redis-ca-file", config.redis.ca_file),
                           ("--redis-cert-file", config.redis.cert_file),
                           ("--redis-key-file", config.redis.key_file)):
            _check_readable(flag, path)


def _check_extras(config: Config) -> None:
    """Optional dependencies the settings need, named by the extra that installs them."""
    needed: list[tuple[str, str, str]] = []  # (module, extra, why)
    if config.redis.url:
        needed.append(("coredis", "redis", "--redis-url"))
    if config.auth.mode == "jwt":
        needed.append(("jwt", "auth", "--auth jwt"))
        if config.auth.jwt_jwks_url or config.auth.introspection_url:
            needed.append(("httpx", "auth", "--auth jwt with a JWKS or introspection URL"))
    if config.ops.otel_enabled:
        needed.append(("opentelemetry.sdk", "otel", "--otel-enabled"))
    for module, extra, why in needed:
        if not _importable(module):
            raise ConfigError(f"{why} needs the {module.partition('.')[0]!r} package: "
                              f"pip install 'scalemcp[{extra}]'")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _check_tls(config: Config) -> None:
    certfile, keyfile = config.server.certfile, config.server.keyfile
    if not (certfile or keyfile):
        return
    if not (certfile and keyfile):
        raise ConfigError("HTTPS needs both --certfile and --keyfile")
    _check_readable("--certfile", certfile)
    _check_readable("--keyfile", keyfile)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ConfigError(f"--certfile {certfile} / --keyfile {keyfile}: not a PEM certificate "
                          f"chain and its private key ({exc.reason or exc})") from None


def _check_readable(flag: str, path: str | None) -> None:
    if path is None:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: {exc.strerror}") from None


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
