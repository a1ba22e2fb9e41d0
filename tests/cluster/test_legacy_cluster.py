"""The 2024-11-05 HTTP+SSE transport across nodes: GET /sse on one node, POSTs on the others."""

from __future__ import annotations

import json

import httpx
import trio

from tests.harness.client import LEGACY_VERSION, initialize
from tests.harness.fleet import Cluster


async def test_legacy_sse_posts_to_every_node(cluster: Cluster) -> None:
    sse_url = cluster.url.removesuffix("/mcp") + "/sse"
    init = initialize(LEGACY_VERSION, rid=0, name="legacy")
    with trio.fail_after(20):
        async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "GET", sse_url, headers={"accept": "text/event-stream"}
        ) as stream:
            holder = stream.headers["x-served-by"]
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: endpoint"
            endpoint = (await anext(lines)).removeprefix("data: ")
            others = [n for n in cluster.nodes if n.name != holder]
            assert len(others) == 2
            posted = await client.post(others[0].base + endpoint, json=init)
            assert posted.status_code == 202
            answers: dict[int, dict[str, object]] = {}
            for i, node in enumerate(others, start=1):
                call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                        "params": {"name": "whoami", "arguments": {}}}
                assert (await client.post(node.base + endpoint, json=call)).status_code == 202
            async for line in lines:
                if line.startswith("data: "):
                    message = json.loads(line[6:])
                    answers[message["id"]] = message
                    if len(answers) == 3:
                        break
    assert answers[0]["result"]["protocolVersion"] == "2024-11-05"  # type: ignore[index]
    ran_on = [json.loads(answers[i]["result"]["content"][0]["text"])  # type: ignore[index]
              for i in (1, 2)]
    assert [r["node"] for r in ran_on] == [n.name for n in others]
