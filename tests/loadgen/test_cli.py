"""``scalemcp bench`` as a new user meets it: the real CLI in a subprocess, real servers.

The servers are the README's quickstart app (tools ``add``, ``echo``, ``countdown``,
``ask_name``; none of the bench targets' ``progress``, ``ask``, ``touch``), served by
`scalemcp.testing.open_server` in this test's Trio loop while the CLI runs, and a
port where nothing listens. Every error must exit non-zero with at most three lines
on stderr and no traceback.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

import scalemcp
from examples.quickstart import app as quickstart
from scalemcp.cli import main as scalemcp_main
from scalemcp.security.api_keys import hash_key
from scalemcp.testing import open_server
from tests.stub_server import serving

ROOT = Path(__file__).resolve().parents[2]
RUN_CLI = "import sys; from scalemcp.cli import main; sys.exit(main())"
WITHOUT_EXTRAS = (
    "import sys; sys.modules['httpx'] = None; sys.modules['matplotlib'] = None; " + RUN_CLI
)
"""The CLI in an interpreter where importing httpx or matplotlib fails, as when not installed."""
SHORT = ["-c", "2", "-d", "0.5", "--warmup", "0.2", "--timeout", "10"]
LIMIT_S = 60


class Result(msgspec.Struct):
    code: int
    out: str
    err: str


async def cli(*args: str, script: str = RUN_CLI) -> Result:
    with trio.fail_after(LIMIT_S):
        proc = await trio.run_process(
            [sys.executable, "-c", script, "bench", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=ROOT,
        )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def assert_one_error(result: Result, *needles: str, code: int = 1) -> None:
    """Exit ``code``, at most three lines on stderr, no traceback, each needle said."""
    lines = result.err.strip().splitlines()
    assert result.code == code, result
    assert "Traceback" not in result.err, result.err
    assert 1 <= len(lines) <= 3, result.err
    for needle in needles:
        assert needle in result.err, (needle, result.err)


@pytest.fixture
async def quickstart_url() -> AsyncIterator[str]:
    async with open_server(quickstart) as url:
        yield url


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A URL whose port is bound (so no one else takes it) but not listening: refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


# -- errors before any load ------------------------------------------------------------


async def test_a_dead_port_is_one_line_and_no_run(closed_url: str) -> None:
    result = await cli(closed_url, *SHORT)
    port = closed_url.split(":")[2].split("/")[0]
    assert_one_error(result, f"cannot connect to 127.0.0.1:{port}", "Connection refused")
    assert result.out == ""  # no report of thousands of retries, no saturation verdict


async def test_a_default_tool_the_server_lacks_is_named_with_the_flag(
    quickstart_url: str,
) -> None:
    result = await cli(quickstart_url, *SHORT, "--scenario", "resume")
    assert_one_error(result, "no tool 'progress'", "--tool", "bench/targets", "countdown")
    assert "lost_events" not in result.out + result.err


async def test_a_given_tool_the_server_lacks(quickstart_url: str) -> None:
    result = await cli(quickstart_url, *SHORT, "--era", "modern", "--tool", "nope")
    assert_one_error(result, "no tool 'nope'", "--tool")


async def test_mixed_needs_the_progress_tool(quickstart_url: str) -> None:
    result = await cli(quickstart_url, *SHORT, "--scenario", "mixed")
    assert_one_error(result, "'progress'", "--scenario mixed")


async def test_wrong_path_and_wrong_era_say_what_to_change(quickstart_url: str) -> None:
    result = await cli(quickstart_url.replace("/mcp", "/nope"), *SHORT)
    assert_one_error(result, "HTTP 404", "MCP endpoint")
    result = await cli(quickstart_url, *SHORT, "--era", "legacy-sse")
    assert_one_error(result, "HTTP 400", "/sse URL")


async def test_a_server_that_is_not_mcp_is_named_so() -> None:
    async def html(scope: dict[str, Any], body: bytes, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html>hello</html>"})

    async with serving(html) as base:
        result = await cli(base + "/mcp", *SHORT)
    assert_one_error(result, "initialize", "not MCP JSON-RPC")


async def test_a_server_that_never_answers_is_a_timeout() -> None:
    with socket.socket() as sock:  # accepts connections (the backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        result = await cli(url, "--timeout", "0.5")
    assert_one_error(result, "did not answer within --timeout 0.5 s")


async def test_missing_credentials_point_to_the_header_flag() -> None:
    config = scalemcp.Config.from_options(auth="api_key", api_keys=[f"{hash_key('k-bench')} bench"])
    async with open_server(quickstart, config) as url:
        assert_one_error(await cli(url, *SHORT), "HTTP 401", "-H")
        ok = await cli(url, *SHORT, "-H", "X-API-Key: k-bench")
    assert ok.code == 0, ok


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--client", "httpx"], "--client httpx needs the httpx package"),
        (["--png", "chart.png"], "--png needs the matplotlib package"),
    ],
)
async def test_a_missing_optional_package_is_one_line(
    closed_url: str, flags: list[str], needle: str
) -> None:
    result = await cli(closed_url, *flags, script=WITHOUT_EXTRAS)
    assert_one_error(result, needle, "pip install", code=2)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "URL"),
        (["localhost:8000"], "not an http(s) URL"),
        (["{url}", "-c", "0"], "--clients: must be 1 or more"),
        (["{url}", "--rate", "0"], "--rate: must be more than 0"),
        (["{url}", "--duration", "x"], "--duration: invalid number"),
        (["{url}", "--args", "{"], "--args: not JSON"),
        (["{url}", "--args", "[1]"], "--args: wants a JSON object"),
        (["{url}", "-H", "no colon"], "--header: wants 'Name: value'"),
        (["{url}", "--scenario", "nope"], "--scenario: invalid choice"),
        (["{url}", "--era", "modern", "--scenario", "resume"], "does not exist in the modern"),
        (["{url}", "--scenario", "listen", "--procs", "2"], "--procs 1"),
        (["{url}", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_print_the_bench_usage(
    closed_url: str, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process through the top-level `scalemcp` entry point (a process each would
    # add seconds of imports per case); the subprocess test below covers the process.
    with pytest.raises(SystemExit) as info:
        scalemcp_main(["bench", *(a.replace("{url}", closed_url) for a in args)])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_error(Result(int(info.value.code or 0), "", captured.err),
                     "usage: scalemcp bench URL", needle, code=2)


async def test_a_usage_error_in_a_real_process(closed_url: str) -> None:
    result = await cli(closed_url, "--clients", "0")
    assert_one_error(result, "usage: scalemcp bench URL", "--clients: must be 1 or more", code=2)


async def test_an_output_in_a_missing_directory_fails_before_the_run(closed_url: str) -> None:
    result = await cli(closed_url, "--json", "no/such/dir/out.json")
    assert_one_error(result, "--json", "does not exist", code=2)


async def test_help_has_plain_text_defaults_and_the_guide() -> None:
    result = await cli("--help")
    assert result.code == 0
    assert "``" not in result.out
    assert "bench/README.md" in result.out
    assert "usage: scalemcp bench URL [options]" in result.out
    from scalemcp.loadgen.cli import build_parser

    for action in build_parser()._actions:
        if action.dest in ("help", "url"):
            continue
        assert action.help, action.option_strings
        assert "(default: " in action.help, action.option_strings


# -- runs against a server that is not a bench target ----------------------------------


async def run_json(url: str, tmp_path: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    out = tmp_path / "report.json"
    result = await cli(url, *SHORT, *args, "--json", str(out), "--markdown", str(out) + ".md")
    assert "Traceback" not in result.err, result.err
    return result, json.loads(out.read_text())


@pytest.mark.parametrize("era", ["session", "modern"])
async def test_elicit_answers_the_requested_schema(
    quickstart_url: str, tmp_path: Path, era: str
) -> None:
    # ask_name requires a "name": a fixed {"answer": ...} made it fail with KeyError.
    result, report = await run_json(
        quickstart_url, tmp_path, "--scenario", "elicit", "--tool", "ask_name", "--era", era
    )
    assert result.code == 0, (result, report["error_samples"])
    assert report["requests"] > 0
    assert report["counters"]["elicitations"] == report["requests"]


async def test_the_report_names_the_tool_and_its_arguments(
    quickstart_url: str, tmp_path: Path
) -> None:
    # add(a: int, b: int) and no --args: the required arguments come from its inputSchema.
    result, report = await run_json(quickstart_url, tmp_path, "--tool", "add")
    assert result.code == 0, result
    assert report["tools_called"] == {"add": {"a": 1, "b": 1}}
    assert report["config"]["tool"] == "add"
    assert 'tool: add {"a":1,"b":1}' in result.out
    assert "add" in (tmp_path / "report.json.md").read_text()


async def test_resume_counts_against_the_announced_total(
    quickstart_url: str, tmp_path: Path
) -> None:
    # countdown(n) has no "steps": the expected count is the total its progress announces.
    result, report = await run_json(
        quickstart_url, tmp_path, "--scenario", "resume", "--tool", "countdown",
        "--args", '{"n": 4}',
    )
    assert result.code == 0, (result, report["error_samples"])
    counters = report["counters"]
    assert counters["events_lost"] == 0
    assert counters["progress_notifications"] == 4 * report["requests"]


async def test_the_deprecated_h11_client_still_runs(quickstart_url: str) -> None:
    result = await cli(quickstart_url, *SHORT, "--client", "h11", "-q")
    assert result.code == 0, result
    assert "--client h11 is deprecated" in result.err


async def test_the_warm_up_shows_as_warm_up(quickstart_url: str) -> None:
    result = await cli(quickstart_url, "-c", "2", "-d", "0.6", "--warmup", "1.2", "--progress")
    assert result.code == 0, result
    lines = result.err.replace("\r", "\n").split("\n")
    warm = [line for line in lines if "warm-up:" in line]
    assert warm, result.err
    measuring = [line for line in lines if " ok " in line and "warm-up" not in line]
    assert measuring, result.err
    assert lines.index(warm[0]) < lines.index(measuring[0])


async def test_a_server_that_dies_mid_run_ends_it_with_one_reason(tmp_path: Path) -> None:
    app = scalemcp.App("dies")
    served = trio.Event()
    calls = 0

    @app.tool
    async def echo(message: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 20:
            served.set()
        return message

    report_path = tmp_path / "report.json"
    result: Result | None = None

    async def run_bench(url: str) -> None:
        nonlocal result
        result = await cli(url, "-c", "2", "-d", "30", "--warmup", "0", "--json", str(report_path))

    async with trio.open_nursery() as nursery, open_server(app) as url:
        nursery.start_soon(run_bench, url)
        await served.wait()
    assert result is not None
    assert result.code == 1
    report = json.loads(report_path.read_text())
    assert "refused connections" in report["aborted"]
    assert "stopped early" in result.out
    assert report["window_s"] < 20  # ended by the abort, not by -d 30
    assert not report["client_cpu"]["saturated"]
