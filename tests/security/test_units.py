"""Sans-IO pieces, table-driven: canonical URIs, challenges, credentials, the JWKS cache
(on trio's MockClock)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from scalemcp.errors import (
    BackendUnavailable,
    InsufficientScope,
    InvalidCredentials,
    MalformedCredentials,
    MissingCredentials,
)
from scalemcp.security.credentials import api_key, bearer_token
from scalemcp.security.jwks import JWKSCache, parse_jwks
from scalemcp.security.resource import canonical_uri, challenge, metadata_url

from .support import jwks, signer


@pytest.mark.parametrize(("uri", "canonical"), [
    ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
    ("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"),
    ("https://mcp.example.com:443/mcp/", "https://mcp.example.com/mcp"),
    ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp"),
    ("https://mcp.example.com", "https://mcp.example.com"),
    ("https://[::1]:9/x?a=1", "https://[::1]:9/x?a=1"),
])
def test_canonical_uri(uri: str, canonical: str) -> None:
    assert canonical_uri(uri) == canonical


def test_canonical_uri_keeps_path_case_and_refuses_relative() -> None:
    assert canonical_uri("https://h/MCP") != canonical_uri("https://h/mcp")
    for bad in ("mcp.example.com/mcp", "/mcp", "ftp://h/x"):
        with pytest.raises(ValueError, match="absolute"):
            canonical_uri(bad)


def test_metadata_url() -> None:
    assert metadata_url("HTTPS://H.example/mcp/") == (
        "https://h.example/.well-known/oauth-protected-resource/mcp")
    assert metadata_url("https://h.example") == (
        "https://h.example/.well-known/oauth-protected-resource")


def test_challenges() -> None:
    prm = "https://h/.well-known/oauth-protected-resource/mcp"
    assert challenge(MissingCredentials("x"), resource_metadata=None) == "Bearer"
    assert challenge(MissingCredentials("x"), resource_metadata=prm, scopes=["b", "a"]) == (
        f'Bearer scope="a b", resource_metadata="{prm}"')
    assert challenge(InvalidCredentials('bad "quote" \\ é'), resource_metadata=None) == (
        "Bearer error=\"invalid_token\", error_description=\"bad 'quote' ? ?\"")
    assert challenge(InsufficientScope("more", scopes=("admin",)), resource_metadata=None,
                     scopes=["mcp"]) == (
        'Bearer error="insufficient_scope", error_description="more", scope="admin mcp"')


@pytest.mark.parametrize(("headers", "expected"), [
    ({"authorization": "Bearer abc.DEF-_~+/="}, "abc.DEF-_~+/="),
    ({"authorization": "  bearer   tok  "}, "tok"),
    ({"authorization": "Bearer"}, MalformedCredentials),
    ({"authorization": "Bearer a, Bearer b"}, MalformedCredentials),
    ({"authorization": "Bearer a=b"}, MalformedCredentials),
    ({"authorization": "Basic abc"}, MissingCredentials),
    ({}, MissingCredentials),
])
def test_bearer_token(headers: dict[str, str], expected: str | type[Exception]) -> None:
    if isinstance(expected, str):
        assert bearer_token(headers) == expected
    else:
        with pytest.raises(expected):
            bearer_token(headers)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-api-key": "k!ey"}, "k!ey"),
    ({"x-api-key": "key", "authorization": "Basic x"}, "key"),
    ({"x-api-key": "key", "authorization": "Bearer key"}, "key"),
    ({"authorization": "Bearer key"}, "key"),
    ({"x-api-key": "a, b"}, MalformedCredentials),
    ({"x-api-key": "a", "authorization": "Bearer b"}, MalformedCredentials),
    ({}, MissingCredentials),
])
def test_api_key(headers: dict[str, str], expected: str | type[Exception]) -> None:
    if isinstance(expected, str):
        assert api_key(headers) == expected
    else:
        with pytest.raises(expected):
            api_key(headers)


def test_parse_jwks_keeps_only_public_signature_keys() -> None:
    good = signer("k1").jwk()
    document = {"keys": [
        good,
        {**good, "kid": "enc", "use": "enc"},
        {**good, "kid": "hmac-alg", "alg": "HS256"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
        {**good, "kid": "private", "d": "AQAB"},
        {**{k: v for k, v in good.items() if k != "alg"}, "kid": "no-alg"},
        {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AA", "y": "AA"},
    ]}
    keys = parse_jwks(json.dumps(document).encode())
    assert [(k.kid, k.algorithms[:2]) for k in keys] == [
        ("k1", ("RS256",)), ("no-alg", ("RS256", "RS384"))]
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_jwks(b'{"no": "keys"}')


class Loader:
    def __init__(self, *documents: object) -> None:
        self.documents = list(documents)
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        await trio.sleep(1)  # lets concurrent callers pile up behind the lock
        document = self.documents[min(self.calls, len(self.documents)) - 1]
        if isinstance(document, Exception):
            raise document
        return json.dumps(document).encode()


async def test_jwks_cache_ttl_and_unknown_kid_rate_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one, two = jwks(signer("k1")), jwks(signer("k1"), signer("k2"))
    load = Loader(one, one, two)
    cache = JWKSCache(load, source="test", ttl_s=300, min_refetch_s=30)
    async with trio.open_nursery() as nursery:  # five at once: one fetch
        for _ in range(5):
            nursery.start_soon(cache.key, "k1")
    assert load.calls == 1
    with pytest.raises(InvalidCredentials, match="not in the"):
        await cache.key("k2")  # unknown, but fetched a moment ago: no refetch
    assert load.calls == 1
    await trio.sleep(30)
    with pytest.raises(InvalidCredentials):
        await cache.key("k2")  # refetched (still the old document): unknown
    assert load.calls == 2
    await cache.key("k1")
    assert load.calls == 2
    await trio.sleep(300)  # past the TTL: reloaded on use, now with k2
    assert (await cache.key("k2")).kid == "k2"
    assert load.calls == 3


async def test_jwks_cache_failures(autojump_clock: trio.testing.MockClock) -> None:
    load = Loader(OSError("down"), jwks(signer("k1")), OSError("down again"))
    cache = JWKSCache(load, source="test", ttl_s=300, min_refetch_s=30)
    with pytest.raises(BackendUnavailable):
        await cache.key("k1")  # nothing to go on: 503, not a 401
    with pytest.raises(BackendUnavailable):
        await cache.key("k1")  # and no refetch before min_refetch_s
    assert load.calls == 1
    await trio.sleep(30)
    assert (await cache.key("k1")).kid == "k1"
    await trio.sleep(300)
    assert (await cache.key("k1")).kid == "k1"  # a failed reload keeps the old keys
    assert load.calls == 3
    await cache.key("k1")
    assert load.calls == 3  # and is retried only after min_refetch_s
