"""Every server setting: one frozen, typed Struct of frozen sections.

Each setting is written once, here: its type and constraints, its default and its
description (``Meta(description=...)``). The flat option name that the CLI flag
(``--redis-url``), the environment variable (``SCALEMCP_REDIS_URL``) and the TOML key use is
the section's ``prefix`` + the field name, or the field's ``option`` where the two differ;
:mod:`scalemcp.config.options` derives every option from these Structs.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "MIN_STATE_KEY_CHARS",
    "AuthSettings",
    "Config",
    "ConnectionSettings",
    "LimitSettings",
    "OpsSettings",
    "RedisSettings",
    "RequestStateSettings",
    "ServerSettings",
    "SessionSettings",
    "SseSettings",
    "TaskSettings",
]

#: A requestState key shorter than this (in characters) is refused: 32 hex digits = 128 bits.
MIN_STATE_KEY_CHARS = 32


def _about(text: str, option: str | None = None) -> Meta:
    return Meta(description=text, extra={"option": option} if option else {})


Positive = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[int, Meta(ge=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Prepended to a field's name to make its option name (``redis_`` + ``url``).
    prefix: ClassVar[str] = ""


class ServerSettings(_Section, frozen=True):
    """Where and how the server listens, and the paths it answers."""

    host: Annotated[str, _about("Interface to bind: 0.0.0.0 or :: for every interface.")] = (
        "127.0.0.1")
    port: Annotated[int, Meta(ge=0, le=65535),
                    _about("TCP port to listen on; 0 picks a free one.")] = 8000
    workers: Annotated[Positive, _about(
        "Worker processes (one Trio run each). More than one needs redis_url (or "
        "stateless_only) and the same state_keys in every worker.")] = 1
    certfile: Annotated[str | None, _about(
        "PEM certificate chain: serve HTTPS (HTTP/2 by ALPN) with keyfile.")] = None
    keyfile: Annotated[str | None, _about("PEM private key of certfile.")] = None
    path: Annotated[str, _about("The MCP endpoint (Streamable HTTP, every era).")] = "/mcp"
    sse_path: Annotated[str, _about(
        "Legacy HTTP+SSE (2024-11-05): the GET stream that announces the endpoint.")] = "/sse"
    messages_path: Annotated[str, _about(
        "Legacy HTTP+SSE: where clients POST their messages.")] = "/messages"
    liveness_paths: Annotated[list[str], _about(
        "Paths answering liveness (200 while the process serves). /health is what monitors "
        "written for other MCP servers probe.")] = msgspec.field(
        default_factory=lambda: ["/healthz", "/health"])
    readiness_paths: Annotated[list[str], _about(
        "Paths answering readiness (503 while draining or while the state backend is "
        "unreachable).")] = msgspec.field(
        default_factory=lambda: ["/readyz", "/ready"])
    info_path: Annotated[str, _about(
        "GET here answers a JSON document about the server (name, version, MCP endpoint, "
        "protocol versions, legacy paths), behind the same Origin and auth rules as the MCP "
        "endpoint; empty turns it off.")] = "/"
    allowed_origins: Annotated[list[str], _about(
        "Origin header values allowed besides localhost ones (DNS-rebinding defence; others "
        "get 403); \"*\" allows any.")] = []
    cors_allowed_origins: Annotated[list[str], _about(
        "Browser origins answered with CORS headers (also allowed as Origins); \"*\" for "
        "any.")] = []
    allowed_hosts: Annotated[list[str], _about(
        "Host header values allowed; empty: loopback names when bound to loopback, else "
        "any.")] = []
    keep_alive_timeout_s: Annotated[PositiveFloat, _about(
        "An idle keep-alive connection is closed after this long.")] = 75.0
    request_timeout_s: Annotated[NonNegativeFloat, _about(
        "Longest a request may run: then its handler is cancelled and the client gets a "
        "JSON-RPC error (-32603). Waiting for elicitation or sampling answers counts. 0: no "
        "limit.")] = 0.0
    ready_backend_grace_s: Annotated[NonNegativeFloat, _about(
        "Readiness stays 200, reporting the backend as degraded, until the backend has failed "
        "its checks for this long (a Redis blip or failover does not take every worker out of "
        "rotation); 0: 503 at the first failed check.")] = 0.0
    drain_timeout_s: Annotated[NonNegativeFloat, _about(
        "After SIGTERM, SSE streams and WebSockets stay open at most this long, then end "
        "cleanly (clients resume elsewhere); what still runs 5 s later is cancelled.")] = 30.0
    stateless_only: Annotated[bool, _about(
        "Refuse session-era and legacy clients; no state backend needed.")] = False
    gc_threshold: Annotated[NonNegative, _about(
        "Allocations between two collections of Python's cyclic garbage collector in a "
        "worker (the first gc.set_threshold number; CPython's own is 700, which with many "
        "requests in flight costs a large share of each request's CPU). Objects that exist "
        "once the worker has started are frozen out of collections. 0: leave the collector "
        "as the interpreter set it.")] = 100_000


class ConnectionSettings(_Section, frozen=True):
    """Client connections: the loop that serves them, and what one connection may take."""

    serving_loop: Annotated[Literal["scalemcp", "hypercorn"], _about(
        "What serves connections: scalemcp's own Trio loop (Hypercorn's HTTP/1.1, HTTP/2 "
        "and WebSocket protocols on a faster connection layer with the deadlines and limits "
        "of this section; docs/performance.md) or hypercorn (its stock trio worker, as a "
        "fallback: keep_alive_timeout_s applies, the rest of this section does not).")] = (
        "scalemcp")
    http1_protocol: Annotated[Literal["scalemcp", "hypercorn"], _about(
        "What speaks HTTP/1.1 on scalemcp's loop: scalemcp's own protocol (bytes-level "
        "parsing, no h11 events; upgrades to h2c and WebSocket still go to Hypercorn's) or "
        "hypercorn (its h11-based H11Protocol, as a fallback). HTTP/2 is Hypercorn's either "
        "way; serving_loop=hypercorn uses Hypercorn's throughout.")] = "scalemcp"
    head_timeout_s: Annotated[PositiveFloat, _about(
        "Longest an HTTP/1.1 request head (request line and headers) may take to arrive, in "
        "total, from its first byte (a new connection's first request: from the accept); "
        "then the connection closes. A client trickling bytes is cut too (slowloris).")] = (
        10.0)
    body_timeout_s: Annotated[PositiveFloat, _about(
        "Longest a request body may take to arrive in full, from the end of its head; then "
        "the connection closes (HTTP/1.1) or the stream is reset, its connection going on "
        "(HTTP/2); the request sees its client gone.")] = 60.0
    send_timeout_s: Annotated[PositiveFloat, _about(
        "A write the client accepts nothing of for this long closes the connection: JSON "
        "answers, SSE streams and WebSocket messages alike, HTTP/1.1 and HTTP/2 "
        "(sse_send_timeout_s still bounds each SSE stream on its own).")] = 30.0
    backlog: Annotated[Positive, _about(
        "Connections the kernel holds for the workers before they accept them (the listen "
        "backlog; Linux caps it at net.core.somaxconn). Hypercorn's default of 100 drops "
        "the connections of a burst past it (the client retries after 1 s, then 3 s).")] = (
        4096)
    max_connections: Annotated[Positive, _about(
        "Most open connections per worker; more are refused at once (plain HTTP: a 503 "
        "with Retry-After, then closed; TLS: closed).")] = 10_000
    max_connections_per_client: Annotated[Positive, _about(
        "Most open connections of one client address per worker (from trusted_proxies: of "
        "the address their X-Forwarded-For names), refused the same way.")] = 1024
    trusted_proxies: Annotated[list[str], _about(
        "Addresses or networks (CIDR) of the reverse proxies in front of the workers: their "
        "connections count against the client their X-Forwarded-For names (the right-most "
        "address not in this list), not against the proxy.")] = []

    def __post_init__(self) -> None:
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an address or network (CIDR): {entry!r}") from None


class RedisSettings(_Section, frozen=True):
    """The Redis backend: where it is and how to talk to it."""

    prefix = "redis_"

    url: Annotated[str | None, _about(
        "The Redis backend: redis://, rediss:// (TLS), unix://, redis[s]+sentinel://, "
        "redis[s]+cluster:// (see docs/deploy.md). Unset: the memory backend, one process "
        "only.")] = None
    max_connections: Annotated[Positive, _about(
        "Redis connections per worker process to each Redis server (each node of a Redis "
        "Cluster).")] = 64
    pool_timeout_s: Annotated[PositiveFloat, _about(
        "How long a Redis command waits for a free connection before the request fails "
        "with 503.")] = 5.0
    connect_timeout_s: Annotated[PositiveFloat, _about(
        "Timeout for opening a connection to Redis.")] = 2.0
    socket_timeout_s: Annotated[PositiveFloat, _about(
        "How long a Redis reply may take; a worker's blocking stream reads wait at most "
        "half of it.")] = 10.0
    write_retry_s: Annotated[NonNegativeFloat, _about(
        "How long an event of a resumable stream is retried while Redis cannot be reached "
        "or its answer is lost (a retry never appends twice); the handler waits meanwhile. "
        "0: no retry.")] = 10.0
    ca_file: Annotated[str | None, _about(
        "rediss://: CA bundle to verify Redis servers with (default: the system's).")] = None
    cert_file: Annotated[str | None, _about(
        "rediss://: client certificate for mutual TLS (with redis_key_file).")] = None
    key_file: Annotated[str | None, _about("rediss://: private key of redis_cert_file.")] = None
    tls_check_hostname: Annotated[bool, _about(
        "rediss://: the server's name must match its certificate. Sentinel hands out master "
        "IPs: give them IP SANs or turn this off.")] = True
    key_prefix: Annotated[str, Meta(pattern=r"^[^{}]*$"), _about(
        "Prefix of every Redis key (no braces: they are Redis Cluster hash tags). "
        "Deployments sharing one Redis need prefixes of their own.")] = "smcp:"


class LimitSettings(_Section, frozen=True):
    """Bounds on what one request, one client and one principal may take."""

    max_body_bytes: Annotated[Positive, _about(
        "Largest request body; a larger one gets 413.")] = 4 * 1024 * 1024
    max_json_depth: Annotated[Positive, _about(
        "Deepest nesting of arrays and objects in a JSON-RPC message; deeper gets 400 "
        "(-32600).")] = 64
    max_json_string_chars: Annotated[Positive, _about(
        "Longest string (or object key) anywhere in a JSON-RPC message, tool arguments "
        "included; longer gets 400 (-32600).")] = 1024 * 1024
    max_json_items: Annotated[Positive, _about(
        "Most items of one array or object (a batch included) in a JSON-RPC message; more "
        "gets 400 (-32600).")] = 10_000
    max_header_bytes: Annotated[Positive, _about(
        "Largest request header block (request line included); larger gets 431.")] = (
        16 * 1024)
    max_header_count: Annotated[Positive, _about("Most request headers; more gets 431.")] = 100
    max_param_headers: Annotated[Positive, _about(
        "Most Mcp-Param-* headers on one request; more gets 400.")] = 32
    max_inflight_per_session: Annotated[Positive, _about(
        "Requests of one session running at once on one worker; more get 429 (legacy SSE "
        "and WebSocket: the JSON-RPC error).")] = 100
    max_inflight_per_principal: Annotated[NonNegative, _about(
        "Stateless (2026-07-28) requests of one principal running at once on one worker; "
        "0 = no limit.")] = 0
    max_inflight_fleet_wide: Annotated[bool, _about(
        "With Redis, max_inflight_per_session counts a session's requests on every worker "
        "of the fleet (two more Redis round trips per session-era request) rather than on "
        "each worker.")] = False
    shed_target_lag_s: Annotated[NonNegativeFloat, _about(
        "Load shedding, adaptive: each worker's limit of HTTP requests in flight (GET "
        "streams not counted) falls while its event loop runs tasks later than this "
        "(seconds) and grows back while under half of it; past the limit, new requests get "
        "503 + Retry-After at once, before their body is read. It bounds how long an "
        "admitted request waits behind CPU-bound work. 0 = off, the default: it sheds whatever "
        "takes the worker's core, other processes included; 0.025 is the setting measured "
        "(docs/operations.md).")] = 0.0
    shed_min_inflight: Annotated[Positive, _about(
        "The adaptive limit never falls below this many requests in flight.")] = 8
    shed_max_inflight: Annotated[NonNegative, _about(
        "Load shedding: never more than this many HTTP requests in flight on one worker "
        "(GET streams not counted); the ceiling of the adaptive limit, or with "
        "shed_target_lag_s = 0 a fixed limit. 0 = no fixed ceiling.")] = 0
    shed_loop_lag_s: Annotated[NonNegativeFloat, _about(
        "Load shedding: while a worker's event loop runs tasks this late (seconds, the worst "
        "of the last 0.2 s), every new request gets 503 + Retry-After; 0 = off.")] = 0.0
    shed_retry_after_s: Annotated[Positive, _about(
        "The Retry-After (seconds) of a shed request.")] = 1
    rate_limit_per_principal_rps: Annotated[NonNegativeFloat, _about(
        "JSON-RPC requests per second one principal may send (unauthenticated: one client "
        "address); 0 = no limit. Fleet-wide with Redis; over it: 429 + Retry-After.")] = 0.0
    rate_limit_per_tool_rps: Annotated[NonNegativeFloat, _about(
        "tools/call per second per principal and tool; 0 = no limit (a tool's own "
        "rate_limit_rps= still applies).")] = 0.0
    rate_limit_tools: Annotated[list[str], _about(
        "Per-tool rates as `<tool>=<calls per second>` entries, overriding "
        "rate_limit_per_tool_rps and the tool's own (0 = no limit).")] = []
    rate_limit_burst_s: Annotated[PositiveFloat, _about(
        "A rate-limit bucket holds rate x this many tokens (at least 1): the burst allowed "
        "after a quiet spell.")] = 1.0


class SessionSettings(_Section, frozen=True):
    """Sessions of the Streamable HTTP era (2025-03-26 to 2025-11-25) and legacy SSE."""

    session_idle_ttl_s: Annotated[PositiveFloat, _about(
        "A session unused this long expires, with its streams.")] = 3600.0
    max_sessions: Annotated[Positive, _about(
        "Most live sessions in the backend (fleet-wide with Redis); past it the least "
        "recently used session is evicted.")] = 100_000
    max_sessions_per_principal: Annotated[Positive, _about(
        "Most live sessions of one authenticated principal; initialize beyond it is "
        "refused.")] = 1000
    client_request_timeout_s: Annotated[PositiveFloat, _about(
        "How long a tool waits for the client to answer elicitation, sampling or "
        "roots.")] = 300.0


class TaskSettings(_Section, frozen=True):
    """Durable tasks (docs/tasks.md): where they run and how fast a dead worker's is taken over."""

    prefix = "task_"

    lease_s: Annotated[PositiveFloat, _about(
        "A running task's lease, renewed by its worker every third of it: a worker that "
        "dies or stalls loses its tasks to another worker after this long.")] = 3.0
    concurrency: Annotated[Positive, _about(
        "Most tasks one worker process runs at once.")] = 16
    max_active: Annotated[NonNegative, _about(
        "Most tasks waiting or running (fleet-wide with Redis); a tools/call that would "
        "make one more is refused with -31429 (retry after 1 s). 0: no limit.")] = 10_000
    max_running_per_principal: Annotated[NonNegative, _about(
        "Most tasks of one principal running at once, fleet-wide; more wait queued "
        "(the queue's limit is max_active). 0: no limit.")] = 0
    max_running_per_tool: Annotated[NonNegative, _about(
        "Most tasks of one tool running at once, fleet-wide; more wait queued. "
        "0: no limit.")] = 0
    poll_min_interval_ms: Annotated[NonNegative, _about(
        "A tasks/get of a live task sooner than this (or the task's pollIntervalMs, if "
        "less) after this worker's last read of it is held until the task changes or "
        "that time has passed. 0: polls are never held.")] = 1000
    workers_run_tasks: Annotated[bool, _about(
        "Serving workers run tasks too; off when dedicated task workers "
        "(`scalemcp worker`) run them.", option="serve_tasks")] = True


class SseSettings(_Section, frozen=True):
    """Server-Sent Event streams: retention, keepalives, slow consumers."""

    prefix = "sse_"

    stream_maxlen: Annotated[Positive, _about(
        "Events kept per resumable SSE stream; older ones cannot be replayed.",
        option="stream_maxlen")] = 1000
    stream_ttl_s: Annotated[PositiveFloat, _about(
        "How long a resumable SSE stream is kept after its last event.",
        option="stream_ttl_s")] = 600.0
    keepalive_s: Annotated[PositiveFloat, _about(
        "Interval of `: ping` comments on quiet SSE streams (so idle-timeout proxies keep "
        "them open); also how often parked readers look at Redis.")] = 15.0
    retry_ms: Annotated[NonNegative, _about(
        "The `retry:` an SSE stream announces: how long a client waits before "
        "reconnecting.")] = 1000
    send_timeout_s: Annotated[NonNegativeFloat, _about(
        "A client that takes longer than this to accept 64 KiB of an SSE stream has its "
        "connection closed (the stream is not ended: it resumes with Last-Event-ID). 0: wait "
        "for ever.")] = 30.0


class RequestStateSettings(_Section, frozen=True):
    """The signed ``requestState`` of 2026-07-28 multi round-trip requests."""

    prefix = "request_state_"

    keys: Annotated[list[str], _about(
        f"HMAC keys for 2026-07-28 requestState, newest first (a key ring for rotation), "
        f"each at least {MIN_STATE_KEY_CHARS} characters (make one with `python3 -c 'import "
        f"secrets; print(secrets.token_hex(32))'`); every worker of a fleet needs the same. "
        f"Required with redis_url or more than one worker; else empty means random per "
        f"process.", option="state_keys")] = []
    ttl_s: Annotated[PositiveFloat, _about(
        "How long a signed requestState stays valid.")] = 600.0
    single_use: Annotated[bool, _about(
        "Refuse a requestState seen before (replay protection, through the state "
        "backend).")] = True

    def __post_init__(self) -> None:
        for key in self.keys:
            if len(key.strip()) < MIN_STATE_KEY_CHARS:
                raise ValueError(
                    f"a state key must be at least {MIN_STATE_KEY_CHARS} characters, got "
                    f"{'an empty or blank one' if not key.strip() else len(key.strip())}; "
                    f"make one with: python3 -c 'import secrets; print(secrets.token_hex(32))'")


class AuthSettings(_Section, frozen=True):
    """Who may call: API keys or OAuth 2.1 bearer tokens, and the scopes they need."""

    mode: Annotated[Literal["none", "api_key", "jwt"], _about(
        "Authentication: none, api_key (hashed keys) or jwt (OAuth 2.1 bearer tokens; the "
        "auth extra). Sessions are bound to the principal. See docs/auth.md.",
        option="auth")] = "none"
    api_keys_file: Annotated[str | None, _about(
        "auth=api_key: a file of `<sha256-hex> <principal> [<scope> ...]` lines (`scalemcp "
        "hash-key` makes them).")] = None
    api_keys: Annotated[list[str], _about(
        "auth=api_key: entries of the same form as api_keys_file lines.")] = []
    jwt_jwks_url: Annotated[str | None, _about(
        "auth=jwt: the issuer's JWKS URL (https://; plain http only to loopback), "
        "cached.")] = None
    jwt_jwks_file: Annotated[str | None, _about(
        "auth=jwt: a JWKS file, instead of jwt_jwks_url.")] = None
    jwt_issuer: Annotated[str | None, _about(
        "auth=jwt: the `iss` every token must have.")] = None
    jwt_jwks_ttl_s: Annotated[PositiveFloat, _about(
        "auth=jwt: how long a fetched JWKS is cached.")] = 300.0
    jwt_jwks_min_refetch_s: Annotated[NonNegativeFloat, _about(
        "auth=jwt: a token with an unknown `kid` refetches the JWKS early, at most this "
        "often.")] = 30.0
    jwt_leeway_s: Annotated[NonNegativeFloat, _about(
        "auth=jwt: clock leeway for `exp` and `nbf`.")] = 30.0
    introspection_url: Annotated[str | None, _about(
        "auth=jwt: an RFC 7662 token introspection endpoint (https://; plain http only to "
        "loopback) for opaque bearer tokens (every token when no JWKS is set).")] = None
    introspection_client_id: Annotated[str | None, _about(
        "auth=jwt: this server's client id at the introspection endpoint (HTTP "
        "Basic).")] = None
    introspection_client_secret: Annotated[str | None, _about(
        "auth=jwt: its client secret; set it through the environment "
        "(SCALEMCP_INTROSPECTION_CLIENT_SECRET) or use introspection_client_secret_file. "
        "Never logged.")] = None
    introspection_client_secret_file: Annotated[str | None, _about(
        "auth=jwt: a file holding the client secret.")] = None
    introspection_cache_ttl_s: Annotated[PositiveFloat, _about(
        "auth=jwt: an active token is cached this long (never past its `exp`).")] = 60.0
    introspection_negative_ttl_s: Annotated[NonNegativeFloat, _about(
        "auth=jwt: an inactive or refused token is cached this long.")] = 5.0
    introspection_timeout_s: Annotated[PositiveFloat, _about(
        "auth=jwt: longest an introspection call may take; then the request gets "
        "503.")] = 5.0
    resource_uri: Annotated[str | None, _about(
        "This server's canonical URI (e.g. https://mcp.example.com/mcp): the audience tokens "
        "must name (RFC 8707), and the resource of its RFC 9728 metadata.")] = None
    authorization_servers: Annotated[list[str], _about(
        "auth=jwt: authorization server issuer URLs listed in the protected resource "
        "metadata.")] = []
    required_scopes: Annotated[list[str], _about(
        "Scopes every request needs; per-tool/resource/prompt scopes come on top.")] = []


class OpsSettings(_Section, frozen=True):
    """Logs, metrics and tracing."""

    log_level: Annotated[LogLevel, _about(
        "Least severe log level written (any case).")] = "info"
    log_format: Annotated[Literal["text", "json"], _about(
        "text (for people, on stderr) or json (one object per line, on stdout).")] = "text"
    access_log: Annotated[bool, _about("One info log line per HTTP request.")] = False
    otel_enabled: Annotated[bool, _about(
        "OpenTelemetry tracing (the otel extra; the standard OTEL_* environment can turn it "
        "on too).")] = False
    metrics_dir: Annotated[str | None, _about(
        "Where the workers of one server keep their metrics (memory-mapped files: "
        "prometheus_client's multiprocess mode), so /metrics on any of them answers for all "
        "(one directory per server; a tmpfs with room is best). Default: a temporary "
        "directory under TMPDIR, removed at exit.")] = None
    metrics_flush_interval_s: Annotated[PositiveFloat, _about(
        "How often each worker sets the gauges it reads from its state (live sessions, "
        "streams) for the others: how stale a sibling's gauges in /metrics may be. "
        "Counters and histograms are shared as they change.")] = 1.0
    metrics_port: Annotated[Annotated[int, Meta(ge=1, le=65535)] | None, _about(
        "Serve /metrics and the liveness and readiness paths on this port (plain HTTP, on "
        "host) instead of the MCP port, so a proxy in front of the MCP port cannot expose "
        "them. Unset: on the MCP port.")] = None


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Every server setting, in sections; build one with :meth:`from_options`.

    ``Config.from_options(redis_url="redis://...", max_body_bytes=2**20)`` takes the flat
    option names of the CLI, the environment and TOML (``docs/configuration.md``).
    """

    server: ServerSettings = ServerSettings()
    connections: ConnectionSettings = ConnectionSettings()
    redis: RedisSettings = RedisSettings()
    limits: LimitSettings = LimitSettings()
    sessions: SessionSettings = SessionSettings()
    sse: SseSettings = SseSettings()
    tasks: TaskSettings = TaskSettings()
    request_state: RequestStateSettings = RequestStateSettings()
    auth: AuthSettings = AuthSettings()
    ops: OpsSettings = OpsSettings()

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """A Config from flat option names; ``ValueError`` names a bad one."""
        from .options import build

        return build(options)

    def replace(self, **options: Any) -> Config:
        """This Config with some flat options changed."""
        from .options import build, flatten

        return build({**flatten(self), **options})
