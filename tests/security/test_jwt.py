"""OAuth 2.1 resource server: JWT bearer tokens, challenges, metadata, key rotation."""

from __future__ import annotations

import base64
import json
import pathlib
import time
from typing import Any

import pytest
import trio

import scalemcp
from scalemcp.security.gate import check_auth_config
from tests.harness.asgi import open_client

from .support import (
    ISSUER,
    PRM_URL,
    RESOURCE,
    bearer,
    challenge_params,
    initialize,
    jwks,
    open_jwks_server,
    scoped_app,
    session_call,
    signer,
)

AS = "https://auth.example.com"


def jwt_config(**overrides: Any) -> scalemcp.Config:
    settings: dict[str, Any] = dict(
        auth="jwt", jwt_issuer=ISSUER, resource_uri=RESOURCE, authorization_servers=[AS],
        required_scopes=["mcp"], jwt_leeway_s=0.0)
    settings.update(overrides)
    return scalemcp.Config.from_options(**settings)


def jwks_file(tmp_path: pathlib.Path, document: dict[str, Any]) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    return str(path)


async def test_refusals_are_401_with_the_challenge(tmp_path: pathlib.Path) -> None:
    good, other = signer("k1"), signer("k2")
    config = jwt_config(jwt_jwks_file=jwks_file(tmp_path, jwks(good)))
    now = int(time.time())
    none_alg = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                        for part in ({"alg": "none", "kid": "k1"},
                                     {"iss": ISSUER, "aud": RESOURCE, "sub": "x",
                                      "exp": now + 60, "scope": "mcp"})) + "."
    bad = {
        "not a jwt": ("abc.def", "not a JWT"),
        "expired": (good.token(exp=now - 600), "expired"),
        "not yet valid": (good.token(nbf=now + 600), "not valid yet"),
        "wrong audience": (good.token(aud="https://other.example.com/mcp"), "audience"),
        "audience of another path": (good.token(aud=RESOURCE + "/x"), "audience"),
        "wrong issuer": (good.token(iss="https://evil.example.com"), "issued"),
        "no sub": (good.token(sub=None), "'sub'"),
        "no exp": (good.token(exp=None), "'exp'"),
        "unknown kid": (other.token(), "signing key"),
        "forged with a known kid": (other.token(kid="k1"), "signature"),
        "alg none": (none_alg, "invalid token"),
    }
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert r.status_code == 401
            params = challenge_params(r.headers["www-authenticate"])
            # No credentials at all: no error code (RFC 6750 3.1), but where to get some.
            assert params == {"scope": "mcp", "resource_metadata": PRM_URL}
            for case, (token, reason) in bad.items():
                r = await http.post(url, json={}, headers=bearer(token))
                assert r.status_code == 401, case
                params = challenge_params(r.headers["www-authenticate"])
                assert params["error"] == "invalid_token", case
                assert reason in params["error_description"], (case, params)
                assert params["resource_metadata"] == PRM_URL, case
                assert r.json()["error"] == "invalid_token", case
            # A token without the scope every request needs: 403, naming that scope.
            r = await http.post(url, json={}, headers=bearer(good.token(scope="other")))
            assert r.status_code == 403
            params = challenge_params(r.headers["www-authenticate"])
            assert (params["error"], params["scope"]) == ("insufficient_scope", "mcp")
            # Audience compared case-insensitively on scheme and host (RFC 8707 canonical).
            shouting = good.token(aud=["https://x.example.com", "HTTPS://MCP.Example.COM/mcp"])
            sid = await initialize(http, url, bearer(shouting))
            r = await session_call(http, url, sid, bearer(good.token()), "ping")
            assert (r.status_code, r.json()["result"]) == (200, {})


async def test_scopes_from_scope_and_scp(tmp_path: pathlib.Path) -> None:
    key = signer("k1")
    config = jwt_config(jwt_jwks_file=jwks_file(tmp_path, jwks(key)))
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            for claims, visible in (
                ({"scope": "mcp"}, {"public"}),
                ({"scope": "mcp admin"}, {"public", "admin_tool"}),
                ({"scope": "mcp", "scp": ["admin"]}, {"public", "admin_tool"}),
                ({"scope": None, "scp": "mcp admin"}, {"public", "admin_tool"}),
            ):
                auth = bearer(key.token(**claims))
                sid = await initialize(http, url, auth)
                r = await session_call(http, url, sid, auth, "tools/list")
                assert {t["name"] for t in r.json()["result"]["tools"]} == visible, claims


async def test_session_is_bound_to_the_token_subject(tmp_path: pathlib.Path) -> None:
    key = signer("k1")
    config = jwt_config(jwt_jwks_file=jwks_file(tmp_path, jwks(key)))
    alice, bob = bearer(key.token(sub="alice")), bearer(key.token(sub="bob"))
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            sid = await initialize(http, url, alice)
            r = await session_call(http, url, sid, bob, "ping")
            assert r.status_code == 404
            # A fresh token for the same subject keeps the session.
            again = bearer(key.token(sub="alice", jti="second"))
            r = await session_call(http, url, sid, again, "ping")
            assert r.status_code == 200


async def test_protected_resource_metadata(tmp_path: pathlib.Path) -> None:
    config = jwt_config(jwt_jwks_file=jwks_file(tmp_path, jwks(signer("k1"))))
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            base = url.removesuffix("/mcp")
            for path in ("/.well-known/oauth-protected-resource",
                         "/.well-known/oauth-protected-resource/mcp"):
                r = await http.get(base + path)  # no credentials needed
                assert r.status_code == 200, path
                assert r.headers["content-type"] == "application/json"
                assert r.json() == {
                    "resource": RESOURCE,
                    "authorization_servers": [AS],
                    "scopes_supported": ["admin", "mcp"],
                    "bearer_methods_supported": ["header"],
                    "resource_name": "scoped",
                }, path
            r = await http.get(base + "/.well-known/oauth-protected-resource/other")
            assert r.status_code == 404
            r = await http.post(base + "/.well-known/oauth-protected-resource")
            assert r.status_code == 405
    # Without OAuth there is no metadata to serve.
    with trio.fail_after(20):
        async with open_client(scoped_app()) as (url, http):
            r = await http.get(url.removesuffix("/mcp") + "/.well-known/oauth-protected-resource")
            assert r.status_code == 404


async def test_jwks_url_is_cached_and_refetched_for_a_new_kid() -> None:
    old, new = signer("k1"), signer("k2")
    with trio.fail_after(20):
        async with open_jwks_server(jwks(old)) as keys:
            config = jwt_config(jwt_jwks_url=keys.url, jwt_jwks_min_refetch_s=0.0)
            async with open_client(scoped_app(), config) as (url, http):
                for _ in range(3):
                    r = await http.post(url, json={}, headers=bearer(old.token()))
                    assert r.status_code == 400  # authenticated; the body is not JSON-RPC
                assert keys.hits == 1  # cached
                keys.document = jwks(new)  # rotation: the old key is withdrawn
                r = await http.post(url, json={}, headers=bearer(new.token()))
                assert r.status_code == 400
                assert keys.hits == 2
                r = await http.post(url, json={}, headers=bearer(old.token()))
                assert r.status_code == 401
                assert challenge_params(r.headers["www-authenticate"])["error"] == "invalid_token"


async def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    key = signer("k1")
    with trio.fail_after(20):
        async with open_jwks_server(jwks(key)) as keys:
            config = jwt_config(jwt_jwks_url=keys.url, jwt_jwks_min_refetch_s=60.0)
            async with open_client(scoped_app(), config) as (url, http):
                r = await http.post(url, json={}, headers=bearer(key.token()))
                assert (r.status_code, keys.hits) == (400, 1)
                for n in range(5):
                    r = await http.post(url, json={}, headers=bearer(key.token(kid=f"made-up-{n}")))
                    assert r.status_code == 401
                assert keys.hits == 1


async def test_jwks_unreachable_is_503_not_401() -> None:
    async with open_jwks_server({}) as keys:
        dead_url = keys.url
    config = jwt_config(jwt_jwks_url=dead_url)
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            r = await http.post(url, json={}, headers=bearer(signer("k1").token()))
            assert r.status_code == 503
            assert r.headers["retry-after"] == "30"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"jwt_issuer": None}, "jwt_issuer"),
    ({"resource_uri": None}, "resource_uri"),
    ({"authorization_servers": []}, "authorization_servers"),
    ({"jwt_jwks_file": "/k.json"}, "exactly one"),
    ({"resource_uri": "mcp.example.com/mcp"}, "absolute"),
    ({"jwt_jwks_url": "http://keys.example.com/jwks"}, "https"),
    ({"auth": "none"}, "only apply"),
])
def test_bad_jwt_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    config = jwt_config(**{"jwt_jwks_url": "https://auth.example.com/jwks", **overrides})
    with pytest.raises(ValueError, match=message):
        check_auth_config(config)
    with pytest.raises(ValueError, match=message):
        scalemcp.asgi_app(scoped_app(), config)
