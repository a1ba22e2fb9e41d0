"""The lean HTTP/1.1 client's framing, against a scripted peer on trio memory streams."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from scalemcp.loadgen.http import HttpProtocolError, Origin, h1
from scalemcp.loadgen.http.h1 import H1Client

ORIGIN = Origin("http", "127.0.0.1", 8000)


async def exchange(
    answer: bytes, *, method: str = "POST"
) -> tuple[int, dict[str, str], bytes, bytes]:
    """Send one request over a memory stream whose peer writes ``answer`` in 3-byte pieces."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client = H1Client(ORIGIN)
    conn = h1._Connection(client_stream)
    seen = b""

    async def peer() -> None:
        nonlocal seen
        while b"\r\n\r\n" not in seen:
            seen += await server_stream.receive_some()
        for i in range(0, len(answer), 3):
            await server_stream.send_all(answer[i : i + 3])

    error: HttpProtocolError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        try:
            response = await client._exchange(conn, method, "/mcp", [(b"x-a", b"1")], b"{}")
            body = await response.read()
            await response.aclose()
        except HttpProtocolError as exc:
            error = exc
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    return response.status, dict(response.headers), body, seen


async def test_content_length_body_and_request_bytes() -> None:
    status, headers, body, request = await exchange(
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )
    assert (status, body) == (200, b'{"a":1}')
    assert headers["content-type"] == "application/json"
    assert request == (
        b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nx-a: 1\r\ncontent-length: 2\r\n\r\n{}"
    )


async def test_chunked_body_with_extension_and_trailer() -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5;x=y\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n"
    )
    status, _, body, _ = await exchange(answer)
    assert (status, body) == (200, b"hello world")


async def test_no_body_statuses_and_head() -> None:
    assert (await exchange(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"))[2] == b""
    assert (await exchange(b"HTTP/1.1 204 No Content\r\n\r\n"))[2] == b""
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"
    assert (await exchange(answer, method="HEAD"))[2] == b""


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
)
async def test_malformed_answers_raise(answer: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        await exchange(answer)
