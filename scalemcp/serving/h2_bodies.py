"""The request body deadline of HTTP/2 streams: a stream whose body stalls is reset.

HTTP/1.1 has one request at a time, so its body deadline is a phase of the connection's
timer (:class:`.connection.Phase`). An HTTP/2 connection carries many requests at once,
and one stalled body must not cost the others their connection: each stream whose body is
still arriving when its head came gets ``body`` seconds from then; a stream still
receiving at its deadline is reset (``RST_STREAM``, ``CANCEL``) and its request sees its
client gone, as when the client resets it; the connection and its other streams go on.

No task and no timer per stream: the streams' deadlines wait in order of arrival (all have
the same timeout, so that is the order they fall due in) and the connection's one timer
wakes for the earliest (:attr:`StreamBodies.next_deadline`). What is looked at per read is
one number (the highest stream id the client opened), and the new streams only when it
grew.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from h2.errors import ErrorCodes
from h2.stream import StreamState

from ..observability import metrics
from . import seam

__all__ = ["StreamBodies"]

#: The states in which the client may still send a stream's body.
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)
_TIMED_OUT = metrics.CONNECTIONS_TIMED_OUT.labels("stream_body")
#: Past this many deadlines waiting, those of streams no longer receiving are dropped
#: (a client opening and resetting streams fast must not fill the queue for 60 s).
_COMPACT_AT = 256


def _receiving(stream: Any) -> bool:
    return stream is not None and stream.state_machine.state in _RECEIVING


class StreamBodies:
    """The bodies still arriving on one HTTP/2 connection, each with its deadline."""

    __slots__ = ("_due", "_seen", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        #: The highest stream id looked at.
        self._seen = 0
        #: (deadline, stream id), earliest first.
        self._due: deque[tuple[float, int]] = deque()

    @property
    def next_deadline(self) -> float:
        return self._due[0][0] if self._due else math.inf

    def note(self, protocol: seam.H2Protocol, now: float) -> bool:
        """After a read: start the clock of each new stream whose body is still coming;
        True if one was started (the timer may have to wake earlier)."""
        connection = protocol.connection
        highest: int = connection.highest_inbound_stream_id
        if highest <= self._seen or self.timeout == math.inf:
            return False
        started = False
        streams = connection.streams
        for stream_id in sorted(i for i in protocol.streams if i > self._seen):
            stream = streams.get(stream_id)
            if stream is not None and stream.state_machine.state in _RECEIVING:
                self._due.append((now + self.timeout, stream_id))
                started = True
        self._seen = highest
        if len(self._due) > _COMPACT_AT:
            self._due = deque(entry for entry in self._due
                              if _receiving(connection.streams.get(entry[1])))
        return started

    async def expire(self, protocol: seam.H2Protocol, now: float) -> int:
        """Reset every stream past its deadline whose body is still arriving; how many."""
        reset = 0
        due = self._due
        while due and due[0][0] <= now:
            _, stream_id = due.popleft()
            if not _receiving(protocol.connection.streams.get(stream_id)):
                continue  # its body came (or it ended) in time
            protocol.connection.reset_stream(stream_id, ErrorCodes.CANCEL)
            # As Hypercorn handles a client's reset: the request sees its client gone, the
            # stream's send buffer is let go.
            await protocol._close_stream(stream_id)
            await protocol._window_updated(stream_id)
            _TIMED_OUT.inc()
            reset += 1
        if reset:
            await protocol._flush()
        return reset
