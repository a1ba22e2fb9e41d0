"""A skill changed on disk: the worker rescans, serves the new digest, and announces
``notifications/resources/list_changed`` once; a touch with no new content announces
nothing; a broken edit withdraws that skill only; a read that finds changed bytes makes
the worker rescan before it answers."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

import scalemcp
from scalemcp.testing import open_server

from .support import Modern, Session, content_bytes, copy_examples, sha256, skill_md

LIST_CHANGED = "notifications/resources/list_changed"
POLL_S = 0.2
GIT = "skill://git-workflow/SKILL.md"


class Seen:
    """The methods of the notifications a GET stream delivered, and a wake-up per arrival."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.arrived = trio.Event()

    def add(self, method: str) -> None:
        self.methods.append(method)
        self.arrived.set()
        self.arrived = trio.Event()

    def count(self, method: str) -> int:
        return self.methods.count(method)


@asynccontextmanager
async def notifications(session: Session) -> AsyncIterator[Seen]:
    """Follow the session's GET stream while the block runs."""
    seen = Seen()
    ready = trio.Event()

    async def follow() -> None:
        async with session.client.stream("GET", session.url, headers={
                **session.headers, "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            ready.set()
            async for line in stream.aiter_lines():
                if line.startswith("data:") and line[5:].strip():
                    seen.add(json.loads(line[5:])["method"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await ready.wait()
        yield seen
        nursery.cancel_scope.cancel()


async def wait_for(seen: Seen, count: int, timeout: float = 10) -> None:
    """Until ``count`` list_changed arrived in all; then no further one may arrive."""
    with trio.fail_after(timeout):
        while seen.count(LIST_CHANGED) < count:
            await seen.arrived.wait()
    await trio.sleep(POLL_S * 5)
    assert seen.count(LIST_CHANGED) == count, seen.methods


async def digest_of(rpc: Modern, uri: str = GIT) -> str:
    entry = (await rpc.result("skills/get", {"uri": uri}))["skill"]
    return str(next(r["digest"] for r in entry["resources"] if r["uri"] == uri))


async def test_a_changed_skill_is_announced_once_and_served_anew(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    skills = copy_examples(tmp_path / "skills")
    app = scalemcp.App("changes")
    app.add_skills(skills, poll_interval_s=POLL_S)
    path = skills / "git-workflow" / "SKILL.md"
    with trio.fail_after(60):
        async with open_server(app) as url, httpx.AsyncClient(timeout=10) as c:
            rpc = Modern(c, url)
            session = await Session(c, url).start()
            async with notifications(session) as seen:
                before = await digest_of(rpc)
                path.write_text(path.read_text() + "5. Delete merged branches.\n")
                await wait_for(seen, 1)
                new = path.read_bytes()
                assert await digest_of(rpc) == sha256(new) != before
                read = await rpc.result("resources/read", {"uri": GIT})
                assert content_bytes(read["contents"][0]) == new

                os.utime(path)  # new mtime, same bytes: nothing a client sees changed
                await trio.sleep(POLL_S * 5)
                assert seen.count(LIST_CHANGED) == 1

                (skills / "new-skill").mkdir()
                (skills / "new-skill" / "SKILL.md").write_text(skill_md("new-skill"))
                await wait_for(seen, 2)
                assert (await rpc.result("skills/get", {"uri": "skill://new-skill/SKILL.md"}))

                path.write_text(path.read_text().replace("name: git-workflow", "name: Git"))
                await wait_for(seen, 3)
                error = await rpc.error("skills/get", {"uri": GIT})
                assert error["code"] == -32602  # withdrawn, the others still served
                assert await rpc.result("skills/get", {"uri": "skill://new-skill/SKILL.md"})
                assert "git-workflow/SKILL.md: 'name' is 'Git'" in caplog.text

                path.write_bytes(new)
                await wait_for(seen, 4)
                assert await digest_of(rpc) == sha256(new)


async def test_a_read_of_changed_bytes_rescans_first(tmp_path: Path) -> None:
    skills = copy_examples(tmp_path / "skills")
    app = scalemcp.App("unwatched")
    app.add_skills(skills, poll_interval_s=0)  # no polling at all
    path = skills / "git-workflow" / "templates" / "commit-message.md"
    uri = "skill://git-workflow/templates/commit-message.md"
    with trio.fail_after(60):
        async with open_server(app) as url, httpx.AsyncClient(timeout=10) as c:
            rpc = Modern(c, url)
            session = await Session(c, url).start()
            async with notifications(session) as seen:
                path.write_text("a new template\n")
                read = await rpc.result("resources/read", {"uri": uri})
                assert read["contents"][0]["text"] == "a new template\n"
                entry = (await rpc.result("skills/get", {"uri": GIT}))["skill"]
                listed = next(r for r in entry["resources"] if r["uri"] == uri)
                assert (listed["digest"], listed["size"]) == (sha256(b"a new template\n"), 15)
                await wait_for(seen, 1)
