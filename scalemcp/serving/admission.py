"""Load shedding in the serving loop: a request over capacity refused before the app.

The app's shedder (:mod:`scalemcp.transport.shedding`) says when the worker is past its
capacity (requests in flight, event-loop lag). Refusing in the app costs what any request
costs up to the app: h11's parse, the ASGI scope, a task (measured: 0.73 x a served
request, bench/results/overload-2026-12-03.md), so at 3 x capacity the refusals alone use
up the worker. Here the first bytes of each new HTTP/1.1 request are looked at directly
(request line, and past capacity three headers), before h11 sees them:

- **Counted.** A request that is work (not ``GET``: streams stay open at no cost; not a
  health, readiness or metrics path) whose head came whole in one read counts in the
  shedder's ``inflight`` from then until its answer is done (:meth:`Admission.done`).
  Counted here, not when its task starts in the app, a burst read in one scheduler batch
  cannot all pass the limit together.
- **Refused** past capacity, with a canned ``503`` + ``Retry-After`` written straight to
  the socket: if its whole body came with its head, the connection stays open (keep-alive,
  what a client coming back after ``Retry-After`` wants) and the request's bytes are
  dropped; else (the body still to come, chunked, HTTP/1.0, ``Connection: close``) the
  answer says ``Connection: close`` and the connection closes.

Health, readiness and metrics paths, upgrades (WebSocket, h2c) and anything that is not a
plain HTTP/1.x request line pass through, uncounted. HTTP/2 streams are counted and shed
by the app's shedder, as before (``Shedder.screened``). Refusals are counted where the app
counts them (``scalemcp_shed_total{reason}``, ``scalemcp_http_responses_total``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from ..observability import metrics

__all__ = ["CANNOT_DELIMIT", "COUNTED", "Admission", "Load"]

#: :meth:`Admission.screen`'s answer for a request refused whose end is not known.
CANNOT_DELIMIT = 0
#: ... for a request served and counted in flight (:meth:`Admission.done` at its end).
COUNTED = -1

_HEADERS = re.compile(rb"\r\n(content-length|transfer-encoding|upgrade|connection)[ \t]*:"
                      rb"[ \t]*([^\r\n]*)", re.IGNORECASE)
#: A head longer than this is not looked at here (h11 judges it).
_MAX_HEAD = 16_384


class Load(Protocol):
    """What the loop reads of the app's shedder (``transport.shedding.Shedder``)."""

    retry_after_s: int
    #: Requests in flight (work, not streams), counted here and by the app (HTTP/2).
    inflight: int

    def overloaded(self) -> bool:
        """Past capacity now (counts nothing)."""
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
        load.inflight += 1
        return COUNTED

    def done(self) -> None:
        """A request :meth:`screen` counted has ended."""
        self.load.inflight -= 1

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
