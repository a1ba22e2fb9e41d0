"""A skill changed on disk under a fleet (3 nodes x 2 workers, Redis, haproxy): every
worker serves the new digest, and every client's GET stream, on whichever node, gets
``notifications/resources/list_changed`` exactly once, though six workers noticed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.harness.fleet import Cluster, running

from .support import (
    LIST_CHANGED,
    content_bytes,
    copy_examples,
    modern,
    notifications,
    session,
    sha256,
)

POLL_S = 0.5
GIT = "skill://git-workflow/SKILL.md"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    workdir = tmp_path_factory.mktemp("skills-fleet")
    skills = copy_examples(workdir / "skills")
    env = {"SKILLS_DIR": str(skills), "SKILLS_POLL_S": str(POLL_S)}
    with running(Cluster(workdir, app="tests.skills.dir_app:app", env=env)) as cluster:
        yield cluster, skills


async def digests_by_worker(urls: list[str], uri: str, want: int) -> dict[int, str]:
    """The digest of ``uri`` each worker serves, asking over fresh connections until
    ``want`` distinct workers answered."""
    seen: dict[int, str] = {}
    with trio.fail_after(20):
        while len(seen) < want:
            for url in urls:
                async with httpx.AsyncClient(timeout=10) as client:  # a new connection
                    result = await modern(client, url).result(
                        "tools/call", {"name": "catalog_here", "arguments": {}})
                here = result["structuredContent"]
                seen[here["pid"]] = here["digests"].get(uri, "")
    return seen


async def test_a_change_reaches_every_worker_and_is_announced_once(
    fleet: tuple[Cluster, Path],
) -> None:
    cluster, skills = fleet
    nodes = [node.url for node in cluster.nodes]
    path = skills / "git-workflow" / "SKILL.md"
    old = sha256(path.read_bytes())
    assert set((await digests_by_worker(nodes, GIT, 6)).values()) == {old}
    with trio.fail_after(60):
        async with httpx.AsyncClient(timeout=10) as c, \
                notifications(await session(c, nodes[0])) as seen0, \
                notifications(await session(c, nodes[1])) as seen1, \
                notifications(await session(c, nodes[2])) as seen2:
            new_bytes = path.read_bytes() + b"5. Delete merged branches.\n"
            staged = path.with_suffix(".tmp")
            staged.write_bytes(new_bytes)
            changed_at = time.monotonic()
            os.replace(staged, path)  # atomically, as deploy tools and ConfigMaps do
            new = sha256(new_bytes)
            for seen in (seen0, seen1, seen2):
                await seen.wait_for(LIST_CHANGED, 1)
            announced = time.monotonic() - changed_at
            workers = await digests_by_worker(nodes, GIT, 6)
            converged = time.monotonic() - changed_at
            assert set(workers.values()) == {new}, workers
            await trio.sleep(POLL_S * 6)  # every worker has polled several times since
            counts = [s.count(LIST_CHANGED) for s in (seen0, seen1, seen2)]
            assert counts == [1, 1, 1], counts
            lb = modern(c, cluster.url)
            entry = (await lb.result("skills/get", {"uri": GIT}))["skill"]
            assert {"uri": GIT, "digest": new, "size": len(new_bytes)} in entry["resources"]
            read = await lb.result("resources/read", {"uri": GIT})
            assert content_bytes(read["contents"][0]) == new_bytes
    print(f"\nskills change on a fleet of 6 workers: announced after {announced:.2f} s, "
          f"all 6 workers serve the new digest after {converged:.2f} s; "
          f"list_changed per GET stream {counts}")
    assert "Traceback" not in cluster.logs()
