"""End to end: ``scalemcp bench`` (``main([...])``) against the official SDK on uvicorn.

Each server runs in a subprocess that binds port 0 and prints ``PORT <n>``
once its socket is listening, so nothing polls and nothing sleeps.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp.server.mcpserver  # noqa: F401  (the SDK target servers run on these)
import pytest
import uvicorn  # noqa: F401

from scalemcp.loadgen.cli import main, run
from scalemcp.loadgen.config import BenchConfig

ROOT = Path(__file__).resolve().parents[2]
SDK_TARGET = ROOT / "bench" / "targets" / "sdk_server.py"
START_LIMIT_S = 30.0



def start_target(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, str(SDK_TARGET), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_LIMIT_S
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
        if not ready:
            proc.kill()
            pytest.fail(f"target {args} did not report its port within {START_LIMIT_S} s")
        chunk = os.read(proc.stdout.fileno(), 100)
        if not chunk:
            pytest.fail(f"target {args} exited with {proc.wait()} before reporting a port")
        line += chunk
    word, port = line.split()
    assert word == b"PORT"
    return proc, int(port)


def stop_target(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def sdk_sse() -> Iterator[str]:
    """Stateful SDK server with SSE answers; also serves 2026-07-28 requests."""
    proc, port = start_target("--mode", "sse")
    yield f"http://127.0.0.1:{port}/mcp"
    stop_target(proc)


@pytest.fixture(scope="module")
def sdk_hypercorn() -> Iterator[str]:
    """The same SDK app on hypercorn, which also speaks h2c."""
    proc, port = start_target("--mode", "sse", "--server", "hypercorn")
    yield f"http://127.0.0.1:{port}/mcp"
    stop_target(proc)


@pytest.fixture(scope="module")
def sdk_legacy() -> Iterator[str]:
    proc, port = start_target("--mode", "legacy-sse")
    yield f"http://127.0.0.1:{port}/sse"
    stop_target(proc)


def bench(
    url: str, tmp_path: Path, *args: str, tolerate: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Run ``main`` for about a second and check the report: work done, no errors
    except kinds in ``tolerate`` (findings about the server, not the bench)."""
    out = tmp_path / "report.json"
    md = tmp_path / "report.md"
    argv = [url, "-c", "4", "-d", "1", "--warmup", "0.2", "--timeout", "10", "-q"]
    code = main([*argv, *args, "--json", str(out), "--markdown", str(md), "--no-progress"])
    report: dict[str, Any] = json.loads(out.read_text())
    assert md.read_text().startswith("### ")
    assert set(report["errors_by_kind"]) <= tolerate, report["error_samples"]
    if tolerate:
        return report
    assert isinstance(report["requests"], int)
    assert report["requests"] > 0
    assert code == 0
    return report


@pytest.mark.parametrize("era", ["session", "modern"])
@pytest.mark.parametrize("scenario", ["call", "list", "initialize"])
def test_scenarios_against_the_sdk(sdk_sse: str, tmp_path: Path, era: str, scenario: str) -> None:
    report = bench(sdk_sse, tmp_path, "--era", era, "--scenario", scenario)
    expected = {
        "call": "tools/call",
        "list": "tools/list",
        "initialize": "initialize" if era == "session" else "server/discover",
    }[scenario]
    ops = report["ops"]
    assert isinstance(ops, dict)
    assert list(ops) == [expected]
    cpu = report["client_cpu"]
    assert isinstance(cpu, dict)
    assert cpu["us_per_request"] > 0


def test_progress_and_open_loop(sdk_sse: str, tmp_path: Path) -> None:
    report = bench(sdk_sse, tmp_path, "--scenario", "call-progress", "--rate", "100")
    counters = report["counters"]
    assert isinstance(counters, dict)
    assert counters["progress_notifications"] == 5 * report["requests"]  # type: ignore[operator]
    other = report["other"]
    assert isinstance(other, dict)
    assert "schedule_lag" in other


def test_elicit_in_both_eras(sdk_sse: str, tmp_path: Path) -> None:
    for era in ("session", "modern"):
        report = bench(sdk_sse, tmp_path, "--scenario", "elicit", "--era", era)
        counters = report["counters"]
        assert isinstance(counters, dict)
        assert counters["elicitations"] == report["requests"]


def test_two_processes_merge_into_one_report(sdk_sse: str, tmp_path: Path) -> None:
    # A long duration, so the request count (not the clock) ends the run even when loaded.
    report = bench(sdk_sse, tmp_path, "--procs", "2", "--requests", "200", "-d", "60",
                   "--scenario", "list")
    assert report["requests"] == 200
    cpu = report["client_cpu"]
    assert isinstance(cpu, dict)
    assert cpu["procs"] == 2


@pytest.mark.parametrize(
    ("era", "scenario"),
    [("session", "call"), ("modern", "call"), ("session", "call-progress"), ("modern", "elicit")],
)
def test_http2(sdk_hypercorn: str, tmp_path: Path, era: str, scenario: str) -> None:
    bench(sdk_hypercorn, tmp_path, "--http2", "--era", era, "--scenario", scenario)


def test_resume_counts_lost_and_duplicated_events(sdk_sse: str, tmp_path: Path) -> None:
    # The SDK keys its event store by request id, which repeats across sessions,
    # so concurrent sessions' replays get mixed up; the bench reports that as
    # lost events, or a timeout when the response itself went to another
    # session's replay: findings about the SDK, tolerated here.
    report = bench(
        sdk_sse,
        tmp_path,
        "--scenario",
        "resume",
        tolerate=frozenset({"lost_events", "duplicate_events", "timeout"}),
    )
    counters = report["counters"]
    assert report["requests"] > 0
    assert counters["resume_reconnects"] >= report["requests"]
    lost_ops = report["errors_by_kind"].get("lost_events", 0)
    assert counters["events_lost"] >= lost_ops


def test_legacy_sse(sdk_legacy: str, tmp_path: Path) -> None:
    bench(sdk_legacy, tmp_path, "--era", "legacy-sse", "--scenario", "call")


@pytest.mark.parametrize(
    ("era", "http2"), [("session", False), ("modern", False), ("session", True)]
)
def test_httpx_client_cross_check(
    sdk_sse: str, sdk_hypercorn: str, tmp_path: Path, era: str, http2: bool
) -> None:
    url = sdk_hypercorn if http2 else sdk_sse
    extra = ["--http2"] if http2 else []
    report = bench(url, tmp_path, "--client", "httpx", "--era", era, "--scenario", "call-progress",
                   *extra)
    assert report["config"]["client"] == "httpx"
    assert report["counters"]["progress_notifications"] == 5 * report["requests"]


@pytest.mark.parametrize("client", ["raw", "httpx"])
def test_http2_against_an_http1_server_is_one_line(
    sdk_sse: str, client: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # uvicorn speaks no HTTP/2: the check before the run says so instead of a report
    # of instant failures (which once also hid the error and measured a 0 s window).
    assert main([sdk_sse, "--http2", "--client", client, "-d", "1", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "broke the HTTP exchange" in captured.err
    assert "without --http2" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_instant_failures_do_not_starve_the_clock(sdk_sse: str) -> None:
    # Without the check, every operation fails before any I/O; the run must still
    # last its duration and count them, not spin until the pacer runs out.
    config = BenchConfig(url=sdk_sse, http2=True, clients=2, duration_s=1.0, warmup_s=0)
    report = run(config, check=False)
    assert report.requests == 0
    assert set(report.errors_by_kind) <= {"protocol", "setup:protocol"}
    assert report.window_s >= 0.9
    assert report.client_cpu.cores_used <= 2.0


def test_resume_reports_a_failing_call_as_its_error_not_lost_events(sdk_sse: str) -> None:
    # Even past the check (here skipped), a call to a missing tool is its own error.
    config = BenchConfig(url=sdk_sse, scenario="resume", tool="nope", clients=2, duration_s=0.5,
                         warmup_s=0, timeout_s=10)
    report = run(config, check=False)
    assert report.errors > 0
    assert "lost_events" not in report.errors_by_kind, report.errors_by_kind
    assert report.counters.get("events_lost", 0) == 0
    assert set(report.errors_by_kind) <= {"tool_error", "jsonrpc_-32602", "resume_failed"}, (
        report.error_samples
    )
