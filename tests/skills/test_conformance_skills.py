"""The three sep-2640 scenarios of the official conformance suite, at both wires, against
``scalemcp serve examples.conformance:app`` (one node; tests/cluster runs them through
the fleet)."""

from __future__ import annotations

from tests.conftest import ServerProcess

from .conformance import run_skill_scenarios


def test_skills_scenarios_run_and_pass(
    conformance_server: ServerProcess, node_tools: dict[str, str]
) -> None:
    summaries = run_skill_scenarios(node_tools, conformance_server.url)
    assert len(summaries) == 6
