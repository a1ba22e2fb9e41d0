"""Server-Sent Events framing and event IDs (sans-IO).

An event ID names its stream and its position in that stream: ``<stream>:<position>``.
``Last-Event-ID`` is parsed back into that pair, so a resume replays only the stream
it came from (spec 4.5). Stream names never contain ``:``; positions are opaque to
this module (the memory backend uses integers, the Redis backend stream entry IDs).
"""

from __future__ import annotations

from typing import Final

__all__ = ["KEEPALIVE", "format_event", "make_event_id", "parse_event_id"]

KEEPALIVE: Final = b": ping\n\n"


def format_event(
    data: bytes,
    *,
    event_id: str | None = None,
    event: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    parts: list[bytes] = []
    if event_id is not None:
        parts.append(b"id: " + event_id.encode())
    if event is not None:
        parts.append(b"event: " + event.encode())
    if retry_ms is not None:
        parts.append(b"retry: %d" % retry_ms)
    # JSON from msgspec never holds a raw newline, but SSE data must not either.
    for line in data.split(b"\n") if b"\n" in data else (data,):
        parts.append(b"data: " + line if line else b"data: ")
    return b"\n".join(parts) + b"\n\n"


#: What a stream name's first letter says it is: the answer stream of one POST, a
#: session's standalone GET stream, the stream a WebSocket connection follows, and the one
#: stream of a legacy HTTP+SSE session. Event ids are ``<stream>:<position>``.
POST_STREAM = "p"
GET_STREAM = "g"
WEBSOCKET_STREAM = "w"
LEGACY_STREAM = "l"


def make_event_id(stream: str, position: str) -> str:
    return f"{stream}:{position}"


def parse_event_id(value: str) -> tuple[str, str] | None:
    """Split a ``Last-Event-ID`` into (stream, position); None if it is not one of ours."""
    stream, sep, position = value.partition(":")
    if not sep or not stream or not position or len(value) > 200:
        return None
    if not value.isascii() or not value.isprintable():
        return None
    return stream, position
