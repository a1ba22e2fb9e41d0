"""Who is asking: ``Principal``, and the ``Authenticator`` protocol that finds it.

An authenticator looks at the request headers (names lower-cased; repeated headers
joined with ``", "``) and returns the caller, or None for an anonymous caller it lets
through. It refuses a request by raising an :class:`~scalemcp.errors.AuthError`:
``MissingCredentials``/``InvalidCredentials`` (401), ``MalformedCredentials`` (400) or
``InsufficientScope`` (403); the transport turns them into the status and the
``WWW-Authenticate`` challenge. Any other exception is a bug (HTTP 500).

Plug one in with ``scalemcp.asgi_app(app, config, authenticator=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import msgspec

__all__ = ["Authenticator", "Principal"]


class Principal(msgspec.Struct, frozen=True):
    """An authenticated caller: sessions are bound to ``id``; ``scopes`` gate what it sees."""

    id: str
    scopes: frozenset[str] = frozenset()


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller of a request with these headers; raises AuthError to refuse it."""
        ...
