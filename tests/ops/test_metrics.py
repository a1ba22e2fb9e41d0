"""/metrics exposes request counts, latency histograms, HTTP statuses and session gauges."""

from __future__ import annotations

import re

import trio

from examples.quickstart import app
from tests.harness.asgi import open_client
from tests.harness.client import initialize

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _value(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, flags=re.MULTILINE)
    assert m, f"{series} missing from:\n{text}"
    return float(m.group(1))


async def test_metrics_count_requests_and_sessions() -> None:
    init = initialize(name="t")
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "m"}}}
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, client):
            base = url.removesuffix("/mcp")
            before = (await client.get(base + "/metrics")).text
            sid = (await client.post(url, json=init, headers=HEADERS)).headers["mcp-session-id"]
            headers = {**HEADERS, "mcp-session-id": sid}
            for _ in range(3):
                assert (await client.post(url, json=call, headers=headers)).status_code == 200
            await client.post(url, content=b"{", headers=headers)
            response = await client.get(base + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    series = 'scalemcp_requests_total{era="session",method="tools/call",outcome="ok"}'
    previous = _value(before, series) if series in before else 0
    assert _value(text, series) - previous == 3
    count = 'scalemcp_request_duration_seconds_count{era="session",method="tools/call"}'
    assert _value(text, count) >= 3
    assert _value(text, 'scalemcp_http_responses_total{status="400"}') >= 1
    assert _value(text, "scalemcp_sessions") >= 1


async def test_open_streams_count_while_a_stream_is_open() -> None:
    series = 'scalemcp_open_streams{era="session",transport="sse"}'
    with trio.fail_after(15):
        async with open_client(app, timeout=10) as (url, client):
            base = url.removesuffix("/mcp")
            init = initialize(name="t")
            sid = (await client.post(url, json=init, headers=HEADERS)).headers["mcp-session-id"]
            text = (await client.get(base + "/metrics")).text
            before = _value(text, series) if series in text else 0
            get = {"accept": "text/event-stream", "mcp-session-id": sid,
                   "mcp-protocol-version": "2025-11-25"}
            async with client.stream("GET", url, headers=get) as response:
                assert response.status_code == 200
                await response.aiter_raw().__anext__()  # the priming event: it is open
                during = _value((await client.get(base + "/metrics")).text, series)
            for _ in range(250):  # the server sees the disconnect a moment later
                after = _value((await client.get(base + "/metrics")).text, series)
                if after == before:
                    break
                await trio.sleep(0.02)
    assert during == before + 1
    assert after == before
