"""Per-tool/resource/prompt scopes: lists show a caller only what its scopes allow;
using a hidden item is "unknown" in the session era and 403 in the modern era."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio_websocket

import scalemcp
from scalemcp.errors import InvalidCredentials
from scalemcp.security.principal import Principal
from scalemcp.testing import open_server
from tests.harness.asgi import open_client

from .support import (
    challenge_params,
    initialize,
    modern_call,
    scoped_app,
    session_call,
)

ADMIN = {"x-api-key": "admin-key"}
USER = {"x-api-key": "user-key"}
LISTS = {  # method -> (result key, item key)
    "tools/list": ("tools", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
    "prompts/list": ("prompts", "name"),
}
EVERYTHING = {
    "tools/list": {"public", "admin_tool"},
    "resources/list": {"res://public", "res://secret"},
    "resources/templates/list": {"tpl://{name}"},
    "prompts/list": {"p_public", "p_admin"},
}
PUBLIC = {
    "tools/list": {"public"},
    "resources/list": {"res://public"},
    "resources/templates/list": set(),
    "prompts/list": {"p_public"},
}
HIDDEN_USES: list[tuple[str, dict[str, Any], str]] = [  # (method, params, Mcp-Name)
    ("tools/call", {"name": "admin_tool", "arguments": {"x": 1}}, "admin_tool"),
    ("resources/read", {"uri": "res://secret"}, "res://secret"),
    ("resources/read", {"uri": "tpl://abc"}, "tpl://abc"),
    ("prompts/get", {"name": "p_admin"}, "p_admin"),
]


def key_config() -> scalemcp.Config:
    def entry(key: str, rest: str) -> str:
        return f"{hashlib.sha256(key.encode()).hexdigest()} {rest}"

    return scalemcp.Config.from_options(auth="api_key", api_keys=[entry("admin-key", "root admin"),
                                                     entry("user-key", "user")])


def names(body: dict[str, Any], method: str) -> set[str]:
    key, item = LISTS[method]
    return {x[item] for x in body["result"][key]}


async def test_session_era_lists_and_uses() -> None:
    with trio.fail_after(20):
        async with open_client(scoped_app(), key_config()) as (url, http):
            admin_sid = await initialize(http, url, ADMIN)
            user_sid = await initialize(http, url, USER)
            for method in LISTS:
                r = await session_call(http, url, admin_sid, ADMIN, method)
                assert names(r.json(), method) == EVERYTHING[method], method
                r = await session_call(http, url, user_sid, USER, method)
                assert names(r.json(), method) == PUBLIC[method], method
            for method, params, name in HIDDEN_USES:
                r = await session_call(http, url, admin_sid, ADMIN, method, params)
                assert "result" in r.json(), (method, params)
                # Hidden reads exactly like absent: same code, same message.
                r = await session_call(http, url, user_sid, USER, method, params)
                hidden = r.json()["error"]
                absent_params = {k: f"{v}-absent" if v == name else v for k, v in params.items()}
                r = await session_call(http, url, user_sid, USER, method, absent_params)
                absent = r.json()["error"]
                assert hidden["code"] == absent["code"], method
                assert name in hidden["message"], method
                assert hidden["message"].replace(name, "X") == absent["message"].replace(
                    f"{name}-absent", "X"), method
            r = await session_call(http, url, user_sid, USER, "completion/complete", {
                "ref": {"type": "ref/prompt", "name": "p_admin"},
                "argument": {"name": "a", "value": ""}})
            assert r.json()["error"]["message"] == "unknown prompt: 'p_admin'"


async def test_modern_era_lists_and_403() -> None:
    with trio.fail_after(20):
        async with open_client(scoped_app(), key_config()) as (url, http):
            for method in LISTS:
                r = await modern_call(http, url, USER, method)
                assert names(r.json(), method) == PUBLIC[method], method
                r = await modern_call(http, url, ADMIN, method)
                assert names(r.json(), method) == EVERYTHING[method], method
            for method, params, name in HIDDEN_USES:
                r = await modern_call(http, url, USER, method, params, name)
                assert r.status_code == 403, (method, name)
                challenge = challenge_params(r.headers["www-authenticate"])
                assert (challenge["error"], challenge["scope"]) == ("insufficient_scope",
                                                                    "admin"), name
                r = await modern_call(http, url, ADMIN, method, params, name)
                assert (r.status_code, "result" in r.json()) == (200, True), name
            r = await modern_call(http, url, USER, "tools/call",
                                  {"name": "public", "arguments": {"x": 4}}, "public")
            assert r.json()["result"]["structuredContent"] == {"result": 4}


async def test_websocket_handshake_is_authenticated() -> None:
    async def ws_call(ws: trio_websocket.WebSocketConnection, method: str,
                      params: dict[str, Any], rid: int) -> Any:
        await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                                          "params": params}))
        while True:
            message = json.loads(await ws.get_message())
            if message.get("id") == rid:
                return message

    with trio.fail_after(20):
        async with open_server(scoped_app(), key_config()) as url:
            ws_url = url.replace("http://", "ws://")
            with pytest.raises(trio_websocket.ConnectionRejected) as refused:
                async with trio_websocket.open_websocket_url(ws_url, subprotocols=["mcp"]):
                    pass
            assert refused.value.status_code == 401
            assert dict(refused.value.headers)[b"www-authenticate"] == b"Bearer"
            headers = [(b"x-api-key", b"user-key")]
            async with trio_websocket.open_websocket_url(
                ws_url, subprotocols=["mcp"], extra_headers=headers
            ) as ws:
                await ws_call(ws, "initialize", {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"}}, 1)
                listed = await ws_call(ws, "tools/list", {}, 2)
                assert {t["name"] for t in listed["result"]["tools"]} == {"public"}
                called = await ws_call(ws, "tools/call", {"name": "admin_tool",
                                                          "arguments": {"x": 1}}, 3)
                assert called["error"]["message"] == "unknown tool: 'admin_tool'"


class HeaderAuthenticator:
    """A custom authenticator: ``X-User: name[:scope,...]``; anonymous without it."""

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        user = headers.get("x-user")
        if user is None:
            return None
        name, _, scopes = user.partition(":")
        if name == "mallory":
            raise InvalidCredentials("mallory is banned")
        return Principal(name, frozenset(filter(None, scopes.split(","))))


async def test_a_custom_authenticator() -> None:
    with trio.fail_after(20):
        async with open_client(scoped_app(), scalemcp.Config(),
                               authenticator=HeaderAuthenticator()) as (url, h):
            r = await modern_call(h, url, {}, "tools/list")  # anonymous: unscoped items only
            assert names(r.json(), "tools/list") == {"public"}
            r = await modern_call(h, url, {"x-user": "eve:admin"}, "tools/list")
            assert names(r.json(), "tools/list") == {"public", "admin_tool"}
            r = await modern_call(h, url, {"x-user": "mallory"}, "tools/list")
            assert r.status_code == 401
            assert challenge_params(r.headers["www-authenticate"])["error"] == "invalid_token"
        config = scalemcp.Config.from_options(required_scopes=["mcp"])
        async with open_client(scoped_app(), config,
                               authenticator=HeaderAuthenticator()) as (url, h):
            r = await modern_call(h, url, {}, "tools/list")
            assert r.status_code == 401
            r = await modern_call(h, url, {"x-user": "eve:admin"}, "tools/list")
            assert r.status_code == 403
            r = await modern_call(h, url, {"x-user": "eve:mcp"}, "tools/list")
            assert r.status_code == 200
