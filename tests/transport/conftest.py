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


@pytest.fixture(scope="session")
def dev_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One self-signed certificate and key for the TLS servers of these tests."""
    from scalemcp.security.dev_cert import make_dev_cert

    return make_dev_cert(tmp_path_factory.mktemp("cert"), ["127.0.0.1", "localhost"])
