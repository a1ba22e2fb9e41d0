"""The first-hour details a client sees over HTTP (issue "First hour", items 10 and 11):
health and info paths, ids on refusals, the version a stateless-only server names, and
initialize counted with every other request."""

from __future__ import annotations

import re

import scalemcp
from examples.quickstart import app
from tests.harness.asgi import open_client
from tests.harness.ports import refused_port

ACCEPT = {"accept": "application/json, text/event-stream"}


def initialize(version: str = "2025-06-18", rid: int = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}


async def test_health_ready_and_info_paths() -> None:
    async with open_client(app) as (url, http):
        base = url.removesuffix("/mcp")
        for path in ("/healthz", "/health"):
            assert (await http.get(base + path)).json() == {"status": "ok"}
        for path in ("/readyz", "/ready"):
            assert (await http.get(base + path)).json() == {"status": "ready"}
        info = (await http.get(base + "/")).json()
        assert info["name"] == "quickstart"
        assert info["mcp"]["endpoint"] == "/mcp"
        assert "2026-07-28" in info["mcp"]["protocolVersions"]
        assert info["legacy"]["sse"] == "/sse"
        refused = await http.post(base + "/", json={})
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
        # The info document is behind the Origin rule, like /mcp.
        assert (await http.get(base + "/", headers={"origin": "https://evil.example"})
                ).status_code == 403


async def test_info_and_health_paths_are_configurable() -> None:
    config = scalemcp.Config.from_options(info_path="", liveness_paths=["/alive"],
                                          readiness_paths=["/go"])
    async with open_client(app, config) as (url, http):
        base = url.removesuffix("/mcp")
        assert (await http.get(base + "/")).status_code == 404
        assert (await http.get(base + "/health")).status_code == 404
        assert (await http.get(base + "/alive")).status_code == 200
        assert (await http.get(base + "/go")).status_code == 200


async def test_stateless_only_names_the_version_initialize_asked_for() -> None:
    config = scalemcp.Config.from_options(stateless_only=True)
    async with open_client(app, config) as (url, http):
        answer = await http.post(url, headers=ACCEPT, json=initialize("2025-06-18", rid=7))
    error = answer.json()
    assert answer.status_code == 400
    assert error["id"] == 7
    assert error["error"]["data"]["requested"] == "2025-06-18"
    assert error["error"]["data"]["supported"] == ["2026-07-28"]


async def test_a_503_carries_the_request_id() -> None:
    with refused_port() as port:
        config = scalemcp.Config.from_options(redis_url=f"redis://127.0.0.1:{port}/0",
                                              state_keys=["k" * 32],
                                              redis_connect_timeout_s=0.2)
        async with open_client(app, config) as (url, http):
            answer = await http.post(url, headers=ACCEPT, json=initialize(rid=2))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["id"] == 2


async def test_initialize_is_counted_with_every_other_request() -> None:
    async with open_client(app) as (url, http):
        assert (await http.post(url, headers=ACCEPT, json=initialize())).status_code == 200
        metrics = (await http.get(url.removesuffix("/mcp") + "/metrics")).text
    counted = re.search(r'scalemcp_requests_total\{[^}]*method="initialize"[^}]*'
                        r'outcome="ok"[^}]*\} ([0-9.]+)', metrics)
    assert counted is not None, metrics[:2000]
    assert float(counted.group(1)) >= 1
