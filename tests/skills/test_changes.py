"""A skill changed on disk: the worker rescans, serves the new digest, and announces
``notifications/resources/list_changed`` once; a touch with no new content announces
nothing; a broken edit withdraws that skill only; a read that finds changed bytes makes
the worker rescan before it answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

import scalemcp
from tests.harness.asgi import open_client

from .support import (
    LIST_CHANGED,
    Rpc,
    Seen,
    content_bytes,
    copy_examples,
    modern,
    notifications,
    session,
    sha256,
    skill_md,
)

POLL_S = 0.2
GIT = "skill://git-workflow/SKILL.md"


async def wait_for(seen: Seen, count: int, timeout: float = 10) -> None:
    """Until ``count`` list_changed arrived in all; then no further one may arrive."""
    with trio.fail_after(timeout):
        await seen.wait_for(LIST_CHANGED, count)
    await trio.sleep(POLL_S * 5)
    assert seen.count(LIST_CHANGED) == count, seen.methods


async def digest_of(rpc: Rpc, uri: str = GIT) -> str:
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
        async with open_client(app, timeout=10) as (url, c):
            rpc = modern(c, url)
            async with notifications(await session(c, url)) as seen:
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
        async with open_client(app, timeout=10) as (url, c):
            rpc = modern(c, url)
            async with notifications(await session(c, url)) as seen:
                path.write_text("a new template\n")
                read = await rpc.result("resources/read", {"uri": uri})
                assert read["contents"][0]["text"] == "a new template\n"
                entry = (await rpc.result("skills/get", {"uri": GIT}))["skill"]
                listed = next(r for r in entry["resources"] if r["uri"] == uri)
                assert (listed["digest"], listed["size"]) == (sha256(b"a new template\n"), 15)
                await wait_for(seen, 1)
