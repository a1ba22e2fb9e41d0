"""Everything scalemcp takes from Hypercorn's internals, in one place: the seam.

scalemcp's serving loop (:mod:`.connection`, :mod:`.worker`) replaces Hypercorn's trio
``TCPServer`` and ``worker_serve``, and by default its ``H11Protocol`` for plain HTTP/1.1
(:mod:`.http11`; ``http1_protocol = "hypercorn"`` keeps Hypercorn's), and keeps the rest:
the HTTP/2 and WebSocket protocol classes behind ``ProtocolWrapper`` (h2, wsproto; h11 for
an upgrading request and its connection, and with the fallback), the ASGI stream classes,
``Config`` (TLS contexts, ALPN, sockets), the lifespan, ``WorkerContext``, and the way an
ASGI app task is run (``handle_app``: Hypercorn's error handling around the app).

The contract with those classes, as Hypercorn 0.18 has it:

- ``ProtocolWrapper(app, config, context, task_group, state, ssl, client, server, send,
  alpn_protocol)``; ``initiate()``; ``handle(event)`` takes ``RawData`` (bytes read, ``b""``
  at end of file) and ``Closed``.
- The protocol calls ``send(event)`` with ``RawData`` (bytes to write, in order), ``Closed``
  (close the connection) and ``Updated(idle=...)`` (idle: no request in progress, the
  keep-alive clock runs; busy: it stops).
- ``task_group.spawn_app(app, config, scope, send)`` returns the coroutine function that
  puts receive events in the app's inbox; ``task_group.spawn(fn, *args)`` starts a task
  (``.tasks.TaskGroup`` provides both).
- ``handle_app(app, config, scope, receive, send, sync_spawn, call_soon)`` runs the app.
- ``config.response_headers("h11")``: the ``Date``/``Server``/``Alt-Svc`` headers
  Hypercorn adds to each HTTP/1.1 response (:mod:`.http11` adds the same);
  ``config.h11_max_incomplete_size`` bounds a request head, ``h11_pass_raw_headers``
  keeps header names as sent; ``config.log.access(scope, response, seconds)``.
- An HTTP/1.1 connection's protocol under ``ProtocolWrapper`` is an ``H11Protocol`` whose
  ``connection`` is its h11 ``Connection`` (``their_state`` is ``h11.SEND_BODY`` while a
  request body arrives), or after a WebSocket upgrade a stand-in without that state.
- An HTTP/2 connection's protocol is an ``H2Protocol``: ``connection`` its h2
  ``H2Connection``, ``streams`` its streams by id; a stream is reset as Hypercorn handles a
  client's ``RST_STREAM``: ``_close_stream(id)``, ``_window_updated(id)``, then
  ``_flush()`` (``.h2_bodies``). ``_handle_events(events)`` takes the h2 events of one
  read (as ``transport.h2_backpressure`` patches it) and flushes: load shedding wraps it,
  per connection, to take a refused stream's events out first (``.admission``).
- ``context.terminated`` is set when the worker stops: idle connections close at once, busy
  ones once their request ends; ``context.mark_request()`` counts ``max_requests``.

Only the names below are imported from Hypercorn by the loop. The version range is the one
the suite runs on (pyproject.toml pins the same); ``tests/serving/test_seam.py`` fails when
the installed Hypercorn leaves it, when a signature above changes, or when the Hypercorn
code scalemcp replaces changes (its source digest), so a Hypercorn upgrade is a reviewed
change of this module, never a silent one.
"""

from __future__ import annotations

from hypercorn.config import Config, Sockets
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.task_group import _handle as handle_app
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import (
    LifespanFailureError,
    ShutdownError,
    parse_socket_addr,
    repr_socket_addr,
    wrap_app,
)

__all__ = [
    "REPLACED",
    "TESTED_VERSIONS",
    "AppWrapper",
    "Closed",
    "Config",
    "ConnectionState",
    "Event",
    "H2Protocol",
    "H11Protocol",
    "Lifespan",
    "LifespanFailureError",
    "LifespanState",
    "ProtocolWrapper",
    "RawData",
    "ShutdownError",
    "Sockets",
    "Updated",
    "WorkerContext",
    "handle_app",
    "parse_socket_addr",
    "repr_socket_addr",
    "wrap_app",
]

#: The Hypercorn releases the loop is tested with (pyproject.toml allows exactly these).
TESTED_VERSIONS = (">=0.18", "<0.19")

#: The Hypercorn code the loop replaces (``module:qualname``), by the SHA-256 of its source
#: in the tested releases: when one changes, read the change and port it (or not) first.
REPLACED = {
    "hypercorn.trio.tcp_server:TCPServer":
        "5593e38b83d3e22e6576f2cdf8faa5a265d8e0e3bd28d97bdacfbe8d781a90b3",
    "hypercorn.trio.run:worker_serve":
        "8dc8347a9fc357ca334f8c3e4bcf0368176510a96d434f21a5eb4c9ec4103726",
    "hypercorn.trio.task_group:TaskGroup":
        "8467a3a16a7e8763079b8727fe73d7d2115d0cb99441984856ff1bfcb4fcfbf2",
    "hypercorn.trio.worker_context:TrioSingleTask":
        "aa59316c028b876ad16369d57fcf70a82969bfb76436df033de96541935c7212",
    # .http11 does what these two do for HTTP/1.1 (scope, framing, errors, recycling).
    "hypercorn.protocol.h11:H11Protocol":
        "b32a61e0a8ca2127c7e1cb133281521f6cc73fdefb94b188fb6944e80b175b43",
    "hypercorn.protocol.http_stream:HTTPStream":
        "e0f656feb55ab89c407631368d7a00f3e1b9ab4eb5ade4a639771150bbc6cfa5",
}

