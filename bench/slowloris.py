"""Slowloris against one worker: trickling connections are cut at the head deadline while
a normal client goes on being served.

Usage: python bench/slowloris.py [--connections 5000] [--head-timeout 10]
       [--trickle-every 5] [--open-rate 1000] [--output bench/results/<date>-slowloris]

``scalemcp serve examples.quickstart:app`` (one worker, pinned to core 0; this process on
core 1) gets ``--connections`` connections, opened at ``--open-rate`` per second, each
sending half a request head and then one byte every ``--trickle-every`` seconds (so no
per-read timeout could ever fire). Meanwhile one normal client calls ``echo`` in a session,
one call after another with 20 ms between, in a process of its own (on core 1 too): in
the attackers' event loop, its latency would be theirs (5,000 tasks), not the server's.
Reported: how many trickling connections the server closed and when (seconds after their
connect), how many were still open at the end, the normal client's latency (p50, p99,
max) over the whole run and while the trickling connections were all open, the worker's
CPU time and memory, and
``scalemcp_connections_timed_out_total{phase="head"}``. Written as <output>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.client import HEADERS, initialize, tool_call  # noqa: E402
from tests.harness.serve import ServeProcess  # noqa: E402

PARTIAL_HEAD = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slowloris: "
TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--head-timeout", type=float, default=10.0)
    parser.add_argument("--trickle-every", type=float, default=5.0)
    parser.add_argument("--open-rate", type=float, default=1000.0)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / (
        dt.date.today().isoformat() + "-slowloris"))
    return parser.parse_args()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid: int) -> int:
    found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) if found else 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Run:
    def __init__(self, args: argparse.Namespace, port: int, url: str) -> None:
        self.args = args
        self.port = port
        self.url = url
        self.closed_after: list[float] = []
        self.failed_to_open = 0
        self.open_now = 0
        self.all_open_at: float | None = None
        self.latencies: list[tuple[float, float]] = []  # (at, seconds)
        self.client_errors: list[str] = []
        self.client_ready = trio.Event()
        self.done = trio.Event()

    async def trickle(self) -> None:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            await stream.send_all(PARTIAL_HEAD)
        except OSError:
            self.failed_to_open += 1
            return
        opened = trio.current_time()
        self.open_now += 1
        try:
            while True:
                with trio.move_on_after(self.args.trickle_every):
                    if await stream.receive_some(4096) == b"":
                        break  # closed by the server
                    continue  # it answered something (a 408?): read on until the close
                await stream.send_all(b"x")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.open_now -= 1
            await trio.aclose_forcefully(stream)
        self.closed_after.append(trio.current_time() - opened)

    async def normal_client(self) -> None:
        """Run the normal client's process until :attr:`done`; collect what it saw."""
        parent, child = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=normal_client_process, args=(self.url, child), daemon=True)
        process.start()
        try:
            assert await trio.to_thread.run_sync(parent.recv) == "ready"
            self.client_ready.set()
            await self.done.wait()
            parent.send("stop")
            latencies, errors = await trio.to_thread.run_sync(parent.recv)
        finally:
            await trio.to_thread.run_sync(process.join, 10)
        offset = trio.current_time() - time.perf_counter()  # its clock to trio's
        self.latencies = [(began + offset, seconds) for began, seconds in latencies]
        self.client_errors = errors


def normal_client_process(url: str, pipe: Connection) -> None:
    """The normal client: ``echo`` in a session, 20 ms between calls, until told to stop;
    sends back (began, seconds) per call (``time.perf_counter``) and the errors."""
    latencies: list[tuple[float, float]] = []
    errors: list[str] = []
    with httpx.Client(timeout=30) as http:
        response = http.post(url, json=initialize(), headers=HEADERS)
        session = {**HEADERS, "mcp-session-id": response.headers["mcp-session-id"]}
        pipe.send("ready")
        rid = 1
        while not pipe.poll():
            rid += 1
            began = time.perf_counter()
            try:
                answer = http.post(url, json=tool_call("echo", {"message": "m"}, rid),
                                   headers=session)
                if answer.status_code != 200:
                    errors.append(f"HTTP {answer.status_code}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            latencies.append((began, time.perf_counter() - began))
            time.sleep(0.02)
    pipe.send((latencies, errors))


async def attack(args: argparse.Namespace, server: ServeProcess, worker: int) -> dict[str, Any]:
    run = Run(args, server.port, server.url)
    async with httpx.AsyncClient(timeout=30) as http:
        metrics_url = server.base + "/metrics"
        before = (await http.get(metrics_url)).text
        cpu_before, rss_before = cpu_s(worker), rss_kib(worker)
        started = trio.current_time()
        peak_rss = rss_before
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.normal_client)
            await run.client_ready.wait()
            async with trio.open_nursery() as attackers:
                for _ in range(args.connections):
                    attackers.start_soon(run.trickle)
                    await trio.sleep(1 / args.open_rate)
                run.all_open_at = trio.current_time()
                while run.open_now:
                    peak_rss = max(peak_rss, rss_kib(worker))
                    await trio.sleep(0.2)
                    if trio.current_time() - started > args.head_timeout * 3 + 60:
                        break  # not cut: report what is still open
                still_open = run.open_now
                attackers.cancel_scope.cancel()
            await trio.sleep(1.0)  # the client once more with nothing open
            run.done.set()
        after = (await http.get(metrics_url)).text
        elapsed = trio.current_time() - started
    cpu_used = cpu_s(worker) - cpu_before

    def head_timeouts(text: str) -> float:
        found = re.search(r'^scalemcp_connections_timed_out_total\{phase="head"\} (\S+)$', text,
                          re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    opened_at = run.all_open_at or started
    during = [s for at, s in run.latencies if started <= at <= opened_at + args.head_timeout]
    every = [s for _, s in run.latencies]
    ms = 1000.0
    return {
        "connections": args.connections, "head_timeout_s": args.head_timeout,
        "trickle_every_s": args.trickle_every, "open_rate_per_s": args.open_rate,
        "failed_to_open": run.failed_to_open, "closed_by_server": len(run.closed_after),
        "still_open_at_end": still_open,
        "closed_after_s": {"min": min(run.closed_after, default=float("nan")),
                           "p50": percentile(run.closed_after, 0.5),
                           "p99": percentile(run.closed_after, 0.99),
                           "max": max(run.closed_after, default=float("nan"))},
        "head_timeouts_counted": head_timeouts(after) - head_timeouts(before),
        "opening_took_s": opened_at - started, "run_s": elapsed,
        "client": {"requests": len(every), "errors": len(run.client_errors),
                   "error_kinds": sorted(set(run.client_errors)),
                   "p50_ms": percentile(every, 0.5) * ms, "p99_ms": percentile(every, 0.99) * ms,
                   "max_ms": max(every, default=float("nan")) * ms,
                   "mean_ms": statistics.fmean(every) * ms if every else float("nan"),
                   "while_attacked": {"requests": len(during),
                                      "p50_ms": percentile(during, 0.5) * ms,
                                      "p99_ms": percentile(during, 0.99) * ms,
                                      "max_ms": max(during, default=float("nan")) * ms}},
        "worker": {"cpu_s": cpu_used, "rss_kib_before": rss_before, "rss_kib_peak": peak_rss,
                   "rss_kib_per_connection": (peak_rss - rss_before) / args.connections},
    }


def markdown(result: dict[str, Any], command: str, commit: str) -> str:
    c, w, cut = result["client"], result["worker"], result["closed_after_s"]
    a = c["while_attacked"]
    opened = result["connections"] - result["failed_to_open"]
    rows = [
        ("trickling connections opened",
         f"{opened:,} of {result['connections']:,} in {result['opening_took_s']:.1f} s"),
        ("closed by the server", f"{result['closed_by_server']:,}"),
        ("still open at the end", f"{result['still_open_at_end']:,}"),
        ("closed after (s from connect): min / p50 / p99 / max",
         f"{cut['min']:.2f} / {cut['p50']:.2f} / {cut['p99']:.2f} / {cut['max']:.2f}"),
        ('`scalemcp_connections_timed_out_total{phase="head"}` rose by',
         f"{result['head_timeouts_counted']:,.0f}"),
        ("normal client: calls, errors",
         f"{c['requests']:,}, {c['errors']} {' '.join(c['error_kinds'])}"),
        ("normal client while attacked: p50 / p99 / max ms",
         f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} / {a['max_ms']:.1f} ({a['requests']} calls)"),
        ("normal client, whole run: p50 / p99 / max ms",
         f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f} / {c['max_ms']:.1f}"),
        ("worker CPU over the run", f"{w['cpu_s']:.1f} s in {result['run_s']:.1f} s"),
        ("worker RSS before / peak (KiB per connection)",
         f"{w['rss_kib_before']:,} / {w['rss_kib_peak']:,} KiB "
         f"({w['rss_kib_per_connection']:.1f})"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"""# Slowloris against one worker ({dt.date.today().isoformat()})

Command: `{command}` (scalemcp at {commit}; the worker pinned to core 0, the attackers and
the normal client, in a process of its own, on core 1; a shared 2-core machine; load
average before: {result.get('loadavg', '?')}).

| | |
|---|---:|
{table}

Head deadline {result['head_timeout_s']} s (`--head-timeout-s`), one byte every
{result['trickle_every_s']} s per connection, {result['open_rate_per_s']:.0f} connections
opened per second. "While attacked": calls begun before the last trickling connection
was opened plus the head deadline.
"""


def main() -> None:
    args = parse_args()
    import subprocess

    server = ServeProcess("examples.quickstart:app", "--log-level", "warning",
                          "--head-timeout-s", str(args.head_timeout),
                          "--max-connections-per-client", str(args.connections + 100),
                          "--keep-alive-timeout-s", "600")
    try:
        [worker] = server.workers()
        if not args.no_pin:
            os.sched_setaffinity(worker, {0})
            os.sched_setaffinity(0, {1})
        loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        result = trio.run(attack, args, server, worker)
        result["loadavg"] = loadavg
    finally:
        server.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    command = "python bench/slowloris.py " + " ".join(sys.argv[1:])
    result["command"], result["commit"] = command, commit
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result, command, commit)
    args.output.with_suffix(".md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
