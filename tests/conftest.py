"""Shared fixtures: real servers (tests/harness), node tools."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.harness.serve import ROOT, ServeProcess

NODE_ENV = ROOT / ".cache" / "node-tools" / "env.sh"


def node_env() -> dict[str, str]:
    """Environment with Node 22 and the conformance/SDK paths (scripts/install-node-tools)."""
    if not NODE_ENV.exists():
        pytest.fail("Node tools missing: run scripts/install-node-tools (scripts/test does)")
    out = subprocess.run(
        ["bash", "-c", f"source {NODE_ENV} && env -0"], capture_output=True, check=True
    ).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return env


@pytest.fixture(scope="session")
def conformance_server() -> Iterator[ServeProcess]:
    """``scalemcp serve examples.conformance:app`` as a real process."""
    server = ServeProcess("examples.conformance:app")
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


@pytest.fixture(scope="session")
def quickstart_server() -> Iterator[ServeProcess]:
    server = ServeProcess("examples.quickstart:app")
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


@pytest.fixture
def node_tools() -> dict[str, str]:
    return node_env()


os.environ.setdefault("PYTHONUNBUFFERED", "1")
