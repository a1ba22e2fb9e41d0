"""The SSE decoder, fed in awkward pieces."""

from __future__ import annotations

import pytest

from scalemcp.loadgen.sse import SseDecoder, SseEvent

STREAM = (
    b": keep-alive\r\n\r\n"
    b"id: s1:1\r\ndata: \r\n\r\n"
    b'id: s1:2\r\nevent: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b"retry: 1500\nid: s1:3\ndata: x\n\n"
    b"data: no-id-sticks\r\r"
    b"event: endpoint\ndata: /messages?session=1\n\n"
)
EXPECTED = [
    SseEvent(data=b"", id="s1:1"),
    SseEvent(data=b'{"a":\n1}', id="s1:2"),
    SseEvent(data=b"x", id="s1:3", retry_ms=1500),
    SseEvent(data=b"no-id-sticks", id="s1:3"),
    SseEvent(data=b"/messages?session=1", event="endpoint", id="s1:3"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for i in range(0, len(STREAM), size):
        events += decoder.feed(STREAM[i : i + size])
    assert events == EXPECTED
    assert decoder.last_id == "s1:3"


def test_incomplete_event_waits_for_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: half") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [SseEvent(data=b"half")]
