"""The fleet on a 3-master Redis Cluster: 3 nodes x 2 workers on ``redis+cluster://`` seeds
(tests/state's RedisClusterNodes) behind round-robin haproxy. Sessions are created until
every master holds one (their keys share the hash tag ``{<session id>}``, so each session
lives on one master); then, through the load balancer, a session's requests spread over
the workers, an SSE answer cut by the client resumes on another node with every event
once, elicitations are answered on other nodes, and DELETE on one node is 404 everywhere.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest
import trio

from tests.harness.client import ELICITATION, start_session, tool_call
from tests.harness.fleet import KEEPALIVE_S, Fleet, running
from tests.harness.redis import RedisClusterNodes
from tests.harness.sse import sse_events

from .checks import cut_and_resume, elicit_across, served_by, whoami_spread

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 30  # seconds per test


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    deployment = RedisClusterNodes()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def fleet(redis_cluster: RedisClusterNodes,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("redis-cluster-fleet")
    with running(Fleet(workdir, redis_cluster.url)) as fleet:
        yield fleet


def holders(redis_cluster: RedisClusterNodes, headers: dict[str, str]) -> list[int]:
    """The ports of the masters holding the session's record (the others answer MOVED)."""
    key = f"smcp:{{{headers['mcp-session-id']}}}:s"
    return [n.port for n in redis_cluster.nodes if n.command("EXISTS", key) == b":1"]


async def sessions_on_every_master(client: httpx.AsyncClient, fleet: Fleet,
                                   redis_cluster: RedisClusterNodes) -> list[dict[str, str]]:
    """New sessions through the load balancer until each master holds one; one per master."""
    by_master: dict[int, dict[str, str]] = {}
    for _ in range(40):  # a miss is 1/3 per master and try: 40 tries are plenty
        headers = await start_session(client, fleet.url, capabilities=ELICITATION)
        ports = await trio.to_thread.run_sync(holders, redis_cluster, headers)
        assert len(ports) == 1, ports
        by_master.setdefault(ports[0], headers)
        if len(by_master) == len(redis_cluster.nodes):
            return [by_master[n.port] for n in redis_cluster.nodes]
    raise AssertionError(f"sessions only on masters {sorted(by_master)}")


async def test_sessions_on_every_master_spread_resume_and_elicit(
        fleet: Fleet, redis_cluster: RedisClusterNodes) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            sessions = await sessions_on_every_master(client, fleet, redis_cluster)
            spreads = [await whoami_spread(client, fleet, s, 6) for s in sessions]
            crossed = [await elicit_across(client, fleet, s, 10 + i)
                       for i, s in enumerate(sessions)]
            resumed = [await cut_and_resume(client, fleet.url, s, 20 + i, n=12)
                       for i, s in enumerate(sessions[:2])]
    for ran in spreads:
        pids = [pid for _, pid in ran]
        assert all(a != b for a, b in itertools.pairwise(pids)), ran
        assert len(set(pids)) >= 3, ran
    assert len({runner for runner, _ in crossed}) >= 2, crossed
    logs = fleet.logs()
    assert "Traceback" not in logs, logs
    print(f"\nRedis Cluster fleet: sessions on masters {[n.port for n in redis_cluster.nodes]}; "
          f"workers per session {[len(set(s)) for s in spreads]}; elicitations (runner, "
          f"answered on) {crossed}; resumes {[(r.writer, r.reader) for r in resumed]}")


async def test_delete_on_one_node_is_404_everywhere(
        fleet: Fleet, redis_cluster: RedisClusterNodes) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=10) as client:
            headers = await start_session(client, fleet.url, capabilities=ELICITATION)
            ok = await client.post(fleet.url, json=tool_call("whoami", {}, 1), headers=headers)
            assert ok.status_code == 200
            get_headers = {**headers, "accept": "text/event-stream"}
            first, holder = fleet.nodes[0], fleet.nodes[2]
            async with client.stream("GET", holder.url, headers=get_headers) as stream:
                assert stream.status_code == 200
                gone = await client.delete(first.url, headers=headers)
                deleted_at = time.monotonic()
                async for _ in sse_events(stream):  # the open stream on another node ends
                    pass
                stream_ended_after = time.monotonic() - deleted_at
            statuses = {}
            for node in fleet.nodes:  # straight to each node, a few times
                codes = []
                for rid in range(4):
                    r = await client.post(node.url, json=tool_call("whoami", {}, rid),
                                          headers=headers)
                    codes.append(r.status_code)
                statuses[node.name] = codes
            via_lb = []
            for rid in range(3):
                r = await client.post(fleet.url, json=tool_call("whoami", {}, rid), headers=headers)
                via_lb.append((served_by(r), r.status_code))
            again = await client.delete(fleet.url, headers=headers)
            resume = await client.get(fleet.url, headers=get_headers)
            left = await trio.to_thread.run_sync(holders, redis_cluster, headers)
    assert gone.status_code == 200
    assert statuses == {n.name: [404] * 4 for n in fleet.nodes}
    assert sorted(via_lb) == [("n0", 404), ("n1", 404), ("n2", 404)]
    assert again.status_code == 404
    assert resume.status_code == 404
    assert left == []  # the record is gone from the cluster
    assert stream_ended_after < 2 * KEEPALIVE_S + 5  # bounded (generous for a busy CI)
