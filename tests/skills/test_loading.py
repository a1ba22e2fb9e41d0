"""Registering skills: every rule checked at start-up with a message naming the file,
nested prefixes and nested skills, hidden entries, ConfigMap-style links, package data
in a zip, skills from code, and ``scalemcp serve`` refusing to start on a broken skill."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import scalemcp
from scalemcp.app.skills import SkillError

from .support import ROOT, skill_md, write_tree


def load(tmp_path: Path, files: dict[str, str | bytes], **kwargs: str) -> scalemcp.App:
    app = scalemcp.App("t")
    app.add_skills(write_tree(tmp_path / "skills", files), poll_interval_s=0, **kwargs)
    return app


def refused(tmp_path: Path, files: dict[str, str | bytes]) -> str:
    with pytest.raises(SkillError) as caught:
        load(tmp_path, files)
    return str(caught.value)


@pytest.mark.parametrize(("files", "where", "why"), [
    ({"Bad/SKILL.md": skill_md("Bad")}, "Bad/SKILL.md", "'name' is 'Bad': a skill name is"),
    ({"a--b/SKILL.md": skill_md("a--b")}, "a--b/SKILL.md", "no '--'"),
    ({"x/SKILL.md": skill_md("y")}, "x/SKILL.md",
     "'name' is 'y' but the skill's directory is 'x'"),
    ({"x/SKILL.md": "---\ndescription: d\n---\n"}, "x/SKILL.md", "has no 'name'"),
    ({"x/SKILL.md": "---\nname: x\n---\n"}, "x/SKILL.md", "has no 'description'"),
    ({"x/SKILL.md": skill_md("x", "d" * 1025)}, "x/SKILL.md", "'description' has 1025"),
    ({"x/SKILL.md": "# no frontmatter\n"}, "x/SKILL.md", "must begin with YAML frontmatter"),
    ({"x/SKILL.md": "---\nname: x\ndescription: d\non: yes\n---\n"}, "x/SKILL.md",
     "read differently by YAML 1.1 and YAML 1.2"),
    ({"x/SKILL.md": b"---\nname: x\ndescription: \xff\n---\n"}, "x/SKILL.md", "not UTF-8"),
    ({"SKILL.md": skill_md("skills")}, "SKILL.md", "this directory is itself a skill"),
    ({"x/SKILL.md": skill_md("x"), **{f"x/f{i}": "" for i in range(512)}}, "x/SKILL.md",
     "513 files"),
])
def test_each_rule_is_checked_at_start_up_naming_the_file(
    tmp_path: Path, files: dict[str, str | bytes], where: str, why: str
) -> None:
    message = refused(tmp_path, files)
    assert f"{tmp_path / 'skills'}/{where}: " in message, message
    assert why in message, message


def test_a_skill_over_16_mib_is_refused_from_its_size_alone(tmp_path: Path) -> None:
    skills = write_tree(tmp_path / "skills", {"big/SKILL.md": skill_md("big")})
    with (skills / "big" / "blob.bin").open("wb") as f:
        f.truncate(16 * 1024 * 1024)  # sparse: 16 MiB + SKILL.md is over the limit
    app = scalemcp.App("t")
    with pytest.raises(SkillError, match=r"big/SKILL.md: the skill has 2 files of 1677"):
        app.add_skills(skills)


def test_every_broken_skill_is_named_at_once(tmp_path: Path) -> None:
    message = refused(tmp_path, {"A/SKILL.md": skill_md("A"), "b/SKILL.md": skill_md("c"),
                                 "ok/SKILL.md": skill_md("ok")})
    assert "A/SKILL.md" in message
    assert "b/SKILL.md" in message
    assert "ok/SKILL.md" not in message


def test_nested_prefixes_nested_skills_and_hidden_entries(tmp_path: Path) -> None:
    app = load(tmp_path, {
        "acme/billing/refunds/SKILL.md": skill_md("refunds"),
        "acme/billing/refunds/forms/SKILL.md": skill_md("forms"),
        "acme/billing/refunds/forms/f.md": "f\n",
        "acme/billing/refunds/.git/config": "hidden\n",
        "acme/README.md": "not in any skill\n",
        "top/SKILL.md": skill_md("top"),
        "top/with space.md": "x\n",
    }, prefix="corp")
    catalog = app.skills.catalog
    assert [s.uri for s in catalog.skills] == [
        "skill://corp/acme/billing/refunds/SKILL.md",
        "skill://corp/acme/billing/refunds/forms/SKILL.md",
        "skill://corp/top/SKILL.md",
    ]
    refunds, forms, top = catalog.skills
    # The enclosing skill's manifest is complete: the nested skill's files are its files.
    assert [f.uri for f in refunds.files] == [
        "skill://corp/acme/billing/refunds/SKILL.md",
        "skill://corp/acme/billing/refunds/forms/SKILL.md",
        "skill://corp/acme/billing/refunds/forms/f.md",
    ]
    assert [f.uri for f in forms.files] == [
        "skill://corp/acme/billing/refunds/forms/SKILL.md",
        "skill://corp/acme/billing/refunds/forms/f.md",
    ]
    assert [f.uri for f in top.files] == ["skill://corp/top/SKILL.md",
                                          "skill://corp/top/with%20space.md"]
    assert catalog.directory("skill://corp") is not None
    assert [r.name for r in catalog.directory("skill://corp/acme") or ()] == ["billing"]


def test_a_configmap_volume_is_served_through_its_links(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as links into a hidden, atomically swapped directory."""
    skills = tmp_path / "skills"
    write_tree(skills / "..2026_01_01", {"refunds/SKILL.md": skill_md("refunds"),
                                         "refunds/policy.md": "p\n"})
    os.symlink("..2026_01_01", skills / "..data")
    os.symlink("..data/refunds", skills / "refunds")
    app = scalemcp.App("t")
    app.add_skills(skills)
    assert sorted(app.skills.catalog.files) == ["skill://refunds/SKILL.md",
                                                "skill://refunds/policy.md"]


def test_one_skill_from_a_directory_from_package_data_and_from_code(tmp_path: Path) -> None:
    one = write_tree(tmp_path / "pdf", {"SKILL.md": skill_md("pdf"), "ref/a.md": "a\n"})
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("pkg/skills/zipped/SKILL.md", skill_md("zipped"))
        z.writestr("pkg/skills/zipped/data/table.csv", "a,b\n1,2\n")
    app = scalemcp.App("t")
    app.add_skill(one, prefix="docs")
    app.add_skill(zipfile.Path(archive, "pkg/skills/zipped/"))
    app.add_skill({"SKILL.md": skill_md("coded"), "x/y.py": b"print(1)\n"}, prefix="gen/v1")
    assert sorted(app.skills.catalog.files) == [
        "skill://docs/pdf/SKILL.md",
        "skill://docs/pdf/ref/a.md",
        "skill://gen/v1/coded/SKILL.md",
        "skill://gen/v1/coded/x/y.py",
        "skill://zipped/SKILL.md",
        "skill://zipped/data/table.csv",
    ]
    with pytest.raises(SkillError, match="'name' is 'pdf' but the skill's directory is"):
        scalemcp.App("t").add_skill(write_tree(tmp_path / "other", {"SKILL.md": skill_md("pdf")}))
    with pytest.raises(SkillError, match=r"<code>/SKILL.md: 'name' is 'Bad'"):
        scalemcp.App("t").add_skill({"SKILL.md": skill_md("Bad")})
    with pytest.raises(SkillError, match="not a relative path of plain names"):
        scalemcp.App("t").add_skill({"SKILL.md": skill_md("a"), "../x": "x"})


def test_the_same_uri_from_two_sources_is_refused(tmp_path: Path) -> None:
    skills = write_tree(tmp_path / "skills", {"a/SKILL.md": skill_md("a")})
    app = scalemcp.App("t")
    app.add_skills(skills)
    with pytest.raises(SkillError, match=r"skill://a/SKILL\.md is served by both"):
        app.add_skills(skills)
    with pytest.raises(SkillError, match="lies inside this skill"):
        app.add_skill({"SKILL.md": skill_md("b")}, prefix="a")


@pytest.mark.parametrize("prefix", ["a b", "..", "x/../y", "a%2F", "user@host"])
def test_prefixes_must_be_plain_uri_segments(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(SkillError, match="skill prefix"):
        load(tmp_path, {"a/SKILL.md": skill_md("a")}, prefix=prefix)


def test_scalemcp_serve_refuses_to_start_and_says_which_file(tmp_path: Path) -> None:
    skills = write_tree(tmp_path / "skills", {"Refunds/SKILL.md": skill_md("Refunds")})
    proc = subprocess.run(
        [sys.executable, "-m", "scalemcp.cli", "serve", "tests.skills.dir_app:app",
         "--port", "0"],
        cwd=ROOT, env={**os.environ, "SKILLS_DIR": str(skills)}, capture_output=True,
        text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("scalemcp: error: skills that cannot be served:")
    assert f"{skills}/Refunds/SKILL.md: 'name' is 'Refunds'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_skill_file_and_a_resource_at_one_uri_are_refused(tmp_path: Path) -> None:
    """As the decorators refuse a second resource of one URI, either order."""
    tree = write_tree(tmp_path / "skills", {"a/SKILL.md": skill_md("a"), "a/b.md": "b\n"})
    app = scalemcp.App("t")

    @app.resource("skill://a/b.md")
    def shadow() -> str:
        return "not the skill's file"

    with pytest.raises(SkillError, match=r"skill://a/b\.md is already registered as a "
                                         "resource"):
        app.add_skills(tree, poll_interval_s=0)
    assert not app.skills
    app = scalemcp.App("t")
    app.add_skills(tree, poll_interval_s=0)
    with pytest.raises(ValueError, match=r"resource 'skill://a/b\.md' is already registered"):
        app.resource("skill://a/b.md")(shadow)
