"""Signing keys of the authorization server: a JWKS from a URL or a file, cached.

Theory of operation: keys are loaded on first use and kept ``ttl_s``; after that the next
request reloads them. A token naming a ``kid`` we do not hold triggers an early reload
(key rotation), at most once per ``min_refetch_s``, so a flood of made-up kids costs at
most one fetch per interval. One task fetches at a time; the others wait for its result.
A failed reload keeps the old keys (logged) and counts against the same interval; with
no keys at all the request gets 503 (BackendUnavailable) rather than a misleading 401.

Only asymmetric keys are used (RSA, EC, OKP); each allows the algorithms its ``alg``
names, or else those its key type can verify, so ``alg=none`` or HMAC with a public key
as secret can never pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
import trio

from ..errors import BackendUnavailable, InvalidCredentials

__all__ = ["JWKSCache", "SigningKey", "check_jwks_url", "load_jwks_file", "load_jwks_url"]

log = logging.getLogger("scalemcp.security")

Loader = Callable[[], Awaitable[bytes]]
MAX_JWKS_BYTES = 1024 * 1024
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC = {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",)}
_OKP = {"Ed25519": ("EdDSA",), "Ed448": ("EdDSA",)}
_ASYMMETRIC = frozenset({*_RSA, "ES256", "ES384", "ES512", "EdDSA"})


class _JWKS(msgspec.Struct):
    keys: list[dict[str, Any]]


_jwks_decoder = msgspec.json.Decoder(_JWKS)


class SigningKey(msgspec.Struct, frozen=True):
    kid: str | None
    key: Any  # a cryptography public key
    algorithms: tuple[str, ...]


class JWKSCache:
    def __init__(self, load: Loader, *, source: str, ttl_s: float, min_refetch_s: float) -> None:
        self._load = load
        self.source = source
        self.ttl_s = ttl_s
        self.min_refetch_s = min_refetch_s
        self._keys: tuple[SigningKey, ...] | None = None
        self._loaded_at = -float("inf")  # last attempt, successful or not
        self._expires_at = -float("inf")
        self._lock = trio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> SigningKey:
        """The key that signed a token with this ``kid``; InvalidCredentials if none."""
        if trio.current_time() >= self._expires_at:
            await self._refresh(self._loaded_at, unknown_kid=False)
        if self._keys is None:
            raise BackendUnavailable(
                "the authorization server's signing keys are unavailable",
                retry_after_s=max(1, round(self.min_refetch_s)))
        found = self._find(kid)
        if found is None and kid is not None:
            await self._refresh(self._loaded_at, unknown_kid=True)
            found = self._find(kid)
        if found is None:
            raise InvalidCredentials(
                "the token's signing key is not in the authorization server's JWKS"
                if kid is not None else
                "the token has no 'kid' and the JWKS holds more than one key")
        return found

    def _find(self, kid: str | None) -> SigningKey | None:
        keys = self._keys or ()
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.kid == kid), None)

    async def _refresh(self, seen: float, *, unknown_kid: bool) -> None:
        async with self._lock:
            if self._loaded_at != seen:
                return  # another task reloaded while this one waited
            now = trio.current_time()
            if unknown_kid and now - self._loaded_at < self.min_refetch_s:
                return
            self._loaded_at = now
            self.fetches += 1
            try:
                self._keys = parse_jwks(await self._load())
                self._expires_at = now + self.ttl_s
            except (OSError, ValueError) as exc:
                # Keep what we had; try again after min_refetch_s, not on every request.
                self._expires_at = now + self.min_refetch_s
                log.warning("cannot load the JWKS from %s: %s", self.source, exc)


def parse_jwks(data: bytes) -> tuple[SigningKey, ...]:
    """The usable signature keys of a JWKS document; ValueError if it is not one."""
    from jwt import PyJWK
    from jwt.exceptions import PyJWTError

    try:
        jwks = _jwks_decoder.decode(data)
    except msgspec.MsgspecError as exc:
        raise ValueError(f"not a JWKS document: {exc}") from None
    keys: list[SigningKey] = []
    for jwk in jwks.keys:
        algorithms = _algorithms(jwk)
        if not algorithms or jwk.get("use", "sig") != "sig" or "d" in jwk:
            continue  # not a public signature key we accept
        try:
            key = PyJWK(jwk, algorithms[0]).key
        except (PyJWTError, ValueError) as exc:
            log.warning("skipping a JWKS key (kid %r): %s", jwk.get("kid"), exc)
            continue
        kid = jwk.get("kid")
        keys.append(SigningKey(kid if isinstance(kid, str) else None, key, algorithms))
    return tuple(keys)


def _algorithms(jwk: dict[str, Any]) -> tuple[str, ...]:
    alg = jwk.get("alg")
    if alg is not None:
        return (alg,) if alg in _ASYMMETRIC else ()
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return _RSA
    if kty == "EC" and isinstance(crv, str):
        return _EC.get(crv, ())
    if kty == "OKP" and isinstance(crv, str):
        return _OKP.get(crv, ())
    return ()


def load_jwks_file(path: str) -> Loader:
    async def load() -> bytes:
        data = await trio.Path(path).read_bytes()
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"{path} is larger than {MAX_JWKS_BYTES} bytes")
        return data

    return load


def check_jwks_url(url: str) -> None:
    """Keys must come over HTTPS (plain HTTP only from a loopback address)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
    ):
        raise ValueError(f"jwt_jwks_url must be https:// (http only to loopback), not {url!r}")


def load_jwks_url(url: str, timeout_s: float = 10.0) -> Loader:
    """A loader fetching ``url`` with httpx."""
    check_jwks_url(url)
    import httpx

    async def load() -> bytes:
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise OSError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        return response.content

    return load
