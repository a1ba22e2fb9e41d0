"""Configuration: one frozen, typed Struct; CLI flags, env vars and TOML mirror its fields.

Precedence: CLI flag > ``SCALEMCP_<FIELD>`` env var > TOML file (``--config``) > default.
Units are in the field names; unknown keys are rejected with their path.
"""

from __future__ import annotations

import os
import tomllib
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = ["Config", "load_config"]

Positive = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Every server setting, with its default."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    workers: Positive = 1
    certfile: str | None = None
    keyfile: str | None = None
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    redis_url: str | None = None
    #: Redis connections per server (per node of a Redis Cluster), and how long a command
    #: waits for a free one before it fails (503).
    redis_max_connections: Positive = 64
    redis_pool_timeout_s: PositiveFloat = 5.0
    redis_connect_timeout_s: PositiveFloat = 2.0
    #: How long a Redis reply may take; a worker's blocking stream reads wait at most half.
    redis_socket_timeout_s: PositiveFloat = 10.0
    #: rediss:// (TLS): a CA bundle to verify servers with (default: the system's), a client
    #: certificate and key (mutual TLS), and whether the server's name must match its
    #: certificate (Sentinel hands out master addresses, often IPs).
    redis_ca_file: str | None = None
    redis_cert_file: str | None = None
    redis_key_file: str | None = None
    redis_tls_check_hostname: bool = True
    #: The MCP endpoint and the legacy HTTP+SSE pair of paths.
    path: str = "/mcp"
    sse_path: str = "/sse"
    messages_path: str = "/messages"
    #: Origins allowed besides localhost ones; "*" allows any.
    allowed_origins: list[str] = []
    #: Browser origins answered with CORS headers (also allowed as Origins); "*" for any.
    cors_allowed_origins: list[str] = []
    #: Host header values allowed; empty = loopback names when bound to loopback, else any.
    allowed_hosts: list[str] = []
    max_body_bytes: Positive = 4 * 1024 * 1024
    session_idle_ttl_s: PositiveFloat = 3600.0
    max_sessions: Positive = 100_000
    max_sessions_per_principal: Positive = 1000
    stream_maxlen: Positive = 1000
    stream_ttl_s: PositiveFloat = 600.0
    sse_keepalive_s: PositiveFloat = 15.0
    sse_retry_ms: Annotated[int, Meta(ge=0)] = 1000
    #: How long a tool waits for the client to answer elicitation/sampling/roots.
    client_request_timeout_s: PositiveFloat = 300.0
    #: Refuse session-era and legacy clients (no state backend needed).
    stateless_only: bool = False
    #: HMAC keys for modern-era requestState, newest first (a key ring for rotation).
    state_keys: list[str] = []
    request_state_ttl_s: PositiveFloat = 600.0
    #: Refuse a requestState seen before (replay protection, via the state backend).
    request_state_single_use: bool = True
    #: Authentication (scalemcp/security): "api_key" (hashed keys) or "jwt" (OAuth 2.1
    #: bearer tokens; needs the "auth" extra). Sessions are bound to the principal.
    auth: Literal["none", "api_key", "jwt"] = "none"
    #: API keys: a file of "<sha256-hex> <principal> [<scope> ...]" lines, and/or entries.
    api_keys_file: str | None = None
    api_keys: list[str] = []
    #: JWT: the issuer's JWKS by URL (cached, refetched early on an unknown kid at most
    #: every jwt_jwks_min_refetch_s) or from a file; the required "iss"; clock leeway.
    jwt_jwks_url: str | None = None
    jwt_jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_jwks_ttl_s: PositiveFloat = 300.0
    jwt_jwks_min_refetch_s: Annotated[float, Meta(ge=0)] = 30.0
    jwt_leeway_s: Annotated[float, Meta(ge=0)] = 30.0
    #: This server's canonical URI, e.g. https://mcp.example.com/mcp: the audience tokens
    #: must name (RFC 8707) and the "resource" of its RFC 9728 metadata.
    resource_uri: str | None = None
    #: Authorization server issuer URLs listed in the protected resource metadata.
    authorization_servers: list[str] = []
    #: Scopes every request needs; per-tool/resource/prompt scopes come on top.
    required_scopes: list[str] = []
    #: Operations (scalemcp/ops): "json" logs are one object per line on stdout; the access
    #: log is one info line per HTTP request; tracing needs the "otel" extra (the standard
    #: OTEL_* environment can turn it on too); after SIGTERM, SSE streams and WebSockets stay
    #: open at most drain_timeout_s, then end cleanly (clients resume elsewhere).
    log_format: Literal["text", "json"] = "text"
    access_log: bool = False
    otel_enabled: bool = False
    drain_timeout_s: Annotated[float, Meta(ge=0)] = 30.0


_FIELDS = {f.name: f for f in msgspec.structs.fields(Config)}


def load_config(
    cli: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    config_file: str | None = None,
) -> Config:
    """Merge TOML file, environment and CLI values into a validated Config."""
    env = dict(os.environ) if env is None else env
    merged: dict[str, Any] = {}
    path = config_file or env.get("SCALEMCP_CONFIG")
    if path:
        with open(path, "rb") as f:
            merged.update(tomllib.load(f))
    for name in _FIELDS:
        value = env.get(f"SCALEMCP_{name.upper()}")
        if value is not None:
            merged[name] = _from_env(name, value)
    merged.update({k: v for k, v in (cli or {}).items() if v is not None})
    try:
        return msgspec.convert(merged, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid configuration: {exc}") from None


def _from_env(name: str, value: str) -> Any:
    if name in ("allowed_origins", "cors_allowed_origins", "allowed_hosts", "state_keys",
                "api_keys", "authorization_servers", "required_scopes"):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value
