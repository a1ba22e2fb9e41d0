"""OAuth token introspection (RFC 7662) against a real endpoint on a loopback port.

The endpoint is a small ASGI app on Hypercorn that checks this server's client
credentials (HTTP Basic), reads the form-encoded token and answers from a table, counting
its calls per token.
"""

from __future__ import annotations

import base64
import logging
import pathlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import msgspec
import pytest
import trio

import scalemcp
from scalemcp.errors import BackendUnavailable, InvalidCredentials
from scalemcp.security.gate import check_auth_config
from scalemcp.security.introspection import IntrospectionAuthenticator
from tests.harness.asgi import client_of, open_asgi, open_client
from tests.stub_server import send_json, serving

from .support import (
    RESOURCE,
    bearer,
    challenge_params,
    initialize,
    jwks,
    modern_call,
    open_jwks_server,
    scoped_app,
    session_call,
    signer,
)

AS = "https://auth.example.com"
CLIENT_ID = "mcp-server"
SECRET = "s3cr3t-never-logged"


def answer(sub: str = "alice", scope: str = "mcp", **extra: Any) -> dict[str, Any]:
    # TOKENS are made when the module is imported, and a slow machine may run these tests
    # many minutes after collection: a day leaves no doubt they are still valid.
    return {"active": True, "sub": sub, "scope": scope, "aud": RESOURCE,
            "exp": int(time.time()) + 86_400, **extra}


TOKENS: dict[str, dict[str, Any]] = {
    "opaque-alice": answer(),
    "opaque-admin": answer(sub="root", scope="mcp admin"),
    "opaque-bob": answer(sub="bob"),
    "opaque-revoked": {"active": False},
    "opaque-elsewhere": answer(aud=["https://other.example.com/mcp"]),
    "opaque-no-aud": answer(aud=None),
    "opaque-expired": answer(exp=int(time.time()) - 600),
    "opaque-no-scope": answer(scope="other"),
    "opaque-many-audiences": answer(aud=["https://x.example.com", "HTTPS://MCP.EXAMPLE.COM/mcp"]),
}


class Endpoint:
    def __init__(self) -> None:
        self.url = ""
        self.hits: Counter[str] = Counter()
        self.status = 200


@asynccontextmanager
async def open_endpoint() -> AsyncIterator[Endpoint]:
    endpoint = Endpoint()
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()

    async def handle(scope: dict[str, Any], body: bytes, send: Any) -> None:
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        form = parse_qs(body.decode())
        token = form["token"][0]
        endpoint.hits[token] += 1
        status, document = endpoint.status, TOKENS.get(token, {"active": False})
        if headers.get("authorization") != expected:
            status, document = 401, {"error": "invalid_client"}
        assert form["token_type_hint"] == ["access_token"]
        assert scope["method"] == "POST"
        await send_json(send, msgspec.json.encode(
            {k: v for k, v in document.items() if v is not None}), status)

    async with serving(handle) as base:
        endpoint.url = base + "/introspect"
        yield endpoint


def config(url: str, **overrides: Any) -> scalemcp.Config:
    settings: dict[str, Any] = dict(
        auth="jwt", introspection_url=url, introspection_client_id=CLIENT_ID,
        introspection_client_secret=SECRET, resource_uri=RESOURCE, authorization_servers=[AS],
        required_scopes=["mcp"], jwt_leeway_s=0.0)
    settings.update(overrides)
    return scalemcp.Config.from_options(**settings)


@pytest.fixture(autouse=True)
def nothing_secret_is_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    for record in caplog.records:
        text = record.getMessage() + str(record.args or "")
        for secret in (SECRET, basic, "opaque-"):  # the client secret, in clear or Basic; tokens
            assert secret not in text, text


async def test_active_inactive_audience_scope() -> None:
    with trio.fail_after(20):
        async with (
            open_endpoint() as endpoint,
            open_client(scoped_app(), config(endpoint.url)) as (url, http),
        ):
            alice = bearer("opaque-alice")
            sid = await initialize(http, url, alice)
            r = await session_call(http, url, sid, alice, "tools/list")
            assert {t["name"] for t in r.json()["result"]["tools"]} == {"public"}
            # The session belongs to the token's subject: bob's token does not reach it.
            r = await session_call(http, url, sid, bearer("opaque-bob"), "ping")
            assert r.status_code == 404
            for token, reason in (("opaque-revoked", "not active"),
                                  ("opaque-unknown", "not active"),
                                  ("opaque-elsewhere", "audience"),
                                  ("opaque-no-aud", "audience"),
                                  ("opaque-expired", "expired")):
                r = await http.post(url, json={}, headers=bearer(token))
                assert r.status_code == 401, token
                params = challenge_params(r.headers["www-authenticate"])
                assert params["error"] == "invalid_token", token
                assert reason in params["error_description"], (token, params)
            r = await http.post(url, json={}, headers=bearer("opaque-no-scope"))
            assert r.status_code == 403
            params = challenge_params(r.headers["www-authenticate"])
            assert (params["error"], params["scope"]) == ("insufficient_scope", "mcp")
            # Per-tool scopes come from the introspected "scope" too.
            r = await modern_call(http, url, alice, "tools/call",
                                  {"name": "admin_tool", "arguments": {"x": 1}}, "admin_tool")
            assert r.status_code == 403
            r = await modern_call(http, url, bearer("opaque-admin"), "tools/call",
                                  {"name": "admin_tool", "arguments": {"x": 1}}, "admin_tool")
            assert r.json()["result"]["structuredContent"] == {"result": 10}
            sid = await initialize(http, url, bearer("opaque-many-audiences"))
            assert sid


async def test_verdicts_are_cached() -> None:
    with trio.fail_after(20):
        async with (
            open_endpoint() as endpoint,
            open_client(scoped_app(), config(endpoint.url)) as (url, http),
        ):
            alice = bearer("opaque-alice")
            sid = await initialize(http, url, alice)  # two requests
            for _ in range(5):
                r = await session_call(http, url, sid, alice, "ping")
                assert r.status_code == 200
            for _ in range(3):
                r = await http.post(url, json={}, headers=bearer("opaque-revoked"))
                assert r.status_code == 401
            assert endpoint.hits == {"opaque-alice": 1, "opaque-revoked": 1}


async def test_an_unavailable_endpoint_is_503_not_401() -> None:
    async with open_endpoint() as endpoint:
        dead = endpoint.url
    with trio.fail_after(20):
        async with (
            open_asgi(scoped_app(), config(dead), port=8001) as to_dead,
            open_endpoint() as live,
            open_asgi(scoped_app(), config(live.url), port=8002) as to_live,
            open_asgi(scoped_app(), config(live.url, introspection_client_secret="wrong"),
                      port=8003) as with_wrong_secret,
            client_of(to_dead, to_live, with_wrong_secret) as http,
        ):
            url, url_live, url_wrong_secret = to_dead.url, to_live.url, with_wrong_secret.url
            r = await http.post(url, json={}, headers=bearer("opaque-alice"))
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert "introspection endpoint is unavailable" in r.json()["error"]["message"]
            # An endpoint answering an error, or refusing our client credentials: the same.
            live.status = 500
            r = await http.post(url_live, json={}, headers=bearer("opaque-alice"))
            assert r.status_code == 503
            live.status = 200
            r = await http.post(url_wrong_secret, json={}, headers=bearer("opaque-bob"))
            assert r.status_code == 503
            # Failures are not cached: once the endpoint answers, the token works.
            sid = await initialize(http, url_live, bearer("opaque-alice"))
            assert sid


async def test_jwts_are_checked_locally_opaque_tokens_introspected() -> None:
    key = signer("k1")
    with trio.fail_after(20):
        async with (
            open_endpoint() as endpoint,
            open_jwks_server(jwks(key)) as keys,
        ):
            both = config(endpoint.url, jwt_jwks_url=keys.url,
                          jwt_issuer="https://auth.example.com")
            async with open_client(scoped_app(), both) as (url, http):
                await initialize(http, url, bearer(key.token()))
                await initialize(http, url, bearer("opaque-alice"))
                r = await http.post(url, json={}, headers=bearer(key.token(aud="https://x.y/")))
                assert r.status_code == 401
            assert endpoint.hits == {"opaque-alice": 1}  # not the JWTs; once (cached)
            assert keys.hits == 1


async def test_the_client_secret_can_come_from_a_file(tmp_path: pathlib.Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    with trio.fail_after(20):
        async with open_endpoint() as endpoint:
            settings = config(endpoint.url, introspection_client_secret=None,
                              introspection_client_secret_file=str(secret_file))
            async with open_client(scoped_app(), settings) as (url, http):
                assert await initialize(http, url, bearer("opaque-alice"))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"introspection_client_id": None}, "introspection_client_id"),
    ({"introspection_client_secret": None}, "exactly one of introspection_client_secret"),
    ({"introspection_client_secret_file": "/s"}, "exactly one of introspection_client_secret"),
    ({"introspection_url": "http://auth.example.com/introspect"}, "https"),
    ({"introspection_url": None}, "jwt_jwks_url or jwt_jwks_file"),
    ({"introspection_url": None, "jwt_jwks_url": "https://a.example/jwks",
      "jwt_issuer": AS}, "only apply with introspection_url"),
    ({"auth": "none", "required_scopes": []}, "only apply with a matching auth mode"),
])
def test_bad_introspection_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    settings = config("https://auth.example.com/introspect", **overrides)
    with pytest.raises(ValueError, match=message):
        check_auth_config(settings)


# -- the cache, on a virtual clock ------------------------------------------------------


class FakeEndpoint:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.calls = 0
        self.gate: trio.Event | None = None

    async def __call__(self, token: str) -> tuple[int, bytes]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return 200, msgspec.json.encode(self.document)


@pytest.mark.parametrize(("exp_in_s", "ttl_s", "cached_for_s"), [(100, 3600, 100),
                                                                 (3600, 10, 10)])
async def test_an_active_token_is_cached_until_exp_or_ttl(
    autojump_clock: trio.testing.MockClock, exp_in_s: float, ttl_s: float, cached_for_s: float
) -> None:
    fake = FakeEndpoint(answer(exp=time.time() + exp_in_s))
    auth = IntrospectionAuthenticator(fake, resource_uri=RESOURCE, cache_ttl_s=ttl_s)
    assert (await auth.principal("t")).id == "alice"
    await trio.sleep(cached_for_s - 1)
    await auth.principal("t")
    assert fake.calls == 1
    fake.document = {"active": False}  # revoked meanwhile
    await trio.sleep(2)
    with pytest.raises(InvalidCredentials, match="not active"):
        await auth.principal("t")
    assert fake.calls == 2


async def test_a_refused_token_is_cached_briefly(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeEndpoint({"active": False})
    auth = IntrospectionAuthenticator(fake, resource_uri=RESOURCE, negative_ttl_s=5)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await auth.principal("t")
    assert fake.calls == 1
    fake.document = answer()
    await trio.sleep(5)
    assert (await auth.principal("t")).id == "alice"
    assert fake.calls == 2


async def test_concurrent_requests_share_one_call(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeEndpoint(answer())
    fake.gate = trio.Event()
    auth = IntrospectionAuthenticator(fake, resource_uri=RESOURCE)
    seen: list[str] = []

    async def ask() -> None:
        seen.append((await auth.principal("t")).id)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        fake.gate.set()
    assert (seen, fake.calls) == (["alice"] * 10, 1)


async def test_a_failure_is_shared_not_cached(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def down(token: str) -> tuple[int, bytes]:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        raise OSError("connection refused")

    auth = IntrospectionAuthenticator(down, resource_uri=RESOURCE)
    failures: list[BaseException] = []

    async def ask() -> None:
        try:
            await auth.principal("t")
        except BackendUnavailable as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(ask)
    assert (len(failures), calls) == (5, 1)
    await ask()
    assert calls == 2
