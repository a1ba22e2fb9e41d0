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

__all__ = ["FIELD_HELP", "Config", "load_config"]

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
    #: Every Redis key starts with it: one prefix per deployment sharing a Redis. No braces
    #: (they are hash tags on Redis Cluster).
    redis_key_prefix: Annotated[str, Meta(pattern=r"^[^{}]*$")] = "smcp:"
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
    #: Shape of a JSON-RPC message, anywhere in it (400, -32600): nesting levels, characters
    #: of a string (or object key), items of an array or object (a batch included).
    max_json_depth: Positive = 64
    max_json_string_chars: Positive = 1024 * 1024
    max_json_items: Positive = 10_000
    #: Request headers: bytes of the header block and number of headers (431), and
    #: Mcp-Param-* headers (400). HTTP/1.1 and HTTP/2 also enforce the size while parsing.
    max_header_bytes: Positive = 16 * 1024
    max_header_count: Positive = 100
    max_param_headers: Positive = 32
    #: An idle keep-alive connection is closed after keep_alive_timeout_s; a request runs at
    #: most request_timeout_s (then its handler is cancelled and it gets an error; 0 = no
    #: limit; time spent waiting for the client's answer to elicitation/sampling counts).
    keep_alive_timeout_s: PositiveFloat = 75.0
    request_timeout_s: Annotated[float, Meta(ge=0)] = 0.0
    session_idle_ttl_s: PositiveFloat = 3600.0
    max_sessions: Positive = 100_000
    max_sessions_per_principal: Positive = 1000
    #: Rate limits (scalemcp/security/ratelimit.py; fleet-wide with Redis), token buckets in
    #: requests per second, 0 = off: every JSON-RPC request of a principal, and tools/call
    #: per principal and tool; "<tool>=<rate>" entries override the per-tool rate; a bucket
    #: holds rate x rate_limit_burst_s tokens (at least 1).
    rate_limit_per_principal_rps: Annotated[float, Meta(ge=0)] = 0.0
    rate_limit_per_tool_rps: Annotated[float, Meta(ge=0)] = 0.0
    rate_limit_tools: list[str] = []
    rate_limit_burst_s: PositiveFloat = 1.0
    #: Requests running at once on one worker: per session (session era, legacy, WebSocket),
    #: and per principal for stateless 2026-07-28 requests (0 = no limit).
    max_inflight_per_session: Positive = 100
    max_inflight_per_principal: Annotated[int, Meta(ge=0)] = 0
    stream_maxlen: Positive = 1000
    stream_ttl_s: PositiveFloat = 600.0
    sse_keepalive_s: PositiveFloat = 15.0
    sse_retry_ms: Annotated[int, Meta(ge=0)] = 1000
    #: A slow SSE consumer: when the client takes longer than this to accept 64 KiB, the
    #: connection is closed (the stream is not ended: the client resumes with Last-Event-ID;
    #: 0 = wait for ever).
    sse_send_timeout_s: Annotated[float, Meta(ge=0)] = 30.0
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
    #: OAuth token introspection (RFC 7662) for opaque (non-JWT) bearer tokens, or for every
    #: token without a JWKS: the endpoint, this server's client credentials (the secret from
    #: the environment, SCALEMCP_INTROSPECTION_CLIENT_SECRET, or a file; never logged),
    #: how long an active token is cached (at most until its "exp"), an inactive one, and
    #: how long one call may take.
    introspection_url: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = None
    introspection_client_secret_file: str | None = None
    introspection_cache_ttl_s: PositiveFloat = 60.0
    introspection_negative_ttl_s: Annotated[float, Meta(ge=0)] = 5.0
    introspection_timeout_s: PositiveFloat = 5.0
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
    #: /metrics answers for every worker of a node: each writes its figures here (default:
    #: a temporary directory per server), at least every metrics_flush_interval_s.
    metrics_dir: str | None = None
    metrics_flush_interval_s: PositiveFloat = 1.0
    #: /metrics, /healthz and /readyz on a listener of their own (plain HTTP, on host), and
    #: no longer on the MCP port, so only MCP paths are exposed where clients connect.
    metrics_port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    #: /readyz stays 200 (reporting the backend as degraded) until the backend has failed
    #: its checks for this long, so a Redis blip or failover does not empty the fleet.
    ready_backend_grace_s: Annotated[float, Meta(ge=0)] = 0.0


#: One line per Config field for ``scalemcp serve --help`` and docs/configuration.md
#: (``python -m scalemcp.config_reference`` regenerates it; a test lists fields missing
#: here). Types, defaults and constraints come from the Struct itself.
FIELD_HELP: dict[str, str] = {
    "host": "Interface to bind: 0.0.0.0 or :: for every interface.",
    "port": "TCP port to listen on; 0 picks a free one.",
    "workers": "Worker processes (one Trio run each). More than one needs redis_url (or "
               "stateless_only) and the same state_keys in every worker.",
    "certfile": "PEM certificate chain: serve HTTPS (HTTP/2 by ALPN) with keyfile.",
    "keyfile": "PEM private key of certfile.",
    "log_level": "Least severe log level written.",
    "redis_url": "The Redis backend: redis://, rediss:// (TLS), unix://, "
                 "redis[s]+sentinel://, redis[s]+cluster:// (see docs/deploy.md). "
                 "Unset: the memory backend, one process only.",
    "redis_max_connections": "Redis connections per worker process to each Redis server "
                             "(each node of a Redis Cluster).",
    "redis_pool_timeout_s": "How long a Redis command waits for a free connection before "
                            "the request fails with 503.",
    "redis_connect_timeout_s": "Timeout for opening a connection to Redis.",
    "redis_socket_timeout_s": "How long a Redis reply may take; a worker's blocking stream "
                              "reads wait at most half of it.",
    "redis_ca_file": "rediss://: CA bundle to verify Redis servers with (default: the "
                     "system's).",
    "redis_cert_file": "rediss://: client certificate for mutual TLS (with redis_key_file).",
    "redis_key_file": "rediss://: private key of redis_cert_file.",
    "redis_tls_check_hostname": "rediss://: the server's name must match its certificate. "
                                "Sentinel hands out master IPs: give them IP SANs or turn "
                                "this off.",
    "redis_key_prefix": "Prefix of every Redis key (no braces: they are Redis Cluster hash "
                        "tags). Deployments sharing one Redis need prefixes of their own.",
    "path": "The MCP endpoint (Streamable HTTP, every era).",
    "sse_path": "Legacy HTTP+SSE (2024-11-05): the GET stream that announces the endpoint.",
    "messages_path": "Legacy HTTP+SSE: where clients POST their messages.",
    "allowed_origins": "Origin header values allowed besides localhost ones (DNS-rebinding "
                       "defence; others get 403); \"*\" allows any.",
    "cors_allowed_origins": "Browser origins answered with CORS headers (also allowed as "
                            "Origins); \"*\" for any.",
    "allowed_hosts": "Host header values allowed; empty: loopback names when bound to "
                     "loopback, else any.",
    "max_body_bytes": "Largest request body; a larger one gets 413.",
    "max_json_depth": "Deepest nesting of arrays and objects in a JSON-RPC message; deeper "
                      "gets 400 (-32600).",
    "max_json_string_chars": "Longest string (or object key) anywhere in a JSON-RPC message, "
                             "tool arguments included; longer gets 400 (-32600).",
    "max_json_items": "Most items of one array or object (a batch included) in a JSON-RPC "
                      "message; more gets 400 (-32600).",
    "max_header_bytes": "Largest request header block (request line included); larger gets "
                        "431.",
    "max_header_count": "Most request headers; more gets 431.",
    "max_param_headers": "Most Mcp-Param-* headers on one request; more gets 400.",
    "keep_alive_timeout_s": "An idle keep-alive connection is closed after this long.",
    "request_timeout_s": "Longest a request may run: then its handler is cancelled and the "
                         "client gets a JSON-RPC error (-32603). Waiting for elicitation or "
                         "sampling answers counts. 0: no limit.",
    "session_idle_ttl_s": "A session unused this long expires, with its streams.",
    "max_sessions": "Most live sessions in the backend (fleet-wide with Redis); past it the "
                    "least recently used session is evicted.",
    "max_sessions_per_principal": "Most live sessions of one authenticated principal; "
                                  "initialize beyond it is refused.",
    "rate_limit_per_principal_rps": "JSON-RPC requests per second one principal may send "
                                    "(unauthenticated: one client address); 0 = no limit. "
                                    "Fleet-wide with Redis; over it: 429 + Retry-After.",
    "rate_limit_per_tool_rps": "tools/call per second per principal and tool; 0 = no limit "
                               "(a tool's own rate_limit_rps= still applies).",
    "rate_limit_tools": "Per-tool rates as `<tool>=<calls per second>` entries, overriding "
                        "rate_limit_per_tool_rps and the tool's own (0 = no limit).",
    "rate_limit_burst_s": "A rate-limit bucket holds rate x this many tokens (at least 1): "
                          "the burst allowed after a quiet spell.",
    "max_inflight_per_session": "Requests of one session running at once on one worker; "
                                "more get 429 (legacy SSE and WebSocket: the JSON-RPC error).",
    "max_inflight_per_principal": "Stateless (2026-07-28) requests of one principal running "
                                  "at once on one worker; 0 = no limit.",
    "stream_maxlen": "Events kept per resumable SSE stream; older ones cannot be replayed.",
    "stream_ttl_s": "How long a resumable SSE stream is kept after its last event.",
    "sse_keepalive_s": "Interval of `: ping` comments on quiet SSE streams (so idle-timeout "
                       "proxies keep them open); also how often parked readers look at Redis.",
    "sse_retry_ms": "The `retry:` an SSE stream announces: how long a client waits before "
                    "reconnecting.",
    "sse_send_timeout_s": "A client that takes longer than this to accept 64 KiB of an SSE "
                          "stream has its connection closed (the stream is not ended: it "
                          "resumes with Last-Event-ID). 0: wait for ever.",
    "client_request_timeout_s": "How long a tool waits for the client to answer "
                                "elicitation, sampling or roots.",
    "stateless_only": "Refuse session-era and legacy clients; no state backend needed.",
    "state_keys": "HMAC keys for 2026-07-28 requestState, newest first (a key ring for "
                  "rotation); every worker of a fleet needs the same. Required with "
                  "redis_url or more than one worker; else empty means random per process.",
    "request_state_ttl_s": "How long a signed requestState stays valid.",
    "request_state_single_use": "Refuse a requestState seen before (replay protection, "
                                "through the state backend).",
    "auth": "Authentication: none, api_key (hashed keys) or jwt (OAuth 2.1 bearer tokens; "
            "the auth extra). Sessions are bound to the principal. See docs/auth.md.",
    "api_keys_file": "auth=api_key: a file of `<sha256-hex> <principal> [<scope> ...]` "
                     "lines (`scalemcp hash-key` makes them).",
    "api_keys": "auth=api_key: entries of the same form as api_keys_file lines.",
    "jwt_jwks_url": "auth=jwt: the issuer's JWKS URL (https://; plain http only to "
                    "loopback), cached.",
    "jwt_jwks_file": "auth=jwt: a JWKS file, instead of jwt_jwks_url.",
    "jwt_issuer": "auth=jwt: the `iss` every token must have.",
    "jwt_jwks_ttl_s": "auth=jwt: how long a fetched JWKS is cached.",
    "jwt_jwks_min_refetch_s": "auth=jwt: a token with an unknown `kid` refetches the JWKS "
                              "early, at most this often.",
    "jwt_leeway_s": "auth=jwt: clock leeway for `exp` and `nbf`.",
    "introspection_url": "auth=jwt: an RFC 7662 token introspection endpoint (https://; plain "
                         "http only to loopback) for opaque bearer tokens (every token when "
                         "no JWKS is set).",
    "introspection_client_id": "auth=jwt: this server's client id at the introspection "
                               "endpoint (HTTP Basic).",
    "introspection_client_secret": "auth=jwt: its client secret; set it through the "
                                   "environment (SCALEMCP_INTROSPECTION_CLIENT_SECRET) or use "
                                   "introspection_client_secret_file. Never logged.",
    "introspection_client_secret_file": "auth=jwt: a file holding the client secret.",
    "introspection_cache_ttl_s": "auth=jwt: an active token is cached this long (never past "
                                 "its `exp`).",
    "introspection_negative_ttl_s": "auth=jwt: an inactive or refused token is cached this "
                                    "long.",
    "introspection_timeout_s": "auth=jwt: longest an introspection call may take; then the "
                               "request gets 503.",
    "resource_uri": "This server's canonical URI (e.g. https://mcp.example.com/mcp): the "
                    "audience tokens must name (RFC 8707), and the resource of its RFC 9728 "
                    "metadata.",
    "authorization_servers": "auth=jwt: authorization server issuer URLs listed in the "
                             "protected resource metadata.",
    "required_scopes": "Scopes every request needs; per-tool/resource/prompt scopes come "
                       "on top.",
    "log_format": "text (for people, on stderr) or json (one object per line, on stdout).",
    "access_log": "One info log line per HTTP request.",
    "otel_enabled": "OpenTelemetry tracing (the otel extra; the standard OTEL_* "
                    "environment can turn it on too).",
    "drain_timeout_s": "After SIGTERM, SSE streams and WebSockets stay open at most this "
                       "long, then end cleanly (clients resume elsewhere); what still runs "
                       "5 s later is cancelled.",
    "metrics_dir": "Where the workers of one server share their metrics, so /metrics on any "
                   "of them answers for all (one directory per server; a tmpfs is best). "
                   "Default: a temporary directory under TMPDIR, removed at exit.",
    "metrics_flush_interval_s": "How often each worker writes its metrics for the others: "
                                "how stale a sibling's figures in /metrics may be.",
    "metrics_port": "Serve /metrics, /healthz and /readyz on this port (plain HTTP, on "
                    "host) instead of the MCP port, so a proxy in front of the MCP port "
                    "cannot expose them. Unset: on the MCP port.",
    "ready_backend_grace_s": "/readyz stays 200, reporting the backend as degraded, until "
                             "the backend has failed its checks for this long (a Redis blip "
                             "or failover does not take every worker out of rotation); 0: "
                             "503 at the first failed check.",
}

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
                "api_keys", "authorization_servers", "required_scopes", "rate_limit_tools"):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value
