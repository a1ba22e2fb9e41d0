"""OAuth 2.1 resource server: JWT access tokens checked locally (spec 13; RFC 9068).

A token is accepted when its signature verifies with a key from the authorization
server's JWKS, it is within ``exp``/``nbf`` (give or take ``leeway_s``), ``iss`` is the
configured issuer, ``aud`` names this server's canonical resource URI (RFC 8707; compared
after canonicalisation, so upper-case scheme and host match) and it has a ``sub``.
The principal is ``sub``; its scopes are the union of ``scope`` (space-separated) and
``scp`` (a list or a string), the two claims authorization servers use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from ..errors import InvalidCredentials
from .credentials import bearer_token
from .jwks import JWKSCache
from .principal import Principal
from .resource import canonical_uri

__all__ = ["JWTAuthenticator", "token_scopes"]

_REQUIRED_CLAIMS = ["exp", "iss", "sub", "aud"]


class JWTAuthenticator:
    def __init__(
        self, keys: JWKSCache, *, issuer: str, resource_uri: str, leeway_s: float = 0.0
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = canonical_uri(resource_uri)
        self.leeway_s = leeway_s

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = bearer_token(headers)
        assert token is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidCredentials("the bearer token is not a JWT") from None
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        claims = self._verify(token, key.key, key.algorithms)
        if not self._for_us(claims.get("aud")):
            raise InvalidCredentials(f"the token's audience is not {self.audience}")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise InvalidCredentials("the token's 'sub' claim must be a non-empty string")
        return Principal(sub, token_scopes(claims))

    def _verify(self, token: str, key: Any, algorithms: tuple[str, ...]) -> dict[str, Any]:
        try:
            return jwt.decode(
                token, key, algorithms=list(algorithms), issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidCredentials("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidCredentials("the token is not valid yet (nbf or iat)") from None
        except jwt.InvalidIssuerError:
            raise InvalidCredentials(f"the token was not issued by {self.issuer}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidCredentials(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidCredentials("the token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidCredentials(f"invalid token: {exc}") from None

    def _for_us(self, aud: Any) -> bool:
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        for value in audiences:
            try:
                if isinstance(value, str) and canonical_uri(value) == self.audience:
                    return True
            except ValueError:
                continue
        return False


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(v for v in value if isinstance(v, str))
    return frozenset(scopes)
