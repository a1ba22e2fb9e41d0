"""The scalemcp error hierarchy.

Every error a client can see carries its wire mapping: the JSON-RPC code and the HTTP
status that the spec names for it, so the transport never has to guess.

    ScaleMCPError
    ├── ProtocolError               a JSON-RPC error answer (code, message, data)
    │   ├── ParseError              -32700  malformed JSON
    │   ├── InvalidRequest          -32600  not a JSON-RPC message we accept
    │   ├── MethodNotFound          -32601  unknown method (modern era: HTTP 404)
    │   ├── InvalidParams           -32602  params fail validation, unknown tool/prompt, bad cursor
    │   ├── InternalError           -32603  a bug or a failed dependency; no details leak
    │   ├── ResourceNotFound        -32002  session era (modern era maps it to -32602)
    │   ├── HeaderMismatch          -32020  modern era header/body disagreement
    │   ├── MissingClientCapability -32021
    │   ├── UnsupportedVersion      -32022
    │   ├── UrlElicitationRequired  -32042
    │   └── RateLimited             -31429  a rate or in-flight limit (HTTP 429 + Retry-After)
    ├── ToolError                   raised by a tool: becomes an ``isError`` result, not an error
    ├── BackendUnavailable          the state backend cannot be reached (HTTP 503)
    └── AuthError                   an HTTP status + a ``WWW-Authenticate: Bearer`` challenge
        ├── MissingCredentials      401  no credentials (the challenge carries no ``error``)
        ├── InvalidCredentials      401  error="invalid_token": unknown, expired, other audience
        ├── MalformedCredentials    400  error="invalid_request": e.g. two different credentials
        └── InsufficientScope       403  error="insufficient_scope", scope="<what is needed>"
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "BackendUnavailable",
    "HeaderMismatch",
    "InsufficientScope",
    "InternalError",
    "InvalidCredentials",
    "InvalidParams",
    "InvalidRequest",
    "MalformedCredentials",
    "MethodNotFound",
    "MissingClientCapability",
    "MissingCredentials",
    "ParseError",
    "ProtocolError",
    "RateLimited",
    "ResourceNotFound",
    "ScaleMCPError",
    "ToolError",
    "UnsupportedVersion",
    "UrlElicitationRequired",
]


class ScaleMCPError(Exception):
    """Base class of every error scalemcp raises on purpose."""


class ProtocolError(ScaleMCPError):
    """An error that is answered as a JSON-RPC error object."""

    code: ClassVar[int] = -32603
    http_status: ClassVar[int] = 200

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers an HTTP answer carrying this error adds (e.g. ``Retry-After``)."""
        return []


class ParseError(ProtocolError):
    code = -32700
    http_status = 400


class InvalidRequest(ProtocolError):
    code = -32600
    http_status = 400


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
    http_status = 200


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


class BackendUnavailable(ScaleMCPError):
    """The state backend cannot be reached; session-era requests get 503 + Retry-After."""

    def __init__(self, message: str = "state backend unavailable", retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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
