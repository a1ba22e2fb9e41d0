"""``scalemcp serve`` as a real process under Trio, its output read line by line.

Readiness is the server's own "serving ... at http://..." log line (it binds port 0), so there
is no port to guess and no polling.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from tests.conftest import ROOT, free_port

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def initialize(version: str = "2025-11-25") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "ops-test", "version": "1"}}}


def call_tool(name: str, rid: int = 2, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


class Served:
    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.base = ""
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._eof = 0
        self._news = trio.Event()

    async def pump(self, stream: Any, into: list[str]) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            into += [line.decode(errors="replace") for line in lines]
            self._wake()
        if buffer:
            into.append(buffer.decode(errors="replace"))
        self._eof += 1
        self._wake()

    def _wake(self) -> None:
        self._news.set()
        self._news = trio.Event()

    async def wait_for(self, check: Callable[[str], bool]) -> str:
        """The first stdout/stderr line ``check`` accepts, waiting for it if need be."""
        while True:
            lines = self.stdout + self.stderr
            for line in lines:
                if check(line):
                    return line
            if self._eof == 2:
                raise AssertionError("server output ended without the line:\n"
                                     + "\n".join(lines[-40:]))
            await self._news.wait()

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line, parsed: a line that is not JSON fails the test."""
        return [json.loads(line) for line in self.stdout if line.strip()]


@asynccontextmanager
async def open_serve(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Served]:
    """Run ``scalemcp serve ARGS --port 0``; yields once it listens, kills it on the way out."""
    cmd = [sys.executable, "-m", "scalemcp.cli", "serve", *args, "--port", "0"]
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = await trio.lowlevel.open_process(cmd, cwd=ROOT, env=environ, start_new_session=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    served = Served(proc)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(served.pump, proc.stdout, served.stdout)
        nursery.start_soon(served.pump, proc.stderr, served.stderr)
        try:
            line = await served.wait_for(lambda text: "serving " in text and " at http" in text)
            match = re.search(r"https?://[0-9.]+:[0-9]+", line)
            assert match, line
            served.base = match.group(0)
            yield served
        finally:
            with contextlib.suppress(ProcessLookupError):  # the supervisor and its workers
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@asynccontextmanager
async def open_redis(password: str) -> AsyncIterator[int]:
    """A private ``redis-server`` that requires ``password``; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/test installs it)")
    port = free_port()
    proc = await trio.lowlevel.open_process(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", password], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        log = b""
        async for chunk in proc.stdout:  # readiness: its own "Ready" line
            log += chunk
            if b"Ready to accept connections" in log:
                break
        else:
            pytest.fail(f"redis-server exited: {log.decode(errors='replace')}")
        yield port
    finally:
        proc.kill()
        await proc.wait()
