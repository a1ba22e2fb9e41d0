"""skills/list, skills/get, resources/read, resources/list and resources/directory/read over
real HTTP against a real server (scalemcp.testing.open_server), in the modern era and the
session era; manifests checked by recomputing every digest from what the server returns."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

import scalemcp
from scalemcp.testing import open_server

from .support import (
    EXAMPLE_SKILLS,
    Modern,
    Session,
    all_skills,
    sha256,
    skill_md,
    verify_entry,
    write_tree,
)

EXTENSION = "io.modelcontextprotocol/skills"


def examples_app(**kwargs: object) -> scalemcp.App:
    app = scalemcp.App("skills-test", **kwargs)  # type: ignore[arg-type]
    app.add_skills(EXAMPLE_SKILLS)
    app.add_skill({"SKILL.md": skill_md("from-code"), "notes/a.txt": "a\n"}, prefix="made")
    return app


@pytest.mark.parametrize("era", ["modern", "session"])
async def test_every_manifest_matches_what_resources_read_returns(era: str) -> None:
    with trio.fail_after(20):
        async with open_server(examples_app()) as url, httpx.AsyncClient(timeout=10) as c:
            rpc = Modern(c, url) if era == "modern" else await Session(c, url).start()
            entries, _ = await all_skills(rpc)
            assert [e["uri"] for e in entries] == [
                "skill://acme/billing/refunds/SKILL.md",
                "skill://git-workflow/SKILL.md",
                "skill://made/from-code/SKILL.md",
            ]
            mime_types: dict[str, str] = {}
            for entry in entries:
                mime_types |= await verify_entry(rpc, entry)
                got = await rpc.result("skills/get", {"uri": entry["uri"]})
                assert got["skill"] == entry
                assert "nextCursor" not in got
            refunds = entries[0]
            assert refunds["frontmatter"]["metadata"] == {"team": "billing", "version": "2.1"}
            assert len(refunds["resources"]) == 4
            assert mime_types["skill://acme/billing/refunds/SKILL.md"] == "text/markdown"
            assert mime_types["skill://acme/billing/refunds/assets/refund-flow.png"] == "image/png"
            assert mime_types["skill://git-workflow/scripts/check-branch.sh"] == \
                "text/x-shellscript"
            png = await rpc.result("resources/read", {
                "uri": "skill://acme/billing/refunds/assets/refund-flow.png"})
            assert "blob" in png["contents"][0]  # binary files travel as blobs
            on_disk = (EXAMPLE_SKILLS / "git-workflow" / "SKILL.md").read_bytes()
            git = entries[1]["resources"]
            assert {"uri": "skill://git-workflow/SKILL.md", "digest": sha256(on_disk),
                    "size": len(on_disk)} in git


async def test_capabilities_and_resource_listing_in_both_eras() -> None:
    with trio.fail_after(20):
        async with open_server(examples_app()) as url, httpx.AsyncClient(timeout=10) as c:
            modern = Modern(c, url)
            discover = await modern.result("server/discover")
            session = await Session(c, url).start()
            for caps in (discover["capabilities"], session.initialize_result["capabilities"]):
                assert caps["extensions"] == {EXTENSION: {"directoryRead": True}}
                assert "resources" in caps
            for older in ("2025-06-18", "2025-03-26"):  # told nothing: no such field then
                caps = (await Session(c, url, older).start()).initialize_result["capabilities"]
                assert "extensions" not in caps
                assert "resources" in caps
            for rpc in (modern, session):
                listed = (await rpc.result("resources/list"))["resources"]
                skill_mds = {r["uri"]: r for r in listed}
                git = skill_mds["skill://git-workflow/SKILL.md"]
                assert git["name"] == "git-workflow"
                assert git["description"].startswith("Follow this team's Git conventions")
                assert git["mimeType"] == "text/markdown"
                assert len(skill_mds) == 3  # SKILL.md files only; the rest by manifest
            listed = await modern.result("skills/list")
            assert (listed["resultType"], listed["cacheScope"]) == ("complete", "private")
            assert "ttlMs" in listed
            got = await modern.result("skills/get", {"uri": "skill://git-workflow/SKILL.md"})
            assert "ttlMs" in got


@pytest.mark.parametrize("era", ["modern", "session"])
async def test_unknown_skills_and_directories_are_invalid_params(era: str) -> None:
    with trio.fail_after(20):
        async with open_server(examples_app()) as url, httpx.AsyncClient(timeout=10) as c:
            rpc = Modern(c, url) if era == "modern" else await Session(c, url).start()
            for uri in ("skill://nope/SKILL.md", "skill://git-workflow",
                        "skill://git-workflow/templates/commit-message.md",
                        "https://example.com/SKILL.md"):
                error = await rpc.error("skills/get", {"uri": uri})
                assert error["code"] == -32602, (uri, error)
            assert "No skill is served at skill://nope/SKILL.md" in (
                await rpc.error("skills/get", {"uri": "skill://nope/SKILL.md"}))["message"]
            assert (await rpc.error("skills/get", {}))["code"] == -32602
            for uri in ("skill://git-workflow/SKILL.md", "skill://nope",
                        "skill://git-workflow/templates/commit-message.md"):
                error = await rpc.error("resources/directory/read", {"uri": uri})
                assert error["code"] == -32602, (uri, error)
            error = await rpc.error("resources/directory/read",
                                    {"uri": "skill://git-workflow/SKILL.md"})
            assert error["message"] == \
                "skill://git-workflow/SKILL.md is not a directory resource"
            bad_cursor = await rpc.error("skills/list", {"cursor": "not-a-cursor"})
            assert bad_cursor["code"] == -32602


async def test_directories_list_their_direct_children() -> None:
    with trio.fail_after(20):
        async with open_server(examples_app()) as url, httpx.AsyncClient(timeout=10) as c:
            rpc = Modern(c, url)

            async def children(uri: str) -> list[tuple[str, str]]:
                result = await rpc.result("resources/directory/read", {"uri": uri})
                assert "nextCursor" not in result
                return [(r["name"], r["mimeType"]) for r in result["resources"]]

            assert await children("skill://acme") == [("billing", "inode/directory")]
            assert await children("skill://acme/billing/refunds") == [
                ("SKILL.md", "text/markdown"), ("assets", "inode/directory"),
                ("examples", "inode/directory"), ("references", "inode/directory")]
            assert await children("skill://git-workflow/templates") == [
                ("commit-message.md", "text/markdown")]
            assert await children("skill://made/from-code/notes") == [("a.txt", "text/plain")]


async def test_pages_never_split_an_entry(tmp_path: Path) -> None:
    skills = {f"s{i:02}/SKILL.md": skill_md(f"s{i:02}") for i in range(7)}
    skills |= {f"s03/extra/{n}.md": f"file {n}\n" for n in range(40)}
    app = scalemcp.App("paged", page_size=3)
    app.add_skills(write_tree(tmp_path / "skills", skills), poll_interval_s=0)
    with trio.fail_after(20):
        async with open_server(app) as url, httpx.AsyncClient(timeout=10) as c:
            rpc = Modern(c, url)
            entries, pages = await all_skills(rpc)
            assert pages == 3
            assert [e["uri"] for e in entries] == [f"skill://s{i:02}/SKILL.md" for i in range(7)]
            assert len(entries[3]["resources"]) == 41  # the whole manifest, on one page
            # Directory listings are paginated too.
            first = await rpc.result("resources/directory/read", {"uri": "skill://s03/extra"})
            names = [r["name"] for r in first["resources"]]
            cursor = first["nextCursor"]
            while cursor:
                page = await rpc.result("resources/directory/read",
                                        {"uri": "skill://s03/extra", "cursor": cursor})
                names += [r["name"] for r in page["resources"]]
                cursor = page.get("nextCursor")
            assert sorted(names) == sorted(f"{n}.md" for n in range(40))


async def test_an_app_without_skills_does_not_answer_the_methods() -> None:
    app = scalemcp.App("plain")

    @app.resource("test://x")
    def x() -> str:
        return "x"

    with trio.fail_after(20):
        async with open_server(app) as url, httpx.AsyncClient(timeout=10) as c:
            session = await Session(c, url).start()
            assert "extensions" not in session.initialize_result["capabilities"]
            for method in ("skills/list", "skills/get", "resources/directory/read"):
                assert (await session.error(method, {"uri": "skill://a/SKILL.md"}))["code"] \
                    == -32601
