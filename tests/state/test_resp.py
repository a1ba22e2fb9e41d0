"""RESP3 packing and parsing (state/resp.py), sans-IO: whole, split anywhere, and garbled."""

from __future__ import annotations

from typing import Any

import pytest

from scalemcp.state.resp import (
    INCOMPLETE,
    ErrorReply,
    ProtocolError,
    Push,
    ReplyReader,
    pack_command,
)

REPLIES: list[tuple[bytes, Any]] = [
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"$4\r\na\r\nb\r\n", b"a\r\nb"),  # a bulk string may hold CRLF
    (b"+OK\r\n", b"OK"),
    (b":-42\r\n", -42),
    (b"(3492890328409238509324850943850943825024385\r\n",
     3492890328409238509324850943850943825024385),
    (b"_\r\n", None),
    (b"#t\r\n", True),
    (b"#f\r\n", False),
    (b",1.5\r\n", 1.5),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n$1\r\na\r\n:1\r\n*2\r\n_\r\n$1\r\nb\r\n", [b"a", 1, [None, b"b"]]),
    (b"%2\r\n$1\r\nk\r\n:1\r\n$1\r\nj\r\n*1\r\n:2\r\n", {b"k": 1, b"j": [2]}),
    (b"~2\r\n:1\r\n:2\r\n", {1, 2}),
    (b"|1\r\n$3\r\nttl\r\n:9\r\n$1\r\nv\r\n", b"v"),  # the attribute is skipped
    (b"=8\r\ntxt:some\r\n", b"some"),
]


def _read_all(reader: ReplyReader) -> list[Any]:
    out = []
    while (reply := reader.next_reply()) is not INCOMPLETE:
        out.append(reply)
    return out


@pytest.mark.parametrize(("wire", "expected"), REPLIES)
def test_a_reply_is_parsed_whole_or_fed_a_byte_at_a_time(wire: bytes, expected: Any) -> None:
    whole = ReplyReader()
    whole.feed(wire)
    assert _read_all(whole) == [expected]
    split = ReplyReader()
    got: list[Any] = []
    for i in range(len(wire)):
        assert _read_all(split) == [], "a reply came out before its last byte"
        split.feed(wire[i:i + 1])
        got += _read_all(split)
    assert got == [expected]


def test_pipelined_replies_come_out_in_order_from_one_buffer() -> None:
    reader = ReplyReader()
    wire = b"".join(w for w, _ in REPLIES)
    reader.feed(wire[:7])
    first = _read_all(reader)
    reader.feed(wire[7:])
    assert first + _read_all(reader) == [e for _, e in REPLIES]
    assert reader.next_reply() is INCOMPLETE


def test_a_push_is_told_apart_from_an_array_reply() -> None:
    """A client-tracking invalidation (``>``) between two replies: the lane must not take
    it for the reply of a waiting command."""
    reader = ReplyReader()
    reader.feed(b"*1\r\n:1\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n*1\r\n:2\r\n")
    first, push, last = _read_all(reader)
    assert type(first) is list
    assert type(last) is list
    assert type(push) is Push
    assert push == [b"invalidate", [b"k"]]


def test_error_replies_are_values_not_exceptions() -> None:
    reader = ReplyReader()
    reader.feed(b"-NOSCRIPT No matching script.\r\n!9\r\nERR blob!\r\n:1\r\n")
    first, second, third = _read_all(reader)
    assert isinstance(first, ErrorReply)
    assert first.message == "NOSCRIPT No matching script."
    assert isinstance(second, ErrorReply)
    assert second.message == "ERR blob!"
    assert third == 1


@pytest.mark.parametrize("garbage", [b"?what\r\n", b"$x\r\nab\r\n", b"*1\r\n&\r\n"])
def test_bytes_that_are_not_resp_raise_protocol_error(garbage: bytes) -> None:
    reader = ReplyReader()
    reader.feed(garbage)
    with pytest.raises(ProtocolError):
        reader.next_reply()


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert pack_command([b"EVALSHA", "ab", 2, b"k\r\n", 1.5]) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$3\r\nk\r\n\r\n$3\r\n1.5\r\n")
    assert pack_command([bytearray(b"x"), memoryview(b"yz")]) == (
        b"*2\r\n$1\r\nx\r\n$2\r\nyz\r\n")
    assert pack_command(["é"]) == "*1\r\n$2\r\né\r\n".encode()


@pytest.mark.parametrize("bad", [None, True, object()])
def test_an_argument_that_is_not_bytes_text_or_a_number_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="must be bytes, str or a number"):
        pack_command([b"SET", b"k", bad])
