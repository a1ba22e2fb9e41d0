"""RESP3, sans-IO: commands packed into bytes, replies parsed out of bytes.

Only what the request path's lane (:mod:`.redis_lane`) needs, with few allocations per
reply: bulk strings become ``bytes``, arrays ``list``, pushes :class:`Push` (a ``list``
the server sends on its own, e.g. a client-tracking invalidation), sets ``set``, maps
``dict``, nulls ``None``, booleans ``bool``, doubles ``float``; an error reply becomes a
:class:`ErrorReply` value (not raised: it belongs to one caller, and the connection is
fine). Attributes (``|``) are skipped. Replies are shaped as coredis' parser shapes them,
so a caller cannot tell which of the two read a reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

__all__ = ["INCOMPLETE", "ErrorReply", "ProtocolError", "Push", "ReplyReader", "pack_command"]

Arg = bytes | bytearray | memoryview | str | int | float


class ErrorReply:
    """An error reply (``-ERR ...`` or a blob error), e.g. ``NOSCRIPT No matching script``."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ErrorReply({self.message!r})"


class Push(list[Any]):
    """A RESP3 push (``>``): sent by the server on its own, never the reply to a command."""

    __slots__ = ()


class ProtocolError(Exception):
    """The bytes are not RESP: the connection they came on cannot be trusted any more."""


class _Incomplete(Exception):
    """More bytes are needed (internal: :meth:`ReplyReader.next_reply` says INCOMPLETE)."""


INCOMPLETE: Final = object()
_MORE = _Incomplete()


def pack_command(args: Sequence[Arg]) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    data: bytes
    for arg in args:
        kind = type(arg)  # (exact types first: this runs for every command)
        if kind is bytes:
            data = cast(bytes, arg)
        elif kind is str:
            data = cast(str, arg).encode()
        elif kind is int:
            data = b"%d" % cast(int, arg)
        elif isinstance(arg, bytes | bytearray | memoryview):
            data = bytes(arg)
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis command argument must be bytes, str or a number, "
                            f"not {type(arg).__name__}")
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class ReplyReader:
    """Bytes in (:meth:`feed`), whole replies out (:meth:`next_reply`), in order."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        if self._pos >= len(self._buf):
            self._buf, self._pos = bytes(data), 0
        else:
            self._buf = self._buf[self._pos:] + data
            self._pos = 0

    def next_reply(self) -> Any:
        """The next whole reply, or :data:`INCOMPLETE` until more bytes are fed."""
        if self._pos >= len(self._buf):
            return INCOMPLETE
        try:
            value, self._pos = _parse(self._buf, self._pos)
        except _Incomplete:
            return INCOMPLETE
        except (ValueError, IndexError, TypeError) as exc:
            raise ProtocolError(f"not a RESP reply: {exc}") from None
        return value


def _line(buf: bytes, pos: int) -> int:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _MORE
    return end


def _blob(buf: bytes, pos: int, end: int) -> tuple[bytes | None, int]:
    size = int(buf[pos + 1:end])
    if size < 0:
        return None, end + 2
    stop = end + 2 + size
    if stop + 2 > len(buf):
        raise _MORE
    return buf[end + 2:stop], stop + 2


def _items(buf: bytes, at: int, count: int) -> tuple[list[Any], int]:
    """``count`` replies from ``at``: bulk strings and integers (what HGETALL, XREAD and
    the task scripts answer, element after element) read inline, without a call each."""
    items: list[Any] = []
    append = items.append
    find = buf.find
    size_of = len(buf)
    for _ in range(count):
        end = find(b"\r\n", at)
        if end < 0:
            raise _MORE
        kind = buf[at]
        if kind == 36:  # $
            size = int(buf[at + 1:end])
            if size < 0:
                append(None)
                at = end + 2
                continue
            stop = end + 2 + size
            if stop + 2 > size_of:
                raise _MORE
            append(buf[end + 2:stop])
            at = stop + 2
        elif kind == 58:  # :
            append(int(buf[at + 1:end]))
            at = end + 2
        else:
            item, at = _parse(buf, at)
            append(item)
    return items, at


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    end = _line(buf, pos)
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        return _blob(buf, pos, end)
    if kind == 42 or kind == 62 or kind == 126:  # * array, > push, ~ set
        count = int(buf[pos + 1:end])
        if count < 0:
            return None, end + 2
        items, at = _items(buf, end + 2, count)
        if kind == 42:
            return items, at
        return (set(items) if kind == 126 else Push(items)), at
    if kind == 58 or kind == 40:  # : integer, ( big number
        return int(buf[pos + 1:end]), end + 2
    if kind == 43:  # + simple string
        return buf[pos + 1:end], end + 2
    if kind == 45:  # - error
        return ErrorReply(buf[pos + 1:end].decode(errors="replace")), end + 2
    if kind == 95:  # _ null
        return None, end + 2
    if kind == 35:  # # boolean
        return buf[pos + 1:end] == b"t", end + 2
    if kind == 44:  # , double
        return float(buf[pos + 1:end]), end + 2
    if kind == 37 or kind == 124:  # % map, | attribute
        count = int(buf[pos + 1:end])
        flat, at = _items(buf, end + 2, 2 * count)
        if kind == 124:  # an attribute annotates the reply that follows it
            return _parse(buf, at)
        it = iter(flat)
        return dict(zip(it, it, strict=True)), at
    if kind == 61:  # = verbatim string: "txt:" then the text
        text, at = _blob(buf, pos, end)
        return (text[4:] if text is not None else None), at
    if kind == 33:  # ! blob error
        text, at = _blob(buf, pos, end)
        return ErrorReply((text or b"").decode(errors="replace")), at
    raise ValueError(f"unknown reply type {bytes([kind])!r}")
