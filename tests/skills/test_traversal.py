"""No URI reaches outside the skills directory: hostile URIs (``..``, encoded separators,
backslashes, links out of the tree, links swapped in after the scan) are refused, and the
kernel (inotify) reports that no file outside the tree was ever opened."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import trio

import scalemcp
from tests.harness.asgi import open_client

from .inotify import OpenWatch
from .support import modern, session, skill_md, write_tree

HOSTILE = [
    "skill://docs/../../outside/secret.txt",
    "skill://docs/../docs/guide.md",
    "skill://docs/%2e%2e/%2e%2e/outside/secret.txt",
    "skill://docs/%2E%2E/docs/guide.md",
    "skill://docs/..%2F..%2Foutside%2Fsecret.txt",
    "skill://docs%2F..%2F..%2Foutside/secret.txt",
    "skill://docs/sub%2ffile.md",
    "skill://docs/./guide.md",
    "skill://docs//guide.md",
    "skill://docs/guide.md/..",
    "skill://docs\\..\\..\\outside\\secret.txt",
    "skill://docs/%5c..%5c..%5coutside%5csecret.txt",
    "skill://../outside/secret.txt",
    "skill://docs/guide.md%00.png",
    "skill://docs/guide.md?x=../../outside/secret.txt",
    "skill://docs/guide.md#/../../outside/secret.txt",
    "skill://docs/",
]
#: Well-formed URIs naming what links out of the tree: simply not served.
LINKED_OUT = ["skill://docs/link-out.md", "skill://docs/dir-out/secret.txt",
              "skill://docs/dir-out"]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, str]:
    """skills/docs (SKILL.md, guide.md, sub/file.md, and links out), and outside/ with a
    secret no response may carry."""
    marker = "SECRET-" + secrets.token_hex(8)
    outside = write_tree(tmp_path / "outside", {"secret.txt": marker + "\n",
                                                "file.md": marker + "\n"})
    skills = write_tree(tmp_path / "skills", {
        "docs/SKILL.md": skill_md("docs"),
        "docs/guide.md": "# Guide\n",
        "docs/sub/file.md": "inside\n",
    })
    os.symlink(outside / "secret.txt", skills / "docs" / "link-out.md")
    os.symlink(outside, skills / "docs" / "dir-out")
    os.symlink(os.path.relpath(outside / "secret.txt", skills / "docs"),
               skills / "docs" / "relative-out.md")
    return skills, outside, marker


def make_app(skills: Path) -> scalemcp.App:
    app = scalemcp.App("hostile")
    # No polling: only a read that finds a changed file makes this worker look again.
    app.add_skills(skills, poll_interval_s=0)
    return app


async def test_hostile_uris_are_invalid_params_and_nothing_outside_is_opened(
    tree: tuple[Path, Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    skills, outside, marker = tree
    with OpenWatch(outside) as watch, trio.fail_after(30):
        app = make_app(skills)
        files = set(app.skills.catalog.files)
        assert files == {"skill://docs/SKILL.md", "skill://docs/guide.md",
                         "skill://docs/sub/file.md"}
        assert "a symbolic link out of the skills directory; not served" in caplog.text
        async with open_client(app, timeout=10) as (url, c):
            stateless = modern(c, url)
            current = await session(c, url)
            bodies = []
            for rpc in (stateless, current):
                for uri in HOSTILE:
                    for method in ("resources/read", "skills/get", "resources/directory/read"):
                        message = await rpc.post(method, {"uri": uri})
                        bodies.append(str(message))
                        assert message.get("error", {}).get("code") == -32602, (method, uri)
                for uri in LINKED_OUT:
                    message = await rpc.post("resources/read", {"uri": uri})
                    bodies.append(str(message))
                    # Not served: -32602 in 2026-07-28, "resource not found" before it.
                    code = -32602 if rpc is stateless else -32002
                    assert message["error"]["code"] == code, (uri, message)
            for rpc in (stateless, current):
                listing = await rpc.post("resources/directory/read", {"uri": "skill://docs"})
                names = [r["name"] for r in listing["result"]["resources"]]
                assert names == ["SKILL.md", "guide.md", "sub"]
                bodies.append(str(await rpc.post("skills/list")))
        assert not any(marker in body for body in bodies)
        assert watch.touched() == []  # the kernel saw no open or read outside the tree


async def test_links_swapped_in_after_the_scan_are_never_followed(
    tree: tuple[Path, Path, str],
) -> None:
    skills, outside, marker = tree
    with OpenWatch(outside) as watch, trio.fail_after(30):
        app = make_app(skills)
        async with open_client(app, timeout=10) as (url, c):
            rpc = modern(c, url)
            guide = await rpc.result("resources/read", {"uri": "skill://docs/guide.md"})
            assert guide["contents"][0]["text"] == "# Guide\n"
            # A file becomes a link out; a directory becomes a link to a directory out.
            (skills / "docs" / "guide.md").unlink()
            os.symlink(outside / "secret.txt", skills / "docs" / "guide.md")
            (skills / "docs" / "sub" / "file.md").unlink()
            (skills / "docs" / "sub").rmdir()
            os.symlink(outside, skills / "docs" / "sub")
            for uri in ("skill://docs/guide.md", "skill://docs/sub/file.md"):
                message = await rpc.post("resources/read", {"uri": uri})
                assert message["error"]["code"] == -32602, message
                assert marker not in str(message)
            # The read made the worker rescan: the manifest no longer lists them.
            entry = (await rpc.result("skills/get", {"uri": "skill://docs/SKILL.md"}))["skill"]
            assert [r["uri"] for r in entry["resources"]] == ["skill://docs/SKILL.md"]
        assert watch.touched() == []


def test_start_up_refuses_nothing_but_reports_links_out(
    tree: tuple[Path, Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    skills, _, _ = tree
    make_app(skills)
    warned = [r.getMessage() for r in caplog.records if r.name == "scalemcp.skills"]
    assert sorted(w.split(": ", 1)[1].split("/")[-1].split(":")[0] for w in warned) == [
        "dir-out", "link-out.md", "relative-out.md"]
