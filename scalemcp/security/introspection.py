"""OAuth 2.0 token introspection (RFC 7662): opaque bearer tokens, checked by the issuer.

Theory of operation: a token is POSTed (``token``, ``token_type_hint=access_token``) to
the authorization server's introspection endpoint, authenticated as this server's client
(HTTP Basic, RFC 6749 2.3.1). The answer is accepted when ``active`` is true, ``exp`` and
``nbf`` (if present) hold give or take ``leeway_s``, ``aud`` names this server's canonical
resource URI (RFC 8707: required here, as for JWTs), ``iss`` (if present and an issuer is
configured) is that issuer, and ``sub`` is a non-empty string: the principal. Scopes come
from ``scope`` (space-separated).

Verdicts are cached by the token's SHA-256 (the token itself is not kept): an accepted
token until ``min(now + cache_ttl_s, exp)``, a refused one for ``negative_ttl_s``; so a
revocation is seen within ``cache_ttl_s``. Concurrent requests with the same uncached
token share one call. An endpoint that cannot be reached, times out or answers anything
but HTTP 200 with an introspection document is :class:`BackendUnavailable` (HTTP 503 +
Retry-After), not a 401: the token may well be valid. Neither the token nor the client
secret is ever logged or put in an error.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import quote, urlsplit

import msgspec
import trio

from ..errors import BackendUnavailable, InvalidCredentials
from .credentials import bearer_token
from .principal import Principal
from .resource import canonical_uri

__all__ = ["IntrospectionAuthenticator", "check_endpoint_url", "fetch_with_httpx"]

log = logging.getLogger("scalemcp.security")

#: One call: (token) -> (HTTP status, body). Raises OSError if the endpoint cannot answer.
Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]
MAX_RESPONSE_BYTES = 64 * 1024
_MAX_CACHED = 10_000


class _Answer(msgspec.Struct):
    """The fields of an introspection response that matter here (RFC 7662 2.2)."""

    active: bool
    scope: str | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    exp: float | None = None
    nbf: float | None = None
    iss: str | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)


class _Verdict(msgspec.Struct, frozen=True):
    expires_at: float  # trio clock
    principal: Principal | None
    refusal: str = ""


class _Flight:
    """One call in progress; requests with the same token wait for its verdict."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.verdict: _Verdict | None = None
        self.failure: BackendUnavailable | None = None


class IntrospectionAuthenticator:
    def __init__(
        self,
        fetch: Fetch,
        *,
        resource_uri: str,
        issuer: str | None = None,
        leeway_s: float = 0.0,
        cache_ttl_s: float = 60.0,
        negative_ttl_s: float = 5.0,
    ) -> None:
        self._fetch = fetch
        self.audience = canonical_uri(resource_uri)
        self.issuer = issuer
        self.leeway_s = leeway_s
        self.cache_ttl_s = cache_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._cache: dict[bytes, _Verdict] = {}
        self._flights: dict[bytes, _Flight] = {}
        #: Calls made to the endpoint (for tests and statistics).
        self.calls = 0

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = bearer_token(headers)
        assert token is not None
        return await self.principal(token)

    async def principal(self, token: str) -> Principal:
        """The principal of ``token``; InvalidCredentials, or BackendUnavailable."""
        key = hashlib.sha256(token.encode()).digest()
        verdict = self._cache.get(key)
        if verdict is None or verdict.expires_at <= trio.current_time():
            verdict = await self._verdict(key, token)
        if verdict.principal is None:
            raise InvalidCredentials(verdict.refusal)
        return verdict.principal

    async def _verdict(self, key: bytes, token: str) -> _Verdict:
        while True:
            flight = self._flights.get(key)
            if flight is not None:  # another request asks already: share its answer
                await flight.done.wait()
            else:
                flight = self._flights[key] = _Flight()
                try:
                    flight.verdict = await self._introspect(token)
                    self._remember(key, flight.verdict)
                except BackendUnavailable as exc:
                    flight.failure = exc
                finally:
                    del self._flights[key]
                    flight.done.set()
            if flight.failure is not None:
                raise BackendUnavailable(str(flight.failure), flight.failure.retry_after_s)
            if flight.verdict is not None:
                return flight.verdict
            # The request that asked was cancelled before the answer: ask again.

    def _remember(self, key: bytes, verdict: _Verdict) -> None:
        if len(self._cache) >= _MAX_CACHED:
            now = trio.current_time()
            self._cache = {k: v for k, v in self._cache.items() if v.expires_at > now}
            while len(self._cache) >= _MAX_CACHED:  # still full: forget the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[key] = verdict

    async def _introspect(self, token: str) -> _Verdict:
        self.calls += 1
        unavailable = BackendUnavailable(
            "the authorization server's token introspection endpoint is unavailable; "
            "retry later", retry_after_s=1)
        try:
            status, body = await self._fetch(token)
        except OSError as exc:
            log.warning("token introspection failed: %s", exc)
            raise unavailable from None
        if status != 200:
            hint = " (check introspection_client_id and its secret)" if status in (401,
                                                                                   403) else ""
            log.warning("token introspection answered HTTP %d%s", status, hint)
            raise unavailable
        try:
            answer = _answer_decoder.decode(body)
        except msgspec.MsgspecError as exc:
            log.warning("token introspection answered something else than RFC 7662 JSON: %s",
                        exc)
            raise unavailable from None
        return self._judge(answer)

    def _judge(self, answer: _Answer) -> _Verdict:
        now, wall = trio.current_time(), time.time()
        refusal = self._refusal(answer, wall)
        if refusal:
            return _Verdict(now + self.negative_ttl_s, None, refusal)
        assert answer.sub is not None
        scopes = frozenset((answer.scope or "").split())
        until = now + self.cache_ttl_s
        if answer.exp is not None:  # never trusted past its expiry
            until = min(until, now + answer.exp - wall)
        return _Verdict(until, Principal(answer.sub, scopes))

    def _refusal(self, answer: _Answer, wall: float) -> str:
        if not answer.active:
            return "the token is not active (expired, revoked or unknown)"
        if answer.exp is not None and answer.exp + self.leeway_s <= wall:
            return "the token has expired"
        if answer.nbf is not None and answer.nbf - self.leeway_s > wall:
            return "the token is not valid yet (nbf)"
        if not self._for_us(answer.aud):
            return f"the token's audience is not {self.audience}"
        if self.issuer is not None and answer.iss is not None and answer.iss != self.issuer:
            return f"the token was not issued by {self.issuer}"
        if not answer.sub:
            return "the token has no 'sub' (subject)"
        return ""

    def _for_us(self, aud: str | list[str] | None) -> bool:
        for value in [aud] if isinstance(aud, str) else aud or []:
            try:
                if canonical_uri(value) == self.audience:
                    return True
            except ValueError:
                continue
        return False


def check_endpoint_url(url: str, setting: str) -> None:
    """Secrets and tokens travel over HTTPS (plain HTTP only to a loopback address)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
    ):
        raise ValueError(f"{setting} must be https:// (http only to loopback), not {url!r}")


def fetch_with_httpx(url: str, client_id: str, client_secret: str, *, timeout_s: float) -> Fetch:
    """A :data:`Fetch` POSTing to ``url`` with httpx, as client ``client_id``."""
    check_endpoint_url(url, "introspection_url")
    import httpx

    credentials = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    headers = {"accept": "application/json",
               "authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
    tls = ssl.create_default_context()  # built once: loading the CA store is slow

    async def fetch(token: str) -> tuple[int, bytes]:
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            async with httpx.AsyncClient(timeout=timeout_s, verify=tls) as client, \
                    client.stream("POST", url, data=form, headers=headers) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise OSError(f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
                return response.status_code, bytes(body)
        except httpx.HTTPError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from None

    return fetch
