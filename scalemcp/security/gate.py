"""The authentication gate in front of the MCP endpoints, built from :class:`Config`.

``identify`` runs once per HTTP request (and per WebSocket handshake), after the Origin
and Host checks and before the body is read; it returns who is asking and what they may
see, or raises an AuthError that ``refusal`` turns into a status, a challenge and a body.
``metadata`` answers the RFC 9728 documents (``auth = "jwt"`` only).

Identities: with authentication off, ``Identity(None, None)``: no principal, every tool
visible (per-tool ``scopes`` are not enforced; a warning says so at start). An anonymous
caller that a custom authenticator lets through is ``Identity(None, frozenset())``: it
sees only what needs no scope.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec

from ..app.app import App
from ..config import Config
from ..errors import AuthError, InsufficientScope, MissingCredentials
from .api_keys import load_api_keys
from .bearer import INTROSPECTION_FIELDS, check_oauth_config, oauth_authenticator
from .principal import Authenticator
from .resource import (
    WELL_KNOWN,
    ProtectedResourceMetadata,
    canonical_uri,
    challenge,
    metadata_path,
    metadata_url,
)

__all__ = ["AuthGate", "Identity", "check_auth_config"]

log = logging.getLogger("scalemcp.security")
Headers = list[tuple[bytes, bytes]]
_JWT_FIELDS = ("jwt_jwks_url", "jwt_jwks_file", "jwt_issuer", "authorization_servers",
               *INTROSPECTION_FIELDS)
_KEY_FIELDS = ("api_keys_file", "api_keys")


class Identity(NamedTuple):
    principal: str | None
    #: None: authentication is off and nothing is filtered.
    scopes: frozenset[str] | None


_OPEN = Identity(None, None)


class AuthGate:
    def __init__(self, app: App, config: Config, authenticator: Authenticator | None) -> None:
        check_auth_config(config, custom=authenticator is not None)
        self.app = app
        self.config = config
        self.required = frozenset(config.auth.required_scopes)
        self.authenticator = authenticator or _from_config(config)
        uri = config.auth.resource_uri
        self.resource = canonical_uri(uri) if uri else None
        self.metadata_url = (metadata_url(self.resource)
                             if config.auth.mode == "jwt" and self.resource else None)
        self._metadata_paths: frozenset[str] = frozenset()
        if self.resource and self.metadata_url:
            self._metadata_paths = frozenset({
                WELL_KNOWN, metadata_path(config.server.path),
                metadata_path(urlsplit(self.resource).path)})
        if self.authenticator is None and declared_scopes(app):
            log.warning("some tools, resources or prompts declare scopes, but authentication "
                        "is off (auth = 'none'), so everyone can see and use them")

    async def identify(self, headers: Mapping[str, str]) -> Identity:
        if self.authenticator is None:
            return _OPEN
        principal = await self.authenticator.authenticate(headers)
        if principal is None:
            if self.required:
                raise MissingCredentials("this server needs credentials")
            return Identity(None, frozenset())
        if not self.required <= principal.scopes:
            raise InsufficientScope("this server needs more scopes than the credentials hold",
                                    scopes=tuple(sorted(self.required)))
        return Identity(principal.id, principal.scopes)

    def refusal(self, error: AuthError) -> tuple[int, bytes, Headers]:
        """Status, JSON body and headers (``WWW-Authenticate``) refusing a request."""
        value = challenge(error, resource_metadata=self.metadata_url, scopes=self.required)
        body = msgspec.json.encode(
            {"error": error.error or "unauthorized", "error_description": error.message})
        return error.http_status, body, [(b"www-authenticate", value.encode())]

    def is_metadata_path(self, path: str) -> bool:
        return path in self._metadata_paths

    def metadata(self) -> bytes:
        """The RFC 9728 protected resource metadata document."""
        assert self.resource is not None
        supported = self.required | declared_scopes(self.app)
        return msgspec.json.encode(ProtectedResourceMetadata(
            resource=self.resource,
            authorization_servers=tuple(self.config.auth.authorization_servers),
            scopes_supported=tuple(sorted(supported)),
            resource_name=self.app.title or self.app.name,
        ))


def declared_scopes(app: App) -> frozenset[str]:
    """Every scope a tool, resource, template or prompt of ``app`` asks for."""
    scopes: set[str] = set()
    for tool in app.tools.values():
        scopes.update(tool.scopes)
    for resource in (*app.resources.values(), *app.templates):
        scopes.update(resource.scopes)
    for prompt in app.prompts.values():
        scopes.update(prompt.scopes)
    return frozenset(scopes)


def _from_config(config: Config) -> Authenticator | None:
    if config.auth.mode == "api_key":
        from .api_keys import APIKeyAuthenticator

        return APIKeyAuthenticator(load_api_keys(config.auth.api_keys_file, config.auth.api_keys))
    if config.auth.mode == "jwt":  # JWTs and/or token introspection
        return oauth_authenticator(config)
    return None


def check_auth_config(config: Config, *, custom: bool = False) -> None:
    """Refuse settings that cannot work together, saying why (ValueError); also read the
    API keys and a JWKS file, so that a bad one fails at start, with its line."""
    mode = config.auth.mode
    stray = [f for f in (*_JWT_FIELDS, *_KEY_FIELDS, "required_scopes") if getattr(config.auth, f)
             and not (f in _JWT_FIELDS and mode == "jwt")
             and not (f in _KEY_FIELDS and mode == "api_key")
             and not (f == "required_scopes" and (mode != "none" or custom))]
    if stray:
        raise ValueError(f"{', '.join(stray)} only apply with a matching auth mode "
                         f"(auth is {mode!r})")
    if config.auth.resource_uri:
        canonical_uri(config.auth.resource_uri)  # raises ValueError if not absolute
    if mode == "api_key":
        if not (config.auth.api_keys_file or config.auth.api_keys):
            raise ValueError("auth = 'api_key' needs api_keys_file or api_keys")
        load_api_keys(config.auth.api_keys_file, config.auth.api_keys)
    if mode == "jwt":
        check_oauth_config(config)
