"""The comparative suite's own scalemcp target starts and serves (bench/suite uses it)."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.conftest import ROOT


def test_scalemcp_bench_target_serves() -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "targets" / "scalemcp_server.py"),
                             "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        url = f"http://127.0.0.1:{line.split()[1]}/mcp"
        answer = httpx.post(url, timeout=10, headers={
            "accept": "application/json, text/event-stream"}, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}})
        assert answer.status_code == 200, answer.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
