"""An open stream's request headers are read from the ASGI scope (HeaderView), with what
Request's dict gives: lower-case names, repeated ones joined, missing ones absent."""

from __future__ import annotations

from scalemcp.transport.http import HeaderView, Request

RAW = [(b"host", b"example"), (b"Accept", b"text/event-stream"),
       (b"x-many", b"1"), (b"X-Many", b"2"), (b"last-event-id", b"g\xe9:1")]


def test_the_view_answers_as_the_request_dict() -> None:
    scope = {"method": "GET", "path": "/mcp", "headers": RAW}
    as_dict = Request(scope, None, None).headers
    view = HeaderView(RAW)
    for name in ("host", "accept", "x-many", "last-event-id", "missing"):
        assert view.get(name) == as_dict.get(name), name
    assert view.get("x-many") == "1, 2"
    assert view.get("missing", "none") == "none"
    assert dict(view) == dict(as_dict)
    assert len(view) == len(as_dict) == 4
    assert "accept" in view
    assert "Accept" not in view  # names are asked for in lower case, as of the dict
