"""Durable tasks: how many a server creates and completes per second, and their CPU cost.

Starts redis-server and ``scalemcp serve bench.tasks_app:app --redis-url ...`` (one worker),
pins the server's processes to one CPU and redis-server to the other (``taskset``
semantics, through ``sched_setaffinity``), then runs, in one run, against the same server:

- ``inline``: the no-op tool called inline (2026-07-28, no tasks declared): the baseline;
- ``create``: clients only create tasks (latency: to the CreateTaskResult); the worker
  runs them meanwhile, and the phase ends once every one has completed (read from Redis),
  so its CPU is a task's whole cost without polling;
- ``poll``: each client creates a no-op task and polls ``tasks/get`` every ``--poll-ms``
  until it completes, then the next;
- ``listen``: each client creates a task, opens ``subscriptions/listen`` for it and waits
  for ``notifications/tasks`` with ``completed``.

For each: operations per second (wall clock), create-to-complete latency (p50, p99), and
the CPU time the server (every process) and redis-server spent per operation, read from
/proc around the phase. The client shares the machine: read the ratios, not the absolutes.

    python bench/tasks.py [-n 1000] [-c 16] [--poll-ms 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.client import Stateless  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402
from tests.harness.serve import ServeProcess  # noqa: E402

DECLARED = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


def pids_of(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [parent, *map(int, children)]


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def pin(pids: list[int], cpu: int) -> None:
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), {cpu})


async def inline(c: Stateless, poll_s: float) -> float:
    started = time.perf_counter()
    r = await c.call("tools/call", {"name": "noop", "arguments": {}}, "noop")
    assert r.json()["result"]["resultType"] == "complete", r.text
    return time.perf_counter() - started


async def created(c: Stateless, poll_s: float) -> float:
    started = time.perf_counter()
    r = await c.call("tools/call", {"name": "noop", "arguments": {}}, "noop")
    assert r.json()["result"]["resultType"] == "task", r.text
    return time.perf_counter() - started


async def polled(c: Stateless, poll_s: float) -> float:
    started = time.perf_counter()
    r = await c.call("tools/call", {"name": "noop", "arguments": {}}, "noop")
    task_id = r.json()["result"]["taskId"]
    while True:
        got = await c.call("tasks/get", {"taskId": task_id}, task_id)
        if got.json()["result"]["status"] == "completed":
            return time.perf_counter() - started
        await trio.sleep(poll_s)


async def listened(c: Stateless, poll_s: float) -> float:
    started = time.perf_counter()
    r = await c.call("tools/call", {"name": "noop", "arguments": {}}, "noop")
    task_id = r.json()["result"]["taskId"]
    body = c.request("subscriptions/listen", {"notifications": {"taskIds": [task_id]}})
    async with c.http.stream("POST", c.url, json=body,
                             headers=c.headers("subscriptions/listen")) as stream:
        acknowledged = False
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message["method"] == "notifications/subscriptions/acknowledged":
                acknowledged = True
                # It may have completed before the stream began: look once.
                got = await c.call("tasks/get", {"taskId": task_id}, task_id)
                if got.json()["result"]["status"] == "completed":
                    break
            elif message["params"]["status"] == "completed":
                break
        assert acknowledged
    return time.perf_counter() - started


PHASES = {"inline": inline, "create": created, "poll": polled, "listen": listened}


async def drive(url: str, phase: str, n: int, clients: int, poll_s: float
                ) -> list[float]:
    latencies: list[float] = []
    op = PHASES[phase]

    async def client(count: int) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            c = Stateless(http, url, capabilities={} if phase == "inline" else DECLARED)
            for _ in range(count):
                latencies.append(await op(c, poll_s))

    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, n // clients + (1 if i < n % clients else 0))
    return latencies


def wait_drained(redis: RedisServer) -> None:
    """Until the task queue is empty (every created task was claimed and finished)."""
    while redis.command("XLEN", "smcp:{tasks}:q") not in (b":0", b""):
        time.sleep(0.01)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="operations per phase")
    parser.add_argument("-c", type=int, default=16, help="concurrent clients")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="tasks/get interval")
    args = parser.parse_args()
    redis = RedisServer()
    server = ServeProcess("bench.tasks_app:app", "--log-level", "warning",
                          "--redis-url", redis.url, "--state-keys", "k" * 64)
    try:
        assert redis.proc is not None
        server_pids = pids_of(server.proc.pid)
        pin(server_pids, 1)
        pin([redis.proc.pid], 0)
        rows = []
        for phase in PHASES:
            trio.run(drive, server.url, phase, min(200, args.n), args.c, args.poll_ms / 1000)
            s0, r0 = cpu_seconds(server_pids), cpu_seconds([redis.proc.pid])
            started = time.perf_counter()
            latencies = trio.run(drive, server.url, phase, args.n, args.c,
                                 args.poll_ms / 1000)
            if phase == "create":
                wait_drained(redis)
            wall = time.perf_counter() - started
            s_cpu = cpu_seconds(server_pids) - s0
            r_cpu = cpu_seconds([redis.proc.pid]) - r0
            rows.append((phase, args.n / wall, quantile(latencies, 0.5) * 1000,
                         quantile(latencies, 0.99) * 1000, s_cpu / args.n * 1e6,
                         r_cpu / args.n * 1e6))
        base = rows[0][4]
        print(f"{args.n} operations per phase, {args.c} clients, 1 worker on CPU 1, "
              f"redis-server on CPU 0, poll every {args.poll_ms:g} ms\n")
        print("| phase | ops/s | p50 ms | p99 ms | server CPU us/op | vs inline | "
              "redis CPU us/op |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for phase, rate, p50, p99, s_us, r_us in rows:
            print(f"| {phase} | {rate:.0f} | {p50:.1f} | {p99:.1f} | {s_us:.0f} | "
                  f"{s_us / base:.2f} | {r_us:.0f} |")
    finally:
        server.stop()
        redis.stop()


if __name__ == "__main__":
    main()
