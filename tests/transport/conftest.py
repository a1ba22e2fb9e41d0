"""Print how many hostile inputs each fuzz category ran (test_hostile_fuzz.py)."""

from __future__ import annotations

import pytest

from .fuzz_counts import summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary()
    if lines:
        terminalreporter.section("hostile inputs generated (category/era: count)")
        for line in lines:
            terminalreporter.write_line(line)
