"""``scalemcp serve`` as a real process on port 0; its address is the one it says it serves.

The supervisor logs one start-up line once its first worker serves::

    serving MODULE:ATTR at http://127.0.0.1:PORT/mcp (legacy HTTP+SSE at /sse): ...

so a test picks no port and polls none: it reads that line (``SERVING``). Every process
runs in a process group of its own, so a node (supervisor and workers) stops as one.

Two flavours: :class:`ServeProcess` (blocking, for fixtures and synchronous tests; a thread
reads the output) and :func:`open_serve` (Trio, the output read by tasks).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .output import LineLog

ROOT = Path(__file__).resolve().parents[2]
#: The start-up line, and the endpoint in it.
SERVING = re.compile(r"serving \S+ at (?P<base>(?P<scheme>https?)://"
                     r"(?P<host>\[[^\]]+\]|[^\s:/\[]+):(?P<port>\d+))(?P<path>/[^\s:]*)")
START_TIMEOUT_S = 30.0


def serve_command(target: str, *args: str, port: int = 0) -> list[str]:
    """The command line: ``scalemcp serve TARGET ARGS --port PORT`` (see launch.py)."""
    return [sys.executable, "-m", "tests.harness.launch", "serve", target, *args,
            "--port", str(port)]


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
               timeout: float = 10.0) -> None:
    """Signal the process group ``proc`` leads; SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a dead supervisor


def worker_pids(supervisor: int) -> list[int]:
    """The worker processes of the ``scalemcp serve`` supervisor ``supervisor``."""
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


class ServeProcess:
    """``scalemcp serve TARGET ARGS`` in its own process group, ready once it serves.

    ``port`` 0 (the default) lets the kernel choose; a fixed one is for a restart on the
    address a load balancer already knows. Output (stdout and stderr together) is kept,
    and copied to ``log`` if given. ``wait=False`` returns at once (to start several in
    parallel); ``wait_serving()`` then waits.
    """

    def __init__(self, target: str, *args: str, env: dict[str, str] | None = None,
                 log: Path | None = None, port: int = 0, wait: bool = True,
                 timeout: float = START_TIMEOUT_S) -> None:
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(serve_command(target, *args, port=port), cwd=ROOT,
                                     env=environ, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        self.output = LineLog(self.proc.stdout, log)
        self.port = port
        self.base = self.url = ""
        if wait:
            self.wait_serving(timeout)

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the start-up line; then ``port``, ``base`` and ``url`` are known."""
        try:
            line = self.output.wait_for(SERVING.search, timeout)
        except BaseException:
            self.kill()
            raise
        match = SERVING.search(line)
        assert match is not None
        self.port = int(match["port"])
        self.base = match["base"]
        self.url = match["base"] + match["path"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> str:
        """Stop the group (``sig``, then SIGKILL after ``timeout``); all it wrote."""
        stop_group(self.proc, sig, timeout)
        return self.output.join()

    def kill(self) -> str:
        """``kill -9`` the whole group at once."""
        return self.stop(signal.SIGKILL)

    def owns(self, pid: int) -> bool:
        """True if ``pid`` is one of this server's processes (its process group)."""
        try:
            return os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def workers(self) -> list[int]:
        """The pids of the supervisor's worker processes alive now (not multiprocessing's
        resource tracker)."""
        return worker_pids(self.proc.pid)


# -- under Trio --------------------------------------------------------------------------


class Served:
    """A server run by :func:`open_serve`: its address and its output so far."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.base = ""
        self.url = ""
        self.port = 0
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

    async def wait_for(self, check: Callable[[str], object]) -> str:
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
async def open_serve(*args: str, env: dict[str, str] | None = None,
                     port: int = 0) -> AsyncIterator[Served]:
    """Run ``scalemcp serve ARGS`` on ``port`` (0: any); yields once it serves, kills its
    process group on the way out."""
    target, *rest = args
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = await trio.lowlevel.open_process(
        serve_command(target, *rest, port=port), cwd=ROOT, env=environ,
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    served = Served(proc)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(served.pump, proc.stdout, served.stdout)
        nursery.start_soon(served.pump, proc.stderr, served.stderr)
        try:
            line = await served.wait_for(SERVING.search)
            match = SERVING.search(line)
            assert match is not None
            served.base, served.port = match["base"], int(match["port"])
            served.url = match["base"] + match["path"]
            yield served
        finally:
            with contextlib.suppress(ProcessLookupError):  # the supervisor and its workers
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

