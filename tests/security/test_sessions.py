"""A session belongs to the principal that created it (DESIGN invariant 8, spec 4.6):
another principal gets 404, as if the session did not exist, in every era that has one."""

from __future__ import annotations

import hashlib

import trio

import scalemcp
from tests.harness.asgi import open_client

from .support import ACCEPT, initialize, rpc, scoped_app, session_call

ALICE = {"authorization": "Bearer alice-key"}
BOB = {"x-api-key": "bob-key"}


def config() -> scalemcp.Config:
    entries = [f"{hashlib.sha256(k.encode()).hexdigest()} {p}"
               for k, p in (("alice-key", "alice"), ("bob-key", "bob"))]
    return scalemcp.Config.from_options(auth="api_key", api_keys=entries)


async def test_streamable_session_bound_to_principal() -> None:
    with trio.fail_after(20):
        async with open_client(scoped_app(), config()) as (url, http):
            sid = await initialize(http, url, ALICE)
            r = await session_call(http, url, sid, BOB, "ping")
            assert r.status_code == 404
            r = await http.get(url, headers={"accept": "text/event-stream",
                                             "mcp-session-id": sid, **BOB})
            assert r.status_code == 404
            r = await http.delete(url, headers={"mcp-session-id": sid, **BOB})
            assert r.status_code == 404
            r = await session_call(http, url, sid, {}, "ping")
            assert r.status_code == 401
            r = await session_call(http, url, sid, ALICE, "ping")  # still alive and alice's
            assert (r.status_code, r.json()["result"]) == (200, {})


async def test_legacy_sse_session_bound_to_principal() -> None:
    with trio.fail_after(20):
        async with open_client(scoped_app(), config()) as (url, http):
            base = url.removesuffix("/mcp")
            async with http.stream("GET", base + "/sse", headers={
                    "accept": "text/event-stream", **ALICE}) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                endpoint = ""
                async for line in lines:
                    if line.startswith("data: "):
                        endpoint = line.removeprefix("data: ")
                        break
                assert "/messages?sessionId=" in endpoint
                body = rpc("ping", {}, 5)
                r = await http.post(base + endpoint, json=body, headers={"accept": ACCEPT, **BOB})
                assert r.status_code == 404
                r = await http.post(base + endpoint, json=body, headers={"accept": ACCEPT, **ALICE})
                assert r.status_code == 202
