"""The layers of docs/architecture.md, kept by the imports: none runs upward.

Every import of scalemcp code, at any depth (module level, inside functions, under
TYPE_CHECKING), counts. And no version string is compared outside the feature table.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "scalemcp"

#: Bottom to top. A package may import its own layer and those below it, nothing above.
LAYERS: list[set[str]] = [
    {"_version", "errors"},
    {"observability"},          # metrics, logs, tracing: a leaf
    {"protocol", "config"},     # sans-IO
    {"serving"},                # the connection loop under the ASGI app (on Hypercorn)
    {"state"},
    {"tasks"},                  # durable tasks' runner: claims, leases, cancellation
    {"app"},
    {"engine"},
    {"security"},
    {"transport"},
    {"preflight"},
    # process concerns: supervisor, entry points, the task-only worker
    {"server", "testing", "ops", "_worker", "task_worker"},
    {"cli", "__init__"},
]
#: The load generator behind `scalemcp bench` stands beside the server, on the protocol.
BESIDE = {"loadgen": {"_version", "errors", "protocol"}}


def layer_of(unit: str) -> int:
    return next(i for i, units in enumerate(LAYERS) if unit in units)


def unit_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path) -> set[str]:
    """The scalemcp units ``path`` imports from (relative and absolute)."""
    module = list(path.relative_to(ROOT).with_suffix("").parts)  # a/b/__init__ too
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module[: len(module) - node.level]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target] if node.module or len(target) > 1 else [
                    [*target, alias.name] for alias in node.names]
            else:
                names = [(node.module or "").split(".")]
            for name in names:
                if name[0] == "scalemcp" and len(name) > 1:
                    found.add(name[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.split(".")
                if name[0] == "scalemcp" and len(name) > 1:
                    found.add(name[1])
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_upward(path: Path) -> None:
    unit = unit_of(path)
    targets = imports(path) - {unit}
    if unit in BESIDE:
        assert targets <= BESIDE[unit], f"{path}: imports {sorted(targets - BESIDE[unit])}"
        return
    level = layer_of(unit)
    top = layer_of("cli")  # only the command line reaches the load generator
    upward = sorted(t for t in targets if (level < top if t in BESIDE else layer_of(t) > level))
    assert not upward, f"{path} ({unit}) imports from a higher layer: {upward}"


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(p) for p in FILES}
    placed = set().union(*LAYERS) | set(BESIDE)
    assert units <= placed, f"place these in LAYERS: {sorted(units - placed)}"


def test_the_checker_sees_upward_imports() -> None:
    """A file of engine/ importing transport/ is caught (so the test above can fail)."""
    probe = PACKAGE / "engine" / "_probe_for_test.py"
    probe.write_text("from ..transport.http import Request\n")
    try:
        assert "transport" in imports(probe)
    finally:
        probe.unlink()


_COMPARED = re.compile(r"""[<>]=?\s*["']\d{4}-\d{2}-\d{2}["']|["']\d{4}-\d{2}-\d{2}["']\s*[<>]""")


def test_no_version_string_comparisons_outside_the_feature_table() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}" for p in FILES if p.name != "versions.py"
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if _COMPARED.search(line)]
    assert not found, f"compare features(version), not version strings: {found}"
