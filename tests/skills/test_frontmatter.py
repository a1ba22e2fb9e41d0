"""Frontmatter: what is accepted, what is refused and why, and that what scalemcp puts in
an entry is what the YAML 1.2 parser hosts use (eemeli/yaml, the conformance suite's own)
reads out of the same SKILL.md."""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import pytest

from scalemcp.app.skills import frontmatter as fm
from scalemcp.app.skills.frontmatter import FrontmatterError, parse_frontmatter
from tests.conftest import ROOT, node_env

YAML_MODULES = ROOT / ".cache" / "node-tools" / "conf-0.2" / "node_modules"
_PARSE = """
const yaml = require("yaml"); let input = "";
process.stdin.on("data", d => input += d).on("end", () => {
  console.log(JSON.stringify(JSON.parse(input).map(doc => {
    try { return {ok: yaml.parse(doc)}; } catch (e) { return {error: String(e)}; }
  })));
});
"""


def parse_with_eemeli_yaml(docs: list[str]) -> list[dict[str, Any]]:
    """Each document as the npm ``yaml`` package (2.x, YAML 1.2) parses it."""
    env = {**node_env(), "NODE_PATH": str(YAML_MODULES)}
    out = subprocess.run(["node", "-e", _PARSE], input=json.dumps(docs), env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return list(json.loads(out))


def block(yaml_text: str) -> str:
    return f"---\n{yaml_text}---\nbody\n"


ACCEPTED = [
    ("name: a\ndescription: b\n", {"name": "a", "description": "b"}),
    ("name: a\nversion: 1.0\nn: -17\nhex: 0x1F\nexp: 1.5e+3\nempty:\n",
     {"name": "a", "version": 1.0, "n": -17, "hex": 31, "exp": 1500.0, "empty": None}),
    ("d: '2024-01-01'\nyes_: 'yes'\nt: true\nlist: [a, 1, null]\n",
     {"d": "2024-01-01", "yes_": "yes", "t": True, "list": ["a", 1, None]}),
    ("description: >\n  folded\n  text\nlit: |\n  a\n  b\nlast: |-\n  c\n",
     {"description": "folded text\n", "lit": "a\nb\n", "last": "c"}),
    ("metadata:\n  author: x\n  nested: {k: [1, 2]}\n",
     {"metadata": {"author": "x", "nested": {"k": [1, 2]}}}),
    ("name: café ☕ # a comment\n", {"name": "café ☕"}),
]
REFUSED = [
    ("on: yes\n", "read differently by YAML 1.1 and YAML 1.2"),
    ("n: 0777\n", "read differently"),
    ("n: 0o17\n", "read differently"),
    ("n: 1e3\n", "read differently"),
    ("d: 2024-01-01\n", "read differently"),
    ("t: 1:20\n", "read differently"),
    ("big: 1_000\n", "read differently"),
    ("<<: {a: 1}\n", "read differently"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: &x 1\nb: *x\n", "aliases (*name) are not allowed"),
    ("1: one\n", "key 1 in the top level is not a string"),
    ("x: .nan\n", "which JSON cannot carry"),
    ("x: !!binary aGk=\n", "is a bytes, which JSON cannot carry"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("a: [\n", "not valid YAML (line"),
    ("name: a\nlast: |\n  text\n", "ends the frontmatter with a block scalar"),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted(text: str, expected: dict[str, Any]) -> None:
    assert parse_frontmatter(block(text)) == expected


@pytest.mark.parametrize(("text", "why"), REFUSED)
def test_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(FrontmatterError, match=None) as caught:
        parse_frontmatter(block(text))
    assert why in str(caught.value)


def test_other_libraries_changing_pyyaml_change_nothing() -> None:
    """yamllint adds a YAML 1.2-style int resolver to PyYAML's shared table at import."""
    import yamllint.rules.quoted_strings  # noqa: F401

    for text, why in REFUSED:
        with pytest.raises(FrontmatterError) as caught:
            parse_frontmatter(block(text))
        assert why in str(caught.value)
    for text, expected in ACCEPTED:
        assert parse_frontmatter(block(text)) == expected


def test_the_block_is_found_as_hosts_find_it() -> None:
    assert parse_frontmatter("\ufeff---\r\nname: a\r\n---\r\n") == {"name": "a"}
    assert parse_frontmatter("---\nname: a\n---") == {"name": "a"}
    for text in ("name: a\n", "\n---\nname: a\n---\n", "---\nname: a\n", "--- \nname: a\n---\n"):
        with pytest.raises(FrontmatterError, match="must begin with YAML frontmatter"):
            parse_frontmatter(text)


def test_agent_skills_rules() -> None:
    def problems(**front: Any) -> list[str]:
        return fm.validate_frontmatter({"name": "ok", "description": "d", **front}, "ok")

    assert problems() == []
    for bad in ("Ok", "-ok", "ok-", "o--k", "o_k", "a" * 65, "", "ök"):
        assert "'name' is" in fm.validate_frontmatter({"name": bad, "description": "d"},
                                                      None)[0], bad
    assert fm.validate_frontmatter({"name": "a" * 64, "description": "d"}, None) == []
    assert "must equal its name" in fm.validate_frontmatter(
        {"name": "ok", "description": "d"}, "other")[0]
    assert problems(name=5) == ["'name' must be a string, not int"]
    assert problems(description="") == ["'description' must be a non-empty string"]
    assert "1025 characters" in problems(description="x" * 1025)[0]
    assert "501 characters" in problems(compatibility="x" * 501)[0]
    assert problems(metadata=["a"]) == ["'metadata' must be a mapping"]
    assert fm.validate_frontmatter({}, None) == [
        "the frontmatter has no 'name'", "the frontmatter has no 'description'"]


def test_accepted_frontmatter_is_what_eemeli_yaml_reads() -> None:
    docs = [text for text, _ in ACCEPTED]
    for ours, theirs in zip(docs, parse_with_eemeli_yaml(docs), strict=True):
        assert theirs == {"ok": parse_frontmatter(block(ours))}


# Scalars whose type YAML versions (and parsers) disagree on, and ordinary ones.
TRICKY = ["yes", "No", "on", "OFF", "y", "n", "true", "False", "TRUE", "null", "Null", "~", "",
          "0", "017", "0o17", "0x1F", "0b101", "1_000", "1e3", "1E-2", ".5", "5.", "+1", "-0",
          ".inf", "-.Inf", ".NaN", "1:20", "2024-01-01", "2024-01-01 10:00:00", "12:30:45",
          "=", "<<", "0.1", "3.14159", "1.0", "-1.5e+3", "x", "hello world", "'quoted'",
          '"dq"', "'017'", '"yes"', "[1, a]", "{k: v}", "!!str 5", "!!int '7'", "café",
          "a: b", "- a", "#c", "@x", "`x", "%x", "*x", "&x y"]


def corpus() -> list[str]:
    """Each tricky scalar as a value, in a list, nested, and as a key; and 300 seeded
    random mixes of them."""
    docs = []
    for token in TRICKY:
        docs += [f"k: {token}\n", f"k: [{token}]\n", f"k:\n  sub: {token}\n",
                 f"{token}: v\n", f"k:\n  - {token}\n  - x\n"]
    rng = random.Random(2640)
    for _ in range(300):
        docs.append("".join(f"k{i}: {rng.choice(TRICKY)}\n" for i in range(rng.randint(1, 8))))
    return docs


def test_whatever_scalemcp_accepts_eemeli_yaml_reads_alike() -> None:
    """Every document scalemcp accepts is read the same by eemeli/yaml; every one it
    refuses as ambiguous really is read differently under PyYAML's YAML 1.1 rules."""
    docs = corpus()
    accepted = 0
    for doc, theirs in zip(docs, parse_with_eemeli_yaml(docs), strict=True):
        try:
            ours = parse_frontmatter(block(doc))
        except FrontmatterError as exc:
            if "read differently" in str(exc) and "ok" in theirs:
                yaml11 = fm._load(doc, fm._Yaml11Loader)
                assert fm._first_difference(yaml11, theirs["ok"], "") is not None, doc
            continue
        accepted += 1
        assert "ok" in theirs, (doc, theirs)
        assert theirs["ok"] == ours, doc
    assert accepted >= 150, accepted  # the comparison covered plenty of documents
