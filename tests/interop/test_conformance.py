"""The official MCP conformance suites against ``scalemcp serve examples.conformance:app``.

See docs/conformance.md for what each suite checks and why its exit code is the verdict.
"""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ServerProcess


def _run(env: dict[str, str], entry: str, url: str, *args: str) -> str:
    proc = subprocess.run(
        ["node", env[entry], "server", "--url", url, *args],
        env=env, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def _failing(out: str) -> set[str]:
    return set(re.findall(r"^✗ (\S+):", out, flags=re.MULTILINE))


def test_conformance_0_1_16_full_suite(
    conformance_server: ServerProcess, node_tools: dict[str, str]
) -> None:
    out = _run(node_tools, "CONFORMANCE_016", conformance_server.url, "--suite", "all")
    m = re.search(r"Total: (\d+) passed, (\d+) failed", out)
    assert m, out[-3000:]
    assert int(m.group(2)) == 0, out[-6000:]
    assert int(m.group(1)) >= 46  # 32 scenarios, some with several checks


def test_conformance_0_2_required_2026_07_28(
    conformance_server: ServerProcess, node_tools: dict[str, str]
) -> None:
    out = _run(node_tools, "CONFORMANCE_02", conformance_server.url,
               "--requirements", "2026-07-28")
    assert "✓ server-stateless: 30 passed, 0 failed" in out, out[-6000:]
    # Only the tasks extension (not implemented, not scored) may fail.
    assert {s for s in _failing(out) if not s.startswith("tasks-")} == set(), out[-6000:]


def test_conformance_0_2_required_2025_11_25(
    conformance_server: ServerProcess, node_tools: dict[str, str]
) -> None:
    out = _run(node_tools, "CONFORMANCE_02", conformance_server.url,
               "--requirements", "2025-11-25")
    assert _failing(out) == set(), out[-6000:]
