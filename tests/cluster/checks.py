"""Session journeys through the load balancer that more than one fleet runs (the default one
and the ones on Sentinel and Redis Cluster): each does its requests and asserts what a
client must see, and returns what it saw for the test to print or check further."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.harness.client import tool_call
from tests.harness.fleet import Fleet
from tests.harness.sse import Event, progress_of, sse_events


def served_by(response: httpx.Response) -> str:
    node = response.headers.get("x-served-by")
    assert node, f"no X-Served-By header: {response.headers}"
    return str(node)


async def whoami_spread(client: httpx.AsyncClient, fleet: Fleet, headers: dict[str, str],
                        calls: int) -> list[tuple[str, int]]:
    """``calls`` whoami calls of one session through the load balancer: each succeeds, runs
    on the node haproxy sent it to, and together they reach every node; (node, pid) each."""
    ran: list[tuple[str, int]] = []
    for rid in range(calls):
        r = await client.post(fleet.url, json=tool_call("whoami", {}, rid), headers=headers)
        assert r.status_code == 200, (r.status_code, r.text)
        worker = r.json()["result"]["structuredContent"]
        assert worker["node"] == served_by(r)
        assert fleet.node(worker["node"]).owns(worker["pid"]), worker
        ran.append((worker["node"], worker["pid"]))
    assert {node for node, _ in ran} == {n.name for n in fleet.nodes}, ran
    return ran


@dataclass
class Resumed:
    writer: str  # the node that ran the call and wrote the stream
    reader: str  # the node that replayed the rest
    first: list[Event]  # read from the POST before the client hung up
    rest: list[Event]  # read from GET + Last-Event-ID


async def cut_and_resume(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                         rid: int, n: int = 20, keep: int = 4) -> Resumed:
    """A countdown's SSE answer dropped by the client after ``keep`` events and resumed
    with GET + Last-Event-ID through the load balancer: on another node, with every event
    exactly once, in order, and the call's result at the end."""
    body = tool_call("countdown", {"n": n, "delay_ms": 100}, rid, progressToken=f"t{rid}")
    first: list[Event] = []
    async with client.stream("POST", url, json=body, headers=headers) as answer:
        assert answer.headers["content-type"] == "text/event-stream"
        writer = served_by(answer)
        async for event in sse_events(answer):
            first.append(event)
            if len(first) == keep:
                break
    last_id = first[-1].id
    assert last_id is not None
    rest: list[Event] = []
    resume = {**headers, "accept": "text/event-stream", "last-event-id": last_id}
    async with client.stream("GET", url, headers=resume) as stream:
        assert stream.status_code == 200
        reader = served_by(stream)
        rest = [event async for event in sse_events(stream)]
    assert reader != writer
    events = first + rest
    ids = [e.id for e in events]
    assert None not in ids
    assert len(set(ids)) == len(ids), ids
    assert len({i.partition(":")[0] for i in ids if i}) == 1  # one stream
    assert progress_of(events) == list(range(1, n + 1))
    final = events[-1].message
    assert final is not None
    assert final["id"] == rid
    assert final["result"]["content"][0]["text"].startswith(f"liftoff from {writer} pid ")
    return Resumed(writer, reader, first, rest)


async def elicit_across(client: httpx.AsyncClient, fleet: Fleet, headers: dict[str, str],
                        rid: int) -> tuple[str, str]:
    """``ask_name`` through the load balancer; its elicitation answered by a POST straight
    to another node than the one running it. Returns (runner, answering node)."""
    seen: list[dict[str, Any]] = []
    target = ""
    async with client.stream("POST", fleet.url, json=tool_call("ask_name", {}, rid),
                             headers=headers) as answer:
        runner = served_by(answer)
        async for event in sse_events(answer):
            if (message := event.message) is None:
                continue
            seen.append(message)
            if message.get("method") == "elicitation/create":
                others = [n for n in fleet.nodes if n.name != runner]
                node = others[rid % len(others)]
                target = node.name
                reply = {"jsonrpc": "2.0", "id": message["id"], "result": {
                    "action": "accept", "content": {"name": target}}}
                sent = await client.post(node.url, json=reply, headers=headers)
                assert sent.status_code == 202, (sent.status_code, sent.text)
    assert target, seen
    assert seen[-1]["id"] == rid, seen
    text = seen[-1]["result"]["content"][0]["text"]
    assert text.startswith(f"Hello, {target}! ({runner} pid "), text
    return runner, target
