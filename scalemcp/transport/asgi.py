"""The ASGI application: routing, header rules, era detection, errors to status codes."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import trio

from ..app.app import App
from ..config import Config
from ..engine.dispatch import Engine
from ..engine.modern import ModernService, modern_version
from ..engine.request_state import RequestStateCodec
from ..engine.session import SessionService
from ..errors import (
    AuthError,
    BackendUnavailable,
    InternalError,
    InvalidRequest,
    ProtocolError,
    UnsupportedVersion,
)
from ..ops.logs import log_worker_started
from ..ops.metrics import METRICS
from ..ops.observe import Observer, note
from ..ops.readiness import Readiness
from ..protocol import jsonrpc, versions
from ..protocol.limits import check_headers
from ..security.cors import SECURITY_HEADERS, CorsPolicy
from ..security.gate import AuthGate, Identity
from ..security.origin import HostPolicy, OriginPolicy
from ..security.principal import Authenticator
from ..security.ratelimit import RateLimits, subject
from ..state.base import StateBackend
from ..state.memory import MemoryBackend
from .http import BodyTooLarge, Request, accepts, is_json_content
from .legacy_sse import LegacyTransport
from .limits import header_limits, json_limits, refuse_headers
from .modern import ModernTransport
from .streamable import SessionTransport
from .websocket import WebSocketTransport

__all__ = ["ASGIApp"]

log = logging.getLogger("scalemcp.transport")
#: A refused request's body is read (and dropped) up to this size, to keep the connection.
_DRAIN_BYTES = 64 * 1024
#: Served on the metrics port when there is one, else next to the MCP endpoint.
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _local_port(scope: dict[str, Any]) -> int | None:
    server = scope.get("server")
    return server[1] if server and len(server) > 1 else None


class ASGIApp:
    """Serves an :class:`App` over HTTP; build it with :func:`scalemcp.asgi_app`."""

    def __init__(
        self,
        app: App,
        config: Config,
        state: StateBackend | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.auth = AuthGate(app, config, authenticator)
        self.state: StateBackend = state or MemoryBackend(
            idle_ttl_s=config.session_idle_ttl_s,
            stream_maxlen=config.stream_maxlen,
            stream_ttl_s=config.stream_ttl_s,
            max_sessions=config.max_sessions,
        )
        codec = RequestStateCodec(config.state_keys or [secrets.token_hex(32)],
                                  config.request_state_ttl_s)
        self.engine = Engine(app, codec, request_timeout_s=config.request_timeout_s)
        self.json_limits = json_limits(config)
        self.header_limits = header_limits(config)
        self.sessions = SessionService(self.engine, self.state, config)
        self.session_transport = SessionTransport(self.sessions, self.state, config)
        #: Rate limits (security/ratelimit.py); in-flight limits live in the services.
        self.limits = RateLimits(config, app, self.state)
        self.legacy = LegacyTransport(self.sessions, self.state, config, self.limits)
        self.modern = ModernTransport(
            ModernService(self.engine, self.state, config, codec), self.state, config
        )
        self.origins = OriginPolicy([*config.allowed_origins, *config.cors_allowed_origins])
        self.cors = CorsPolicy(config.cors_allowed_origins)
        self.hosts = HostPolicy(config.allowed_hosts, bound_to=config.host)
        self.websocket = WebSocketTransport(self.sessions, self.state, config, self.origins,
                                            self.limits)
        self.running = False
        self.observer = Observer(config)
        self.readiness = Readiness(config.ready_backend_grace_s)
        #: Begun by the worker supervisor on SIGTERM (``scalemcp.ops.drain``).
        self.drain = self.observer.drain
        METRICS.gauge("scalemcp_sessions", "Live sessions (Redis: the fleet's, as last seen)",
                      read=lambda: self.state.statistics().sessions, merge="max")
        METRICS.gauge("scalemcp_streams", "Streams this worker keeps state for (Redis: follows)",
                      read=lambda: self.state.statistics().streams)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            req = Request(scope, receive, send)
            req.send_timeout_s = self.config.sse_send_timeout_s
            with self.observer.exchange(req):
                await self._http(req)
        elif scope["type"] == "websocket":
            if scope["path"] == self.config.path and not self.config.stateless_only:
                with self.observer.websocket(scope):
                    await self._websocket(scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        await receive()  # lifespan.startup
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.observer.serve)  # node-wide /metrics (workers)
                if hasattr(self.state, "serve"):  # e.g. the Redis backend's reader task
                    await nursery.start(self.state.serve)
                await nursery.start(self.sessions.serve)
                self.running = True
                await send({"type": "lifespan.startup.complete"})
                log_worker_started(self.config, self.state.name, self.observer.tracing is not None)
                await receive()  # lifespan.shutdown
                self.running = False
                # Draining: session-era requests run on until done or the hard stop.
                await self.drain.run_down(self.sessions.wait_finished)
                nursery.cancel_scope.cancel()
        finally:
            await self.state.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, req: Request) -> None:
        try:
            await self._route(req)  # (the exchange counts the response's status)
        except BackendUnavailable as exc:
            await req.respond_error(
                503, InternalError(str(exc)),
                headers=[(b"retry-after", str(exc.retry_after_s).encode())],
            )
        except AuthError as exc:  # raised before the body is read
            await req.drain(min(self.config.max_body_bytes, _DRAIN_BYTES))
            await req.respond_json(*self.auth.refusal(exc))
        except trio.BusyResourceError:
            # A client that hangs up as its answer ends: Hypercorn's reader closes the
            # socket while the answer's last write is under way, which then fails so.
            log.info("client went away while %s %s was answered", req.method, req.path)
        except Exception:
            log.exception("unhandled error serving %s %s", req.method, req.path)
            if not req.started:
                await req.respond_error(500, InternalError("internal server error"))

    async def _route(self, req: Request) -> None:
        path = req.path
        origin = req.header("origin")
        req.extra_headers = [*SECURITY_HEADERS, *self.cors.headers(origin)]
        if await refuse_headers(req, self.header_limits):
            return
        if req.method == "OPTIONS":
            headers = self.cors.preflight(origin, req.header("access-control-request-headers"))
            await req.respond(204 if headers else 403, headers=headers)
            return
        # With metrics_port set, its listener serves these paths and nothing else.
        ops_port = self.config.metrics_port
        on_ops_port = ops_port is not None and _local_port(req.scope) == ops_port
        if path in _OPS_PATHS and (ops_port is None or on_ops_port):
            await self._ops(req)
            return
        if on_ops_port:
            await req.respond_json(404, b'{"error":"not found"}')
            return
        if self.auth.is_metadata_path(path):
            await self._metadata(req)
            return
        legacy = path in (self.config.sse_path, self.config.messages_path)
        if path != self.config.path and not legacy:
            await req.respond_json(404, b'{"error":"not found"}')
            return
        if not self.origins.permits(req.header("origin")) or not self.hosts.permits(
            req.header("host")
        ):
            await req.drain(self.config.max_body_bytes)
            await req.respond_error(403, InvalidRequest("Origin or Host not allowed"))
            return
        who = await self.auth.identify(req.headers)  # AuthError: answered in _http
        if legacy:
            await self._legacy(req, who)
        elif req.method == "POST":
            await self._post(req, who)
        elif self.config.stateless_only:
            await req.respond(405, headers=[(b"allow", b"POST")])
        elif req.method == "GET":
            await self.session_transport.get(req, who.principal)
        elif req.method == "DELETE":
            await self.session_transport.delete(req, who.principal)
        else:
            await req.drain(min(self.config.max_body_bytes, _DRAIN_BYTES))
            await req.respond(405, headers=[(b"allow", b"GET, POST, DELETE")])

    async def _ops(self, req: Request) -> None:
        """/healthz (the worker answers), /readyz (and its backend does), /metrics."""
        if req.path == "/healthz":
            await req.respond_json(200, b'{"status":"ok"}')
        elif req.path == "/metrics":
            await req.respond(200, await self.observer.metrics(),
                              content_type="text/plain; version=0.0.4; charset=utf-8")
        else:
            serving = self.running and not self.drain.draining
            await req.respond_json(*self.readiness.judge(serving, await self.state.ready()))

    async def _metadata(self, req: Request) -> None:
        """RFC 9728 protected resource metadata: public, no Origin check, any origin."""
        if req.method != "GET":
            await req.respond(405, headers=[(b"allow", b"GET")])
            return
        await req.respond_json(200, self.auth.metadata(), [
            (b"access-control-allow-origin", b"*"), (b"cache-control", b"max-age=300")])

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Authenticate the handshake; a refusal is an HTTP answer where the server allows
        one (ASGI websocket.http.response), else close code 1008."""
        if check_headers(scope["headers"], self.header_limits) is not None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        who = Identity(None, None)
        if self.origins.permits(headers.get("origin")):  # else the transport refuses it
            try:
                who = await self.auth.identify(headers)
            except (AuthError, BackendUnavailable) as exc:
                await receive()  # websocket.connect
                if "websocket.http.response" not in scope.get("extensions", {}):
                    await send({"type": "websocket.close", "code": 1008})
                    return
                status, body, extra = (self.auth.refusal(exc) if isinstance(exc, AuthError)
                                       else (503, b'{"error":"temporarily_unavailable"}', []))
                await send({"type": "websocket.http.response.start", "status": status,
                            "headers": [*extra, (b"content-type", b"application/json")]})
                await send({"type": "websocket.http.response.body", "body": body})
                return
        await self.websocket.serve(scope, receive, send, who.principal, who.scopes)

    async def _legacy(self, req: Request, who: Identity) -> None:
        if self.config.stateless_only:
            await req.respond_json(404, b'{"error":"not found"}')
        elif req.path == self.config.sse_path and req.method == "GET":
            await self.legacy.get(req, who.principal)
        elif req.path == self.config.messages_path and req.method == "POST":
            try:
                await self.legacy.post(req, who.principal, who.scopes)
            except BodyTooLarge:
                await req.respond_error(413, InvalidRequest("request body too large"))
            except ProtocolError as exc:
                await req.respond_error(max(exc.http_status, 400), exc)
        else:
            await req.respond(405, headers=[(b"allow", b"GET" if req.path ==
                                             self.config.sse_path else b"POST")])

    async def _post(self, req: Request, who: Identity) -> None:
        refused = not accepts(req.header("accept"), "application/json", "text/event-stream") \
            or not is_json_content(req.header("content-type"))
        if refused:  # answered unread, the body would end the connection (no Connection: close)
            await req.drain(min(self.config.max_body_bytes, _DRAIN_BYTES))
        if not accepts(req.header("accept"), "application/json", "text/event-stream"):
            await req.respond_error(406, InvalidRequest(
                "Accept must list both application/json and text/event-stream"))
            return
        if not is_json_content(req.header("content-type")):
            await req.respond_error(415, InvalidRequest("Content-Type must be application/json"))
            return
        version = req.header("mcp-protocol-version")
        try:
            body = await req.body(self.config.max_body_bytes)
        except BodyTooLarge:
            await req.respond_error(413, InvalidRequest(
                f"request body exceeds {self.config.max_body_bytes} bytes"))
            return
        decoded: jsonrpc.Message | list[jsonrpc.Message] | None = None
        try:
            decoded = jsonrpc.decode_body(body, self.json_limits)
            await self.limits.check(subject(who.principal, req.scope), decoded, who.scopes)
            if isinstance(decoded, jsonrpc.Message) and modern_version(decoded, version):
                note("modern", decoded)
                await self.modern.post(req, decoded, who.principal, who.scopes)
            elif self.config.stateless_only:
                raise UnsupportedVersion(
                    "this server speaks only the stateless protocol",
                    {"supported": list(versions.MODERN_VERSIONS),
                     "requested": version or versions.DEFAULT_HEADER_VERSION},
                )
            else:
                note("session", decoded)
                await self.session_transport.post(req, decoded, who.principal, who.scopes)
        except AuthError as exc:  # modern era: the target needs scopes the caller lacks
            await req.respond_json(*self.auth.refusal(exc))
        except ProtocolError as exc:
            request_id = None
            if isinstance(decoded, jsonrpc.Message) and isinstance(decoded.id, int | str):
                request_id = decoded.id
            await req.respond_error(max(exc.http_status, 400), exc, request_id)
