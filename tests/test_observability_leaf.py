"""Metrics, logs and traces are a leaf: ``scalemcp.observability`` imports nothing above it.

Every layer (state, engine, transport, the process supervisor) counts, logs and traces, so
the leaf must not import any of them back, not even for type checking: it would tie the
bottom of the tree to its top again. Read from the source with ``ast``, so an import inside
a function or under ``TYPE_CHECKING`` counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import scalemcp.observability

LEAF = "scalemcp.observability"
#: What the leaf may import of scalemcp besides itself: a constant.
ALLOWED = {"scalemcp._version"}
PACKAGE = Path(scalemcp.observability.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), at any depth."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from . import x`` imports the module ``base.x`` when x is one.
            found.update(f"{base}.{alias.name}" for alias in node.names)
            found.add(base)
    return found


def _above(name: str) -> bool:
    inside = name == LEAF or name.startswith(LEAF + ".")
    return name.startswith("scalemcp") and not inside and name not in ALLOWED and not any(
        name.startswith(allowed + ".") for allowed in ALLOWED)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_leaf_imports_nothing_of_scalemcp_above_it(path: Path) -> None:
    upward = sorted(name for name in imports_of(path) if _above(name))
    assert not upward, f"{_module_name(path)} imports {upward}"


def test_the_check_sees_relative_and_deferred_imports() -> None:
    """The checker itself: a relative import two levels up, inside a function, is found."""
    source = "def f():\n    from ..engine.call import Call\n    from . import logs\n"
    found = imports_of(PACKAGE / "metrics.py", source)
    assert {name for name in found if _above(name)} == {"scalemcp.engine.call",
                                                        "scalemcp.engine.call.Call"}
    assert "scalemcp.observability.logs" in found
