"""One worker's serving loop: the lifespan, the accept loops, the connections, the stop.

The counterpart of Hypercorn's ``hypercorn.trio.run.worker_serve`` (same arguments, same
order of events: lifespan startup, listen, serve until the shutdown trigger returns or
``max_requests`` is reached, then ``graceful_timeout`` for what is open, then lifespan
shutdown), with scalemcp's own accept loop and :class:`~.connection.Connection` instead of
``trio.serve_listeners`` and ``TCPServer``. HTTP/3 (QUIC) is not served here.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..config.settings import ConnectionSettings
from ..observability import metrics
from . import seam
from .admission import Admission
from .clock import Clock
from .connection import Connection, ConnectionTimeouts, Shared
from .gate import Gate, parse_networks, refuse

__all__ = ["serve", "worker_serve"]

log = logging.getLogger("scalemcp.serving")

#: accept() failing with these means "out of file descriptors or memory": wait, retry.
_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
#: accept() failing with these concerns one connection only (it went away first).
_SKIP_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ETIMEDOUT}
_CAPACITY_PAUSE_S = 0.1
#: Named once: Trio formats a name per task otherwise (memory, per open connection).
_CONNECTION_TASK = "scalemcp.serving.connection"


async def serve(
    app: Any,
    config: seam.Config,
    *,
    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
    settings: ConnectionSettings | None = None,
    admission: Admission | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve an ASGI ``app`` in this Trio run, as ``hypercorn.trio.serve`` does;
    ``settings``: the connections' deadlines and limits (default: the defaults);
    ``admission``: load shedding before the app (default: none)."""
    await worker_serve(seam.wrap_app(app, config.wsgi_max_body_size, "asgi"), config,
                       shutdown_trigger=shutdown_trigger, settings=settings,
                       admission=admission, task_status=task_status)


async def worker_serve(
    app: seam.AppWrapper,
    config: seam.Config,
    *,
    sockets: seam.Sockets | None = None,
    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
    settings: ConnectionSettings | None = None,
    admission: Admission | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``sockets`` (or those ``config`` binds) until told to stop.

    ``config.keep_alive_timeout`` is the idle deadline; ``settings`` the others and the
    connection limits; ``admission`` sheds load before the app (:mod:`.admission`).
    """
    settings = settings or ConnectionSettings()
    lifespan_state: seam.LifespanState = {}
    lifespan = seam.Lifespan(app, config, lifespan_state)
    max_requests = None
    if config.max_requests is not None:
        max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
    context = seam.WorkerContext(max_requests)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        own_sockets = sockets is None
        if sockets is None:
            sockets = config.create_sockets()
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
                sock.listen(config.backlog)
        timeouts = ConnectionTimeouts(
            keep_alive=float(config.keep_alive_timeout), head=settings.head_timeout_s,
            body=settings.body_timeout_s, send=settings.send_timeout_s)
        gate = Gate(settings.max_connections, settings.max_connections_per_client,
                    parse_networks(settings.trusted_proxies))
        shared = Shared(app, config, context, lifespan_state, timeouts, gate, admission,
                        Clock(), http1=settings.http1_protocol)
        async with trio.open_nursery() as clock_nursery:
            # The connections' deadlines, until the last connection is done.
            clock_nursery.start_soon(shared.clock.run, name="scalemcp.serving.clock")
            clock_nursery.start_soon(shared.reads.run, name="scalemcp.serving.idle_reads")
            await _serve_sockets(shared, sockets, own_sockets, shutdown_trigger, task_status)
            clock_nursery.cancel_scope.cancel()

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _serve_sockets(
    shared: Shared, sockets: seam.Sockets, own_sockets: bool,
    shutdown_trigger: Callable[..., Awaitable[None]] | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    """Accept on ``sockets`` until the trigger or ``max_requests``; the graceful end."""
    config, context = shared.config, shared.context
    async with trio.open_nursery() as server_nursery:
        if sockets.quic_sockets:
            raise ValueError("HTTP/3 (quic_bind) is served by Hypercorn's own loop only")
        ssl_context = config.create_ssl_context()
        acceptor = _Acceptor(shared, server_nursery)
        shared.nursery = server_nursery  # the connections' requests run there too
        binds: list[str] = []
        listeners: list[tuple[socket.socket, ssl.SSLContext | None]] = [
            *((sock, ssl_context) for sock in sockets.secure_sockets),
            *((sock, None) for sock in sockets.insecure_sockets)]
        for sock, context_or_none in listeners:
            bind = seam.repr_socket_addr(sock.family, sock.getsockname())
            scheme = "https" if context_or_none is not None else "http"
            binds.append(f"{scheme}://{bind}")
            await config.log.info(f"Running on {scheme}://{bind} (CTRL + C to quit)")

        task_status.started(binds)
        try:
            async with trio.open_nursery(strict_exception_groups=True) as nursery:
                if shutdown_trigger is not None:
                    nursery.start_soon(_raise_shutdown, shutdown_trigger)
                nursery.start_soon(_raise_shutdown, context.terminate.wait)
                for sock, context_or_none in listeners:
                    nursery.start_soon(acceptor.accept_loop, sock, context_or_none)
                await trio.sleep_forever()
        except BaseExceptionGroup as error:
            _, other_errors = error.split((seam.ShutdownError, KeyboardInterrupt))
            if other_errors is not None:
                raise other_errors from None
        finally:
            await context.terminated.set()
            for connection in list(shared.connections):
                connection.stop_if_idle()  # the busy ones close when they go idle
            if own_sockets:  # closed now, so that new connections are refused at once
                for sock, _ in listeners:
                    sock.close()
            server_nursery.cancel_scope.deadline = (
                trio.current_time() + config.graceful_timeout)


async def _raise_shutdown(trigger: Callable[..., Awaitable[object]]) -> None:
    await trigger()
    raise seam.ShutdownError()


class _Acceptor:
    """Accepts connections, refuses those over a limit, serves the others."""

    def __init__(self, shared: Shared, nursery: trio.Nursery) -> None:
        self.shared = shared
        self.gate = shared.gate
        self.nursery = nursery
        self._refused = {reason: metrics.CONNECTIONS_REFUSED.labels(reason)
                         for reason in ("worker_limit", "client_limit")}

    async def accept_loop(self, listener: socket.socket,
                          ssl_context: ssl.SSLContext | None) -> None:
        listener.setblocking(False)
        gate = self.gate
        while True:
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                try:
                    await trio.lowlevel.wait_readable(listener)
                except trio.ClosedResourceError:
                    return  # the listener was closed (the worker drains)
                continue
            except OSError as exc:
                if exc.errno in _CAPACITY_ERRNOS:
                    log.error("cannot accept a connection: %s; trying again in %g s",
                              exc.strerror, _CAPACITY_PAUSE_S)
                    await trio.sleep(_CAPACITY_PAUSE_S)
                    continue
                if exc.errno in _SKIP_ERRNOS:
                    continue
                if exc.errno == errno.EBADF:
                    return  # closed under us
                raise
            peer = address[0] if sock.family in (socket.AF_INET, socket.AF_INET6) else None
            via_proxy = peer is not None and gate.is_proxy(peer)
            counted = None if via_proxy else peer
            refused = gate.admit(counted)
            if refused is not None:
                self._refused[refused].inc()
                refuse(sock, plain=ssl_context is None)
            else:
                self.nursery.start_soon(self._serve, sock, ssl_context, counted, via_proxy,
                                        name=_CONNECTION_TASK)
            # Accepting a burst must not starve the connections already open.
            await trio.lowlevel.checkpoint()

    async def _serve(self, sock: socket.socket, ssl_context: ssl.SSLContext | None,
                     counted: str | None, via_proxy: bool) -> None:
        metrics.CONNECTIONS.inc()
        try:
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
            if ssl_context is not None:
                stream = trio.SSLStream(stream, ssl_context, server_side=True,
                                        https_compatible=True)
            await Connection(self.shared, stream, sock, via_proxy=via_proxy).run()
        except Exception:
            # A fault in one connection must not stop the worker (Hypercorn's would).
            log.exception("connection failed")
            sock.close()
        finally:
            self.gate.release(counted)
            metrics.CONNECTIONS.dec()
