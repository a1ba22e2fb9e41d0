"""The comparative suite: every target in bench/targets/, driven by ``scalemcp bench``.

Usage: python bench/run.py [--quick] [--clients 1,16,64,256,1024] [--duration 5]
       [--warmup 1] [--targets floor,scalemcp,...] [--no-pin] [--scalemcp-src HEAD|worktree]
       [--output PREFIX]
       python bench/run.py --report-only bench/results/<date>.json

Each series (a target server, an era, a scenario) runs once per client count:
the server is started on a free loopback port, the load generator runs in this
process, and the server's CPU time is read from /proc/<pid>/stat of each of its
processes (and of its private redis-server) every 50 ms and interpolated to the
measured window. Server processes are pinned to core 0 and this process to
core 1 (sched_setaffinity), as in the reference setup. Writes <PREFIX>.json
(every number and every report in full), <PREFIX>.md and <PREFIX>.png; the
default PREFIX is bench/results/<date> (``--quick``: .cache/bench-results/<date>-quick).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import select
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# suite_report lives next to this script (sys.path[0] when run as a script)
from suite_report import write_chart, write_markdown  # noqa: E402

from scalemcp.bench.cli import run  # noqa: E402
from scalemcp.bench.config import BenchConfig  # noqa: E402

TARGETS_DIR = ROOT / "bench" / "targets"
RESULTS_DIR = ROOT / "bench" / "results"
CACHE = ROOT / ".cache"
TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CORES = {0}
CLIENT_CORES = {1}
DEFAULT_CLIENTS = (1, 16, 64, 256, 1024)
STATE_KEY = "bench-suite-state-key-0123456789abcdef"


@dataclass(frozen=True)
class Server:
    """How to start one target server."""

    kind: str
    """python (a script in bench/targets), scalemcp (the same, from the scalemcp source
    chosen by --scalemcp-src), serve (``scalemcp serve``, with a private Redis),
    fastmcp (python, maybe from a separate venv), node."""
    args: tuple[str, ...] = ()
    workers: int = 1
    redis: bool = False
    all_cores: bool = False
    """Run the server on every core (shared with the load generator) instead of core 0."""


@dataclass(frozen=True)
class Series:
    """One line of the report: a server, an era and a scenario, at every client count."""

    name: str
    server: Server
    era: str
    answers: str
    description: str
    scenario: str = "call"
    steps: int = 5
    main: bool = True
    """In the README's Performance table."""
    default: bool = True
    """Run without --targets naming it."""
    path: str = "/mcp"


def _py(*args: str) -> Server:
    return Server("python", args)


SCALEMCP = Server("scalemcp", ("scalemcp_server.py",))
SERIES = [
    Series("floor", _py("floor_server.py"), "session", "JSON",
           "bare ASGI app on hypercorn's trio worker answering canned JSON-RPC (the baseline)"),
    Series("floor-uvicorn", _py("floor_server.py", "--server", "uvicorn"), "session", "JSON",
           "the floor's ASGI app on uvicorn (asyncio, h11): the floor under the SDK and FastMCP",
           main=False, default=False),
    Series("floor-hypercorn-asyncio", _py("floor_server.py", "--server", "hypercorn-asyncio"),
           "session", "JSON", "the floor's ASGI app on hypercorn's asyncio worker",
           main=False, default=False),
    Series("scalemcp", SCALEMCP, "session", "JSON",
           "scalemcp, memory backend, 1 hypercorn trio worker, session era, echo"),
    Series("scalemcp-sse", SCALEMCP, "session", "SSE",
           "the same, a tool that sends one progress notification then returns (SSE answer)",
           scenario="call-progress", steps=1),
    Series("scalemcp-stateless", Server("scalemcp", ("scalemcp_server.py", "--stateless-only")),
           "modern", "JSON", "scalemcp --stateless-only, 2026-07-28 era (no session state)"),
    Series("scalemcp-redis", Server("serve", workers=1, redis=True), "session", "JSON",
           "scalemcp serve --workers 1 --redis-url (private redis-server on the server core)"),
    Series("scalemcp-redis-2w", Server("serve", workers=2, redis=True, all_cores=True),
           "session", "JSON",
           "scalemcp serve --workers 2 --redis-url: both cores, shared with the load generator"),
    Series("sdk-sse", _py("sdk_server.py", "--mode", "sse"), "session", "SSE",
           "official Python SDK (mcp) on uvicorn, stateful, SSE answers, in-memory event store"),
    Series("sdk-json", _py("sdk_server.py", "--mode", "json"), "session", "JSON",
           "official Python SDK on uvicorn, stateful, json_response=True"),
    Series("sdk-stateless", _py("sdk_server.py", "--mode", "stateless"), "modern", "JSON",
           "official Python SDK on uvicorn, stateless_http=True, 2026-07-28 era"),
    Series("fastmcp", Server("fastmcp", ("fastmcp_server.py", "--mode", "stateful")),
           "session", "SSE", "FastMCP on uvicorn, stateful http (SSE answers, its default)"),
    Series("fastmcp-stateless", Server("fastmcp", ("fastmcp_server.py", "--mode", "stateless")),
           "modern", "JSON", "FastMCP on uvicorn, stateless_http=True, 2026-07-28 era"),
    Series("ts-sse", Server("node", ("ts_server.mjs", "--mode", "sse")), "session", "SSE",
           "official TypeScript SDK v1 on Node (node:http), stateful, SSE answers"),
    Series("ts-stateless", Server("node", ("ts_server.mjs", "--mode", "stateless")),
           "session", "SSE",
           "official TypeScript SDK v1 on Node, stateless (a server + transport per request)"),
    Series("sdk-sse-hypercorn", _py("sdk_server.py", "--mode", "sse", "--server", "hypercorn"),
           "session", "SSE", "official Python SDK, stateful SSE, on hypercorn's asyncio worker",
           main=False, default=False),
    Series("sdk-legacy-sse", _py("sdk_server.py", "--mode", "legacy-sse"), "legacy-sse", "SSE",
           "official Python SDK, the 2024-11-05 HTTP+SSE transport", main=False, default=False,
           path="/sse"),
    Series("scalemcp-legacy-sse", SCALEMCP, "legacy-sse", "SSE",
           "scalemcp, memory backend, the 2024-11-05 HTTP+SSE transport", main=False,
           default=False, path="/sse"),
]
BASELINE = "floor"


# -- environment -----------------------------------------------------------------------


@dataclass
class Env:
    """What the targets need, found or prepared once per run."""

    pin: bool
    scalemcp_src: Path | None
    fastmcp_python: str | None
    node_env: dict[str, str] | None
    redis_server: str | None
    notes: list[str] = field(default_factory=list)


def export_commit(commit: str) -> Path:
    """The ``scalemcp`` package as committed at ``commit``, in .cache/bench-src/<commit>."""
    dest = CACHE / "bench-src" / commit
    if not (dest / "scalemcp" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "scalemcp"],
            check=True,
            capture_output=True,
        ).stdout
        tmp = dest / "export.tar"
        tmp.write_bytes(archive)
        with tarfile.open(tmp) as tar:
            tar.extractall(dest, filter="data")
        tmp.unlink()
    return dest


def find_fastmcp(notes: list[str]) -> str | None:
    """A Python that imports fastmcp: this one, or a venv made for it under .cache/."""
    probe = [sys.executable, "-c", "import fastmcp, uvicorn"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return sys.executable
    venv = CACHE / "bench-venvs" / "fastmcp"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"fastmcp is not importable here: creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "fastmcp", "uvicorn"], check=True
        )
    if subprocess.run([str(python), *probe[1:]], capture_output=True).returncode != 0:
        notes.append(f"fastmcp: neither {sys.executable} nor {python} imports it: skipped")
        return None
    notes.append(f"fastmcp ran from its own venv ({python.relative_to(ROOT)})")
    return str(python)


def find_node(notes: list[str]) -> dict[str, str] | None:
    """The environment for ts_server.mjs: node on PATH and MCP_TS_SDK_DIR."""
    env = dict(os.environ)
    script = CACHE / "node-tools" / "env.sh"
    if "MCP_TS_SDK_DIR" not in env and script.exists():
        out = subprocess.run(
            ["bash", "-c", f'source "{script}" && env -0'], capture_output=True, check=True
        ).stdout
        env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    if "MCP_TS_SDK_DIR" not in env or not shutil.which("node", path=env.get("PATH")):
        notes.append("TypeScript SDK targets skipped: run scripts/install-node-tools")
        return None
    return env


def prepare(ns: argparse.Namespace, series: list[Series], commit: str | None = None) -> Env:
    """``commit``: serve scalemcp from this commit (default HEAD, unless --scalemcp-src)."""
    notes: list[str] = []
    kinds = {s.server.kind for s in series}
    redis = any(s.server.redis for s in series)
    export = ns.scalemcp_src == "HEAD" and bool(kinds & {"scalemcp", "serve"})
    env = Env(
        pin=ns.pin and (os.cpu_count() or 1) >= 2,
        scalemcp_src=export_commit(commit or git("rev-parse", "HEAD")) if export else None,
        fastmcp_python=find_fastmcp(notes) if "fastmcp" in kinds else None,
        node_env=find_node(notes) if "node" in kinds else None,
        redis_server=shutil.which("redis-server") if redis else None,
        notes=notes,
    )
    if redis and env.redis_server is None:
        notes.append("Redis targets skipped: no redis-server on PATH")
    return env


def runnable(s: Series, env: Env) -> bool:
    kind = s.server.kind
    if kind == "fastmcp":
        return env.fastmcp_python is not None
    if kind == "node":
        return env.node_env is not None
    return not s.server.redis or env.redis_server is not None


# -- processes ---------------------------------------------------------------------------


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
                       "--state-keys", STATE_KEY, "--log-level", "warning"]
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


# -- measuring ---------------------------------------------------------------------------


class Sampler:
    """Reads the CPU ticks of the server's processes, Redis and every core every 50 ms."""

    def __init__(self, pids: list[int], redis_pid: int | None, period_s: float = 0.05) -> None:
        self.pids = pids
        self.redis_pid = redis_pid
        self.period_s = period_s
        self.samples: list[tuple[float, int, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        server = sum(cpu_ticks(pid) for pid in self.pids)
        redis = cpu_ticks(self.redis_pid) if self.redis_pid else 0
        self.samples.append((time.monotonic(), server, redis, *busy_ticks()))

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def at(self, t: float) -> tuple[float, float, float, float]:
        """Server, Redis, all-core task and interrupt CPU seconds at monotonic time ``t``
        (interpolated between samples)."""
        samples = self.samples
        before = max((s for s in samples if s[0] <= t), default=samples[0], key=lambda s: s[0])
        after = min((s for s in samples if s[0] >= t), default=samples[-1], key=lambda s: s[0])
        span = after[0] - before[0]
        f = (t - before[0]) / span if span > 0 else 0.0
        return tuple(  # type: ignore[return-value]
            (before[i] + f * (after[i] - before[i])) / TICKS for i in (1, 2, 3, 4)
        )


def measure(s: Series, srv: Running, clients: int, ns: argparse.Namespace) -> dict[str, Any]:
    procs = ns.procs if clients >= 256 else 1
    settings = {
        "url": f"http://127.0.0.1:{srv.port}{s.path}",
        "era": s.era,
        "scenario": s.scenario,
        "clients": clients,
        "duration_s": ns.duration,
        "warmup_s": ns.warmup,
        "timeout_s": 30,
        "procs": procs,
        "steps": s.steps,
    }
    config = msgspec.convert(settings, BenchConfig)
    pids = descendants(srv.proc.pid)
    with Sampler(pids, srv.redis.pid if srv.redis else None) as sampler:
        report = run(config)
    w0, w1 = report.window_monotonic_s
    window = max(w1 - w0, 1e-9)
    s0, r0, b0, i0 = sampler.at(w0)
    s1, r1, b1, i1 = sampler.at(w1)
    server_s, redis_s, busy_s = s1 - s0 + r1 - r0, r1 - r0, b1 - b0
    attempts = max(report.requests + report.errors, 1)
    client = report.client_cpu
    lat = report.latency
    return {
        "series": s.name,
        "clients": clients,
        "procs": procs,
        "throughput_rps": report.throughput_rps,
        "requests": report.requests,
        "errors": report.errors,
        "errors_by_kind": report.errors_by_kind,
        "error_samples": report.error_samples,
        "counters": report.counters,
        "p50_ms": lat.p50_us / 1000,
        "p90_ms": lat.p90_us / 1000,
        "p99_ms": lat.p99_us / 1000,
        "p99_9_ms": lat.p99_9_us / 1000,
        "window_s": round(window, 4),
        "server_cpu_s": round(server_s, 4),
        "server_us_per_request": round(server_s / attempts * 1e6, 1),
        "server_cores": round(server_s / window, 3),
        "redis_us_per_request": round(redis_s / attempts * 1e6, 1) if srv.redis else None,
        "server_processes": len(pids) + (1 if srv.redis else 0),
        "client_us_per_request": client.us_per_request,
        "client_cores": client.cores_used,
        "client_saturated": client.saturated,
        "other_cores": round(max(busy_s - server_s - client.cpu_s, 0.0) / window, 3),
        "irq_cores": round((i1 - i0) / window, 3),
        "report": {k: v for k, v in msgspec.to_builtins(report).items() if k != "histograms"},
    }


class Quiet:
    """Waits for the rest of the machine to go quiet before a point, within a budget.

    Other programs on the machine take cores from the server and the load generator;
    throughput then drops though CPU per request hardly moves. Before each point this
    measures what other tasks use for 0.5 s and waits (checking again every 0.5 s) while
    it is above ``threshold`` cores, at most ``max_wait_s`` per point and ``budget_s`` over
    the run; a point that still saw more than ``retry_above`` cores of other work is run
    once more, and the less disturbed of the two is kept.
    """

    def __init__(self, threshold: float, max_wait_s: float, budget_s: float) -> None:
        self.threshold = threshold
        self.retry_above = threshold + 0.1
        self.max_wait_s = max_wait_s
        self.budget_s = budget_s
        self.spent_s = 0.0

    def wait(self, exclude: list[int]) -> float:
        started = time.monotonic()
        load = other_load(exclude, 0.5)
        while (load > self.threshold and time.monotonic() - started < self.max_wait_s
               and self.spent_s + time.monotonic() - started < self.budget_s):
            load = other_load(exclude, 0.5)
        self.spent_s += max(time.monotonic() - started - 0.5, 0.0)
        return round(load, 3)

    def can_retry(self, point: dict[str, Any], seconds: float) -> bool:
        if point["other_cores"] <= self.retry_above or self.spent_s + seconds > self.budget_s:
            return False
        self.spent_s += seconds
        return True


def measure_quietly(
    s: Series, srv: Running, clients: int, ns: argparse.Namespace, quiet: Quiet
) -> dict[str, Any]:
    exclude = descendants(srv.proc.pid) + ([srv.redis.pid] if srv.redis else [])
    before = quiet.wait(exclude)
    point = measure(s, srv, clients, ns)
    point["other_cores_before"] = before
    if quiet.can_retry(point, ns.duration + ns.warmup + 1):
        before = quiet.wait(exclude)
        again = measure(s, srv, clients, ns)
        again["other_cores_before"] = before
        keep, drop = sorted((point, again), key=lambda p: p["other_cores"])
        keep["retried"] = {k: drop[k] for k in ("throughput_rps", "server_us_per_request",
                                                "other_cores")}
        point = keep
    return point


# -- metadata ----------------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _version(dist: str, python: str | None = None) -> str:
    if python is None or python == sys.executable:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "not installed"


def _command(args: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=10)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"


def versions(env: Env) -> dict[str, str]:
    out = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for dist in ("trio", "hypercorn", "h11", "msgspec", "mcp", "mcp-types", "uvicorn",
                 "starlette", "sse-starlette", "anyio", "pydantic", "httptools", "uvloop",
                 "coredis"):
        out[dist] = _version(dist)
    out["fastmcp"] = _version("fastmcp", env.fastmcp_python)
    if env.node_env is not None:
        out["node"] = _command(["node", "--version"], env.node_env)
        sdk = Path(env.node_env["MCP_TS_SDK_DIR"])
        out["@modelcontextprotocol/sdk"] = json.loads((sdk / "package.json").read_text())["version"]
        zod = sdk.parents[1] / "zod" / "package.json"
        if zod.exists():
            out["zod"] = json.loads(zod.read_text())["version"]
    if env.redis_server:
        out["redis-server"] = _command([env.redis_server, "--version"]).split(" sha=")[0]
    commit = env.scalemcp_src.name if env.scalemcp_src else git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "scalemcp").splitlines()
    served = "git archive of the commit" if env.scalemcp_src else "working tree"
    out["scalemcp"] = f"{commit[:12]} ({served})"
    out["scalemcp commit"] = commit
    out["scalemcp working tree"] = f"{len(dirty)} changed file(s) under scalemcp/" if dirty \
        else "clean"
    out["load generator"] = "scalemcp.bench from the working tree (raw HTTP/1.1 client)"
    return out


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    os_release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    debian = Path("/etc/debian_version")
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "os": os_release.get("PRETTY_NAME", "?").strip('"')
        + (f" ({debian.read_text().strip()})" if debian.exists() else ""),
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="16 clients only, 3 s per point (output under .cache/)")
    parser.add_argument("--clients", help="comma-separated client counts (1,16,64,256,1024)")
    parser.add_argument("--duration", type=float, help="measured seconds per point (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warmup seconds (1)")
    parser.add_argument("--procs", type=int, default=1,
                        help="load-generator processes for 256 clients and more (1)")
    parser.add_argument("--targets", help="comma-separated series names (default: all)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="no CPU pinning (default: server on core 0, client on core 1)")
    parser.add_argument("--scalemcp-src", choices=["HEAD", "worktree"], default="HEAD",
                        help="serve scalemcp from an export of HEAD (default) or the tree")
    parser.add_argument("--quiet-threshold", type=float, default=0.15,
                        help="cores of other work tolerated before a point (0.15)")
    parser.add_argument("--max-wait", type=float, default=15.0,
                        help="seconds to wait for quiet before one point (15)")
    parser.add_argument("--wait-budget", type=float, default=180.0,
                        help="seconds of waiting and re-runs over the whole run (180)")
    parser.add_argument("--output", type=Path, help="path prefix for .json/.md/.png")
    parser.add_argument("--report-only", type=Path, metavar="JSON",
                        help="rewrite the .md and .png of an earlier run's JSON")
    parser.add_argument("--update", type=Path, metavar="JSON",
                        help="measure the --targets series again into this earlier result "
                        "(its settings and scalemcp commit), replacing their points")
    parser.add_argument("--list", action="store_true", help="list the series and exit")
    ns = parser.parse_args(argv)
    if ns.clients:
        ns.clients = [int(c) for c in ns.clients.split(",")]
    else:
        ns.clients = [16] if ns.quick else list(DEFAULT_CLIENTS)
    if ns.duration is None:
        ns.duration = 3.0 if ns.quick else 5.0
    return ns


def write_outputs(doc: dict[str, Any], prefix: Path) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for point in doc["points"]:  # percentiles are kept; the raw buckets make files huge
        point.get("report", {}).pop("histograms", None)
    order = {s.name: i for i, s in enumerate(SERIES)}
    doc["series"].sort(key=lambda d: order.get(d["name"], len(order)))
    doc["points"].sort(key=lambda p: (order.get(p["series"], len(order)), p["clients"]))
    json_path = prefix.with_name(prefix.name + ".json")
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    chart = prefix.with_name(prefix.name + ".png")
    try:
        write_chart(doc, chart)
    except ImportError:
        print("no chart: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        chart = None  # type: ignore[assignment]
    write_markdown(doc, prefix.with_name(prefix.name + ".md"), chart)
    print(f"wrote {prefix}.json, .md" + (", .png" if chart else ""), flush=True)


def run_series(series: list[Series], env: Env, ns: argparse.Namespace,
               doc: dict[str, Any]) -> Quiet:
    """Measure every point of ``series`` into ``doc["points"]``."""
    quiet = Quiet(ns.quiet_threshold, ns.max_wait, ns.wait_budget)
    for s in series:
        if not runnable(s, env):
            continue
        try:
            with running(s, env) as srv:
                for clients in ns.clients:
                    try:
                        point = measure_quietly(s, srv, clients, ns, quiet)
                    except Exception as exc:  # one failed point must not end the suite
                        point = {"series": s.name, "clients": clients, "failed": repr(exc)}
                        print(f"{s.name:20} {clients:5} clients  FAILED {exc!r}", flush=True)
                    else:
                        print(
                            f"{s.name:20} {clients:5} clients {point['throughput_rps']:8.0f} req/s"
                            f"  server {point['server_us_per_request']:6.0f} us/req"
                            f" ({point['server_cores']:.2f} cores)  client "
                            f"{point['client_us_per_request']:4.0f} us/req  p99 "
                            f"{point['p99_ms']:7.1f} ms  errors {point['errors']}  other "
                            f"{point['other_cores']:.2f} cores"
                            + (" (retried)" if "retried" in point else ""),
                            flush=True,
                        )
                    point["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                    doc["points"].append(point)
        except RuntimeError as exc:
            doc["notes"].append(f"{s.name}: {exc}")
            print(f"{s.name}: {exc}", flush=True)
    return quiet


def _series_doc(series: list[Series], env: Env) -> list[dict[str, Any]]:
    return [{**asdict(s), "server": asdict(s.server)} for s in series if runnable(s, env)]


def update(ns: argparse.Namespace, argv: list[str]) -> None:
    """Measure the --targets series again into an earlier run's JSON, same settings."""
    doc = json.loads(ns.update.read_text())
    if not ns.targets:
        sys.exit("--update needs --targets: the series to measure again")
    names = ns.targets.split(",")
    series = [s for s in SERIES if s.name in names]
    st = doc["settings"]
    ns.clients, ns.duration, ns.warmup = st["clients"], st["duration_s"], st["warmup_s"]
    ns.procs, ns.pin = st["procs_from_256_clients"], st["pinned"]
    commit = doc["versions"]["scalemcp commit"]
    env = prepare(ns, series, commit if ns.scalemcp_src == "HEAD" else None)
    if env.pin:
        os.sched_setaffinity(0, CLIENT_CORES)
    started = time.monotonic()
    fresh: dict[str, Any] = {"points": [], "notes": []}
    quiet = run_series(series, env, ns, fresh)
    done = {p["series"] for p in fresh["points"]}
    doc["points"] = [p for p in doc["points"] if p["series"] not in done] + fresh["points"]
    known = {s["name"] for s in doc["series"]}
    doc["series"] += [d for d in _series_doc(series, env) if d["name"] not in known]
    doc.setdefault("updates", []).append({
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(argv),
        "series": sorted(done),
        "wall_s": round(time.monotonic() - started, 1),
        "quiet_wait_s": round(quiet.spent_s, 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "fastmcp/node/redis": [env.fastmcp_python, bool(env.node_env), env.redis_server],
    })
    doc["notes"] += fresh["notes"] + env.notes
    write_outputs(doc, ns.update.with_suffix(""))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ns = parse_args(argv)
    if ns.list:
        for s in SERIES:
            extra = "" if s.default else " [extra]"
            print(f"{s.name:20} {s.era:10} {s.answers:5} {s.description}{extra}")
        return
    if ns.report_only:
        doc = json.loads(ns.report_only.read_text())
        write_outputs(doc, ns.report_only.with_suffix(""))
        return
    chosen = set(ns.targets.split(",")) if ns.targets else None
    unknown = (chosen or set()) - {s.name for s in SERIES}
    if unknown:
        sys.exit(f"unknown target(s): {', '.join(sorted(unknown))} (see --list)")
    if ns.update:
        update(ns, argv)
        return
    series = [s for s in SERIES if s.name in chosen] if chosen else [
        s for s in SERIES if s.default
    ]
    env = prepare(ns, series)
    if env.pin:
        os.sched_setaffinity(0, CLIENT_CORES)
    today = dt.date.today().isoformat()
    prefix = ns.output or (
        CACHE / "bench-results" / f"{today}-quick" if ns.quick else RESULTS_DIR / today
    )
    started = time.monotonic()
    doc: dict[str, Any] = {
        "date": today,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py" + "".join(f" {a}" for a in argv),
        "machine": machine(),
        "versions": versions(env),
        "settings": {
            "clients": ns.clients,
            "duration_s": ns.duration,
            "warmup_s": ns.warmup,
            "procs_from_256_clients": ns.procs,
            "pinned": env.pin,
            "server_cores": sorted(SERVER_CORES) if env.pin else "any",
            "client_cores": sorted(CLIENT_CORES) if env.pin else "any",
            "baseline": BASELINE,
            "quiet_threshold_cores": ns.quiet_threshold,
            "loop": "closed",
            "http": "HTTP/1.1 keep-alive, one connection per simulated client",
            "tool": 'tools/call echo {"message": "hello"}',
        },
        "series": _series_doc(series, env),
        "notes": env.notes,
        "points": [],
    }
    quiet = run_series(series, env, ns, doc)
    doc["wall_s"] = round(time.monotonic() - started, 1)
    doc["quiet_wait_s"] = round(quiet.spent_s, 1)
    doc["machine"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    write_outputs(doc, prefix)


if __name__ == "__main__":
    main()
