"""skills/list, skills/get, resources/read, resources/list and resources/directory/read,
the app served in memory (tests/harness/asgi.py), in the modern era and the session era;
manifests checked by recomputing every digest from what the server returns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

import scalemcp
from scalemcp.protocol import classify
from tests.harness.asgi import open_client

from .support import (
    EXAMPLE_SKILLS,
    EXTENSION,
    all_skills,
    modern,
    session,
    sha256,
    skill_md,
    verify_entry,
    write_tree,
)


def examples_app(**kwargs: object) -> scalemcp.App:
    app = scalemcp.App("skills-test", **kwargs)  # type: ignore[arg-type]
    app.add_skills(EXAMPLE_SKILLS)
    app.add_skill({"SKILL.md": skill_md("from-code"), "notes/a.txt": "a\n"}, prefix="made")
    return app


@pytest.mark.parametrize("era", ["modern", "session"])
async def test_every_manifest_matches_what_resources_read_returns(era: str) -> None:
    with trio.fail_after(20):
        async with open_client(examples_app(), timeout=10) as (url, c):
            rpc = modern(c, url) if era == "modern" else await session(c, url)
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
        async with open_client(examples_app(), timeout=10) as (url, c):
            stateless = modern(c, url)
            discover = await stateless.result("server/discover")
            current = await session(c, url)
            for caps in (discover["capabilities"], current.initialized["capabilities"]):
                assert caps["extensions"] == {EXTENSION: {"directoryRead": True}}
                assert "resources" in caps
            for older in ("2025-06-18", "2025-03-26"):  # told nothing: no such field then
                caps = (await session(c, url, older)).initialized["capabilities"]
                assert "extensions" not in caps
                assert "resources" in caps
            for rpc in (stateless, current):
                listed = (await rpc.result("resources/list"))["resources"]
                skill_mds = {r["uri"]: r for r in listed}
                git = skill_mds["skill://git-workflow/SKILL.md"]
                assert git["name"] == "git-workflow"
                assert git["description"].startswith("Follow this team's Git conventions")
                assert git["mimeType"] == "text/markdown"
                assert len(skill_mds) == 3  # SKILL.md files only; the rest by manifest
            listed = await stateless.result("skills/list")
            assert (listed["resultType"], listed["cacheScope"]) == ("complete", "private")
            assert "ttlMs" in listed
            got = await stateless.result("skills/get", {"uri": "skill://git-workflow/SKILL.md"})
            assert "ttlMs" in got


@pytest.mark.parametrize("era", ["modern", "session"])
async def test_unknown_skills_and_directories_are_invalid_params(era: str) -> None:
    with trio.fail_after(20):
        async with open_client(examples_app(), timeout=10) as (url, c):
            rpc = modern(c, url) if era == "modern" else await session(c, url)
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
        async with open_client(examples_app(), timeout=10) as (url, c):
            rpc = modern(c, url)

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
        async with open_client(app, timeout=10) as (url, c):
            rpc = modern(c, url)
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
        async with open_client(app, timeout=10) as (url, c):
            rpc = await session(c, url)
            assert "extensions" not in rpc.initialized["capabilities"]
            for method in ("skills/list", "skills/get", "resources/directory/read"):
                assert (await rpc.error(method, {"uri": "skill://a/SKILL.md"}))["code"] \
                    == -32601


@pytest.mark.parametrize("era", ["modern", "session"])
async def test_params_are_decoded_once_by_classification(
    era: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each skills method's params are decoded once, into its Struct, when the request is
    classified (protocol/classify.py); a param of the wrong type is -32602 from there."""
    decodes: Counter[str] = Counter()
    decode = classify.decode_params

    def counted(method: str, raw: Any) -> Any:
        decodes[method] += 1
        return decode(method, raw)

    with trio.fail_after(20):
        async with open_client(examples_app(), timeout=10) as (url, c):
            rpc = modern(c, url) if era == "modern" else await session(c, url)
            monkeypatch.setattr(classify, "decode_params", counted)
            listed = await rpc.result("skills/list", {})
            uri = listed["skills"][0]["uri"]
            assert (await rpc.result("skills/get", {"uri": uri}))["skill"]["uri"] == uri
            directory = uri.removesuffix("/SKILL.md")
            assert (await rpc.result("resources/directory/read", {"uri": directory}))
            assert decodes == Counter({"skills/list": 1, "skills/get": 1,
                                       "resources/directory/read": 1})
            for method, params in (("skills/get", {"uri": 7}), ("skills/get", {}),
                                   ("resources/directory/read", {"uri": None}),
                                   ("skills/list", {"cursor": []})):
                error = await rpc.error(method, params)
                assert error["code"] == -32602, (method, error)
                assert error["message"].startswith("invalid params: "), error
