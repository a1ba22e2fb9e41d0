"""A node drained (SIGTERM) through haproxy while it streams a long call.

What scalemcp does (``scalemcp/transport/drain.py``): on SIGTERM the node stops accepting
connections (``/readyz`` no longer 200, haproxy marks it DOWN), SSE streams go on for
``--drain-timeout-s`` and then end cleanly with a ``retry:`` hint; the session-era call
itself is not handed off: it runs on in the draining worker, writing its remaining events
and its result to Redis, until it finishes or the hard stop (drain + 5 s). The client
resumes with ``Last-Event-ID`` through haproxy on another node and reads them there.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio

from tests.harness.client import ELICITATION, modern_call, start_session, tool_call
from tests.harness.conditions import eventually
from tests.harness.fleet import DRAIN_S, Cluster, Node, http_status
from tests.harness.sse import Event, progress_of

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 60  # seconds for the whole test: start, drain, resume, the node's exit
#: 50 progress events 100 ms apart: outlives the drain (DRAIN_S), ends well before the
#: hard stop (DRAIN_S + 5 s) even if this machine runs the steps twice as slow.
STEPS, DELAY_MS = 50, 100


@dataclass
class Sse:
    """One SSE response read to its end: its events, and the retry hints after the last."""

    events: list[Event] = field(default_factory=list)
    trailing_retries: list[int] = field(default_factory=list)


async def read_sse(response: httpx.Response, sse: Sse, on_event: Any = None) -> None:
    """Read every block of ``response`` into ``sse``; ``on_event(event)`` after each event."""
    event_id: str | None = None
    data: list[str] = []
    retry: int | None = None
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line.startswith("retry:"):
            retry = int(line[6:])
        elif line == "":
            if event_id is not None or data:
                sse.events.append(Event(event_id, "\n".join(data)))
                sse.trailing_retries = []
                if on_event is not None:
                    await on_event(sse.events[-1])
            elif retry is not None:
                sse.trailing_retries.append(retry)
            event_id, data, retry = None, [], None


async def readyz(node: Node) -> int:
    """What a fresh probe of the node gets; 0 if nothing answers within half a second."""
    return await trio.to_thread.run_sync(lambda: http_status(node.base + "/readyz", 0.5))


@dataclass
class Traffic:
    """Calls through the load balancer while the node drains: (status, node, after DOWN)."""

    results: list[tuple[int, str, bool]] = field(default_factory=list)
    down: trio.Event = field(default_factory=trio.Event)
    stop: trio.Event = field(default_factory=trio.Event)

    async def run(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        rid = 1000
        t0 = trio.current_time()
        while not self.stop.is_set():
            rid += 1
            after_down = self.down.is_set()
            try:
                if rid % 2:
                    r = await client.post(url, json=tool_call("whoami", {}, rid), headers=headers)
                else:
                    r = await modern_call(client, url, rid, "whoami", {})
            except httpx.TransportError as exc:
                self.results.append((0, f"{exc!r} {trio.current_time() - t0:.2f}", after_down))
                continue
            node = r.json()["result"]["structuredContent"]["node"] if r.status_code == 200 else ""
            self.results.append((r.status_code, node, after_down))
            await trio.sleep(0.05)  # real time: steady traffic through the drain


async def test_sigterm_mid_stream_resume_elsewhere_gets_every_event(cluster: Cluster) -> None:
    assert cluster.lb is not None
    lb = cluster.lb
    first, rest = Sse(), Sse()
    traffic = Traffic()
    drained: list[Node] = []
    try:
        with trio.fail_after(TIMEOUT):
            async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=20)) as client:
                headers = await start_session(client, cluster.url, capabilities=ELICITATION)
                other = await start_session(client, cluster.url, capabilities=ELICITATION)

                async def watch_drain(node: Node) -> None:
                    await eventually(lambda: _not_ready(node), f"{node.name} not ready", 10)
                    await eventually(lambda: trio.to_thread.run_sync(
                        lambda: lb.server_status().get(node.name, "").startswith("DOWN")),
                        f"haproxy marks {node.name} DOWN", 15)
                    traffic.down.set()

                async with trio.open_nursery() as nursery:

                    async def on_event(event: Event) -> None:
                        if not drained and progress_of([event]) == [3]:
                            node = cluster.node_of(int(event.message["params"]["message"]
                                                       .split()[-1]))  # type: ignore[index]
                            assert node.proc is not None
                            os.kill(node.proc.pid, signal.SIGTERM)  # the supervisor, as k8s
                            drained.append(node)
                            nursery.start_soon(watch_drain, node)
                            nursery.start_soon(traffic.run, client, cluster.url, other)

                    body = tool_call("countdown", {"n": STEPS, "delay_ms": DELAY_MS}, 5,
                                progressToken="drain")
                    async with client.stream("POST", cluster.url, json=body,
                                             headers=headers) as answer:
                        assert answer.headers["content-type"] == "text/event-stream"
                        runner = answer.headers["x-served-by"]
                        await read_sse(answer, first, on_event)
                    # Ended cleanly (no RemoteProtocolError), before the call's result.
                    await traffic.down.wait()
                    last_id = first.events[-1].id
                    assert last_id is not None
                    resume = {**headers, "accept": "text/event-stream",
                              "last-event-id": last_id}
                    async with client.stream("GET", cluster.url, headers=resume) as stream:
                        assert stream.status_code == 200
                        reader = stream.headers["x-served-by"]
                        await read_sse(stream, rest)
                    await trio.sleep(0.5)  # a little more traffic after the resume
                    traffic.stop.set()
                (node,) = drained
                with trio.fail_after(DRAIN_S + 15):
                    code = await trio.to_thread.run_sync(_wait, node)
    finally:
        for node in drained:
            cluster.restart(node)

    assert node.name == runner
    assert code == 0, cluster.logs()
    # The stream was cut by the drain, resumable: no result yet, a retry hint at its end.
    assert first.events[0].data == ""  # the priming event
    assert first.events[-1].message is not None
    assert "id" not in first.events[-1].message
    assert first.trailing_retries == [1000]
    # Resumed on another node: every event exactly once, in order, then the result.
    assert reader != runner
    events = first.events + rest.events
    ids = [e.id for e in events]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    assert len({i.partition(":")[0] for i in ids if i}) == 1
    assert progress_of(events) == list(range(1, STEPS + 1))
    final = events[-1].message
    assert final is not None
    assert final["id"] == 5
    text = final["result"]["content"][0]["text"]
    assert text.startswith(f"liftoff from {runner} pid "), final  # finished where it began
    assert 3 < len(progress_of(first.events)) < STEPS
    # New requests during the drain all succeeded; once haproxy had the node DOWN, they
    # went to the others.
    assert traffic.results, "no request was made during the drain"
    assert all(status == 200 for status, _, _ in traffic.results), traffic.results
    assert any(after for _, _, after in traffic.results)
    assert not [n for _, n, after in traffic.results if after and n == runner]
    assert "Traceback" not in cluster.logs()
    print(f"\ndrained {runner}: stream cut after {len(progress_of(first.events))} of {STEPS} "
          f"events, resumed on {reader}; {len(traffic.results)} calls during the drain")


async def _not_ready(node: Node) -> bool:
    return await readyz(node) != 200


def _wait(node: Node) -> int:
    assert node.proc is not None
    return node.proc.wait()
