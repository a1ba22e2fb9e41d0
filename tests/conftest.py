"""Shared fixtures: real servers on ephemeral loopback ports, subprocesses, node tools."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on {port} within {timeout}s")


class ServerProcess:
    def __init__(self, target: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scalemcp.cli", "serve", target, "--port", str(self.port),
             *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace")


@pytest.fixture(scope="session")
def conformance_server() -> Iterator[ServerProcess]:
    """``scalemcp serve examples.conformance:app`` as a real process."""
    server = ServerProcess("examples.conformance:app")
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


@pytest.fixture(scope="session")
def quickstart_server() -> Iterator[ServerProcess]:
    server = ServerProcess("examples.quickstart:app")
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


@pytest.fixture
def node_tools() -> dict[str, str]:
    return node_env()


os.environ.setdefault("PYTHONUNBUFFERED", "1")
