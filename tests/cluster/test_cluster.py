"""A session moving across a real fleet: 3 nodes x 2 workers behind round-robin haproxy.

Each test goes through the load balancer (and, where it matters, straight to each node),
with the official Python SDK client in the session era or with raw httpx. Which node
answered comes from haproxy's ``X-Served-By`` header; which process ran a tool comes from
the tool itself (tests/cluster/app.py). The tests that break the fleet (a node killed,
Redis restarted) come last and leave it whole again.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import mcp_types as types
import pytest
import trio
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ClientMessageMetadata

from tests.harness.client import (
    ELICITATION,
    HEADERS,
    initialize,
    modern_call,
    start_session,
    tool_call,
)
from tests.harness.conditions import eventually
from tests.harness.fleet import KEEPALIVE_S, Cluster, Node
from tests.harness.sdk import Recorder, sdk_session
from tests.harness.sse import Event, progress_of, sse_events

pytestmark = [
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

TIMEOUT = 20  # seconds, per test


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


def served_by(response: httpx.Response) -> str:
    node = response.headers.get("x-served-by")
    assert node, f"no X-Served-By header: {response.headers}"
    return str(node)


# -- 1. every request of a session on another worker --------------------------------------


async def test_session_requests_spread_over_workers(cluster: Cluster) -> None:
    """Round robin without stickiness: consecutive calls of ONE session run in different
    processes on all three nodes, and the session (progress, elicitation) works throughout."""
    rec = Recorder()
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    with trio.fail_after(TIMEOUT):
        async with sdk_session(cluster.url, rec, elicitation_callback=on_elicit) as client:
            workers: list[tuple[str, int]] = []
            for _ in range(9):
                result = await client.call_tool("whoami", {})
                assert result.structured_content is not None
                workers.append((result.structured_content["node"],
                                result.structured_content["pid"]))
            result = await client.call_tool("countdown", {"n": 5, "delay_ms": 10},
                                            progress_callback=on_progress)
            assert texts(result)[0].startswith("liftoff from n")
            hello = texts(await client.call_tool("ask_name", {}))[0]
            assert hello.startswith("Hello, Ada! (n")
            session_ids = {e.session_id for e in rec.exchanges if e.rpc != "initialize"}

    pids = [pid for _, pid in workers]
    assert all(a != b for a, b in itertools.pairwise(pids)), workers
    assert len(set(pids)) >= 3, workers
    assert {node for node, _ in workers} == {"n0", "n1", "n2"}, workers
    for node, pid in workers:
        assert cluster.node(node).owns(pid), (node, pid)  # the pid is that node's process
    # The tool ran on the node haproxy sent the POST to, and that rotated every call.
    calls = [e for e in rec.of("tools/call")][:9]
    assert [e.served_by for e in calls] == [node for node, _ in workers]
    await eventually(lambda: len(progress) == 5, "progress callbacks")
    assert [p[0] for p in progress] == [1, 2, 3, 4, 5]
    assert len(session_ids) == 1
    assert None not in session_ids
    assert len({e.served_by for e in rec.exchanges}) == 3


# -- 2. an SSE response cut mid-call and resumed on another node ----------------------------


async def test_stream_cut_by_client_resumes_on_another_node(cluster: Cluster) -> None:
    """The client drops the POST's SSE stream mid-call; GET + Last-Event-ID through the load
    balancer lands on another node, which replays exactly what followed, while the tool goes
    on running on the first node: no event lost, none repeated."""
    n = 20
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, cluster.url, capabilities=ELICITATION)
            first: list[Event] = []
            body = tool_call("countdown", {"n": n, "delay_ms": 100}, 7, progressToken="p7")
            async with client.stream("POST", cluster.url, json=body, headers=headers) as answer:
                assert answer.headers["content-type"] == "text/event-stream"
                writer = served_by(answer)
                async for event in sse_events(answer):
                    first.append(event)
                    if len(first) == 4:  # priming + 3 progress events, then hang up
                        break
            last_id = first[-1].id
            assert last_id is not None
            rest: list[Event] = []
            resume = {**headers, "accept": "text/event-stream", "last-event-id": last_id}
            async with client.stream("GET", cluster.url, headers=resume) as stream:
                assert stream.status_code == 200
                reader = served_by(stream)
                async for event in sse_events(stream):
                    rest.append(event)

    assert reader != writer
    events = first + rest
    ids = [e.id for e in events]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    assert len({i.partition(":")[0] for i in ids if i}) == 1  # one stream
    assert progress_of(first) == [1, 2, 3]
    assert progress_of(events) == list(range(1, n + 1))
    final = events[-1].message
    assert final is not None
    assert final["id"] == 7
    text = final["result"]["content"][0]["text"]
    assert text.startswith(f"liftoff from {writer} pid ")  # it kept running where it began
    ran_on = {m["params"]["message"] for e in events if (m := e.message) and "method" in m}
    assert ran_on == {text.removeprefix("liftoff from ")}


async def test_stream_closed_by_server_sdk_resumes_on_another_node(cluster: Cluster) -> None:
    """The server closes the SSE connection mid-call (2025-11-25 polling); the official SDK
    resumes with GET + Last-Event-ID, served by another node, and sees every progress
    notification once and the result."""
    rec = Recorder()
    progress: list[float] = []
    tokens: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_token(token: str) -> None:
        tokens.append(token)

    n = 8
    with trio.fail_after(TIMEOUT):
        async with sdk_session(cluster.url, rec) as client:
            request = types.CallToolRequest(params=types.CallToolRequestParams(
                name="countdown", arguments={"n": n, "delay_ms": 100, "close_after": 2},
                _meta={"progressToken": "sdk-resume"}))
            result = await client.session.send_request(
                request, types.CallToolResult,
                metadata=ClientMessageMetadata(on_resumption_token_update=on_token),
                progress_callback=on_progress)
    text = texts(result)[0]
    post = rec.of("tools/call")[-1]
    resumes = [e for e in rec.exchanges if e.last_event_id is not None]
    assert len(resumes) == 1, rec.exchanges
    (resume,) = resumes
    assert (resume.method, resume.status) == ("GET", 200)
    assert resume.served_by != post.served_by
    assert text.startswith(f"liftoff from {post.served_by} pid ")
    await eventually(lambda: len(progress) == n, "progress callbacks")
    assert progress == list(range(1, n + 1))
    assert resume.last_event_id in tokens


# -- 3. an elicitation answered on another node ---------------------------------------------


async def test_elicitation_answer_lands_on_another_node(cluster: Cluster) -> None:
    """The tool waits for elicitation/create's answer on one node; the SDK's POST carrying
    the answer goes (round robin) to another node, which routes it through Redis."""
    rec = Recorder()
    asked: list[str] = []

    async def on_elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    with trio.fail_after(TIMEOUT):
        async with sdk_session(cluster.url, rec, elicitation_callback=on_elicit) as client:
            hellos = [texts(await client.call_tool("ask_name", {}))[0] for _ in range(3)]
    calls, answers = rec.of("tools/call"), rec.of("response")
    assert len(calls) == len(answers) == 3
    for hello, asked_on, answered_on in zip(hellos, calls, answers, strict=True):
        assert hello.startswith(f"Hello, Grace! ({asked_on.served_by} pid ")
        assert answered_on.served_by != asked_on.served_by
        assert answered_on.status == 202
    assert asked == ["What is your name?"] * 3


async def test_elicitation_answer_raw_to_every_other_node(cluster: Cluster) -> None:
    """The same, by hand: the answer is POSTed straight to a node that is not the one
    running the tool."""
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, cluster.url, capabilities=ELICITATION)
            for rid, other in enumerate(range(3), start=10):
                seen: list[dict[str, Any]] = []
                async with client.stream("POST", cluster.url, json=tool_call("ask_name", {}, rid),
                                         headers=headers) as answer:
                    runner = served_by(answer)
                    target = cluster.nodes[other]
                    if target.name == runner:
                        target = cluster.nodes[(other + 1) % 3]
                    async for event in sse_events(answer):
                        if (message := event.message) is None:
                            continue
                        seen.append(message)
                        if message.get("method") == "elicitation/create":
                            reply = {"jsonrpc": "2.0", "id": message["id"], "result": {
                                "action": "accept", "content": {"name": target.name}}}
                            sent = await client.post(target.url, json=reply, headers=headers)
                            assert sent.status_code == 202
                assert seen[-1]["id"] == rid
                text = seen[-1]["result"]["content"][0]["text"]
                assert text.startswith(f"Hello, {target.name}! ({runner} pid ")


# -- 4. a cancellation that lands on another node --------------------------------------------


async def test_cancellation_lands_on_another_node(cluster: Cluster) -> None:
    """notifications/cancelled goes (round robin) to another node than the one running
    ``slow``; the tool is cancelled there: its mark file says so and its stream ends with
    the cancellation error long before the 10 s the tool would take."""
    tag = "cancel-me"
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, cluster.url, capabilities=ELICITATION)
            seen: list[dict[str, Any]] = []
            started = time.monotonic()
            body = tool_call("slow", {"tag": tag}, 21, progressToken="s")
            async with client.stream("POST", cluster.url, json=body, headers=headers) as answer:
                runner = served_by(answer)
                async for event in sse_events(answer):
                    if (message := event.message) is None:
                        continue
                    seen.append(message)
                    if len(seen) == 1:  # the tool has started: cancel it
                        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                  "params": {"requestId": 21, "reason": "changed my mind"}}
                        sent = await client.post(cluster.url, json=cancel, headers=headers)
                        assert sent.status_code == 202
                        canceller = served_by(sent)
            elapsed = time.monotonic() - started
    assert canceller != runner
    assert seen[0]["params"]["message"].startswith(f"{runner} pid ")
    assert seen[-1]["id"] == 21
    assert "error" in seen[-1], seen[-1]
    assert elapsed < 5
    mark = cluster.mark(tag)
    assert mark == f"cancelled {seen[0]['params']['message']}\n"


# -- 6. DELETE on one node ends the session on every node -----------------------------------


async def test_delete_on_one_node_is_404_everywhere(cluster: Cluster) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, cluster.url, capabilities=ELICITATION)
            ok = await client.post(cluster.url, json=tool_call("whoami", {}, 1), headers=headers)
            assert ok.status_code == 200
            get_headers = {**headers, "accept": "text/event-stream"}
            ended = trio.Event()
            deleted_at: list[float] = []

            async def hold_get_stream(node_url: str, task_status: trio.TaskStatus[None]) -> None:
                async with client.stream("GET", node_url, headers=get_headers) as stream:
                    assert stream.status_code == 200
                    task_status.started()
                    async for _ in sse_events(stream):
                        pass
                ended.set()

            async with trio.open_nursery() as nursery:
                # A standalone GET stream held open on n2 while n0 deletes the session.
                await nursery.start(hold_get_stream, cluster.node("n2").url)
                gone = await client.delete(cluster.node("n0").url, headers=headers)
                deleted_at.append(time.monotonic())
                assert gone.status_code == 200
                await ended.wait()
            stream_ended_after = time.monotonic() - deleted_at[0]

            statuses: dict[str, list[int]] = {}
            for node in cluster.nodes:  # straight to each node, a few times (both workers)
                for rid in range(4):
                    r = await client.post(node.url, json=tool_call("whoami", {}, rid),
                                          headers=headers)
                    statuses.setdefault(node.name, []).append(r.status_code)
            via_lb = []
            for rid in range(3):  # and through the load balancer (every node in turn)
                r = await client.post(cluster.url, json=tool_call("whoami", {}, rid),
                                      headers=headers)
                via_lb.append((served_by(r), r.status_code))
            again = await client.delete(cluster.url, headers=headers)
            resume = await client.get(cluster.node("n1").url, headers=get_headers)
    assert statuses == {n.name: [404] * 4 for n in cluster.nodes}
    assert sorted(via_lb) == [("n0", 404), ("n1", 404), ("n2", 404)]
    assert again.status_code == 404
    assert resume.status_code == 404
    assert stream_ended_after < 2.0  # the deletion broadcast reached n2's open stream


# -- 5. kill -9 of the node running a streaming call -----------------------------------------


async def test_node_killed_mid_stream_resume_replays_then_ends_visibly(cluster: Cluster) -> None:
    """``kill -9`` the node (found by the pid the tool reports) while it streams progress.
    The client resumes through the load balancer on a survivor: every event written before
    the kill is replayed (from the priming event), none twice; then the stream ends with a
    JSON-RPC error for the request (the dead worker's epitaph), not a silent hang."""
    n = 100
    first: list[Event] = []
    killed: list[tuple[str, Node, float]] = []  # (node haproxy chose, node killed, when)

    async def stream_and_kill(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        body = tool_call("countdown", {"n": n, "delay_ms": 100}, 42, progressToken="k")
        async with client.stream("POST", cluster.url, json=body, headers=headers) as answer:
            async for event in sse_events(answer):
                first.append(event)
                if len(first) == 4:  # priming + 3 progress events: "<node> pid <pid>"
                    message = event.message
                    assert message is not None
                    victim = cluster.node_of(int(message["params"]["message"].split()[-1]))
                    victim.kill()
                    killed.append((served_by(answer), victim, time.monotonic()))

    try:
        with trio.fail_after(TIMEOUT + 10):
            async with httpx.AsyncClient(timeout=10) as client:
                headers = await start_session(client, cluster.url, capabilities=ELICITATION)
                with pytest.raises(httpx.RemoteProtocolError):  # cut without the final chunk
                    await stream_and_kill(client, headers)
                priming = first[0]
                assert priming.id is not None
                assert priming.data == ""
                replayed: list[Event] = []
                resume = {**headers, "accept": "text/event-stream", "last-event-id": priming.id}
                async with client.stream("GET", cluster.url, headers=resume) as stream:
                    assert stream.status_code == 200
                    survivor = served_by(stream)
                    async for event in sse_events(stream):
                        replayed.append(event)
                ended_after = time.monotonic() - killed[0][2]
    finally:
        for _, victim, _ in killed:
            cluster.restart(victim)

    runner, victim, _ = killed[0]
    assert victim.name == runner
    assert first[1].message is not None
    assert first[1].message["params"]["message"].startswith(f"{runner} pid ")
    assert survivor != runner
    ids = [e.id for e in replayed]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    assert [e.id for e in replayed[:3]] == [e.id for e in first[1:]]  # the same events
    progress = progress_of(replayed)
    assert progress == list(range(1, len(progress) + 1))  # every one written, in order
    assert 3 <= len(progress) < n
    final = replayed[-1].message
    assert final is not None
    assert final["id"] == 42
    assert final["error"]["code"] == -32603
    assert "stopped" in final["error"]["message"]
    print(f"\nkilled node {runner}; resumed on {survivor}; {len(progress)} progress events "
          f"replayed; the stream ended with an error {ended_after:.1f} s after the kill")


async def test_node_killed_sdk_call_ends_with_error(cluster: Cluster) -> None:
    """The same with the official SDK: its progress callback ``kill -9``s the node running
    the call; the SDK resumes on a survivor (GET + Last-Event-ID) and ``call_tool`` raises
    the server's error instead of hanging; the session goes on working on the survivors."""
    rec = Recorder()
    killed: list[Node] = []
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)
        if not killed and message:
            victim = cluster.node_of(int(message.split()[-1]))
            victim.kill()
            killed.append(victim)

    try:
        with trio.fail_after(TIMEOUT):
            async with sdk_session(cluster.url, rec) as client:
                await client.list_tools()
                with pytest.raises(MCPError) as failure:
                    await client.call_tool("countdown", {"n": 100, "delay_ms": 100},
                                           progress_callback=on_progress)
                after = [await client.call_tool("whoami", {}) for _ in range(3)]
    finally:
        for victim in killed:
            cluster.restart(victim)
    (victim,) = killed
    assert failure.value.code == -32603
    assert "stopped" in failure.value.message
    post = rec.of("tools/call")[0]
    assert post.served_by == victim.name
    # Event ids are "<stream>:<position>"; POST streams start with "p", the standalone GET
    # stream with "g". The SDK also resumes its GET stream if the victim was serving it.
    resumes = [e for e in rec.exchanges if e.last_event_id is not None]
    call_resumes = [e for e in resumes if e.last_event_id.startswith("p")]
    assert [(e.method, e.status) for e in call_resumes] == [("GET", 200)]
    assert all(e.served_by != victim.name for e in resumes)
    get_streams = [e for e in rec.exchanges if e.method == "GET" and e.last_event_id is None]
    if any(e.served_by == victim.name for e in get_streams):
        assert any(e.last_event_id.startswith("g") for e in resumes)
    nodes = {r.structured_content["node"] for r in after if r.structured_content}
    assert len(nodes) == 2
    assert victim.name not in nodes
    assert progress[0] == 1


# -- 7. Redis restarted under the fleet ---------------------------------------------------


async def test_redis_restart(cluster: Cluster) -> None:
    """While Redis is down: session-era requests get 503 + Retry-After, /readyz is 503 on
    every node, /healthz stays 200 (haproxy keeps routing), stateless 2026-07-28 requests
    keep working; an SSE stream open when Redis died is cut (without its final chunk, so
    the client can tell). Once Redis is back (empty): old sessions are 404, a new one
    works everywhere (elicitation across nodes included), without restarting any node."""
    assert cluster.lb is not None
    with trio.fail_after(TIMEOUT + 10):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, cluster.url, capabilities=ELICITATION)
            get_headers = {**headers, "accept": "text/event-stream"}
            async with client.stream("GET", cluster.url, headers=get_headers) as open_stream:
                assert open_stream.status_code == 200
                cluster.redis.kill()
                cut_at = time.monotonic()
                with pytest.raises(httpx.RemoteProtocolError):
                    await open_stream.aread()
                stream_cut_after = time.monotonic() - cut_at

            down: list[tuple[str, int, str | None, Any]] = []
            for rid in range(3):
                r = await client.post(cluster.url, json=tool_call("whoami", {}, rid),
                                      headers=headers)
                down.append((served_by(r), r.status_code, r.headers.get("retry-after"),
                             r.json()["error"]["code"]))
            init = await client.post(cluster.url, json=initialize(capabilities=ELICITATION, rid=0),
                                     headers=HEADERS)
            resume = await client.get(cluster.url, headers={
                **headers, "accept": "text/event-stream", "last-event-id": "p0:1-0"})
            ready = [(await client.get(n.base + "/readyz")).status_code for n in cluster.nodes]
            healthy = [(await client.get(n.base + "/healthz")).status_code for n in cluster.nodes]
            modern = []
            for rid in range(3):
                r = await modern_call(client, cluster.url, rid, "whoami", {})
                modern.append((served_by(r), r.status_code, r.json()["result"]["structuredContent"]
                               ["node"] if r.status_code == 200 else r.text))
            lb_status = cluster.lb.server_status()

            cluster.redis.start()  # the same port, empty

            async def all_ready() -> bool:
                codes = [(await client.get(n.base + "/readyz")).status_code
                         for n in cluster.nodes]
                return codes == [200, 200, 200]

            await eventually(all_ready, "every node ready again", 15)
            old = []
            for rid in range(3):
                r = await client.post(cluster.url, json=tool_call("whoami", {}, rid),
                                      headers=headers)
                old.append((served_by(r), r.status_code))

    assert stream_cut_after < 3 * KEEPALIVE_S
    assert sorted(down) == [(n, 503, "1", -32603) for n in ("n0", "n1", "n2")], down
    assert (init.status_code, init.headers.get("retry-after")) == (503, "1")
    assert resume.status_code == 503
    assert ready == [503, 503, 503]
    assert healthy == [200, 200, 200]
    assert lb_status == {"n0": "UP", "n1": "UP", "n2": "UP"}
    assert sorted(modern) == [(n, 200, n) for n in ("n0", "n1", "n2")], modern
    assert sorted(old) == [("n0", 404), ("n1", 404), ("n2", 404)]

    rec = Recorder()

    async def on_elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Bo"})

    with trio.fail_after(TIMEOUT):
        async with sdk_session(cluster.url, rec, elicitation_callback=on_elicit) as client2:
            await client2.list_tools()  # the SDK would fetch it after the first call
            nodes = set()
            for _ in range(3):
                result = await client2.call_tool("whoami", {})
                assert result.structured_content is not None
                nodes.add(result.structured_content["node"])
            hellos = [texts(await client2.call_tool("ask_name", {}))[0] for _ in range(3)]
    assert nodes == {"n0", "n1", "n2"}
    assert all(h.startswith("Hello, Bo! (") for h in hellos)
    calls, answers = rec.of("tools/call")[-3:], rec.of("response")
    assert all(a.served_by != c.served_by for a, c in zip(answers, calls, strict=True))

