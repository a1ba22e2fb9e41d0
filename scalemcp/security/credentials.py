"""Reading credentials from request headers (RFC 6750 section 2.1; ``X-API-Key``).

Tokens travel only in headers, never in the query string (spec 13).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import MalformedCredentials, MissingCredentials

__all__ = ["api_key", "bearer_token"]

# RFC 6750 b64token (RFC 7235 token68).
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# An API key: visible ASCII, no spaces or commas (a comma means two headers were joined).
_API_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")


def bearer_token(headers: Mapping[str, str], *, required: bool = True) -> str | None:
    """The token of ``Authorization: Bearer <token>``.

    No Authorization header, or another scheme (e.g. Basic): MissingCredentials, or None
    when not ``required``. A Bearer header that is not one well-formed token (two
    Authorization headers, spaces, bad characters): MalformedCredentials.
    """
    value = headers.get("authorization")
    if value is None:
        if required:
            raise MissingCredentials("this server needs Authorization: Bearer <token>")
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        if required:
            raise MissingCredentials(
                f"the Authorization scheme must be Bearer, not {scheme[:20]!r}")
        return None
    token = token.strip()
    if not _TOKEN68.fullmatch(token):
        raise MalformedCredentials(
            "Authorization must be exactly one 'Bearer <token>' with a base64url-like token")
    return token


def api_key(headers: Mapping[str, str]) -> str:
    """The API key of ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

    Both may be sent if they agree; two different keys are MalformedCredentials.
    """
    header_key = headers.get("x-api-key")
    if header_key is not None:
        header_key = header_key.strip()
        if not _API_KEY.fullmatch(header_key):
            raise MalformedCredentials("X-API-Key must be one key of visible ASCII characters")
    token = bearer_token(headers, required=header_key is None)
    if header_key is not None and token is not None and token != header_key:
        raise MalformedCredentials("X-API-Key and Authorization carry different keys")
    key = header_key if header_key is not None else token
    assert key is not None
    return key
