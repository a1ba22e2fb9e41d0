"""Server CPU time per request of the skills methods, against a tool call in the same run.

Starts ``scalemcp serve examples.skills_server:app`` (one worker, memory backend), then
drives each operation in turn with concurrent stateless (2026-07-28) clients over
keep-alive connections and reads the worker's CPU time (utime + stime from /proc) around
each phase. Reports CPU microseconds per request and the ratio to ``tools/call``.

    python bench/skills.py [-n 3000] [-c 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.serve import ServeProcess  # noqa: E402
from tests.skills.support import modern  # noqa: E402

OPERATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "tools/call refund_status (baseline)": (
        "tools/call", {"name": "refund_status", "arguments": {"order_id": "A-17"}}),
    "resources/read SKILL.md (1.0 KB text)": (
        "resources/read", {"uri": "skill://git-workflow/SKILL.md"}),
    "resources/read PNG (blob)": (
        "resources/read", {"uri": "skill://acme/billing/refunds/assets/refund-flow.png"}),
    "resources/read from code (in memory)": (
        "resources/read", {"uri": "skill://generated/release-notes/SKILL.md"}),
    "skills/list (3 entries)": ("skills/list", {}),
    "skills/get": ("skills/get", {"uri": "skill://acme/billing/refunds/SKILL.md"}),
    "resources/directory/read": (
        "resources/directory/read", {"uri": "skill://acme/billing/refunds"}),
    "resources/list": ("resources/list", {}),
}


def cpu_seconds(parent: int) -> float:
    """CPU time of the server: its supervisor and every process it started."""
    pids = [parent, *map(int, Path(f"/proc/{parent}/task/{parent}/children").read_text().split())]
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def drive(url: str, method: str, params: dict[str, Any], n: int, clients: int) -> None:
    async def client(count: int) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            rpc = modern(http, url)
            for _ in range(count):
                await rpc.result(method, params)

    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, n // clients + (1 if i < n % clients else 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="requests per operation")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    args = parser.parse_args()
    server = ServeProcess("examples.skills_server:app", "--log-level", "warning")
    try:
        pid = server.proc.pid
        url = server.url
        rows = []
        for label, (method, params) in OPERATIONS.items():
            trio.run(drive, url, method, params, min(300, args.n), args.c)  # warm-up
            before, started = cpu_seconds(pid), time.perf_counter()
            trio.run(drive, url, method, params, args.n, args.c)
            cpu = cpu_seconds(pid) - before
            rows.append((label, cpu / args.n * 1e6, args.n / (time.perf_counter() - started)))
        base = rows[0][1]
        print(f"server CPU per request, {args.n} requests x {len(rows)} operations, "
              f"{args.c} clients, 1 worker\n")
        print("| operation | CPU us / request | vs tools/call | requests/s |")
        print("|---|---:|---:|---:|")
        for label, us, rate in rows:
            print(f"| {label} | {us:.0f} | {us / base:.2f} | {rate:.0f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
