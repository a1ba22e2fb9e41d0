"""The `helm test` pod's script, run as the chart renders it against real servers.

The rendered Pod runs ``python -c <files/mcp-smoke.py> MCP_URL READY_URL MODE TOOL``; here the
same script text and mode run against ``scalemcp serve`` processes on loopback (the URLs
pointed at them), so what `helm test` reports is what a real server answered.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.ports import unused_port
from tests.harness.serve import ServeProcess

from .test_helm import chart, helm_test_command, merged, render

__all__ = ["chart"]

API_KEY = "smoke-test-key-0123456789"


def smoke(command: list[str], mcp_url: str, ready_url: str, **env: str) -> tuple[int, str]:
    """Run the rendered test command with local URLs; its exit code and output."""
    argv = [sys.executable, *command[1:3], mcp_url, ready_url, *command[5:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def session_server() -> Iterator[tuple[ServeProcess, int]]:
    metrics = unused_port()  # --metrics-port takes no 0
    server = ServeProcess("examples.quickstart:app", "--metrics-port", str(metrics))
    yield server, metrics
    assert "Traceback" not in server.stop()


def test_session_era_initialize_list_and_call(chart: Any,
                                              session_server: tuple[ServeProcess, int]) -> None:
    server, metrics = session_server
    command = helm_test_command(render(chart, {}))
    code, out = smoke(command, server.url, f"http://127.0.0.1:{metrics}/readyz")
    assert code == 0, out
    assert "initialize: quickstart 1.0.0" in out
    assert "tools/call echo: " in out
    assert "helm test" in out
    assert out.rstrip().endswith("ok")


def test_a_missing_tool_or_an_unready_server_fails(chart: Any,
                                                  session_server: tuple[ServeProcess, int]
                                                  ) -> None:
    server, metrics = session_server
    ready = f"http://127.0.0.1:{metrics}/readyz"
    command = helm_test_command(render(chart, {"tests": {"tool": {"name": "nope"}}}))
    code, out = smoke(command, server.url, ready)
    assert code == 1
    assert "FAILED: tool 'nope' is not listed: set tests.tool" in out
    asks = helm_test_command(render(chart, {"tests": {"tool": {"name": "ask_name",
                                                                "argumentsJson": "{}"}}}))
    code, out = smoke(asks, server.url, ready)
    # The test client declares no capabilities: a tool that needs client input is refused.
    assert (code, "needs the client capability 'elicitation'" in out) == (1, True), out
    code, out = smoke(command, server.url, server.url.removesuffix("/mcp") + "/readyz")
    assert code == 1  # /readyz is not on the MCP port: the test catches a wrong port
    assert "not ready" in out


def test_stateless_discover_list_and_call(chart: Any) -> None:
    command = helm_test_command(render(chart, {"backend": "stateless",
                                               "auth": {"stateKey": "k" * 40},
                                               "tests": {"tool": {"name": "add",
                                                                  "argumentsJson":
                                                                  '{"a": 2, "b": 3}'}}}))
    assert command[5] == "stateless"
    metrics = unused_port()  # --metrics-port takes no 0
    server = ServeProcess("examples.quickstart:app", "--stateless-only", "--metrics-port",
                           str(metrics), "--state-keys", "k" * 40)
    try:
        code, out = smoke(command, server.url, f"http://127.0.0.1:{metrics}/readyz")
    finally:
        log = server.stop()
    assert code == 0, out + log
    assert "server/discover: quickstart 1.0.0" in out
    assert 'tools/call add: [{"type": "text", "text": "5"}]' in out


def test_with_api_keys_a_credential_is_used_or_the_refusal_checked(chart: Any) -> None:
    entry = f"{hashlib.sha256(API_KEY.encode()).hexdigest()} smoke"
    values: dict[str, Any] = {"auth": {"mode": "api_key", "apiKeys": [entry]}}
    command = helm_test_command(render(chart, values))
    credentialed = helm_test_command(render(chart, merged(values, **{
        "tests.credentialSecret": {"name": "k", "key": "key"}})))
    assert command == credentialed  # the credential comes from the env, not the command
    metrics = unused_port()  # --metrics-port takes no 0
    server = ServeProcess("examples.quickstart:app", "--auth", "api_key", "--api-keys", entry,
                           "--metrics-port", str(metrics))
    ready = f"http://127.0.0.1:{metrics}/readyz"
    try:
        refused = smoke(command, server.url, ready, MCP_TEST_AUTH="api_key")
        called = smoke(command, server.url, ready, MCP_TEST_AUTH="api_key",
                       MCP_TEST_CREDENTIAL=API_KEY)
        wrong = smoke(command, server.url, ready, MCP_TEST_AUTH="api_key",
                      MCP_TEST_CREDENTIAL="not-the-key")
    finally:
        server.stop()
    assert refused[0] == 0, refused[1]
    assert "initialize: 401 with a Bearer challenge" in refused[1]
    assert called[0] == 0, called[1]
    assert "tools/call echo" in called[1]
    assert wrong[0] == 1
    assert "initialize: HTTP 401, expected 200" in wrong[1]
