"""Load shedding (transport/shedding.py): a worker past its capacity answers 503 +
Retry-After at once, counts it, keeps answering health checks, and serves again as soon
as it is back under its limits."""

from __future__ import annotations

import time

import httpx
import trio

import scalemcp
from scalemcp.observability.metrics import EVENT_LOOP_LAG, SHED
from scalemcp.transport.shedding import Shedder
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


async def test_the_adaptive_limit_lets_a_light_load_through_even_while_lagging() -> None:
    """The adaptive limit (the measured setting) refuses nothing of a light load: 20 requests
    waiting on I/O at once (no lag), then one that holds the loop 0.3 s (lag), then one
    more: the limit fell, but not below shed_min_inflight (8)."""
    config = scalemcp.Config.from_options(shed_target_lag_s=0.025)
    with trio.fail_after(20):
        async with open_client(app, config) as (url, http):
            answers: list[httpx.Response] = []

            async def nap_call(rid: int) -> None:
                answers.append(await modern_call(http, url, rid, "nap", {"seconds": 0.2}))

            async with trio.open_nursery() as nursery:
                for rid in range(20):
                    nursery.start_soon(nap_call, rid)
            answer = await modern_call(http, url, 99, "hog", {"seconds": 0.3})
            after = await modern_call(http, url, 100, "nap", {"seconds": 0})
    assert [a.status_code for a in answers] == [200] * 20
    assert answer.status_code == 200
    assert after.status_code == 200


def test_the_adaptive_limit_falls_with_lag_and_grows_back_only_when_it_refuses() -> None:
    shedder = Shedder(0, 0.0, 1, target_lag_s=0.02, min_inflight=4)
    assert shedder.limit == 1024  # no lag measured yet: nothing refused for it
    shedder.inflight = 100
    shedder.adapt(0.04)  # twice the target: what was in flight, halved
    assert shedder.limit == 50
    shedder.adapt(0.2)  # far over: halved at most per tick
    assert shedder.limit == 25
    shedder.inflight = 4
    shedder.adapt(1.0)  # 100 were in flight at the last tick: from those
    assert shedder.limit == 12
    shedder.adapt(1.0)
    assert shedder.limit == 4  # never below the floor
    shedder.inflight = 3
    shedder.adapt(0.0)  # a tick with 3 in flight
    shedder.limit = 25
    shedder.adapt(1.0)  # fewer in flight than the floor: they did not make the lag
    assert shedder.limit == 25
    shedder.count_in()
    shedder.count_in()  # 5 at the peak, 3 left at the tick: the peak counts
    shedder.inflight -= 2
    shedder.adapt(0.05)
    assert shedder.limit == 4  # (from the 3 left, it would have stayed 25)
    shedder.limit = 4
    shedder.adapt(0.001)  # no lag, but the limit refused nothing: it stays
    assert shedder.limit == 4
    shedder.inflight = 4
    assert shedder.refusal() is not None  # at the limit: refused (and counted)
    shedder.adapt(0.015)  # under the target, not under half of it: it stays
    assert shedder.limit == 4
    assert shedder.refusal() is not None
    shedder.adapt(0.001)
    assert shedder.limit == 5
    for _ in range(40):
        shedder.inflight = shedder.limit  # full: the next one is refused
        assert shedder.refusal() is not None
        shedder.adapt(0.0)
    assert shedder.limit > 200  # grows by an eighth a tick


def test_the_adaptive_limit_stays_under_a_fixed_ceiling() -> None:
    shedder = Shedder(2, 0.0, 1, target_lag_s=0.02, min_inflight=8)
    assert shedder.limit == 2
    shedder.inflight = 2
    shedder.adapt(1.0)
    assert shedder.limit == 2  # the floor does not lift it over the ceiling
    for _ in range(5):
        shedder.refusal()
        shedder.adapt(0.0)
    assert shedder.limit == 2
