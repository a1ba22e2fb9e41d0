"""Server-sent events as a client reads them: one parser for every test.

:class:`SseParser` takes text as it arrives and returns each complete event: a block with
data or an id (a priming event has an id and no data). A block of comments only (a
keep-alive) or of a ``retry:`` hint only (sent before a connection is dropped) is no
event. An event id of a scalemcp stream reads ``STREAM:POSITION``; :class:`Event` splits
it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    id: str | None = None
    data: str = ""
    event: str | None = None
    retry: int | None = None

    @property
    def message(self) -> Any:
        """The data as JSON; None for an event without data (a priming event)."""
        return json.loads(self.data) if self.data else None

    @property
    def stream(self) -> str:
        """The stream part of a ``STREAM:POSITION`` id."""
        return (self.id or "").partition(":")[0]

    @property
    def position(self) -> int:
        """The position part of a ``STREAM:POSITION`` id."""
        return int((self.id or "").partition(":")[2])


class SseParser:
    """Text in (any chunking, LF or CRLF), complete events out."""

    def __init__(self) -> None:
        self._buffer = ""
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, text: str) -> list[Event]:
        self._buffer += text
        events = []
        while True:
            end = self._buffer.find("\n")
            if end < 0:
                return events
            line, self._buffer = self._buffer[:end].removesuffix("\r"), self._buffer[end + 1:]
            if line:
                self._field(line)
                continue
            if "id" not in self._fields and not self._data:
                self._fields = {}  # a retry hint alone, or nothing
                continue
            retry = self._fields.get("retry")
            events.append(Event(self._fields.get("id"), "\n".join(self._data),
                                self._fields.get("event"),
                                int(retry) if retry is not None else None))
            self._fields, self._data = {}, []

    def _field(self, line: str) -> None:
        if line.startswith(":"):
            return  # a comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        else:
            self._fields[name] = value

    @property
    def pending(self) -> str:
        """What arrived after the last complete event ('' at an event boundary)."""
        partial = [f"{k}: {v}" for k, v in self._fields.items()]
        partial += [f"data: {d}" for d in self._data]
        return "\n".join(partial) + self._buffer


def parse_sse(text: str) -> list[Event]:
    """Every complete event of a whole SSE body."""
    return SseParser().feed(text)


async def sse_events(response: httpx.Response, *, complete: bool = False
                     ) -> AsyncIterator[Event]:
    """Every event of an SSE response as it arrives. ``complete``: assert that the body
    ends at an event boundary (not mid-event)."""
    parser = SseParser()
    async for chunk in response.aiter_text():
        for event in parser.feed(chunk):
            yield event
    if complete:
        assert parser.pending.strip() == "", f"SSE body ends mid-event: {parser.pending!r}"


def messages(events: list[Event]) -> list[Any]:
    """The JSON messages of ``events`` (priming events left out)."""
    return [e.message for e in events if e.data]


def progress_of(events: list[Event]) -> list[float]:
    """The ``progress`` of every progress notification among ``events``."""
    return [m["params"]["progress"] for e in events if (m := e.message)
            and m.get("method") == "notifications/progress"]
