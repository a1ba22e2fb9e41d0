"""Shared pieces of the security tests: an app with scoped items, RSA signers, a JWKS
server on port 0, and raw MCP requests for the session and modern eras."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

import scalemcp
from tests.harness import client
from tests.harness.client import ACCEPT, SESSION_VERSION, modern_meta
from tests.stub_server import send_json, serving

ISSUER = "https://auth.example.com"
RESOURCE = "https://mcp.example.com/mcp"
PRM_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
META = modern_meta()


def scoped_app() -> scalemcp.App:
    """Public items, and items that need the ``admin`` scope."""
    app = scalemcp.App("scoped", version="1.0.0")

    @app.tool
    async def public(x: int) -> int:
        """Anyone may call this."""
        return x

    @app.tool(scopes=("admin",))
    async def admin_tool(x: int) -> int:
        """Only admins."""
        return x * 10

    @app.resource("res://public")
    def public_res() -> str:
        return "public"

    @app.resource("res://secret", scopes=("admin",))
    def secret_res() -> str:
        return "secret"

    @app.resource("tpl://{name}", scopes=("admin",))
    def secret_tpl(name: str) -> str:
        return name

    @app.prompt
    def p_public() -> str:
        return "hi"

    @app.prompt(scopes=("admin",))
    def p_admin() -> str:
        return "hi admin"

    return app


# -- JWT ---------------------------------------------------------------------------------


class Signer:
    """An RSA key pair that mints access tokens; ``jwk`` is its public half."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, *, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": ISSUER, "aud": RESOURCE, "sub": "alice",
                                "iat": now, "exp": now + 300, "scope": "mcp"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid})


@functools.cache
def signer(kid: str) -> Signer:
    return Signer(kid)


def jwks(*signers: Signer) -> dict[str, Any]:
    return {"keys": [s.jwk() for s in signers]}


class JWKSServer:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.hits = 0
        self.url = ""


@asynccontextmanager
async def open_jwks_server(document: dict[str, Any]) -> AsyncIterator[JWKSServer]:
    """Serve ``document`` (mutable through the yielded object) at a URL on port 0."""
    server = JWKSServer(document)

    async def handle(scope: dict[str, Any], body: bytes, send: Any) -> None:
        server.hits += 1
        await send_json(send, json.dumps(server.document).encode())

    async with serving(handle) as base:
        server.url = base + "/jwks.json"
        yield server


# -- MCP over raw HTTP (tests/harness/client.py) ------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def rpc(method: str, params: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    return client.request(method, params, rid)


async def initialize(http: httpx.AsyncClient, url: str, auth: dict[str, str]) -> str:
    """A new session-era session; returns its id."""
    session = client.Session(http, url, SESSION_VERSION, auth=auth, name="t")
    await session.initialize()
    return session.session_id


def session_headers(sid: str, auth: dict[str, str]) -> dict[str, str]:
    return {"accept": ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": SESSION_VERSION,
            **auth}


async def session_call(
    http: httpx.AsyncClient, url: str, sid: str, auth: dict[str, str], method: str,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    return await http.post(url, json=rpc(method, params or {}, 7),
                           headers=session_headers(sid, auth))


async def modern_call(
    http: httpx.AsyncClient, url: str, auth: dict[str, str], method: str,
    params: dict[str, Any] | None = None, name: str | None = None,
) -> httpx.Response:
    return await client.Stateless(http, url, auth=auth).call(method, params, name, rid=9)


def challenge_params(value: str) -> dict[str, str]:
    """The parameters of a ``Bearer k="v", ...`` challenge."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    params = dict(re.findall(r'([a-z_]+)="([^"]*)"', rest))
    assert len(params) == rest.count("="), value  # nothing unparsed
    return params
