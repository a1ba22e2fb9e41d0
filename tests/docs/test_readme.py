"""The README's commands and code blocks run as written.

Command 1 runs in a fresh copy of the repository with a fresh venv, exactly as a new user
types it (only the port comes from ``SCALEMCP_PORT=0``, so tests never take a fixed one);
the Python SDK snippet runs against what it serves; the app in 20 lines is served and
called; the scale-out command starts a fleet on a real redis-server.
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scalemcp.testing import open_server
from tests.conftest import ROOT, ServeProcess
from tests.harness.redis import RedisServer

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.DOTALL)
SERVING = re.compile(r"serving (\S+) at (http://[\d.]+:\d+/mcp)")


def block(lang: str, containing: str) -> str:
    found = [body for kind, body in BLOCKS if kind == lang and containing in body]
    assert len(found) == 1, f"README: {len(found)} {lang} blocks contain {containing!r}"
    return found[0]


def command(containing: str) -> str:
    """A shell command of the README (continuation lines joined), its comment dropped."""
    lines = block("bash", containing).replace("\\\n", " ").splitlines()
    found = [line.split("  #")[0].strip() for line in lines if containing in line]
    assert len(found) == 1, found
    return found[0]


SDK_SNIPPET = block("python", "streamable_http_client")


def run_snippet(url: str) -> str:
    script = SDK_SNIPPET.replace("http://127.0.0.1:8000/mcp", url)
    assert script != SDK_SNIPPET, "the snippet no longer names http://127.0.0.1:8000/mcp"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def serve_shell() -> Iterator[type[ShellServer]]:
    started: list[ShellServer] = []

    class Tracked(ShellServer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Tracked
    for server in started:
        server.kill()


class ShellServer:
    """A README command in bash, in its own process group; its URL from the start-up line."""

    def __init__(self, line: str, cwd: Path, env: dict[str, str], timeout_s: float) -> None:
        self.proc = subprocess.Popen(["bash", "-c", line], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.output = ""
        deadline = time.monotonic() + timeout_s
        while not (match := SERVING.search(self.output)):
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.output}"
            assert time.monotonic() < deadline, f"no start-up line:\n{self.output}"
            self._read(deadline - time.monotonic())
        self.target, self.url = match.groups()

    def _read(self, timeout_s: float) -> None:
        assert self.proc.stdout is not None
        if select.select([self.proc.stdout], [], [], max(0.0, timeout_s))[0]:
            self.output += os.read(self.proc.stdout.fileno(), 65536).decode(errors="replace")

    def interrupt(self) -> str:
        """Ctrl-C, as in a terminal: the whole process group gets SIGINT."""
        os.killpg(self.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        self._read(0.5)
        assert self.proc.poll() == 0, self.output
        return self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_command_one_installs_and_serves_in_a_fresh_clone(
    tmp_path: Path, serve_shell: type[ShellServer]
) -> None:
    clone = tmp_path / "scalemcp"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    line = command(".venv/bin/scalemcp serve examples.quickstart:app")
    assert line.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "SCALEMCP"))}
    env["SCALEMCP_PORT"] = "0"
    server = serve_shell(line, clone, env, timeout_s=300)
    assert server.target == "examples.quickstart:app"
    out = run_snippet(server.url)
    assert "add(1, 2) = 3" in out
    assert "tools: add, echo, forecast, countdown, ask_name" in out
    log = server.interrupt()
    assert "Traceback" not in log
    assert "Ctrl-C again to stop at once" in log  # the first Ctrl-C says what a second does
    assert "stopped" in log.splitlines()[-1]


def test_python_sdk_snippet_against_the_quickstart(quickstart_server: ServeProcess) -> None:
    assert "add(1, 2) = 3" in run_snippet(quickstart_server.url)


def test_scale_out_command_on_redis(tmp_path: Path, serve_shell: type[ShellServer]) -> None:
    redis = RedisServer()
    try:
        line = block("bash", "--workers 2 --redis-url").replace("\\\n", " ")
        line = line.replace("redis://127.0.0.1:6379/0", f"redis://127.0.0.1:{redis.port}/0")
        env = {**os.environ, "SCALEMCP_PORT": "0", "PATH": f"{Path(sys.executable).parent}:"
               f"{os.environ['PATH']}"}
        server = serve_shell(line, ROOT, env, timeout_s=60)
        assert "with 2 workers (Redis backend" in server.output
        assert "add(1, 2) = 3" in run_snippet(server.url)
        assert "Traceback" not in server.interrupt()
    finally:
        redis.stop()


async def test_app_in_20_lines(tmp_path: Path) -> None:
    source = block("python", 'scalemcp.App("demo"')
    (tmp_path / "demo.py").write_text(source)
    spec = importlib.util.spec_from_file_location("readme_demo", tmp_path / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    headers = {"accept": "application/json, text/event-stream", "mcp-method": "tools/call",
               "mcp-name": "add", "mcp-protocol-version": "2026-07-28"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}
    async with open_server(module.app) as url, httpx.AsyncClient() as client:
        answer = await client.post(url, headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 2, "b": 3}, "_meta": meta}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["structuredContent"] == {"result": 5}
        assert answer.json()["result"]["content"][0]["text"] == "5"
        read = await client.post(url, headers={**headers, "mcp-method": "resources/read",
                                               "mcp-name": "greeting://Ada"}, json={
            "jsonrpc": "2.0", "id": 2, "method": "resources/read",
            "params": {"uri": "greeting://Ada", "_meta": meta}})
        assert read.json()["result"]["contents"][0]["text"] == "Hello, Ada!"
