"""OAuth 2.1 bearer tokens (``auth = "jwt"``), built from :class:`Config`.

A token shaped like a JWT (three base64url parts, the first a JSON header with ``alg``) is
checked locally against the JWKS (``jwt_auth``); any other (opaque) token is introspected
(RFC 7662, ``introspection``). Either may be configured alone: without a JWKS every token
is introspected; without ``introspection_url`` every token must be a JWT.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from ..config import Config
from .credentials import bearer_token
from .introspection import IntrospectionAuthenticator, check_endpoint_url, fetch_with_httpx
from .jwks import check_jwks_url, parse_jwks
from .principal import Authenticator, Principal
from .resource import canonical_uri

__all__ = [
    "INTROSPECTION_FIELDS",
    "BearerAuthenticator",
    "check_oauth_config",
    "looks_like_jwt",
    "oauth_authenticator",
]

INTROSPECTION_FIELDS = ("introspection_url", "introspection_client_id",
                        "introspection_client_secret", "introspection_client_secret_file")


class BearerAuthenticator:
    """JWTs to the JWT checker, other tokens to introspection (when both are set)."""

    def __init__(self, jwt: Authenticator | None,
                 introspection: IntrospectionAuthenticator | None) -> None:
        assert jwt is not None or introspection is not None
        self.jwt = jwt
        self.introspection = introspection

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        token = bearer_token(headers)
        assert token is not None
        if self.introspection is None or (self.jwt is not None and looks_like_jwt(token)):
            assert self.jwt is not None
            return await self.jwt.authenticate(headers)
        return await self.introspection.principal(token)


def looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def oauth_authenticator(config: Config) -> BearerAuthenticator:
    """The authenticator of ``auth = "jwt"`` (settings checked by check_oauth_config)."""
    assert config.auth.resource_uri is not None
    jwt: Authenticator | None = None
    if config.auth.jwt_jwks_url or config.auth.jwt_jwks_file:
        from .jwks import JWKSCache, load_jwks_file, load_jwks_url
        from .jwt_auth import JWTAuthenticator  # PyJWT: checked by check_oauth_config

        if config.auth.jwt_jwks_url:
            load, source = load_jwks_url(config.auth.jwt_jwks_url), config.auth.jwt_jwks_url
        else:
            assert config.auth.jwt_jwks_file is not None
            load, source = load_jwks_file(config.auth.jwt_jwks_file), config.auth.jwt_jwks_file
        keys = JWKSCache(load, source=source, ttl_s=config.auth.jwt_jwks_ttl_s,
                         min_refetch_s=config.auth.jwt_jwks_min_refetch_s)
        assert config.auth.jwt_issuer is not None
        jwt = JWTAuthenticator(keys, issuer=config.auth.jwt_issuer,
                               resource_uri=config.auth.resource_uri,
                               leeway_s=config.auth.jwt_leeway_s)
    introspection = None
    if config.auth.introspection_url:
        assert config.auth.introspection_client_id is not None
        fetch = fetch_with_httpx(config.auth.introspection_url,
                                 config.auth.introspection_client_id, client_secret(config),
                                 timeout_s=config.auth.introspection_timeout_s)
        introspection = IntrospectionAuthenticator(
            fetch, resource_uri=config.auth.resource_uri, issuer=config.auth.jwt_issuer,
            leeway_s=config.auth.jwt_leeway_s, cache_ttl_s=config.auth.introspection_cache_ttl_s,
            negative_ttl_s=config.auth.introspection_negative_ttl_s)
    return BearerAuthenticator(jwt, introspection)


def client_secret(config: Config) -> str:
    """The introspection client secret, from the setting (environment) or its file."""
    if config.auth.introspection_client_secret is not None:
        return config.auth.introspection_client_secret
    assert config.auth.introspection_client_secret_file is not None
    with open(config.auth.introspection_client_secret_file, encoding="utf-8") as f:
        secret = f.read().strip()
    if not secret:
        raise ValueError(f"{config.auth.introspection_client_secret_file} is empty")
    return secret


def check_oauth_config(config: Config) -> None:
    """ValueError unless the ``auth = "jwt"`` settings can work; reads the JWKS file and the
    client secret file, so that a bad one fails at start."""
    jwks = [f for f in ("jwt_jwks_url", "jwt_jwks_file") if getattr(config.auth, f)]
    if len(jwks) > 1:
        raise ValueError("auth = 'jwt' takes exactly one of jwt_jwks_url and jwt_jwks_file, "
                         "not both")
    if not jwks and not config.auth.introspection_url:
        raise ValueError("auth = 'jwt' needs jwt_jwks_url or jwt_jwks_file (to check JWT access "
                         "tokens), introspection_url (to introspect opaque ones), or both")
    missing = [f for f in ("jwt_issuer", "resource_uri", "authorization_servers")
               if not getattr(config.auth, f) and (f != "jwt_issuer" or jwks)]
    if missing:
        raise ValueError(f"auth = 'jwt' needs {', '.join(missing)} (the token issuer, this "
                         "server's canonical URI as the token audience, and the authorization "
                         "servers to list in the protected resource metadata)")
    for server in config.auth.authorization_servers:
        canonical_uri(server)
    if jwks:
        _check_jwks(config)
    if config.auth.introspection_url:
        _check_introspection(config)
    else:
        stray = [f for f in INTROSPECTION_FIELDS if getattr(config.auth, f)]
        if stray:
            raise ValueError(f"{', '.join(stray)} only apply with introspection_url")


def _check_jwks(config: Config) -> None:
    if config.auth.jwt_jwks_url:
        check_jwks_url(config.auth.jwt_jwks_url)
    try:
        import jwt  # noqa: F401
    except ImportError:
        raise ValueError("auth = 'jwt' needs the 'auth' extra: pip install "
                         "'scalemcp[auth]'") from None
    if config.auth.jwt_jwks_file:
        with open(config.auth.jwt_jwks_file, "rb") as f:
            if not parse_jwks(f.read()):
                raise ValueError(f"{config.auth.jwt_jwks_file} holds no usable signature key")


def _check_introspection(config: Config) -> None:
    assert config.auth.introspection_url is not None
    check_endpoint_url(config.auth.introspection_url, "introspection_url")
    if not config.auth.introspection_client_id:
        raise ValueError("introspection_url needs introspection_client_id (this server's "
                         "client at the authorization server)")
    secrets = [f for f in ("introspection_client_secret", "introspection_client_secret_file")
               if getattr(config.auth, f) is not None]
    if len(secrets) != 1:
        raise ValueError("introspection_url needs exactly one of introspection_client_secret "
                         "(e.g. SCALEMCP_INTROSPECTION_CLIENT_SECRET) and "
                         "introspection_client_secret_file")
    client_secret(config)  # readable and not empty
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise ValueError("introspection_url needs the 'auth' extra: pip install "
                         "'scalemcp[auth]'") from None
