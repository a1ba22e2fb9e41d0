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
