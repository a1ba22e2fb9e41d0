"""The conformance suite's skills scenarios (0.2.0-alpha.12), run against a URL at both
wires: the suite's default for extension scenarios (2025-11-25, reading the extension
from ``initialize``) and 2026-07-28 (``server/discover``; ``--force``, since extension
scenarios sit outside the spec timeline). Shared by the one-node and the fleet tests."""

from __future__ import annotations

import re

from tests.interop.conformance import run

#: Each scenario's checks, all of which must run and pass (none skipped, none warned).
SCENARIOS = {
    "sep-2640-skills-directory": 7,
    "sep-2640-skills-enumeration": 32,
    "sep-2640-skills-manifest": 6,
}
WIRES = {"2025-11-25": (), "2026-07-28": ("--spec-version", "2026-07-28", "--force")}


def run_skill_scenarios(env: dict[str, str], url: str) -> dict[str, str]:
    """Run every skills scenario at every wire; returns the summary line of each run."""
    summaries = {}
    for wire, extra in WIRES.items():
        for scenario, checks in SCENARIOS.items():
            out = run(env, "CONFORMANCE_02", url, "--scenario", scenario, *extra)
            assert "SKIPPED" not in out, out[-6000:]
            summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings", out)
            assert summary is not None, out[-6000:]
            assert summary.groups() == (str(checks), str(checks), "0", "0"), out[-6000:]
            summaries[f"{scenario}@{wire}"] = summary.group(0)
    return summaries
