"""The operations endpoints: their own port (``metrics_port``), readiness that rides out a
backend blip (``ready_backend_grace_s``), and the in-flight requests gauge.

Real ``scalemcp serve`` processes and a real ``redis-server``; the metrics listener is a
second Hypercorn bind, so only a real server shows which port answers what.
"""

from __future__ import annotations

import pathlib
import time

import httpx
import pytest
import trio

from examples.quickstart import app
from scalemcp.config import Config
from scalemcp.preflight import ConfigError, check_config
from scalemcp.security.dev_cert import make_dev_cert
from scalemcp.transport.readiness import Readiness
from tests.harness.asgi import open_client
from tests.harness.client import HEADERS, initialize, tool_call
from tests.harness.ports import unused_port
from tests.harness.redis import RedisServer
from tests.harness.serve import open_serve

OPS = ("/healthz", "/readyz", "/metrics")


def metrics_port() -> int:
    """A port for ``--metrics-port``, which takes no 0 (and the start-up line names only
    the MCP endpoint); the server is ready once it says it serves, so nothing is polled."""
    return unused_port()


async def _statuses(client: httpx.AsyncClient, base: str) -> dict[str, int]:
    return {path: (await client.get(base + path)).status_code for path in (*OPS, "/mcp")}


async def test_metrics_port_serves_the_ops_endpoints_and_the_mcp_port_does_not() -> None:
    metrics = metrics_port()
    with trio.fail_after(30):
        async with (open_serve("examples.quickstart:app", "--metrics-port", str(metrics))
                    as served, httpx.AsyncClient(timeout=10) as client):
            ops = f"http://127.0.0.1:{metrics}"
            public = await _statuses(client, served.base)
            private = await _statuses(client, ops)
            init = await client.post(served.base + "/mcp", json=initialize(), headers=HEADERS)
            scrape = await client.get(ops + "/metrics")
    # GET /mcp without a session: the MCP endpoint's own 400, so the endpoint is there.
    assert public == {"/healthz": 404, "/readyz": 404, "/metrics": 404, "/mcp": 400}
    assert private == {"/healthz": 200, "/readyz": 200, "/metrics": 200, "/mcp": 404}
    assert init.status_code == 200
    assert "scalemcp_http_responses_total" in scrape.text


async def test_metrics_port_stays_plain_http_when_the_mcp_port_serves_tls(
    tmp_path: pathlib.Path,
) -> None:
    certfile, keyfile = make_dev_cert(tmp_path, ["127.0.0.1"])
    metrics = metrics_port()
    with trio.fail_after(30):
        async with open_serve("examples.quickstart:app", "--certfile", certfile, "--keyfile",
                              keyfile, "--metrics-port", str(metrics)) as served:
            # The start-up line names the MCP endpoint, https://.
            line = await served.wait_for(lambda text: "serving " in text)
            port = line.split("https://127.0.0.1:", 1)[1].split("/", 1)[0]
            async with httpx.AsyncClient(timeout=10, verify=False) as client:
                tls = await client.post(f"https://127.0.0.1:{port}/mcp", json=initialize(),
                                        headers=HEADERS)
                health = await client.get(f"https://127.0.0.1:{port}/healthz")
                plain = await client.get(f"http://127.0.0.1:{metrics}/readyz")
    assert (tls.status_code, health.status_code, plain.status_code) == (200, 404, 200)


def test_metrics_port_must_differ_from_the_mcp_port() -> None:
    with pytest.raises(ConfigError, match="is the MCP port"):
        check_config(Config.from_options(port=8123, metrics_port=8123))


# Readiness ----------------------------------------------------------------------------------


def test_readiness_rides_out_a_backend_failure_for_the_grace_only() -> None:
    now = [100.0]
    readiness = Readiness(grace_s=10.0, clock=lambda: now[0])
    assert readiness.judge(True, True)[0] == 200
    assert readiness.judge(True, False) == (200, b'{"status":"degraded","backend":"unreachable"}')
    now[0] += 9.9
    assert readiness.judge(True, False)[0] == 200
    now[0] += 0.1
    assert readiness.judge(True, False) == (503, b'{"status":"unready","backend":"unreachable"}')
    assert readiness.judge(True, True) == (200, b'{"status":"ready"}')  # recovered: at once
    now[0] += 100
    assert readiness.judge(True, False)[0] == 200  # a new failure starts a new grace
    assert readiness.judge(False, True) == (503, b'{"status":"unready"}')  # draining
    assert Readiness(grace_s=0.0, clock=lambda: now[0]).judge(True, False)[0] == 503


async def first_answer(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    """GET ``url`` every 0.1 s until it answers ``status`` (the caller's fail_after bounds it)."""
    while True:
        response = await client.get(url)
        if response.status_code == status:
            return response
        await trio.sleep(0.1)


async def test_readyz_stays_degraded_through_a_redis_blip_then_unready() -> None:
    grace = 3.0
    redis = await trio.to_thread.run_sync(RedisServer)
    args = ("examples.quickstart:app", "--redis-url", redis.url,
            "--state-keys", "k" * 32, "--ready-backend-grace-s", str(grace),
            "--redis-connect-timeout-s", "0.5")
    try:
        with trio.fail_after(60):
            async with open_serve(*args) as served, httpx.AsyncClient(timeout=10) as client:
                url = served.base + "/readyz"
                before = (await client.get(url)).json()
                redis.kill()
                sent = time.monotonic()
                degraded = await client.get(url)
                late = await first_answer(client, url, 503)
                unready_after = time.monotonic() - sent
                healthz = (await client.get(served.base + "/healthz")).status_code
                await trio.to_thread.run_sync(redis.start)  # the same port, empty
                back = await first_answer(client, url, 200)
    finally:
        redis.stop()
    assert before == {"status": "ready"}
    assert (degraded.status_code, degraded.json()) == (
        200, {"status": "degraded", "backend": "unreachable"})
    assert (late.status_code, late.json()["backend"]) == (503, "unreachable")
    assert unready_after >= grace
    assert healthz == 200  # liveness never follows Redis
    assert back.json() == {"status": "ready"}


# In-flight requests ------------------------------------------------------------------------


async def test_inflight_requests_gauge_counts_running_calls() -> None:
    series = 'scalemcp_inflight_requests{era="session"}'

    def value(text: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith(series + " ")), None)
        return 0.0 if line is None else float(line.split()[1])

    with trio.fail_after(20):
        async with open_client(app, timeout=10) as (url, client):
            metrics = url.removesuffix("/mcp") + "/metrics"
            sid = (await client.post(url, json=initialize(), headers=HEADERS)).headers[
                "mcp-session-id"]
            headers = {**HEADERS, "mcp-session-id": sid}
            seen: list[float] = []

            async def slow_call(rid: int) -> None:
                await client.post(url, json=tool_call("countdown", {"n": 20}, rid), headers=headers)

            async with trio.open_nursery() as nursery:
                for rid in (2, 3):
                    nursery.start_soon(slow_call, rid)
                while max(seen, default=0) < 2:
                    seen.append(value((await client.get(metrics)).text))
                    await trio.sleep(0.02)  # sampled: the gauge is what is under test
            after = value((await client.get(metrics)).text)
    assert max(seen) == 2
    assert after == 0
