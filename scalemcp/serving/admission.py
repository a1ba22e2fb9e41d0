"""Load shedding in the serving loop: a request over capacity refused before the app.

The app's shedder (:mod:`scalemcp.transport.shedding`) says when the worker is past its
capacity (requests in flight, event-loop lag). Refusing in the app costs what any request
costs up to the app: h11's parse, the ASGI scope, a task (measured: 0.73 x a served
request, bench/results/overload-2026-12-03.md), so at 3 x capacity the refusals alone use
up the worker. Here the first bytes of each new HTTP/1.1 request are looked at directly
(request line, and past capacity three headers), before h11 sees them:

- **Counted.** A request that is work (not ``GET``: streams stay open at no cost; not a
  health, readiness or metrics path) whose head came whole in one read counts in the
  shedder's ``inflight`` from then until its answer begins (:meth:`Admission.done`): an
  answer that is a stream (a listen, a call streaming progress) costs nothing while idle.
  Counted here, not when its task starts in the app, a burst read in one scheduler batch
  cannot all pass the limit together.
- **Refused** past capacity, with a canned ``503`` + ``Retry-After`` written straight to
  the socket: if its whole body came with its head, the connection stays open (keep-alive,
  what a client coming back after ``Retry-After`` wants) and the request's bytes are
  dropped; else (the body still to come, chunked, HTTP/1.0, ``Connection: close``) the
  answer says ``Connection: close`` and the connection closes.

Health, readiness and metrics paths, upgrades (WebSocket, h2c) and anything that is not a
plain HTTP/1.x request line pass through, uncounted.

HTTP/2 (:meth:`Admission.screen_streams`): the new streams of each batch of frames h2
parsed are looked at before Hypercorn makes a stream and an app task of them. Past
capacity, a stream that is work gets the same canned ``503`` + ``Retry-After`` as its
answer (HEADERS and DATA, written with the batch's other frames) and, if its request body
is still coming, ``RST_STREAM`` ``NO_ERROR`` after it (RFC 9113 8.1: stop sending, no
error); if even that cannot be sent (no flow-control window), ``RST_STREAM``
``REFUSED_STREAM`` (not processed: safe to retry). Its frames in the batch never reach
Hypercorn; h2 drops the later ones (the stream is reset). Streams that pass are counted
in flight by the app, as its task starts.

Refusals are counted where the app counts them (``scalemcp_shed_total{reason}``,
``scalemcp_http_responses_total``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.stream import StreamState

from ..observability import metrics
from . import seam

__all__ = ["CANNOT_DELIMIT", "COUNTED", "Admission", "Load"]

#: :meth:`Admission.screen`'s answer for a request refused whose end is not known.
CANNOT_DELIMIT = 0
#: ... for a request served and counted in flight (:meth:`Admission.done` at its end).
COUNTED = -1

_HEADERS = re.compile(rb"\r\n(content-length|transfer-encoding|upgrade|connection)[ \t]*:"
                      rb"[ \t]*([^\r\n]*)", re.IGNORECASE)
#: A head longer than this is not looked at here (h11 judges it).
_MAX_HEAD = 16_384
#: HTTP/2 methods that are not work: streams (GET) and WebSocket (CONNECT).
_NOT_WORK = (b"GET", b"CONNECT")
_H2_SHED = metrics.SHED_H2.labels("503")
_H2_REFUSED = metrics.SHED_H2.labels("refused_stream")


class Load(Protocol):
    """What the loop reads of the app's shedder (``transport.shedding.Shedder``)."""

    retry_after_s: int
    #: Requests in flight (work, not streams), counted here and by the app (HTTP/2).
    inflight: int

    def overloaded(self) -> bool:
        """Past capacity now (counts nothing)."""
        ...

    def count_in(self) -> None:
        """One more request in flight."""
        ...

    def refusal(self) -> object | None:
        """Past capacity now: why (and count the refusal), else None."""
        ...


def _response(retry_after_s: int, body: bytes, close: bool) -> bytes:
    return b"".join((
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: %d\r\n" % retry_after_s,
        b"connection: close\r\n" if close else b"",
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body), body))


class Admission:
    """Screens new HTTP/1.1 requests of one worker against its load (:meth:`screen`)."""

    def __init__(self, load: Load, exempt_paths: Iterable[str], body: bytes) -> None:
        self.load = load
        #: Never refused here: a load balancer must still see the worker alive.
        self.exempt = frozenset(path.encode() for path in exempt_paths)
        #: The answers, keep-alive and closing: written as they are.
        self.keep_alive = _response(load.retry_after_s, body, close=False)
        self.close = _response(load.retry_after_s, body, close=True)
        #: HTTP/2's answer: its headers, then ``body``.
        self.h2_headers = [(b":status", b"503"), (b"retry-after", b"%d" % load.retry_after_s),
                           (b"content-type", b"application/json"),
                           (b"content-length", b"%d" % len(body))]
        self.body = body
        self._responses = metrics.HTTP_RESPONSES.labels("503")

    def screen(self, data: bytes) -> int | None:
        """``data``, the first bytes of a new request. None: serve it, uncounted;
        :data:`COUNTED`: serve it, counted in flight (call :meth:`done` at its end); else
        it is refused (and counted as such), and the answer is how many bytes of ``data``
        it took, or :data:`CANNOT_DELIMIT` (answer :attr:`close`, then close)."""
        line_end = data.find(b"\r\n", 0, _MAX_HEAD)
        if line_end < 0:
            return None  # not even a request line yet: h11 waits for the rest
        method, _, rest = data[:line_end].partition(b" ")
        target, _, version = rest.rpartition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or not method.isalpha():
            return None  # HTTP/2's preface, or garbage: the protocol answers it
        if target.partition(b"?")[0] in self.exempt:
            return None
        load = self.load
        if load.overloaded():
            length = self._request_length(data, line_end, version)
            if length is not None and load.refusal() is not None:
                self._responses.inc()
                return length
        if method == b"GET" or data.find(b"\r\n\r\n", line_end, _MAX_HEAD) < 0:
            return None  # a stream; or a head still coming (a slowloris must hold no slot)
        load.count_in()
        return COUNTED

    def done(self) -> None:
        """A request :meth:`screen` counted has ended."""
        self.load.inflight -= 1

    def screen_streams(self, protocol: seam.H2Protocol) -> None:
        """From now on, screen the new streams of ``protocol`` (HTTP/2) before Hypercorn
        sees them (once per connection, before its first frames are handled)."""
        handle_events: Callable[[list[Any]], Awaitable[None]] = protocol._handle_events
        screen = self._screen_batch

        async def screened(events: list[Any]) -> None:
            await handle_events(screen(protocol, events))

        protocol._handle_events = screened  # type: ignore[method-assign]

    def _screen_batch(self, protocol: seam.H2Protocol, events: list[Any]) -> list[Any]:
        """The events of ``events`` to hand to Hypercorn: those of streams refused here
        left out."""
        load = self.load
        refused: set[int] | None = None
        passed = 0  # streams of this batch let through: not counted by the app yet
        try:
            for event in events:
                if type(event) is not h2.events.RequestReceived or not self._is_work(event):
                    continue
                if not load.overloaded() or load.refusal() is None:
                    load.inflight += 1  # (as the app will count it, for the next ones here)
                    passed += 1
                    continue
                self._refuse_stream(protocol.connection, event.stream_id)
                if refused is None:
                    refused = set()
                refused.add(event.stream_id)
        finally:
            load.inflight -= passed
        if refused is None:
            return events
        kept = []
        connection = protocol.connection
        for event in events:
            if getattr(event, "stream_id", None) not in refused:
                kept.append(event)
            elif type(event) is h2.events.DataReceived:  # the window it used is given back
                connection.acknowledge_received_data(event.flow_controlled_length,
                                                     event.stream_id)
        return kept

    def _is_work(self, event: h2.events.RequestReceived) -> bool:
        method = path = b""
        for name, value in event.headers or ():
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
        return method not in _NOT_WORK and path.partition(b"?")[0] not in self.exempt

    def _refuse_stream(self, connection: Any, stream_id: int) -> None:
        """Answer the new stream ``stream_id`` with the canned 503, or refuse it."""
        try:
            if connection.local_flow_control_window(stream_id) < len(self.body):
                # No window for the answer (a client holding it at 0 must not hold the
                # stream): refused, unprocessed.
                connection.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
                _H2_REFUSED.inc()
                return
            connection.send_headers(stream_id, self.h2_headers)
            connection.send_data(stream_id, self.body, end_stream=True)
            stream = connection.streams.get(stream_id)
            if stream is not None and stream.state_machine.state is not StreamState.CLOSED:
                connection.reset_stream(stream_id, ErrorCodes.NO_ERROR)  # its body: unwanted
        except h2.exceptions.H2Error:
            return  # the stream is gone already (the client reset it): nothing to answer
        self._responses.inc()
        _H2_SHED.inc()

    def _request_length(self, data: bytes, line_end: int, version: bytes) -> int | None:
        """The length of the request ``data`` begins with (:data:`CANNOT_DELIMIT`: not
        known); None if it is not one to refuse here (an upgrade)."""
        head_end = data.find(b"\r\n\r\n", line_end, _MAX_HEAD)
        if head_end < 0:
            return CANNOT_DELIMIT  # the head is still coming
        length: int | None = None
        keep_alive = version == b"HTTP/1.1"
        for found in _HEADERS.finditer(data, line_end, head_end + 2):
            name, value = found.group(1).lower(), found.group(2).strip().lower()
            if name == b"upgrade":
                return None  # a WebSocket or h2c upgrade: the app decides
            if name == b"connection":
                keep_alive = keep_alive and b"close" not in value
            elif name == b"transfer-encoding" or not value.isdigit() or length is not None:
                keep_alive = False  # chunked, or a length one cannot trust: close
            else:
                length = int(value)
        total = head_end + 4 + (length or 0)
        if not keep_alive or total > len(data):
            return CANNOT_DELIMIT
        return total
