"""A Sentinel failover under a fleet: 3 nodes x 2 workers on a ``redis+sentinel://`` URL
(tests/state's SentinelDeployment: master, replica, one sentinel) behind round-robin
haproxy, triggered with ``SENTINEL FAILOVER`` while a session streams a call through the
load balancer and other requests keep coming.

What is promised (README, "Scaling out with Redis"): during the switch every request is
answered, with success or 503 + Retry-After, never a 500 or a hang. Writes the old master
accepts between the promotion and the sentinels' announcement may be lost, so the checks
after the switch use only what was replicated before it or written after it: once every
node's /readyz is 200 again and a new session works, everything works on every node, for
the session created before the failover as for a new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from tests.harness.client import (
    ELICITATION,
    HEADERS,
    SESSION_VERSION,
    initialize,
    notification,
    start_session,
    tool_call,
)
from tests.harness.conditions import eventually
from tests.harness.fleet import Fleet, running
from tests.harness.redis import RedisServer, SentinelDeployment
from tests.harness.sse import Event, progress_of, sse_events

from .checks import cut_and_resume, elicit_across, whoami_spread

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 75  # seconds for the whole test (the failover itself takes about 1 s)
#: The call streaming through the failover: 60 progress events 100 ms apart.
STEPS = 60


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelDeployment]:
    deployment = SentinelDeployment()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def fleet(sentinel: SentinelDeployment,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running(Fleet(tmp_path_factory.mktemp("sentinel-fleet"), sentinel.url)) as fleet:
        yield fleet


@dataclass
class Answer:
    what: str
    node: str
    status: int  # 0: no answer within the client's 10 s (a hang)
    retry_after: str | None


@dataclass
class Switch:
    """What a client saw around the failover."""

    live: list[Event] = field(default_factory=list)  # the streaming call, as it was sent
    ending: str = ""  # "final": it ended with its response; "cut: <error>" otherwise
    answers: list[Answer] = field(default_factory=list)  # the other requests meanwhile
    recovered: trio.Event = field(default_factory=trio.Event)
    #: Progress events the live stream had sent when recovery was confirmed, and whether
    #: it was still running then (so its end was written after recovery).
    seen_at_recovery: int = 0
    running_at_recovery: bool = False
    recovery_s: float = 0.0  # from SENTINEL FAILOVER to recovery confirmed


async def probe(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                rid: int) -> Answer:
    """A whoami on the old session, or an initialize of a new one: what came back."""
    what, body, hdrs = (("whoami", tool_call("whoami", {}, rid), headers) if rid % 2
                        else ("initialize", initialize(capabilities=ELICITATION, rid=0), HEADERS))
    try:
        r = await client.post(url, json=body, headers=hdrs, timeout=10)
    except httpx.TimeoutException:
        return Answer(what, "?", 0, None)
    return Answer(what, r.headers.get("x-served-by", "haproxy"), r.status_code,
                  r.headers.get("retry-after"))


def workers_on(server: RedisServer) -> list[str]:
    """The clients of ``server`` other than this query, the sentinels and replication."""
    left = []
    for line in server.cli("CLIENT", "LIST").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("cmd") == "client|list" or fields.get("name", "").startswith(
                "sentinel-") or set(fields.get("flags", "")) & {"S", "M"}:
            continue
        left.append(line)
    return left


async def recovered(client: httpx.AsyncClient, fleet: Fleet, sentinel: SentinelDeployment,
                    old_port: int) -> bool:
    """The sentinels name the new master, no worker is connected to the old one any more
    (so no write can land there and be lost), every node is ready, a new session works."""
    if await trio.to_thread.run_sync(sentinel.master_port) == old_port:
        return False
    if await trio.to_thread.run_sync(workers_on, sentinel.master):
        return False
    for node in fleet.nodes:
        if (await client.get(node.base + "/readyz")).status_code != 200:
            return False
    init = await client.post(fleet.url, json=initialize(capabilities=ELICITATION, rid=0),
                             headers=HEADERS)
    if init.status_code != 200:
        return False
    headers = {**HEADERS, "mcp-session-id": init.headers["mcp-session-id"],
               "mcp-protocol-version": SESSION_VERSION}
    initialized = notification("notifications/initialized")
    if (await client.post(fleet.url, json=initialized, headers=headers)).status_code != 202:
        return False
    r = await client.post(fleet.url, json=tool_call("whoami", {}, 1), headers=headers)
    return r.status_code == 200


async def fail_over_while_streaming(client: httpx.AsyncClient, fleet: Fleet,
                                    sentinel: SentinelDeployment,
                                    headers: dict[str, str]) -> Switch:
    """Stream a countdown through the load balancer; after its third progress event,
    SENTINEL FAILOVER, while whoami/initialize requests go on until recovery is confirmed."""
    assert sentinel.sentinel is not None
    switch = Switch()
    go = trio.Event()
    old_port = sentinel.master_port()

    async def stream() -> None:
        body = tool_call("countdown", {"n": STEPS, "delay_ms": 100}, 2, progressToken="through")
        try:
            async with client.stream("POST", fleet.url, json=body, headers=headers) as r:
                async for event in sse_events(r):
                    switch.live.append(event)
                    if len(progress_of(switch.live)) == 3:
                        go.set()
            switch.ending = "final"
        except httpx.HTTPError as exc:
            switch.ending = f"cut: {type(exc).__name__}: {exc}"
        go.set()

    async def fail_over() -> None:
        await go.wait()
        started = time.monotonic()
        reply = await trio.to_thread.run_sync(
            sentinel.sentinel.command, "SENTINEL", "FAILOVER", sentinel.MASTER)  # type: ignore[union-attr]
        assert reply == b"+OK", reply
        await eventually(lambda: recovered(client, fleet, sentinel, old_port),
                         "recovery after the failover", 30)
        switch.recovery_s = time.monotonic() - started
        switch.seen_at_recovery = len(progress_of(switch.live))
        switch.running_at_recovery = not switch.ending
        switch.recovered.set()

    async def probes() -> None:
        await go.wait()
        rid = 101
        while not switch.recovered.is_set():
            switch.answers.append(await probe(client, fleet.url, headers, rid))
            rid += 1
            await trio.sleep(0.05)  # real time: steady traffic through the failover

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream)
        nursery.start_soon(fail_over)
        nursery.start_soon(probes)
    return switch


async def read_all(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                   last_event_id: str) -> list[Event]:
    """GET + Last-Event-ID through the load balancer, read to the end of the stream."""
    resume = {**headers, "accept": "text/event-stream", "last-event-id": last_event_id}
    async with client.stream("GET", url, headers=resume) as stream:
        assert stream.status_code == 200
        return [event async for event in sse_events(stream)]


def outcome(events: list[Event]) -> str:
    """How a countdown's stream ended: "liftoff", or the error the call ended with."""
    final = events[-1].message if events else None
    if final is None or "id" not in final:
        return "no response"
    if "error" in final:
        return f"error {final['error']['code']}: {final['error']['message']}"
    text = str(final["result"]["content"][0]["text"])
    return text if final["result"].get("isError") else text.split()[0]


def check_during(switch: Switch, sentinel: SentinelDeployment) -> None:
    answers = switch.answers
    assert answers, "no request was made during the switch"
    bad = [a for a in answers if a.status not in (200, 503)]
    assert not bad, bad  # neither a 500 nor a hang (status 0)
    assert all(a.retry_after for a in answers if a.status == 503), answers
    # The call ended visibly: with its response, or cut without the last chunk.
    assert switch.ending == "final" or switch.ending.startswith("cut: RemoteProtocolError"), (
        switch.ending)
    if switch.ending == "final":
        assert outcome(switch.live) != "no response", switch.live[-1]
    ids = [e.id for e in switch.live]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    progress = progress_of(switch.live)
    assert progress == sorted(set(progress)), progress
    assert sentinel.replica is not None
    assert sentinel.master_port() == sentinel.replica.port


def check_through_stream(switch: Switch, replay: list[Event]) -> None:
    """The stream written through the failover, replayed from its priming event after it:
    in order, nothing twice, ending as the client saw it end. The call may have met the
    switch (its result is then an error) or not; if it succeeded, every event written
    after recovery is there."""
    assert switch.live[0].data == ""  # the priming event
    ids = [e.id for e in replay]
    assert None not in ids
    assert len(set(ids)) == len(ids), ids
    progress = progress_of(replay)
    assert progress == sorted(set(progress)), progress
    final = replay[-1].message
    assert final is not None
    assert final["id"] == 2, final
    if switch.ending == "final":
        assert replay[-1] == switch.live[-1]
    if outcome(replay) == "liftoff":
        after = list(range(switch.seen_at_recovery + 1, STEPS + 1))
        assert progress[len(progress) - len(after):] == after, progress


async def test_sentinel_failover_under_the_fleet(sentinel: SentinelDeployment,
                                                 fleet: Fleet) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            # Before the failover, and replicated.
            headers = await start_session(client, fleet.url, capabilities=ELICITATION)
            await whoami_spread(client, fleet, headers, 3)
            body = tool_call("countdown", {"n": 5, "delay_ms": 10}, 1, progressToken="before")
            async with client.stream("POST", fleet.url, json=body, headers=headers) as r:
                before = [event async for event in sse_events(r)]
            await trio.to_thread.run_sync(sentinel.wait_replicated)

            switch = await fail_over_while_streaming(client, fleet, sentinel, headers)
            check_during(switch, sentinel)

            # The session created before the failover, on every node through the LB.
            await whoami_spread(client, fleet, headers, 6)
            crossed = [await elicit_across(client, fleet, headers, rid) for rid in (20, 21)]
            old_resumed = await cut_and_resume(client, fleet.url, headers, 22)
            # A new session.
            new = await start_session(client, fleet.url, capabilities=ELICITATION)
            await whoami_spread(client, fleet, new, 3)
            new_resumed = await cut_and_resume(client, fleet.url, new, 30)
            # Streams written before the failover (replicated) and through it.
            assert before[0].id is not None
            assert await read_all(client, fleet.url, headers, before[0].id) == before[1:]
            through: list[Event] | None = None
            if switch.running_at_recovery:  # else its end may be among the lost writes
                assert switch.live[0].id is not None
                through = await read_all(client, fleet.url, headers, switch.live[0].id)
                check_through_stream(switch, through)

    logs = fleet.logs()
    assert "Traceback" not in logs, logs
    unavailable = sum(a.status == 503 for a in switch.answers)
    print(f"\nSENTINEL FAILOVER under 3 nodes x 2 workers: recovery confirmed after "
          f"{switch.recovery_s:.1f} s; {len(switch.answers)} requests meanwhile "
          f"({unavailable} answered 503 + Retry-After, the rest 200); the call streaming "
          f"through it: {len(progress_of(switch.live))}/{STEPS} progress events live, "
          f"ending {switch.ending!r} ({outcome(switch.live)}); replayed after: "
          f"{'skipped' if through is None else len(progress_of(through))}; elicitations "
          f"{crossed}; resumes {old_resumed.writer}->{old_resumed.reader}, "
          f"{new_resumed.writer}->{new_resumed.reader}")
