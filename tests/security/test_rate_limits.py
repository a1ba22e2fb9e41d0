"""Rate limits and in-flight limits over real HTTP: 429 + Retry-After + a JSON-RPC error,
refill, per-tool buckets, per-session and per-principal in-flight slots, the legacy SSE
and WebSocket answers, a fleet of two workers on one redis-server, and a dead Redis.

Rates are small and nothing asserts tight timing: a refused request is retried after its
``Retry-After``, which must then be enough.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from trio.testing import MockClock

import scalemcp
from scalemcp.observability.metrics import REGISTRY
from scalemcp.server import ConfigError, check_config
from scalemcp.state.base import StateBackend
from scalemcp.state.redis import RedisBackend
from scalemcp.testing import open_server
from scalemcp.transport.asgi import ASGIApp
from tests.harness.asgi import InProcess, client_of, open_asgi, open_client
from tests.harness.ports import refused_port
from tests.harness.redis import RedisServer

from .support import ACCEPT, SESSION_VERSION, initialize, modern_call, rpc, session_headers

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
CODE = -31429
NO_AUTH: dict[str, str] = {}


class Gate:
    """Holds ``wait`` calls until released; says when each one has started."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.started_send, self.started = trio.open_memory_channel[None](16)


def limits_app(gate: Gate | None = None) -> scalemcp.App:
    app = scalemcp.App("limits", version="1.0.0")

    @app.tool
    async def fast(x: int = 0) -> int:
        return x

    @app.tool
    async def slow(x: int = 0) -> int:
        return x

    @app.tool(rate_limit_rps=0.5)
    async def own(x: int = 0) -> int:
        """Limited by the app; the server may override it."""
        return x

    @app.tool
    async def wait() -> str:
        assert gate is not None
        gate.started_send.send_nowait(None)
        await gate.release.wait()
        return "done"

    return app


def call(name: str, rid: int) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": {}}, rid)


async def post(http: httpx.AsyncClient, url: str, sid: str, body: Any,
               auth: dict[str, str] = NO_AUTH) -> httpx.Response:
    return await http.post(url, json=body, headers=session_headers(sid, auth))


def refusal(r: httpx.Response, limit: str) -> dict[str, Any]:
    """Check a 429 answer; returns its JSON-RPC error."""
    assert r.status_code == 429, r.text
    retry_after = int(r.headers["retry-after"])
    assert retry_after >= 1
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == CODE
    assert error["data"] == {"limit": limit, "retryAfterSeconds": retry_after}
    assert f"retry after {retry_after} s" in error["message"]
    return error


def _limited(limit: str) -> float:
    return REGISTRY.get_sample_value("scalemcp_rate_limited_total", {"limit": limit}) or 0.0


# -- rate limits, memory backend ---------------------------------------------------------


async def test_principal_limit_refuses_then_refills(autojump_clock: MockClock) -> None:
    """In memory, on mock time: the wait for the refill costs nothing."""
    config = scalemcp.Config.from_options(rate_limit_per_principal_rps=2.0)  # 2 requests at once
    before = _limited("principal")
    with trio.fail_after(20):
        async with open_client(limits_app(), config) as (url, http):
            sid = await initialize(http, url, NO_AUTH)  # one token; notifications are free
            assert (await post(http, url, sid, call("fast", 2))).status_code == 200
            r = await post(http, url, sid, call("fast", 3))
            error = refusal(r, "principal")
            assert "2 requests per second" in error["message"]
            assert r.json()["id"] == 3
            # Answers to the server's requests and notifications cost nothing.
            note = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 99}}
            assert (await post(http, url, sid, note)).status_code == 202
            answer = {"jsonrpc": "2.0", "id": "srv-unknown", "result": {}}
            assert (await post(http, url, sid, answer)).status_code == 202
            await trio.sleep(int(r.headers["retry-after"]) + 0.1)
            ok = await post(http, url, sid, call("fast", 4))
            assert ok.status_code == 200
            assert ok.json()["result"]["structuredContent"] == {"result": 0}
    assert _limited("principal") == before + 1


async def test_principals_have_their_own_budgets() -> None:
    keys = {"alice": "smk_alice-" + "a" * 16, "bob": "smk_bob-" + "b" * 16}
    entries = [f"{hashlib.sha256(k.encode()).hexdigest()} {p}" for p, k in keys.items()]
    config = scalemcp.Config.from_options(auth="api_key", api_keys=entries,
                                          rate_limit_per_principal_rps=1.0)
    alice, bob = ({"x-api-key": keys["alice"]}, {"x-api-key": keys["bob"]})
    with trio.fail_after(20):
        async with open_client(limits_app(), config) as (url, http):
            assert (await modern_call(http, url, alice, "tools/list")).status_code == 200
            refusal(await modern_call(http, url, alice, "tools/list"), "principal")
            assert (await modern_call(http, url, bob, "tools/list")).status_code == 200


async def test_modern_era_gets_429_and_a_jsonrpc_error() -> None:
    # 1 at once, then 1 per 2 s
    config = scalemcp.Config.from_options(rate_limit_per_principal_rps=0.5)
    with trio.fail_after(20):
        async with open_client(limits_app(), config) as (url, http):
            first = await modern_call(http, url, NO_AUTH, "tools/list")
            assert first.status_code == 200
            r = await modern_call(http, url, NO_AUTH, "tools/list")
            refusal(r, "principal")
            assert r.json()["id"] == 9
            assert int(r.headers["retry-after"]) == 2


async def test_per_tool_limits_are_independent() -> None:
    config = scalemcp.Config.from_options(rate_limit_tools=["slow=0.5", "own=0"])
    with trio.fail_after(20):
        async with open_client(limits_app(), config) as (url, http):
            sid = await initialize(http, url, NO_AUTH)
            assert (await post(http, url, sid, call("slow", 2))).status_code == 200
            error = refusal(await post(http, url, sid, call("slow", 3)), "tool")
            assert "'slow'" in error["message"]
            for rid in range(4, 8):  # other tools are not limited, nor is "own" (overridden)
                assert (await post(http, url, sid, call("fast", rid))).status_code == 200
                assert (await post(http, url, sid, call("own", rid + 10))).status_code == 200
            # An unknown tool gets no bucket: the engine answers it.
            r = await post(http, url, sid, call("nope", 30))
            assert r.status_code == 200
            assert r.json()["error"]["code"] == -32602


async def test_a_tool_limit_from_the_app_api() -> None:
    with trio.fail_after(20):
        async with open_client(limits_app()) as (url, http):
            params = {"name": "own", "arguments": {}}
            ok = await modern_call(http, url, NO_AUTH, "tools/call", params, name="own")
            assert ok.status_code == 200, ok.text
            refused = await modern_call(http, url, NO_AUTH, "tools/call", params, name="own")
            refusal(refused, "tool")
            other = {"name": "fast", "arguments": {}}
            assert (await modern_call(http, url, NO_AUTH, "tools/call", other,
                                      name="fast")).status_code == 200


def test_bad_tool_rates_stop_the_server() -> None:
    with pytest.raises(ConfigError, match="rate_limit_tools"):
        check_config(scalemcp.Config.from_options(port=0, rate_limit_tools=["slow:1"]))
    with pytest.raises(ConfigError, match="rate_limit_tools"):
        check_config(scalemcp.Config.from_options(port=0, rate_limit_tools=["slow=-1"]))


# -- in-flight limits ---------------------------------------------------------------------


async def test_inflight_limit_per_session() -> None:
    gate = Gate()
    config = scalemcp.Config.from_options(max_inflight_per_session=2)
    with trio.fail_after(20):
        async with open_client(limits_app(gate), config) as (url, http):
            sid = await initialize(http, url, NO_AUTH)
            answers: list[httpx.Response] = []

            async def slow_call(rid: int) -> None:
                answers.append(await post(http, url, sid, call("wait", rid)))

            async with trio.open_nursery() as nursery:
                for rid in (2, 3):
                    nursery.start_soon(slow_call, rid)
                for _ in range(2):
                    await gate.started.receive()
                error = refusal(await post(http, url, sid, call("fast", 4)), "inflight_session")
                assert "at most 2 at once" in error["message"]
                other = await initialize(http, url, NO_AUTH)  # another session is not held up
                assert (await post(http, url, other, call("fast", 5))).status_code == 200
                gate.release.set()
            assert [a.status_code for a in answers] == [200, 200]
            assert (await post(http, url, sid, call("fast", 6))).status_code == 200


async def test_inflight_limit_per_principal_for_stateless_requests() -> None:
    gate = Gate()
    config = scalemcp.Config.from_options(max_inflight_per_principal=1)
    params = {"name": "wait", "arguments": {}}
    with trio.fail_after(20):
        async with open_client(limits_app(gate), config) as (url, http):
            held: list[httpx.Response] = []

            async def hold() -> None:
                held.append(await modern_call(http, url, NO_AUTH, "tools/call", params,
                                              name="wait"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hold)
                await gate.started.receive()
                refusal(await modern_call(http, url, NO_AUTH, "tools/list"),
                        "inflight_principal")
                gate.release.set()
            assert held[0].status_code == 200
            assert (await modern_call(http, url, NO_AUTH, "tools/list")).status_code == 200


# -- legacy SSE and WebSocket: the JSON-RPC error alone -------------------------------------


async def test_legacy_sse_gets_the_error_on_its_stream() -> None:
    config = scalemcp.Config.from_options(rate_limit_per_principal_rps=1.0)
    init = rpc("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                              "clientInfo": {"name": "t", "version": "1"}}, 1)
    with trio.fail_after(20):
        async with open_client(limits_app(), config) as (url, http):
            base = url.removesuffix("/mcp")
            async with http.stream("GET", base + "/sse") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "event: endpoint"
                endpoint = base + (await anext(lines)).removeprefix("data: ")
                assert (await http.post(endpoint, json=init)).status_code == 202
                assert (await http.post(endpoint, json=call("fast", 7))).status_code == 202
                async for line in lines:
                    if line.startswith("data: ") and json.loads(line[6:]).get("id") == 7:
                        error = json.loads(line[6:])["error"]
                        break
    assert error["code"] == CODE
    assert error["data"]["limit"] == "principal"


async def test_websocket_gets_an_error_frame_and_stays_open() -> None:
    config = scalemcp.Config.from_options(rate_limit_per_principal_rps=1.0)
    init = rpc("initialize", {"protocolVersion": SESSION_VERSION, "capabilities": {},
                              "clientInfo": {"name": "t", "version": "1"}}, 1)
    with trio.fail_after(20):
        async with open_server(limits_app(), config) as url:
            ws_url = url.replace("http://", "ws://")
            async with trio_websocket.open_websocket_url(ws_url, subprotocols=["mcp"]) as ws:
                await ws.send_message(json.dumps(init))
                assert json.loads(await ws.get_message())["id"] == 1
                await ws.send_message(json.dumps(call("fast", 7)))
                refused = json.loads(await ws.get_message())
                assert refused["id"] == 7
                assert refused["error"]["code"] == CODE
                # Real time: a real server (WebSocket) refills on the real clock.
                await trio.sleep(refused["error"]["data"]["retryAfterSeconds"] + 0.1)
                await ws.send_message(json.dumps(call("fast", 8)))
                assert json.loads(await ws.get_message())["id"] == 8


# -- Redis: a fleet shares one budget; a dead Redis fails open ---------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def worker(app: scalemcp.App, config: scalemcp.Config, state: StateBackend,
           port: int = 80) -> AbstractAsyncContextManager[InProcess]:
    """One worker serving ``app`` over ``state`` (in memory)."""
    return open_asgi(ASGIApp(app, config, state), port=port)


async def test_two_workers_share_one_fleet_wide_budget(redis_server: RedisServer) -> None:
    config = scalemcp.Config.from_options(rate_limit_per_principal_rps=0.2, rate_limit_burst_s=20.0)
    prefix = f"t{secrets.token_hex(4)}:"
    one = RedisBackend(redis_server.url, key_prefix=prefix)
    two = RedisBackend(redis_server.url, key_prefix=prefix)
    app = limits_app()
    with trio.fail_after(20):
        async with (worker(app, config, one, 8001) as a, worker(app, config, two, 8002) as b,
                    client_of(a, b) as http):
            url_one, url_two = a.url, b.url
            statuses = [(await modern_call(http, url, NO_AUTH, "tools/list")).status_code
                        for url in (url_one, url_two) * 3]
            assert statuses == [200, 200, 200, 200, 429, 429]  # 4 in all, not 4 per worker
            refusal(await modern_call(http, url_one, NO_AUTH, "tools/list"), "principal")


async def test_a_dead_redis_fails_open() -> None:
    config = scalemcp.Config.from_options(rate_limit_per_principal_rps=1.0)
    with refused_port() as port, trio.fail_after(20):
        dead = RedisBackend(f"redis://127.0.0.1:{port}/0", connect_timeout_s=0.5)
        async with worker(limits_app(), config, dead) as served, served.client() as http:
            url = served.url
            for _ in range(3):  # over the limit, yet served: stateless requests need no Redis
                r = await modern_call(http, url, NO_AUTH, "tools/list")
                assert r.status_code == 200, r.text
            # Session-era requests keep the backend's policy: 503 + Retry-After.
            init = rpc("initialize", {"protocolVersion": SESSION_VERSION, "capabilities": {},
                                      "clientInfo": {"name": "t", "version": "1"}}, 1)
            r = await http.post(url, json=init, headers={"accept": ACCEPT})
            assert r.status_code == 503
            assert r.headers["retry-after"]
