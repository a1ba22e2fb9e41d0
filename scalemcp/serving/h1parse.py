"""HTTP/1.1 request heads and chunked bodies, parsed with bytes operations (sans-IO).

What :mod:`.http11` reads off the wire, checked as strictly as h11 checks it (RFC 9112),
without a regular expression per header: the whole head is checked for control bytes and
bare CR/LF at once (one ``translate`` and two counts), then split into lines; only header
names are checked one by one (a ``translate`` each). Every refusal is a :class:`BadRequest`
carrying the status to answer (400, 413, 431, 501, 505), as h11's ``RemoteProtocolError``
carries its ``error_status_hint``.
"""

from __future__ import annotations

__all__ = ["BadRequest", "ChunkedReader", "RequestHead", "parse_head"]

_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Bytes a head may hold: HTAB, CR and LF (checked to be CRLF pairs), visible ASCII and
#: obs-text; every other control byte (NUL, DEL, ...) is refused.
_HEAD_BYTES = b"\t\r\n" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_HEX = b"0123456789abcdefABCDEF"
#: Longest Content-Length accepted (digits): larger is 413, never a huge int.
_MAX_LENGTH_DIGITS = 18
#: Longest chunk-size line, extensions included.
MAX_CHUNK_LINE = 4096


class BadRequest(Exception):
    """A request refused: ``status`` is the answer (then the connection closes)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class RequestHead:
    """A parsed request head, and what its headers say about the connection."""

    __slots__ = ("chunked", "content_length", "expect_continue", "headers", "host",
                 "http10", "keep_alive", "method", "target", "upgrade")

    def __init__(self, method: str, target: bytes, http10: bool) -> None:
        self.method = method
        self.target = target
        self.http10 = http10
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length = 0
        self.chunked = False
        #: HTTP/1.1: unless ``Connection: close``; HTTP/1.0: only with ``keep-alive``.
        self.keep_alive = not http10
        self.expect_continue = False
        #: An ``Upgrade`` header (h2c, WebSocket): Hypercorn's protocol serves it.
        self.upgrade = False
        self.host: bytes | None = None


def _request_line(line: bytes) -> RequestHead:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not method or method.translate(None, _TCHAR):
        raise BadRequest(400, "invalid method")
    if not target or b"\t" in target or not target.isascii():
        raise BadRequest(400, "invalid request target")
    if version == b"HTTP/1.1":
        http10 = False
    elif version == b"HTTP/1.0":
        http10 = True
    elif (len(version) == 8 and version.startswith(b"HTTP/") and version[5:6].isdigit()
          and version[6:7] == b"." and version[7:8].isdigit()):
        raise BadRequest(505, "HTTP version not supported")
    else:
        raise BadRequest(400, "malformed HTTP version")
    return RequestHead(method.decode("ascii").upper(), target, http10)


def _content_length(value: bytes) -> int:
    values = {part.strip(b" \t") for part in value.split(b",")} if b"," in value else {value}
    if len(values) != 1:
        raise BadRequest(400, "conflicting Content-Length")
    digits = values.pop()
    if not digits.isdigit():
        raise BadRequest(400, "invalid Content-Length")
    if len(digits) > _MAX_LENGTH_DIGITS:
        raise BadRequest(413, "Content-Length too large")
    return int(digits)


def parse_head(head: bytes, *, raw_names: bool = False) -> RequestHead:
    """The request in ``head`` (up to, not including, the blank line). ``raw_names``: keep
    header names as sent (Hypercorn's ``h11_pass_raw_headers``), else lower-cased."""
    if head.translate(None, _HEAD_BYTES):
        raise BadRequest(400, "control character in request head")
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        raise BadRequest(400, "bare CR or LF in request head")
    lines = head.split(b"\r\n")
    request = _request_line(lines[0])
    headers = request.headers
    seen_length: int | None = None
    names = _NAMES
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        lname = names.get(name)
        if lname is None or not colon:
            lname = _check_name(line, name, colon)
        value = value.strip(b" \t")
        headers.append((name if raw_names else lname, value))
        if lname in _FRAMING:
            if lname == b"content-length":
                length = _content_length(value)
                if seen_length is not None and seen_length != length:
                    raise BadRequest(400, "conflicting Content-Length")
                seen_length = length
            elif lname == b"transfer-encoding":
                if request.chunked:
                    raise BadRequest(501, "more than one Transfer-Encoding")
                if value.lower() != b"chunked":
                    raise BadRequest(501, "only Transfer-Encoding: chunked is supported")
                request.chunked = True
            elif lname == b"host":
                if request.host is not None:
                    raise BadRequest(400, "more than one Host header")
                request.host = value
            else:
                _connection_header(request, lname, value)
    if request.chunked:
        if seen_length is not None:
            raise BadRequest(400, "both Transfer-Encoding and Content-Length")
        if request.http10:
            raise BadRequest(400, "chunked body in an HTTP/1.0 request")
    elif seen_length is not None:
        request.content_length = seen_length
    if request.host is None and not request.http10:
        raise BadRequest(400, "missing Host header")
    return request


#: Header names seen valid, to their lower-case form: clients send the same few names on
#: every request, so most are checked once (bounded: a client inventing names fills it).
_NAMES: dict[bytes, bytes] = {}
_MAX_NAMES = 1024


def _check_name(line: bytes, name: bytes, colon: bytes) -> bytes:
    if not colon or not name or name.translate(None, _TCHAR):
        if line[:1] in (b" ", b"\t"):
            raise BadRequest(400, "obsolete line folding")
        raise BadRequest(400, "invalid header line")
    lname = name.lower()
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = lname
    return lname


def _connection_header(request: RequestHead, lname: bytes, value: bytes) -> None:
    if lname == b"connection":
        tokens = {token.strip(b" \t") for token in value.lower().split(b",")}
        if b"close" in tokens:
            request.keep_alive = False
        elif b"keep-alive" in tokens and request.http10:
            request.keep_alive = True
    elif lname == b"expect":
        request.expect_continue = value.lower() == b"100-continue" and not request.http10
    else:  # upgrade
        request.upgrade = True


_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host", b"connection",
                      b"expect", b"upgrade"})


class ChunkedReader:
    """A chunked request body, fed the bytes that follow the head.

    :meth:`read` takes what the buffer holds of the body and returns ``(data, rest,
    done)``: the body bytes decoded (possibly several chunks), the bytes not consumed
    (the next request's, once ``done``), and whether the last chunk and the trailers
    (read, bounded by ``max_trailers``, and dropped as Hypercorn drops them) are in.
    """

    __slots__ = ("_left", "_max_trailers", "_state")

    _SIZE, _DATA, _DATA_END, _TRAILERS = range(4)

    def __init__(self, max_trailers: int) -> None:
        self._state = self._SIZE
        self._left = 0
        self._max_trailers = max_trailers

    def read(self, buf: bytes) -> tuple[bytes, bytes, bool]:
        out: list[bytes] = []
        while True:
            state = self._state
            if state == self._DATA:
                piece = buf[:self._left]
                out.append(piece)
                buf = buf[len(piece):]
                self._left -= len(piece)
                if self._left:
                    return b"".join(out), buf, False
                self._state = self._DATA_END
            elif state == self._DATA_END:
                if len(buf) < 2:
                    return b"".join(out), buf, False
                if buf[:2] != b"\r\n":
                    raise BadRequest(400, "chunk not followed by CRLF")
                buf = buf[2:]
                self._state = self._SIZE
            elif state == self._SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise BadRequest(400, "chunk size line too long")
                    return b"".join(out), buf, False
                if end > MAX_CHUNK_LINE:
                    raise BadRequest(400, "chunk size line too long")
                self._left = _chunk_size(buf[:end])
                buf = buf[end + 2:]
                self._state = self._DATA if self._left else self._TRAILERS
            else:
                if buf[:2] == b"\r\n":
                    return b"".join(out), buf[2:], True
                end = buf.find(b"\r\n\r\n")
                if end < 0 or end > self._max_trailers:
                    if len(buf) > self._max_trailers:
                        raise BadRequest(431, "trailers too large")
                    return b"".join(out), buf, False
                parse_trailers(buf[:end])
                return b"".join(out), buf[end + 4:], True


def _chunk_size(line: bytes) -> int:
    size, _, extensions = line.partition(b";")
    size = size.rstrip(b" \t")
    if not size or len(size) > 16 or size.translate(None, _HEX):
        raise BadRequest(400, "invalid chunk size")
    if extensions.translate(None, _HEAD_BYTES) or b"\r" in extensions or b"\n" in extensions:
        raise BadRequest(400, "invalid chunk extension")
    return int(size, 16)


def parse_trailers(block: bytes) -> None:
    """Check a trailer section's syntax (it is then dropped)."""
    if block.translate(None, _HEAD_BYTES):
        raise BadRequest(400, "control character in trailers")
    crlf = block.count(b"\r\n")
    if block.count(b"\r") != crlf or block.count(b"\n") != crlf:
        raise BadRequest(400, "bare CR or LF in trailers")
    for line in block.split(b"\r\n"):
        name, colon, _ = line.partition(b":")
        if not colon or not name or name.translate(None, _TCHAR):
            raise BadRequest(400, "invalid trailer line")
