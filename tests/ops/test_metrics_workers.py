"""``scalemcp serve --workers 2``: /metrics answers for the node, on whichever worker it lands.

A real supervisor with two workers and a real redis-server. Every request and scrape uses
a new connection, so the kernel hands it to either worker. The other worker's figures
reach a scrape within ``--metrics-flush-interval-s``, so the first check waits (bounded)
for the totals to arrive; from then on every scrape must give the same totals, and no
counter may ever go down, including after a worker is killed with SIGKILL and replaced.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.harness.client import HEADERS, initialize, tool_call
from tests.harness.redis import open_redis_server
from tests.harness.serve import Served, open_serve

CALLS = 'scalemcp_requests_total{era="session",method="tools/call",outcome="ok"}'
NEW_SERIES = (
    "scalemcp_open_streams", "scalemcp_sse_resumes_total", "scalemcp_sse_replayed_events_total",
    "scalemcp_routed_messages_sent_total", "scalemcp_routed_messages_received_total",
    "scalemcp_redis_round_trip_seconds", "scalemcp_redis_errors_total",
    "scalemcp_sessions_created_total", "scalemcp_sessions", "scalemcp_workers",
    "scalemcp_worker_snapshot_age_seconds", "scalemcp_worker_exits_total",
)
FLUSH_S = 0.2


def _series(text: str) -> dict[str, float]:
    """Every sample of a scrape: full series name (with labels) -> value."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _counters(text: str) -> dict[str, float]:
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
    out = {}
    for name, value in _series(text).items():
        family = name.partition("{")[0]
        base = re.sub(r"_(bucket|sum|count)$", "", family)
        if types.get(family) == "counter" or types.get(base) == "histogram":
            out[name] = value
    return out


class Scrapes:
    """Every scrape of the run, each checked against all before it: nothing goes down."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.seen: dict[str, float] = {}
        self.count = 0

    async def scrape(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=10) as client:  # a new connection: any worker
            response = await client.get(self.base + "/metrics")
        assert response.status_code == 200
        text = response.text
        for series, value in _counters(text).items():
            assert value >= self.seen.get(series, 0), (series, self.seen.get(series), value)
            self.seen[series] = value
        self.count += 1
        return _series(text)

    async def until(self, series: str, want: float, timeout_s: float = 20) -> dict[str, float]:
        """Scrape until ``series`` equals ``want`` (each scrape checked on the way)."""
        with trio.move_on_after(timeout_s):
            while True:
                values = await self.scrape()
                if values.get(series) == want:
                    return values
                await trio.sleep(FLUSH_S / 2)
        raise AssertionError(f"{series} never reached {want}: last {values.get(series)}")


async def _calls(url: str, headers: dict[str, str], n: int) -> list[int]:
    """``n`` tools/call on new connections; the pid of the worker that served each."""
    pids = []
    for i in range(n):
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, json=tool_call("pid", None, 100 + i), headers=headers)
        assert response.status_code == 200, response.text
        pids.append(response.json()["result"]["structuredContent"]["result"])
    return pids


async def _resume(url: str, headers: dict[str, str]) -> None:
    """A POST answered with SSE, then resumed from its first event (Last-Event-ID)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url, json=tool_call("slow", {"steps": 3}, 900),
                                     headers=headers)
        ids = re.findall(r"^id: (\S+)$", response.text, flags=re.MULTILINE)
        assert len(ids) >= 3, response.text
        resumed = await client.get(url, headers={**headers, "accept": "text/event-stream",
                                                 "last-event-id": ids[0]})
    assert resumed.status_code == 200
    assert '"result"' in resumed.text


def _worker_pids(served: Served) -> list[int]:
    """The supervisor's children (its workers), from /proc."""
    children = Path(f"/proc/{served.proc.pid}/task/{served.proc.pid}/children")
    return [int(p) for p in children.read_text().split()]


async def test_metrics_count_every_worker_and_never_go_back(tmp_path: Path) -> None:
    args = ["tests.ops.app:app", "--workers", "2", "--state-keys", secrets.token_hex(32),
            "--metrics-dir", str(tmp_path / "metrics"), "--metrics-flush-interval-s",
            str(FLUSH_S), "--sse-keepalive-s", "1"]
    with trio.fail_after(120):
        async with open_redis_server(password="pw") as redis_server, open_serve(
            *args, "--redis-url", f"redis://:pw@127.0.0.1:{redis_server.port}/0"
        ) as served:
            url = served.base + "/mcp"
            scrapes = Scrapes(served.base)
            async with httpx.AsyncClient(timeout=10) as client:
                init = await client.post(url, json=initialize(), headers=HEADERS)
            headers: dict[str, Any] = {**HEADERS, "mcp-protocol-version": "2025-11-25",
                                       "mcp-session-id": init.headers["mcp-session-id"]}
            # Enough calls that both workers serve some (else the test proves nothing).
            pids = await _calls(url, headers, 20)
            while len(set(pids)) < 2 and len(pids) < 400:
                pids += await _calls(url, headers, 20)
            assert len(set(pids)) == 2, pids
            await _resume(url, headers)
            calls = len(pids) + 1  # and the call that was resumed

            await scrapes.until(CALLS, calls)
            values = await scrapes.until('scalemcp_sse_resumes_total{stream="post"}', 1)
            for _ in range(8):  # on either worker: the node's total, never half of it
                assert (await scrapes.scrape())[CALLS] == calls
            assert values["scalemcp_workers"] == 2
            assert values['scalemcp_sessions_created_total{protocol_version="2025-11-25"}'] == 1
            assert values['scalemcp_sse_replayed_events_total{stream="post"}'] >= 2
            # Each worker loads the session from Redis at least once (then it may serve
            # it from its cache, see state/redis_cache.py): both workers' counts are in.
            assert values['scalemcp_redis_round_trip_seconds_count{operation="load"}'] >= 2
            assert values['scalemcp_redis_round_trip_seconds_count{operation="append"}'] >= 3
            assert set(values) >= {'scalemcp_worker_snapshot_age_seconds{worker="0"}',
                                   'scalemcp_worker_snapshot_age_seconds{worker="1"}'}
            async with httpx.AsyncClient(timeout=10) as client:
                text = (await client.get(served.base + "/metrics")).text
            for family in NEW_SERIES:
                assert f"# HELP {family} " in text, family

            # kill -9 one worker that served calls: the supervisor replaces it; its
            # counts stay in the totals (folded into the retired figures).
            victim = pids[0]
            assert victim in _worker_pids(served)
            os.kill(victim, signal.SIGKILL)
            await scrapes.until("scalemcp_worker_exits_total", 1)
            values = await scrapes.until("scalemcp_workers", 2)
            assert values[CALLS] == calls
            assert victim not in _worker_pids(served)

            more = await _calls(url, headers, 10)
            await scrapes.until(CALLS, calls + len(more))
            for _ in range(5):
                assert (await scrapes.scrape())[CALLS] == calls + len(more)
    assert scrapes.count >= 16
