"""Durable tasks, scalemcp against FastMCP + fastmcp-tasks, on one private redis-server.

Both serve the same no-op task tool over the same wire (2026-07-28 stateless HTTP, the
``io.modelcontextprotocol/tasks`` extension, SEP-2663): ``bench/tasks_app.py`` on
``scalemcp serve`` (one worker process, tasks run in it), and
``bench/targets/fastmcp_tasks_server.py`` on uvicorn (one process, Docket's worker
embedded; 16 tasks at a time like scalemcp's ``task_concurrency``). One redis-server
(``tests/harness/redis.py``) serves both; each server is pinned to CPU 1 and redis-server to
CPU 0 (``sched_setaffinity``, what ``taskset`` does); the client shares the machine.

Each client creates a no-op task (``tools/call`` declaring the extension), polls
``tasks/get`` every ``--poll-ms`` until it is ``completed``, then creates the next: tasks
completed per second (wall clock), create-to-complete latency (p50, p99), and the CPU
time the server and redis-server spent per task (/proc). The client is
``scalemcp bench --scenario task`` (the load generator's lean HTTP client), run in this
process pinned beside redis-server (``--client-cpu``), so each server has its CPU to itself;
``--client httpx`` is the earlier client (one httpx client per simulated client), whose CPU
cost capped what both servers could show. The targets alternate for
``--rounds`` rounds (A B A B ...), each after a warm-up, so drift hits both alike.
Every phase is bounded (``--phase-timeout``).

    python bench/tasks_vs_fastmcp.py [-n 1000] [-c 16 256] [--rounds 2] [--poll-ms 20]

FastMCP runs from ``.cache/bench-venvs/fastmcp-tasks`` (created with pip on first use),
never from the project venv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tasks import DECLARED, cpu_seconds, pids_of, pin, quantile  # noqa: E402
from scalemcp.loadgen.cli import run as run_bench  # noqa: E402
from scalemcp.loadgen.config import BenchConfig  # noqa: E402
from scalemcp.loadgen.report import Report  # noqa: E402
from tests.harness.client import Stateless  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402
from tests.harness.serve import ServeProcess  # noqa: E402

VENV = ROOT / ".cache" / "bench-venvs" / "fastmcp-tasks"
TARGET = ROOT / "bench" / "targets" / "fastmcp_tasks_server.py"
START_TIMEOUT_S = 60.0


def fastmcp_python() -> Path:
    """The fastmcp-tasks venv's Python, made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "fastmcp-tasks", "uvicorn"],
                       check=True)
    return python


def versions(python: Path) -> str:
    probe = ("from importlib.metadata import version as v; "
             "print(', '.join(f'{p} {v(p)}' for p in "
             "('fastmcp-slim', 'fastmcp-tasks', 'pydocket', 'mcp', 'uvicorn', 'redis')))")
    return subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip()


@contextmanager
def fastmcp_server(redis_url: str, log: Path, max_connections: int
                   ) -> Iterator[tuple[str, int]]:
    """The FastMCP target, its output in ``log`` (a pipe nobody reads would stall it)."""
    with log.open("w") as out:
        proc = subprocess.Popen([str(fastmcp_python()), str(TARGET), "--redis-url", redis_url,
                                 "--max-connections", str(max_connections)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        ports: list[str] = []
        while not ports:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fastmcp target did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
            ports = [line for line in log.read_text().splitlines() if line.startswith("PORT ")]
        port = int(ports[0].split()[1])
        url = f"http://127.0.0.1:{port}/mcp"
        wait_answering(url)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_answering(url: str) -> None:
    """Until one task completes (the worker and its Redis connection are up)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            trio.run(drive, url, 1, 1, 0.02, 10.0)
            return
        except (httpx.HTTPError, KeyError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


async def create_and_poll(c: Stateless, poll_s: float) -> float:
    started = time.perf_counter()
    r = await c.call("tools/call", {"name": "noop", "arguments": {}}, "noop")
    created = r.json().get("result")
    assert created is not None, (r.status_code, r.text)
    assert created["resultType"] == "task", r.text
    task_id = created["taskId"]
    while True:
        got = await c.call("tasks/get", {"taskId": task_id}, task_id)
        answer = got.json().get("result")
        assert answer is not None, (got.status_code, got.text)
        status = answer["status"]
        if status == "completed":
            return time.perf_counter() - started
        assert status in ("working", "submitted"), got.text
        await trio.sleep(poll_s)


async def drive(url: str, n: int, clients: int, poll_s: float, timeout_s: float
                ) -> list[float]:
    latencies: list[float] = []

    async def client(count: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            c = Stateless(http, url, capabilities=DECLARED)
            for _ in range(count):
                latencies.append(await create_and_poll(c, poll_s))

    with trio.fail_after(timeout_s):
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(client, n // clients + (1 if i < n % clients else 0))
    return latencies


Row = tuple[str, int, int, float, float, float, float, float]


def loadgen(url: str, n: int, clients: int, args: argparse.Namespace,
            wait: Literal["poll", "listen"] = "poll") -> Report:
    """``scalemcp bench --era modern --scenario task -n N``: each of ``clients`` creates a
    task, polls ``tasks/get`` every ``--poll-ms`` until it completes (``wait="listen"``:
    is told on ``subscriptions/listen`` instead, scalemcp only), then the next."""
    config = BenchConfig(url=url, era="modern", scenario="task", clients=clients, requests=n,
                         duration_s=None, warmup_s=0, tool="noop", args={},
                         task_poll_ms=args.poll_ms, task_wait=wait,
                         timeout_s=args.phase_timeout)
    report = run_bench(config, check=False)
    if report.errors or report.aborted:
        raise RuntimeError(f"{report.errors} errors {report.errors_by_kind}: "
                           f"{report.error_samples} {report.aborted or ''}")
    return report


def measure(name: str, url: str, server_pids: list[int], redis_pid: int, n: int,
            clients: int, rnd: int, args: argparse.Namespace) -> Row:
    poll_s = args.poll_ms / 1000
    wait: Literal["poll", "listen"] = "listen" if name.endswith("-listen") else "poll"
    if args.client == "loadgen":
        loadgen(url, min(200, n), clients, args, wait)  # warm-up
    else:
        trio.run(drive, url, min(200, n), clients, poll_s, args.phase_timeout)
    s0, r0 = cpu_seconds(server_pids), cpu_seconds([redis_pid])
    started = time.perf_counter()
    if args.client == "loadgen":
        report = loadgen(url, n, clients, args, wait)
        wall = time.perf_counter() - started
        done = report.requests
        p50, p99 = report.ops["task"].p50_us / 1000, report.ops["task"].p99_us / 1000
    else:
        latencies = trio.run(drive, url, n, clients, poll_s, args.phase_timeout)
        wall = time.perf_counter() - started
        done = n
        p50, p99 = quantile(latencies, 0.5) * 1000, quantile(latencies, 0.99) * 1000
    s_cpu = cpu_seconds(server_pids) - s0
    r_cpu = cpu_seconds([redis_pid]) - r0
    row = (name, clients, rnd, done / wall, p50, p99, s_cpu / done * 1e6, r_cpu / done * 1e6)
    print(f"  {name} c={clients} round {rnd}: {row[3]:.0f} tasks/s, p50 {row[4]:.1f} ms, "
          f"p99 {row[5]:.1f} ms", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="tasks per measured phase")
    parser.add_argument("-c", type=int, nargs="+", default=[16], help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--poll-ms", type=float, default=20.0, help="tasks/get interval")
    parser.add_argument("--phase-timeout", type=float, default=240.0, help="seconds")
    parser.add_argument("--fastmcp-log", type=Path, default=Path("/tmp/fastmcp-tasks-bench.log"),
                        help="the FastMCP target's output")
    parser.add_argument("--fastmcp-max-connections", type=int, default=0,
                        help="Docket's redis-py pool size (0: its default, 100)")
    parser.add_argument("--targets", nargs="+",
                        choices=["scalemcp", "scalemcp-listen", "fastmcp"],
                        default=["scalemcp", "fastmcp"],
                        help="scalemcp-listen: the same server, each client told of its "
                        "task's completion on subscriptions/listen (push; FastMCP has none) "
                        "instead of polling")
    parser.add_argument("--client", choices=["loadgen", "httpx"], default="loadgen",
                        help="loadgen: scalemcp bench's lean client (--scenario task), run "
                        "here; httpx: one httpx client per simulated client (runs 1-5)")
    parser.add_argument("--client-cpu", type=int, default=0,
                        help="the CPU the client (this process) is pinned to, beside "
                        "redis-server (-1: unpinned)")
    args = parser.parse_args()
    if args.client_cpu >= 0:
        pin([os.getpid()], args.client_cpu)
    python = fastmcp_python()
    redis = RedisServer()
    rows: list[Row] = []
    failures: list[str] = []
    try:
        assert redis.proc is not None
        redis_pid = redis.proc.pid
        pin([redis_pid], 0)
        scalemcp = ServeProcess("bench.tasks_app:app", "--log-level", "warning",
                                "--redis-url", redis.url, "--state-keys", "k" * 64)
        try:
            with fastmcp_server(redis.url, args.fastmcp_log,
                                args.fastmcp_max_connections) as (fast_url, fast_pid):
                targets = {"scalemcp": (scalemcp.url, pids_of(scalemcp.proc.pid)),
                           "scalemcp-listen": (scalemcp.url, pids_of(scalemcp.proc.pid)),
                           "fastmcp": (fast_url, pids_of(fast_pid))}
                targets = {k: v for k, v in targets.items() if k in args.targets}
                for _, pids in targets.values():
                    pin(pids, 1)
                for clients in args.c:
                    for rnd in range(1, args.rounds + 1):
                        for name, (url, pids) in targets.items():
                            try:
                                rows.append(measure(name, url, pids, redis_pid, args.n,
                                                    clients, rnd, args))
                            except (AssertionError, trio.TooSlowError, httpx.HTTPError,
                                    RuntimeError, ExceptionGroup) as error:
                                first = getattr(error, "exceptions", [error])[0]
                                failures.append(f"{name} c={clients} round {rnd}: {first!r}")
                                print(f"  {failures[-1]}", flush=True)
        finally:
            scalemcp.stop()
    finally:
        redis.stop()
    print(f"\nfastmcp side: {versions(python)}")
    client = "unpinned" if args.client_cpu < 0 else f"on CPU {args.client_cpu}"
    print(f"{args.n} tasks per phase, polling every {args.poll_ms:g} ms; each server on "
          f"CPU 1, redis-server on CPU 0, the client ({args.client}) {client}\n")
    print("| target | clients | round | tasks/s | p50 ms | p99 ms | server CPU us/task | "
          "redis CPU us/task |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, clients, rnd, rate, p50, p99, s_us, r_us in rows:
        print(f"| {name} | {clients} | {rnd} | {rate:.0f} | {p50:.1f} | {p99:.1f} | "
              f"{s_us:.0f} | {r_us:.0f} |")
    for failure in failures:
        print(f"\nfailed: {failure}")


if __name__ == "__main__":
    main()
