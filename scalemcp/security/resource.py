"""This server as an OAuth 2.1 protected resource: its canonical URI (RFC 8707), its
metadata document (RFC 9728) and the ``WWW-Authenticate`` challenges that point to it.

Sans-IO: strings in, strings and bytes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import msgspec

from ..errors import AuthError

__all__ = [
    "WELL_KNOWN",
    "ProtectedResourceMetadata",
    "canonical_uri",
    "challenge",
    "metadata_path",
    "metadata_url",
]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_uri(uri: str) -> str:
    """``uri`` with scheme and host lower-cased, no default port and no trailing slash.

    Two resource URIs name the same resource when their canonical forms are equal
    (spec 13: tolerate upper-case scheme and host). Raises ValueError if not absolute.
    """
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower-cased by urlsplit
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"{uri!r} is not an absolute http(s) URI")
    port = parts.port
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def metadata_path(resource_path: str) -> str:
    """Where RFC 9728 3.1 puts the metadata of a resource with this path."""
    return WELL_KNOWN + resource_path.rstrip("/")


def metadata_url(resource_uri: str) -> str:
    """The absolute URL of the metadata document of ``resource_uri`` (path-suffixed form)."""
    parts = urlsplit(canonical_uri(resource_uri))
    return f"{parts.scheme}://{parts.netloc}{metadata_path(parts.path)}"


class ProtectedResourceMetadata(msgspec.Struct, frozen=True):
    """The RFC 9728 document; ``authorization_servers`` must not be empty (spec 13)."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...]
    #: Tokens only in the Authorization header: never in a form body or the query.
    bearer_methods_supported: tuple[str, ...] = ("header",)
    resource_name: str | msgspec.UnsetType = msgspec.UNSET


def challenge(
    error: AuthError, *, resource_metadata: str | None, scopes: Iterable[str] = ()
) -> str:
    """The ``WWW-Authenticate`` value for ``error`` (RFC 6750 3, RFC 9728 5.1).

    ``scope`` names the error's scopes and ``scopes`` (those every request needs), so a
    token granted them passes. A request without credentials gets no ``error`` code
    (RFC 6750 3.1).
    """
    params: list[tuple[str, str]] = []
    if error.error is not None:
        params.append(("error", error.error))
        params.append(("error_description", error.message))
    wanted = sorted({*error.scopes, *scopes})
    if wanted:
        params.append(("scope", " ".join(wanted)))
    if resource_metadata:
        params.append(("resource_metadata", resource_metadata))
    if not params:
        return "Bearer"
    return "Bearer " + ", ".join(f'{name}="{_quotable(value)}"' for name, value in params)


def _quotable(value: str) -> str:
    """RFC 6750 allows %x20-21 / %x23-5B / %x5D-7E inside the quotes: no " or \\."""
    return "".join(
        c if " " <= c <= "~" and c not in '"\\' else ("'" if c == '"' else "?") for c in value
    )
