"""CORS for browser clients and the security headers on every response."""

from __future__ import annotations

import trio

import scalemcp
from examples.quickstart import app
from tests.harness import client
from tests.harness.asgi import open_client
from tests.harness.client import initialize

INIT = initialize(name="browser")
ACCEPT = {"accept": client.ACCEPT}


async def test_cors_preflight_and_exposed_session_header() -> None:
    config = scalemcp.Config.from_options(cors_allowed_origins=["https://app.example"])
    with trio.fail_after(15):
        async with open_client(app, config, timeout=10) as (url, c):
            pre = await c.options(url, headers={
                "origin": "https://app.example", "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, mcp-param-region"})
            assert pre.status_code == 204
            assert pre.headers["access-control-allow-origin"] == "https://app.example"
            assert "mcp-session-id" in pre.headers["access-control-allow-headers"]
            assert "mcp-param-region" in pre.headers["access-control-allow-headers"]
            post = await c.post(url, json=INIT, headers={**ACCEPT, "origin": "https://app.example"})
            assert post.status_code == 200
            assert post.headers["access-control-allow-origin"] == "https://app.example"
            assert "mcp-session-id" in post.headers["access-control-expose-headers"]
            assert post.headers["x-content-type-options"] == "nosniff"
            other = await c.options(url, headers={"origin": "https://evil.example"})
            assert other.status_code == 403
            assert "access-control-allow-origin" not in other.headers
            evil = await c.post(url, json=INIT, headers={**ACCEPT, "origin": "https://evil.example"})
            assert evil.status_code == 403


async def test_no_cors_headers_by_default() -> None:
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, c):
            post = await c.post(url, json=INIT, headers={**ACCEPT, "origin": "http://localhost:3000"})
            assert post.status_code == 200
            assert "access-control-allow-origin" not in post.headers
            assert post.headers["x-content-type-options"] == "nosniff"
