"""The documented load balancer configs, run for real: deploy/haproxy.cfg and
deploy/nginx.conf in front of two ``scalemcp serve`` nodes sharing one redis-server.

Through each, in round robin with no stickiness: a session-era tool call answered with SSE
whose progress arrives event by event (not held back by buffering or compression), cut by
the client and resumed with ``Last-Event-ID`` on the other node, and stateless 2026-07-28
calls served by both nodes. The proxies add ``X-Served-By`` (documented as a debugging
aid), which says which node answered. Also: the files keep the settings DEPLOY-NOTES.md
calls SSE-safe, and docs/deploy.md shows them verbatim.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.conftest import ROOT
from tests.harness.client import ELICITATION, modern_call, start_session, tool_call
from tests.harness.fleet import HAProxy, Node
from tests.harness.ports import listening_socket, port_of
from tests.harness.redis import RedisServer
from tests.harness.serve import stop_group
from tests.harness.sse import Event, progress_of, sse_events

from .lb import HAPROXY_CFG, NGINX_CONF, Nginx

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 20  # seconds, per test
STEPS, STEP_MS = 10, 200  # the countdown: 2 s in all


class Fleet:
    """redis-server and two single-worker nodes (n0, n1) sharing it and one state key."""

    def __init__(self, workdir: Path) -> None:
        (workdir / "marks").mkdir()
        self.redis = RedisServer(log=workdir / "redis.log")
        key = secrets.token_hex(32)
        self.nodes = [Node(f"n{i}", self.redis.url, key, workdir, workers=1)
                      for i in range(2)]
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()


class Proxy:
    """One load balancer in front of the fleet; ``node(response)`` names who answered."""

    def __init__(self, kind: str, fleet: Fleet, workdir: Path) -> None:
        self.kind = kind
        if kind == "haproxy":
            self.haproxy = HAProxy(fleet.nodes, workdir)
            self.proc = self.haproxy.proc
            self.url = self.haproxy.url
            self.haproxy.wait_status({n.name: "UP" for n in fleet.nodes})
            self.names = {n.name: n.name for n in fleet.nodes}
        else:
            with listening_socket() as listener:  # nginx keeps its own copy
                self.nginx = Nginx(listener, [(n.name, n.port) for n in fleet.nodes], workdir)
                self.url = f"http://127.0.0.1:{port_of(listener)}/mcp"
            self.proc = self.nginx.proc
            self.names = {f"127.0.0.1:{n.port}": n.name for n in fleet.nodes}

    def node(self, response: httpx.Response) -> str:
        served_by = response.headers.get("x-served-by")
        assert served_by in self.names, f"X-Served-By {served_by!r} names no node"
        return self.names[served_by]

    def stop(self) -> None:
        stop_group(self.proc)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    nodes = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="module", params=["haproxy", "nginx"])
def proxy(request: pytest.FixtureRequest, fleet: Fleet,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    lb = Proxy(request.param, fleet, tmp_path_factory.mktemp(request.param))
    try:
        yield lb
    finally:
        lb.stop()


# Through the proxy ---------------------------------------------------------------------


async def test_sse_progress_streams_and_resumes_on_the_other_node(proxy: Proxy) -> None:
    """Progress of a 2 s tool arrives as it is sent; the client hangs up after 3 events and
    resumes through the proxy, which sends it to the other node: the rest, once each."""
    first: list[tuple[float, Event]] = []
    rest: list[Event] = []
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, proxy.url, capabilities=ELICITATION)
            body = tool_call("countdown", {"n": STEPS, "delay_ms": STEP_MS}, 7, progressToken="p")
            started = time.monotonic()
            async with client.stream("POST", proxy.url, json=body, headers=headers) as answer:
                assert answer.headers["content-type"].startswith("text/event-stream")
                assert "content-encoding" not in answer.headers
                writer = proxy.node(answer)
                async for event in sse_events(answer):
                    first.append((time.monotonic() - started, event))
                    if len(progress_of([e for _, e in first])) == 3:
                        break  # hang up mid-call
            last_id = first[-1][1].id
            assert last_id is not None
            resume = {**headers, "accept": "text/event-stream", "last-event-id": last_id}
            async with client.stream("GET", proxy.url, headers=resume) as stream:
                assert stream.status_code == 200
                reader = proxy.node(stream)
                rest = [event async for event in sse_events(stream)]

    # Streamed, not buffered: the third progress event (sent 0.4 s in) came long before the
    # tool's end (2 s in), and the events came apart, not in one lump.
    arrivals = [t for t, e in first if progress_of([e])]
    assert arrivals[2] < 1.2, arrivals
    assert arrivals[2] - arrivals[0] > 0.2, arrivals
    assert reader != writer
    events = [e for _, e in first] + rest
    ids = [e.id for e in events if e.id is not None]
    assert len(set(ids)) == len(ids)
    assert progress_of(events) == list(range(1, STEPS + 1))
    final = rest[-1].message
    assert final is not None
    assert final["id"] == 7
    assert final["result"]["content"][0]["text"].startswith(f"liftoff from {writer} pid ")


async def _first_progress_after(client: httpx.AsyncClient, url: str) -> float:
    """Seconds from sending a session-era tools/call to its first progress event."""
    headers = await start_session(client, url, capabilities=ELICITATION)
    body = tool_call("countdown", {"n": 2, "delay_ms": 400}, 1, progressToken="p")
    started = time.monotonic()
    async with client.stream("POST", url, json=body, headers=headers) as answer:
        async for event in sse_events(answer):
            if progress_of([event]):
                return time.monotonic() - started
    raise AssertionError("no progress event")


async def test_events_are_not_held_back(proxy: Proxy, fleet: Fleet) -> None:
    """An event reaches the client through the proxy about as fast as straight from the
    node (HAProxy without `option http-no-delay` adds about 200 ms to each)."""
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            direct = [await _first_progress_after(client, fleet.nodes[0].url) for _ in range(3)]
            proxied = [await _first_progress_after(client, proxy.url) for _ in range(3)]
    assert min(proxied) - min(direct) < 0.1, (proxied, direct)


async def test_stateless_calls_reach_both_nodes(proxy: Proxy) -> None:
    served: list[tuple[str, Any]] = []
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            for rid in range(4):
                response = await modern_call(client, proxy.url, rid, "whoami", {})
                assert response.status_code == 200, response.text
                assert "mcp-session-id" not in response.headers
                node = response.json()["result"]["structuredContent"]["node"]
                served.append((proxy.node(response), node))
    assert all(by == ran for by, ran in served), served
    assert {by for by, _ in served} == {"n0", "n1"}


# The files themselves ------------------------------------------------------------------


def _directives(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_haproxy_cfg_is_sse_safe_and_not_sticky() -> None:
    cfg = _directives(HAPROXY_CFG)
    for needed in ("balance roundrobin", "option http-no-delay", "timeout client 1h",
                   "timeout server 1h", "option httpchk GET /healthz",
                   "retry-on conn-failure empty-response"):
        assert needed in cfg, needed
    assert not [d for d in cfg if re.match(r"(cookie|stick|balance source|hash-type)", d)]
    assert not [d for d in cfg if d.startswith(("compression", "filter compression"))]


def test_nginx_conf_is_sse_safe_and_not_sticky() -> None:
    conf = _directives(NGINX_CONF)
    for needed in ("proxy_http_version 1.1;", "proxy_buffering off;", "proxy_cache off;",
                   "gzip off;", "proxy_read_timeout 3600s;", "proxy_send_timeout 3600s;",
                   "proxy_set_header Connection $scalemcp_connection;", '"" "";'):
        assert needed in conf, needed
    assert any(d.startswith("keepalive ") for d in conf)
    assert not [d for d in conf if re.match(r"(ip_hash|hash |sticky|least_conn)", d)]


@pytest.mark.parametrize("path", [HAPROXY_CFG, NGINX_CONF], ids=lambda p: p.name)
def test_deploy_md_shows_the_tested_file_verbatim(path: Path) -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", doc, flags=re.MULTILINE | re.DOTALL)
    assert path.read_text() in blocks, f"docs/deploy.md must show {path.name} as tested"
