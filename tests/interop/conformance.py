"""Running the official MCP conformance CLI (``node <dist/index.js> server ...``) against a
URL, and reading its verdict. Shared by tests/interop (one process) and tests/cluster (a
fleet behind haproxy)."""

from __future__ import annotations

import re
import subprocess


def run(env: dict[str, str], entry: str, url: str, *args: str) -> str:
    """``server --url URL ARGS`` with the CLI named by ``env[entry]``; its output. The exit
    code is the verdict: non-zero fails the test, with the end of the output."""
    proc = subprocess.run(
        ["node", env[entry], "server", "--url", url, *args],
        env=env, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def failing(out: str) -> set[str]:
    """The scenarios the output marks failed (``✗ name: ...``)."""
    return set(re.findall(r"^✗ (\S+):", out, flags=re.MULTILINE))


def full_suite_0_1_16(env: dict[str, str], url: str) -> int:
    """0.1.16 ``server --suite all`` against ``url``: every check passes; how many did."""
    out = run(env, "CONFORMANCE_016", url, "--suite", "all")
    m = re.search(r"Total: (\d+) passed, (\d+) failed", out)
    assert m, out[-3000:]
    assert int(m.group(2)) == 0, out[-6000:]
    passed = int(m.group(1))
    assert passed >= 46, out[-6000:]  # 32 scenarios, some with several checks
    return passed


#: The skills extension's scenarios (0.2.0-alpha.12) and how many checks each has: all
#: must run and pass (none skipped, none warned).
SKILL_SCENARIOS = {
    "sep-2640-skills-directory": 7,
    "sep-2640-skills-enumeration": 32,
    "sep-2640-skills-manifest": 6,
}
#: The wires they run at: the suite's default for extension scenarios (2025-11-25, reading
#: the extension from ``initialize``), and 2026-07-28 (``server/discover``; ``--force``,
#: since extension scenarios sit outside the spec timeline).
SKILL_WIRES = {"2025-11-25": (), "2026-07-28": ("--spec-version", "2026-07-28", "--force")}


def skill_scenarios(env: dict[str, str], url: str) -> dict[str, str]:
    """Every skills scenario at every wire against ``url``; the summary line of each."""
    summaries = {}
    for wire, extra in SKILL_WIRES.items():
        for scenario, checks in SKILL_SCENARIOS.items():
            out = run(env, "CONFORMANCE_02", url, "--scenario", scenario, *extra)
            assert "SKIPPED" not in out, out[-6000:]
            summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings", out)
            assert summary is not None, out[-6000:]
            assert summary.groups() == (str(checks), str(checks), "0", "0"), out[-6000:]
            summaries[f"{scenario}@{wire}"] = summary.group(0)
    return summaries


#: The tasks extension's scenarios (0.2.0-alpha.12, SEP-2663) and how many checks each has;
#: all run at 2026-07-28 (``--force``: extension scenarios sit outside the spec timeline)
#: and must pass. ``tasks-status-notifications`` is left out: the suite skips it itself
#: (its harness predates ``subscriptions/listen``).
TASK_SCENARIOS = {
    "tasks-lifecycle": 9,
    "tasks-capability-negotiation": 5,
    "tasks-wire-fields": 4,
    "tasks-request-state-removal": 3,
    "tasks-mrtr-input": 4,
    "tasks-request-headers": 5,
    "tasks-dispatch-and-envelope": 9,
    "tasks-required-task-error": 3,
    "tasks-mrtr-composition": 2,
}


def task_scenarios(env: dict[str, str], url: str) -> dict[str, str]:
    """Every tasks scenario against ``url``; the summary line of each."""
    summaries = {}
    for scenario, checks in TASK_SCENARIOS.items():
        out = run(env, "CONFORMANCE_02", url, "--scenario", scenario,
                  "--spec-version", "2026-07-28", "--force")
        assert "SKIPPED" not in out, out[-6000:]
        summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings", out)
        assert summary is not None, out[-6000:]
        assert summary.groups() == (str(checks), str(checks), "0", "0"), out[-6000:]
        summaries[scenario] = summary.group(0)
    return summaries
