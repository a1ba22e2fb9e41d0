"""The official MCP conformance suites against ``scalemcp serve examples.conformance:app``.

See docs/conformance.md for what each suite checks and why its exit code is the verdict.
"""

from __future__ import annotations

from tests.harness.serve import ServeProcess

from .conformance import failing as _failing
from .conformance import full_suite_0_1_16, skill_scenarios, task_scenarios
from .conformance import run as _run


def test_conformance_0_1_16_full_suite(
    conformance_server: ServeProcess, node_tools: dict[str, str]
) -> None:
    full_suite_0_1_16(node_tools, conformance_server.url)


def test_conformance_0_2_required_2026_07_28(
    conformance_server: ServeProcess, node_tools: dict[str, str]
) -> None:
    out = _run(node_tools, "CONFORMANCE_02", conformance_server.url,
               "--requirements", "2026-07-28")
    assert "✓ server-stateless: 30 passed, 0 failed" in out, out[-6000:]
    # The tasks extension's scenarios run here too (not scored): none may fail either.
    assert _failing(out) == set(), out[-6000:]


def test_conformance_0_2_required_2025_11_25(
    conformance_server: ServeProcess, node_tools: dict[str, str]
) -> None:
    out = _run(node_tools, "CONFORMANCE_02", conformance_server.url,
               "--requirements", "2025-11-25")
    assert _failing(out) == set(), out[-6000:]


def test_conformance_0_2_skills_extension(
    conformance_server: ServeProcess, node_tools: dict[str, str]
) -> None:
    """sep-2640-skills-* at both wires: run (the extension is declared), none skipped."""
    summaries = skill_scenarios(node_tools, conformance_server.url)
    assert len(summaries) == 6


def test_conformance_0_2_tasks_extension(
    conformance_server: ServeProcess, node_tools: dict[str, str]
) -> None:
    """tasks-* (SEP-2663) at 2026-07-28: every scenario runs and every check passes."""
    summaries = task_scenarios(node_tools, conformance_server.url)
    assert len(summaries) == 9
