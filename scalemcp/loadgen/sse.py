"""A sans-IO Server-Sent Events decoder: bytes in, events out.

Follows the WHATWG parsing rules that matter for MCP: lines end in CRLF, LF or
CR; ``data`` lines join with ``\\n``; ``id`` sets the last event id (and sticks
for later events); ``retry`` takes digits only; lines starting with ``:`` are
comments (keep-alives); a blank line dispatches the event. An event with an id
but empty data (the 2025-11-25 priming event) is still reported, so callers see
every id they could resume from.
"""

from __future__ import annotations

import msgspec

__all__ = ["SseDecoder", "SseEvent"]


class SseEvent(msgspec.Struct, frozen=True):
    data: bytes
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


class SseDecoder:
    """Feed it chunks of a ``text/event-stream`` body; it returns whole events."""

    __slots__ = ("_buf", "_data", "_event", "_has_fields", "_pending_cr", "_retry", "last_id")

    def __init__(self) -> None:
        self._buf = b""
        self._pending_cr = False
        self._data: list[bytes] = []
        self._event = ""
        self._retry: int | None = None
        self._has_fields = False
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = end + 1
        self._buf = buf[start:]
        return events

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" comment
            return None
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._has_fields = True
        elif field == b"id":
            if b"\0" not in value:
                self.last_id = value.decode()
            self._has_fields = True
        elif field == b"event":
            self._event = value.decode()
            self._has_fields = True
        elif field == b"retry" and value.isdigit():
            self._retry = int(value)
            self._has_fields = True
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._has_fields:
            return None
        event = SseEvent(
            data=b"\n".join(self._data),
            event=self._event or "message",
            id=self.last_id,
            retry_ms=self._retry,
        )
        self._data = []
        self._event = ""
        self._retry = None
        self._has_fields = False
        return event
