"""The ASGI application: routing, header rules, era detection, errors to status codes."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import trio

from ..app.app import App
from ..config import Config
from ..engine.dispatch import Engine
from ..engine.modern import ModernService
from ..engine.request_state import RequestStateCodec
from ..engine.session import SessionService
from ..engine.tasks import TaskService
from ..errors import (
    AuthError,
    BackendUnavailable,
    InternalError,
    MethodNotAllowed,
    NotAcceptable,
    OriginNotAllowed,
    Overloaded,
    UnsupportedMediaType,
    UnsupportedVersion,
    WireError,
)
from ..observability.metrics import CLIENT_GONE, SESSIONS, STREAMS, read_at_scrape
from ..protocol import jsonrpc, versions
from ..protocol.classify import classify_post
from ..protocol.limits import check_headers
from ..security.cors import SECURITY_HEADERS, CorsPolicy
from ..security.gate import AuthGate, Identity
from ..security.origin import HostPolicy, OriginPolicy
from ..security.principal import Authenticator
from ..security.ratelimit import RateLimits, subject
from ..serving.clock import Clock
from ..state import make_state
from ..state.base import StateBackend
from ..state.tasks import RunLimits
from .discovery import server_document
from .gc_tuning import tune_gc
from .http import ClientGone, Request, accepts, is_json_content
from .legacy_sse import LegacyTransport
from .limits import check_request_headers, header_limits, json_limits
from .modern import ModernTransport
from .observe import Observer, label_exchange, log_worker_started
from .readiness import Readiness
from .shedding import Shedder
from .streamable import SessionTransport
from .websocket import WebSocketTransport

__all__ = ["ASGIApp"]

log = logging.getLogger("scalemcp.transport")
#: A refused request's body is read (and dropped) up to this size, to keep the connection.
_DRAIN_BYTES = 64 * 1024


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
        self.state: StateBackend = state or make_state(config)
        codec = RequestStateCodec(config.request_state.keys or [secrets.token_hex(32)],
                                  config.request_state.ttl_s)
        self.engine = Engine(app, codec, request_timeout_s=config.server.request_timeout_s)
        worker = getattr(self.state, "worker_id", None) or secrets.token_hex(8)
        self.tasks = self.engine.tasks = TaskService(
            self.engine, self.state, worker=str(worker), lease_s=config.tasks.lease_s,
            concurrency=config.tasks.concurrency, run_tasks=config.tasks.workers_run_tasks,
            ask_timeout_s=config.sessions.client_request_timeout_s,
            max_active=config.tasks.max_active,
            poll_min_interval_s=config.tasks.poll_min_interval_ms / 1000,
            limits=RunLimits(per_principal=config.tasks.max_running_per_principal,
                             per_tool=config.tasks.max_running_per_tool))
        #: Only an app with task tools watches task events and claims tasks.
        self.has_tasks = any(t.task is not None for t in app.tools.values())
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
        self.origins = OriginPolicy([*config.server.allowed_origins,
                                     *config.server.cors_allowed_origins])
        self.cors = CorsPolicy(config.server.cors_allowed_origins)
        self.hosts = HostPolicy(config.server.allowed_hosts, bound_to=config.server.host)
        self.websocket = WebSocketTransport(self.sessions, self.state, config, self.origins,
                                            self.limits)
        self.running = False
        #: Set once startup completed (a worker that fails before it is a start failure).
        self.started = False
        #: Set with ``started``: the worker supervisor waits on it (``ops.workers``).
        self.ready = trio.Event()
        self.observer = Observer(config)
        self._info_document = server_document(app, config)
        self.readiness = Readiness(config.server.ready_backend_grace_s)
        server = config.server
        #: Served on the metrics port when there is one, else next to the MCP endpoint;
        #: never shed.
        self.ops_paths = frozenset({"/metrics", *server.liveness_paths,
                                     *server.readiness_paths})
        #: Begun by the worker supervisor on SIGTERM (``scalemcp.ops.workers``).
        self.drain = self.observer.drain
        #: The send deadlines of every SSE stream of the worker (``send_guard``).
        self.send_clock = Clock()
        limits = config.limits
        #: Load shedding (transport/shedding.py): an adaptive limit unless configured off.
        self.shedder = Shedder(limits.shed_max_inflight, limits.shed_loop_lag_s,
                               limits.shed_retry_after_s, target_lag_s=limits.shed_target_lag_s,
                               min_inflight=limits.shed_min_inflight)
        self.shed_body = jsonrpc.encode_error(None, Overloaded("the server is past its "
                                                                "capacity; retry shortly"))
        read_at_scrape(SESSIONS, lambda: self.state.statistics().sessions)
        read_at_scrape(STREAMS, lambda: self.state.statistics().streams)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            req = Request(scope, receive, send)
            req.closing = self.drain
            req.send_timeout_s = self.config.sse.send_timeout_s
            req.clock = self.send_clock
            with self.observer.exchange(req):
                if (not self.shedder.enabled or req.path in self.ops_paths
                        or (self.shedder.screened and scope["http_version"] != "2")):
                    await self._http(req)
                    return
                refusal = self.shedder.refusal()
                if refusal is not None:  # past capacity: no work at all for this request
                    await self._shed(req, refusal)
                    return
                if req.method == "GET":  # streams stay open at no cost: not work
                    await self._http(req)
                    return
                # In flight until its answer begins: then it is answered, or a stream
                # (a listen, a call streaming progress), which costs nothing while idle.
                shedder = self.shedder
                shedder.count_in()
                counted = True

                async def answering(message: dict[str, Any]) -> None:
                    nonlocal counted
                    if counted and message is not None and (
                            message["type"] == "http.response.start"):
                        counted = False
                        shedder.inflight -= 1
                    await send(message)

                req._send = answering
                try:
                    await self._http(req)
                finally:
                    if counted:
                        shedder.inflight -= 1
        elif scope["type"] == "websocket":
            if scope["path"] == self.config.server.path and not self.config.server.stateless_only:
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
            async with self.state.running(), trio.open_nursery() as nursery:
                await nursery.start(self.observer.serve)  # node-wide /metrics (workers)
                await nursery.start(self.shedder.watch_loop)
                await nursery.start(self.sessions.serve)
                nursery.start_soon(self.drain.watch)  # ends open streams when draining
                nursery.start_soon(self.send_clock.run)  # slow SSE consumers' deadlines
                await nursery.start(self.session_transport.feeder.serve)  # GET streams
                await nursery.start(self.app.serve_background, self.state)  # skills watcher
                if self.has_tasks:
                    await nursery.start(self.tasks.runner.serve)
                self.running = self.started = True
                tune_gc(self.config.server.gc_threshold)  # what lives on is frozen now
                await send({"type": "lifespan.startup.complete"})
                self.ready.set()
                log_worker_started(self.config, self.state.name,
                                   self.observer.tracing is not None)
                await receive()  # lifespan.shutdown
                self.running = False
                self.tasks.runner.stop_claiming()  # running tasks: handed back at exit
                # Draining: session-era requests run on until done or the hard stop.
                await self.drain.run_down(self.sessions.wait_finished)
                nursery.cancel_scope.cancel()
        except Exception as exc:
            if self.started:
                raise
            log.debug("startup failed", exc_info=True)  # the server says why, once
            await send({"type": "lifespan.startup.failed",
                        "message": f"{type(exc).__name__}: {exc}"})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, req: Request) -> None:
        try:
            try:
                await self._route(req)  # (the exchange counts the response's status)
            except BaseExceptionGroup as group:
                # One failure that left a request's nursery on its way out (Trio groups
                # them all): answered as itself (a 503 for Redis down, not a 500).
                raise _sole(group) from None
        except WireError as exc:  # every refusal, rendered here and only here
            await self._refuse(req, exc)
        except AuthError as exc:  # raised before the body is read
            await req.drain(min(self.config.limits.max_body_bytes, _DRAIN_BYTES))
            await req.respond_json(*self.auth.refusal(exc))
        except (ClientGone, trio.BusyResourceError, trio.BrokenResourceError,
                trio.ClosedResourceError) as exc:
            # A client that hangs up mid-request, or as its answer ends (Hypercorn's reader
            # closes the socket while the answer's last write is under way): an event of
            # the client's, counted, never a server error.
            CLIENT_GONE.inc()
            log.debug("client went away while %s %s was served: %s", req.method, req.path,
                      type(exc).__name__)
        except Exception:
            log.exception("unhandled error serving %s %s", req.method, req.path)
            if not req.started:
                await req.respond_error(500, InternalError("internal server error"))

    async def _shed(self, req: Request, refusal: Overloaded) -> None:
        """503 + Retry-After, and nothing else: the body is not read (the server discards
        it), no header is looked at. The connection stays open: a client that comes back
        after Retry-After needs no new handshake."""
        try:
            await req.respond_json(503, self.shed_body, refusal.http_headers())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            CLIENT_GONE.inc()

    async def _refuse(self, req: Request, exc: WireError) -> None:
        """Answer a refused request: the error's status, headers and JSON-RPC error (with the
        request's id once it is known). An unread body is read first (up to a bound), so
        the connection stays usable."""
        if req.started:  # the answer had begun: nothing more can be said on it
            log.info("%s %s failed after its answer began: %s", req.method, req.path, exc)
            return
        if not req.body_read:
            await req.drain(min(self.config.limits.max_body_bytes, _DRAIN_BYTES))
        await req.respond_error(exc.http_status, exc, req.rpc_id)

    async def _route(self, req: Request) -> None:
        path = req.path
        origin = req.header("origin")
        req.extra_headers = [*SECURITY_HEADERS, *self.cors.headers(origin)]
        check_request_headers(req.scope["headers"], self.header_limits)
        if req.method == "OPTIONS":
            headers = self.cors.preflight(origin, req.header("access-control-request-headers"))
            await req.respond(204 if headers else 403, headers=headers)
            return
        server = self.config.server
        # With metrics_port set, its listener serves these paths and nothing else.
        ops_port = self.config.ops.metrics_port
        on_ops_port = ops_port is not None and _local_port(req.scope) == ops_port
        if path in self.ops_paths and (ops_port is None or on_ops_port):
            await self._ops(req)
            return
        if on_ops_port:
            await req.respond_json(404, b'{"error":"not found"}')
            return
        if self.auth.is_metadata_path(path):
            await self._metadata(req)
            return
        legacy = path in (server.sse_path, server.messages_path)
        info = bool(server.info_path) and path == server.info_path
        if path != server.path and not legacy and not info:
            await req.respond_json(404, b'{"error":"not found"}')
            return
        if not self.origins.permits(req.header("origin")) or not self.hosts.permits(
            req.header("host")
        ):
            raise OriginNotAllowed("Origin or Host not allowed")
        who = await self.auth.identify(req.headers)  # AuthError: answered in _http
        if info:
            await self._info(req)
        elif legacy:
            await self._legacy(req, who)
        elif req.method == "POST":
            await self._post(req, who)
        elif server.stateless_only:
            raise MethodNotAllowed("this server speaks only the stateless protocol: POST",
                                   allow="POST")
        elif req.method == "GET":
            await self.session_transport.get(req, who.principal)
        elif req.method == "DELETE":
            await self.session_transport.delete(req, who.principal)
        else:
            raise MethodNotAllowed(f"{req.method} is not served here", allow="GET, POST, DELETE")

    async def _info(self, req: Request) -> None:
        """What clients and monitors written for other MCP servers read at ``GET /``."""
        if req.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{req.method} is not served here", allow="GET, HEAD")
        await req.respond_json(200, self._info_document)

    async def _ops(self, req: Request) -> None:
        """Liveness (the worker answers), readiness (and its backend does), /metrics."""
        if req.path in self.config.server.liveness_paths:
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
            raise MethodNotAllowed(f"{req.method} is not served here", allow="GET")
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
        await self.websocket.serve(scope, receive, send, who.principal, who.scopes, self.drain)

    async def _legacy(self, req: Request, who: Identity) -> None:
        if self.config.server.stateless_only:
            await req.respond_json(404, b'{"error":"not found"}')
        elif req.path == self.config.server.sse_path and req.method == "GET":
            await self.legacy.get(req, who.principal)
        elif req.path == self.config.server.messages_path and req.method == "POST":
            await self.legacy.post(req, who.principal, who.scopes)
        else:
            allow = "GET" if req.path == self.config.server.sse_path else "POST"
            raise MethodNotAllowed(f"{req.method} is not served here", allow=allow)

    async def _post(self, req: Request, who: Identity) -> None:
        if not accepts(req.header("accept"), "application/json", "text/event-stream"):
            raise NotAcceptable("Accept must list both application/json and text/event-stream")
        if not is_json_content(req.header("content-type")):
            raise UnsupportedMediaType("Content-Type must be application/json")
        body = await req.body(self.config.limits.max_body_bytes)
        post = classify_post(body, req.header("mcp-protocol-version"), self.json_limits)
        single = post.single
        req.rpc_id = single.request_id if single is not None else None
        try:
            await self.limits.check(subject(who.principal, req.scope), post.items, who.scopes)
            if post.era == "modern" and single is not None:
                label_exchange("modern", single.message)
                await self.modern.post(req, single, who.principal, who.scopes)
            elif self.config.server.stateless_only:
                raise UnsupportedVersion(
                    "this server speaks only the stateless protocol",
                    {"supported": list(versions.MODERN_VERSIONS), "requested": post.version})
            else:
                label_exchange("session", single.message if single
                               else [i.message for i in post.items])
                await self.session_transport.post(req, post, who.principal, who.scopes)
        except AuthError as exc:  # modern era: the target needs scopes the caller lacks
            await req.respond_json(*self.auth.refusal(exc))


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception of ``group`` (however nested), or the group if it holds more."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    return group if isinstance(leaf, BaseExceptionGroup) else leaf
