"""Starting and stopping the target servers (and their private Redis); reading the CPU
time of a process tree from /proc."""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import Env
from .paths import CACHE, SERVER_CORES, STATE_KEY, TARGETS_DIR, TICKS
from .series import Series


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from the ppid field of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def busy_ticks() -> tuple[int, int]:
    """Time every core spent running tasks (user, nice, system, steal) and in interrupts
    (irq, softirq: on loopback, much of the packet delivery), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + steal, irq + softirq


def other_load(exclude: list[int], seconds: float = 1.0) -> float:
    """Cores kept busy over ``seconds`` by tasks other than ``exclude`` and this process."""
    own0, ex0, busy0 = time.process_time(), sum(map(cpu_ticks, exclude)), busy_ticks()[0]
    time.sleep(seconds)
    own1, ex1, busy1 = time.process_time(), sum(map(cpu_ticks, exclude)), busy_ticks()[0]
    return max((busy1 - busy0 - ex1 + ex0) / TICKS - (own1 - own0), 0.0) / seconds


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    redis: subprocess.Popen[bytes] | None
    pids: list[int] = field(default_factory=list)


def _affinity(cores: set[int] | None) -> Any:
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def _log(name: str) -> Any:
    logs = CACHE / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    return (logs / f"{name}.log").open("ab")


def start_redis(env: Env, cores: set[int] | None) -> tuple[subprocess.Popen[bytes], int]:
    assert env.redis_server is not None
    port = free_port()
    command = [env.redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--appendonly", "no", "--daemonize", "no"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=_log("redis"),
                            preexec_fn=_affinity(cores))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return proc, port
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError("redis-server did not start")


def _wait_port_line(proc: subprocess.Popen[bytes], name: str) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else b""
    if not line.startswith(b"PORT "):
        raise RuntimeError(f"{name} did not start (see .cache/bench-logs/{name}.log)")
    return int(line.split()[1])


def _wait_http(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    """Until the server answers an HTTP request (any status)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("OPTIONS", "/mcp")  # a GET could open an SSE stream
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    raise RuntimeError(f"{name} did not start (see .cache/bench-logs/{name}.log)")


@contextlib.contextmanager
def running(s: Series, env: Env) -> Iterator[Running]:
    server = s.server
    cores = None if not env.pin or server.all_cores else SERVER_CORES
    if env.pin and server.all_cores:
        cores = set(range(os.cpu_count() or 1))
    redis, redis_port = start_redis(env, cores) if server.redis else (None, 0)
    python_env = dict(os.environ)
    if server.kind in ("scalemcp", "serve") and env.scalemcp_src is not None:
        python_env["SCALEMCP_SRC"] = str(env.scalemcp_src)
        python_env["PYTHONPATH"] = str(env.scalemcp_src)
    proc: subprocess.Popen[bytes] | None = None
    try:
        if server.kind == "serve":
            port = free_port()
            command = [sys.executable, "-m", "scalemcp.cli", "serve", "scalemcp_server:app",
                       "--port", str(port), "--workers", str(server.workers),
                       "--redis-url", f"redis://127.0.0.1:{redis_port}",
                       "--state-keys", STATE_KEY, "--log-level", "warning",
                       # every load-generator client comes from one address
                       "--max-connections-per-client", "1000000"]
            proc = subprocess.Popen(command, cwd=TARGETS_DIR, env=python_env,
                                    stdout=subprocess.DEVNULL, stderr=_log(s.name),
                                    preexec_fn=_affinity(cores))
            _wait_http(port, proc, s.name)
            deadline = time.monotonic() + 30
            # hypercorn's parent, the workers and multiprocessing's resource tracker
            while len(descendants(proc.pid)) < server.workers + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)  # let every worker finish importing before the first warmup
        else:
            if server.kind == "node":
                assert env.node_env is not None
                command = ["node", str(TARGETS_DIR / server.args[0]), *server.args[1:]]
                proc_env = env.node_env
            else:
                python = env.fastmcp_python if server.kind == "fastmcp" else sys.executable
                assert python is not None
                command = [python, str(TARGETS_DIR / server.args[0]), *server.args[1:]]
                proc_env = python_env
            proc = subprocess.Popen(command, env=proc_env, stdout=subprocess.PIPE,
                                    stderr=_log(s.name), preexec_fn=_affinity(cores))
            port = _wait_port_line(proc, s.name)
            _wait_http(port, proc, s.name)
        yield Running(s.name, proc, port, redis)
    finally:
        if proc is not None:
            tree = {pid: _cmdline(pid) for pid in descendants(proc.pid)[1:]}
            stop(proc)
            for pid, cmdline in tree.items():  # stragglers we started (hypercorn workers)
                if cmdline and _cmdline(pid) == cmdline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
        if redis is not None:
            stop(redis)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
