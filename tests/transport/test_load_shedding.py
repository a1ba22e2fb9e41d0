"""Load shedding (transport/shedding.py): a worker past its capacity answers 503 +
Retry-After at once, counts it, keeps answering health checks, and serves again as soon
as it is back under its limits."""

from __future__ import annotations

import time

import httpx
import trio

import scalemcp
from scalemcp.observability.metrics import EVENT_LOOP_LAG, SHED
from tests.harness.asgi import open_client
from tests.harness.client import modern_call

app = scalemcp.App("shedding", version="1.0.0")


@app.tool
async def nap(seconds: float) -> str:
    """Sleep without holding the event loop."""
    await trio.sleep(seconds)
    return "rested"


@app.tool
async def hog(seconds: float) -> str:
    """Hold the event loop (a blocking call in an async tool): the worker lags."""
    time.sleep(seconds)  # noqa: ASYNC251 (the point: the event loop is held)
    return "done"


def shed_count(reason: str) -> float:
    return SHED.labels(reason)._value.get()


async def test_requests_past_the_inflight_limit_are_refused_at_once() -> None:
    config = scalemcp.Config.from_options(shed_max_inflight=2, shed_retry_after_s=3)
    before = shed_count("inflight")
    with trio.fail_after(20):
        async with open_client(app, config) as (url, http):
            base = url.rsplit("/", 1)[0]
            answers: list[httpx.Response] = []

            async def call(rid: int) -> None:
                answers.append(await modern_call(http, url, rid, "nap", {"seconds": 1.0}))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call, 1)
                nursery.start_soon(call, 2)
                await trio.sleep(0.2)  # both are running now
                started = trio.current_time()
                refused = await modern_call(http, url, 3, "nap", {"seconds": 0})
                refused_after = trio.current_time() - started
                health = await http.get(base + "/healthz")
                metrics = await http.get(base + "/metrics")
            served_again = await modern_call(http, url, 4, "nap", {"seconds": 0})
    assert [a.status_code for a in answers] == [200, 200]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "3"
    assert refused.json()["error"]["code"] == -32603
    assert "capacity" in refused.json()["error"]["message"]
    assert refused_after < 0.5  # not queued behind the running ones
    assert health.status_code == 200  # never shed: the balancer still sees the worker
    assert metrics.status_code == 200
    assert 'scalemcp_shed_total{reason="inflight"}' in metrics.text
    assert shed_count("inflight") == before + 1
    assert served_again.status_code == 200


async def test_a_lagging_event_loop_sheds_then_recovers() -> None:
    config = scalemcp.Config.from_options(shed_loop_lag_s=0.2)
    before = shed_count("loop_lag")
    with trio.fail_after(20):
        async with open_client(app, config) as (url, http):
            assert (await modern_call(http, url, 1, "hog", {"seconds": 0})).status_code == 200
            hogged = await modern_call(http, url, 2, "hog", {"seconds": 0.6})
            lag = EVENT_LOOP_LAG._value.get()
            refused = await modern_call(http, url, 3, "nap", {"seconds": 0})
            await trio.sleep(0.5)  # the window of measured lag passes
            served = await modern_call(http, url, 4, "nap", {"seconds": 0})
    assert hogged.status_code == 200  # admitted before the loop lagged
    assert lag > 0.2
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert shed_count("loop_lag") == before + 1
    assert served.status_code == 200


async def test_shedding_is_off_by_default() -> None:
    with trio.fail_after(20):
        async with open_client(app) as (url, http):
            async with trio.open_nursery() as nursery:
                for rid in range(20):
                    nursery.start_soon(modern_call, http, url, rid, "nap", {"seconds": 0.2})
            answer = await modern_call(http, url, 99, "hog", {"seconds": 0.3})
            after = await modern_call(http, url, 100, "nap", {"seconds": 0})
    assert answer.status_code == 200
    assert after.status_code == 200
