"""The scalemcp error hierarchy.

Every error a client can see carries its wire mapping: the JSON-RPC code, the HTTP status
and headers that the spec names for it, so the transport only renders it.

Where an error stands decides which status it gets. Raised before a request is dispatched,
it refuses the HTTP request: ``http_status`` (with ``http_headers()``). Raised while a
dispatched request runs, it is that request's answer: 200 in the session era, and the
2026-07-28 status of :data:`ANSWER_STATUS` in the modern era (:func:`answer_status`).

    ScaleMCPError
    ├── WireError                   rendered as a JSON-RPC error object (code, message, data)
    │   ├── ProtocolError           a JSON-RPC error answer                     HTTP
    │   │   ├── ParseError              -32700  malformed JSON                  400
    │   │   ├── InvalidRequest          -32600  not a JSON-RPC message we accept 400
    │   │   │   ├── SessionRequired             no Mcp-Session-Id (session era)  400
    │   │   │   ├── SessionNotFound             unknown or expired session       404
    │   │   │   ├── OriginNotAllowed            Origin or Host refused           403
    │   │   │   ├── HeadersTooLarge             too many header bytes or headers 431
    │   │   │   ├── NotAcceptable               Accept lacks a media type        406
    │   │   │   ├── UnsupportedMediaType        Content-Type not JSON            415
    │   │   │   ├── PayloadTooLarge             body over max_body_bytes         413
    │   │   │   └── MethodNotAllowed            + Allow                          405
    │   │   ├── MethodNotFound          -32601  unknown method                  404
    │   │   ├── InvalidParams           -32602  bad params, unknown tool/prompt 400
    │   │   ├── InternalError           -32603  a bug or a failed dependency    500
    │   │   ├── ResourceNotFound        -32002  session era (modern: -32602)    404
    │   │   ├── HeaderMismatch          -32020  modern header/body disagreement 400
    │   │   ├── MissingClientCapability -32021                                  400
    │   │   ├── UnsupportedVersion      -32022                                  400
    │   │   ├── UrlElicitationRequired  -32042                                  400
    │   │   └── RateLimited             -31429  a rate or in-flight limit  429 + Retry-After
    │   └── BackendUnavailable          -32603  the state backend is down  503 + Retry-After
    │       └── Overloaded              -32603  the worker sheds load          503 + Retry-After
    ├── ToolError                   raised by a tool: becomes an ``isError`` result, not an error
    └── AuthError                   an HTTP status + a ``WWW-Authenticate: Bearer`` challenge
        ├── MissingCredentials      401  no credentials (the challenge carries no ``error``)
        ├── InvalidCredentials      401  error="invalid_token": unknown, expired, other audience
        ├── MalformedCredentials    400  error="invalid_request": e.g. two different credentials
        └── InsufficientScope       403  error="insufficient_scope", scope="<what is needed>"
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

__all__ = [
    "ANSWER_STATUS",
    "AuthError",
    "BackendUnavailable",
    "HeaderMismatch",
    "HeadersTooLarge",
    "InsufficientScope",
    "InternalError",
    "InvalidCredentials",
    "InvalidParams",
    "InvalidRequest",
    "MalformedCredentials",
    "MethodNotAllowed",
    "MethodNotFound",
    "MissingClientCapability",
    "MissingCredentials",
    "NotAcceptable",
    "OriginNotAllowed",
    "Overloaded",
    "ParseError",
    "PayloadTooLarge",
    "ProtocolError",
    "RateLimited",
    "ResourceNotFound",
    "ScaleMCPError",
    "SessionNotFound",
    "SessionRequired",
    "ToolError",
    "UnsupportedMediaType",
    "UnsupportedVersion",
    "UrlElicitationRequired",
    "WireError",
    "answer_status",
]


class ScaleMCPError(Exception):
    """Base class of every error scalemcp raises on purpose."""


class WireError(ScaleMCPError):
    """An error rendered as a JSON-RPC error object, with its HTTP mapping."""

    code: ClassVar[int] = -32603
    #: The status when this error refuses an HTTP request (see the module docstring).
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers an HTTP answer carrying this error adds (e.g. ``Retry-After``)."""
        return []


class ProtocolError(WireError):
    """An error that is answered as a JSON-RPC error object."""


class ParseError(ProtocolError):
    code = -32700
    http_status = 400


class InvalidRequest(ProtocolError):
    code = -32600
    http_status = 400


class SessionRequired(InvalidRequest):
    """A session-era request without ``Mcp-Session-Id``."""


class SessionNotFound(InvalidRequest):
    """An unknown, expired or deleted session, or another principal's."""

    http_status = 404


class OriginNotAllowed(InvalidRequest):
    """An ``Origin`` or ``Host`` header the server does not allow (DNS-rebinding defence)."""

    http_status = 403


class HeadersTooLarge(InvalidRequest):
    """Too many request headers, or too many bytes of them."""

    http_status = 431


class NotAcceptable(InvalidRequest):
    http_status = 406


class UnsupportedMediaType(InvalidRequest):
    http_status = 415


class PayloadTooLarge(InvalidRequest):
    """A body over the limit; its rest stays unread, so the connection closes after."""

    http_status = 413

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"connection", b"close")]


class MethodNotAllowed(InvalidRequest):
    """An HTTP method the path does not serve; ``allow`` lists those it does."""

    http_status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", self.allow.encode())]


class MethodNotFound(ProtocolError):
    code = -32601
    http_status = 404


class InvalidParams(ProtocolError):
    code = -32602
    http_status = 400


class InternalError(ProtocolError):
    code = -32603
    http_status = 500


class ResourceNotFound(ProtocolError):
    code = -32002
    http_status = 404


class HeaderMismatch(ProtocolError):
    code = -32020
    http_status = 400


class MissingClientCapability(ProtocolError):
    code = -32021
    http_status = 400


class UnsupportedVersion(ProtocolError):
    code = -32022
    http_status = 400


class UrlElicitationRequired(ProtocolError):
    code = -32042
    http_status = 400


class RateLimited(ProtocolError):
    """A rate limit or an in-flight limit refused the request; retry after ``retry_after_s``.

    The code lies outside ``-32768..-32000``: 2026-07-28 reserves ``-32020..-32099`` for
    the spec and asks that implementation codes go elsewhere.
    """

    code = -31429
    http_status = 429

    def __init__(self, message: str, *, limit: str, retry_after_s: float) -> None:
        self.limit = limit
        #: Whole seconds, at least 1 (the ``Retry-After`` value).
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"{message}; retry after {self.retry_after_s} s",
                         {"limit": limit, "retryAfterSeconds": self.retry_after_s})

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after_s).encode())]


class ToolError(ScaleMCPError):
    """Raise from a tool to return an ``isError: true`` result with this message."""


class BackendUnavailable(WireError):
    """The state backend cannot be reached; session-era requests get 503 + Retry-After.

    Not a ProtocolError: a handler's ``except ProtocolError`` must not turn it into an
    answer, it refuses the whole request.
    """

    code = -32603
    http_status = 503

    def __init__(self, message: str = "state backend unavailable", retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after_s).encode())]


class Overloaded(BackendUnavailable):
    """The worker is past its capacity (load shedding): 503 + Retry-After, before any
    work is done for the request."""


class AuthError(ScaleMCPError):
    """The request's credentials are missing, invalid or short of a scope.

    Answered with ``http_status`` and a ``WWW-Authenticate: Bearer`` challenge built from
    ``error`` (an RFC 6750 error code), the message and ``scopes`` (the scopes to ask for).
    """

    http_status: ClassVar[int] = 401
    error: ClassVar[str | None] = "invalid_token"

    def __init__(self, message: str, *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.scopes = scopes


class MissingCredentials(AuthError):
    error = None


class InvalidCredentials(AuthError):
    pass


class MalformedCredentials(AuthError):
    http_status = 400
    error = "invalid_request"


class InsufficientScope(AuthError):
    http_status = 403
    error = "insufficient_scope"


#: The HTTP status of a response whose JSON-RPC answer is this error, by era (the session
#: era answers every dispatched request with 200; 2026-07-28 maps some, spec 5.4).
ANSWER_STATUS: dict[str, dict[type[ProtocolError], int]] = {
    "session": {},
    "modern": {
        MethodNotFound: 404,
        HeaderMismatch: 400,
        MissingClientCapability: 400,
        UnsupportedVersion: 400,
    },
}


def answer_status(error: ProtocolError | None, era: Literal["session", "modern"]) -> int:
    """The status of an HTTP response that carries a dispatched request's answer."""
    if error is None:
        return 200
    table = ANSWER_STATUS[era]
    return next((table[cls] for cls in type(error).__mro__ if cls in table), 200)
