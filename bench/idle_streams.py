"""Many idle SSE streams on one worker: how fast they open, what they cost, who is told.

Starts ``scalemcp serve scalemcp_server:app --workers 1`` (bench/targets, memory backend,
or ``--redis`` for a private redis-server) pinned to one core, this load generator on the
other. Then, each phase bounded in time:

1. requests alone: ``-k`` clients call ``echo`` (session era, JSON) for ``--window`` s:
   requests/s and the server's CPU per request, with no stream open;
2. opens ``--streams`` streams, half session-era GET streams (a session each) and half
   2026-07-28 ``subscriptions/listen`` streams (``--listen-share``), ``--concurrency`` at
   a time: how long it took, how many failed;
3. holds them idle for ``--hold`` s: the server's memory (RSS of its processes) per open
   stream against the figure before phase 2, and its CPU time spent on keepalives
   (``--keepalive`` s apart: CPU per keepalive sent);
4. requests again, as in 1, with every stream open: the ratio to phase 1;
5. one ``touch`` (a tools list_changed notification): the time until every stream has
   received it (and how many did not within ``--fanout-limit`` s).

Loopback only; the server's file limit is raised to the hard limit (streams need a socket
each), and everything is stopped at the end.

    python bench/idle_streams.py --streams 10000
    python bench/idle_streams.py --streams 2000 --hold 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "bench" / "targets"
sys.path.insert(0, str(ROOT))

from scalemcp.loadgen.client import McpClient, read_messages  # noqa: E402
from scalemcp.loadgen.http import Origin, open_http_client  # noqa: E402
from scalemcp.loadgen.http._base import Response  # noqa: E402
from tests.harness.ports import unused_port  # noqa: E402

SERVER_CORE, CLIENT_CORE = 1, 0
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STATE_KEY = "0" * 64


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split()
            todo.extend(int(c) for c in children)
    return found


def server_cpu_s(pid: int) -> float:
    ticks = 0
    for p in _tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / TICK


def server_rss_kib(pid: int) -> int:
    return sum(int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE // 1024
               for p in _tree(pid))


def _loadavg() -> str:
    """The machine's 1, 5 and 15 minute load averages: how much else ran (2 cores)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(ns: argparse.Namespace, redis_url: str | None
                 ) -> tuple[subprocess.Popen[bytes], int]:
    port = unused_port()
    command = [sys.executable, "-m", "scalemcp.cli", "serve", "scalemcp_server:app",
               "--port", str(port), "--workers", "1", "--log-level", "warning",
               "--state-keys", STATE_KEY, "--sse-keepalive-s", str(ns.keepalive),
               "--max-sessions-per-principal", str(ns.streams + 100),
               # Every stream comes from 127.0.0.1: the per-client cap would refuse them.
               "--max-connections", str(ns.streams + 200),
               "--max-connections-per-client", str(ns.streams + 200)]
    if redis_url:
        command += ["--redis-url", redis_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def child() -> None:
        _raise_file_limit()
        os.sched_setaffinity(0, {SERVER_CORE})

    proc = subprocess.Popen(command, cwd=TARGETS, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(ns.log, "wb"), preexec_fn=child)  # noqa: SIM115
    return proc, port


async def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    with trio.fail_after(60):
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the server exited: see its log (--log)")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
                if b" 200 " in await stream.receive_some(4096):
                    await stream.aclose()
                    return
                await stream.aclose()
            except OSError:
                pass
            await trio.sleep(0.2)


class Streams:
    """The open streams and what each has received."""

    def __init__(self) -> None:
        self.opened = 0
        self.failed: dict[str, int] = {}
        #: One message per kind of failure, to tell its cause.
        self.why: dict[str, str] = {}
        self.told: list[float] = []
        self.touched_at = 0.0
        self.everyone_told = trio.Event()
        self.expected = 0

    def fail(self, kind: str, why: str = "") -> None:
        self.failed[kind] = self.failed.get(kind, 0) + 1
        self.why.setdefault(kind, why)


async def open_one(origin: Origin, modern: bool, streams: Streams, nursery: trio.Nursery,
                   limiter: trio.CapacityLimiter) -> None:
    async with limiter:
        try:
            async with open_http_client(origin) as http:
                mcp = McpClient(http, "/mcp", era="modern" if modern else "session")
                if modern:
                    headers, body = mcp.build(
                        "subscriptions/listen", {"notifications": {"toolsListChanged": True}},
                        mcp.next_id())
                    response: Response = await mcp.post(headers, body)
                else:
                    await mcp.open()
                    headers = [h for h in mcp.headers() if h[0] != b"accept"]
                    headers.append((b"accept", b"text/event-stream"))
                    response = await http.send("GET", "/mcp", headers, b"")
                if response.status != 200:
                    streams.fail(f"http_{response.status}")
                    await response.aclose()
                    return
                streams.opened += 1
                opened = trio.Event()
                nursery.start_soon(_follow, http, response, streams, opened)
                await opened.wait()  # the connection stays with _follow
        except Exception as exc:  # counted: the report says how many and why
            streams.fail(type(exc).__name__, str(exc)[:200])


async def _follow(http: Any, response: Response, streams: Streams, opened: trio.Event) -> None:
    try:
        opened.set()
        async with aclosing(read_messages(response)) as messages:
            async for message, _ in messages:
                if message.method == "notifications/tools/list_changed":
                    streams.told.append(trio.current_time() - streams.touched_at)
                    if len(streams.told) >= streams.expected:
                        streams.everyone_told.set()
    except Exception:
        pass  # the stream ended (the server stopped): nothing to count
    finally:
        await response.aclose()


async def _connection_counters(origin: Origin) -> dict[str, float]:
    """The server's connection counters (timed out by phase, refused by reason)."""
    async with open_http_client(origin) as http:
        response = await http.send("GET", "/metrics", [], b"")  # (it sends the host)
        text = (await response.read()).decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("scalemcp_connections_timed_out_total",
                            "scalemcp_connections_refused_total")):
            name, _, value = line.rpartition(" ")
            found[name.removeprefix("scalemcp_connections_")] = float(value)
    return found


async def request_rate(origin: Origin, clients: int, window_s: float, pid: int
                       ) -> dict[str, float]:
    done = 0
    errors = 0
    ready = 0

    async def client() -> None:
        nonlocal done, errors, ready
        async with open_http_client(origin) as http:
            mcp = McpClient(http, "/mcp", era="session")
            await mcp.open()
            ready += 1
            if ready == clients:
                all_ready.set()
            await started.wait()
            while not stop.is_set():
                try:
                    await mcp.request("tools/call", {"name": "echo",
                                                     "arguments": {"message": "hi"}})
                    if measuring:
                        done += 1
                except Exception:
                    errors += 1
            await mcp.close()

    started, stop, all_ready = trio.Event(), trio.Event(), trio.Event()
    measuring = False
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
        with trio.move_on_after(60):
            await all_ready.wait()  # every client has its session
        started.set()
        await trio.sleep(1.0)  # warm-up
        measuring = True
        cpu0, t0, own0 = server_cpu_s(pid), trio.current_time(), _own_cpu_s()
        await trio.sleep(window_s)
        cpu1, t1, own1 = server_cpu_s(pid), trio.current_time(), _own_cpu_s()
        measuring = False
        stop.set()
    return {"requests_per_s": round(done / (t1 - t0), 1),
            "cpu_us_per_request": round((cpu1 - cpu0) / max(done, 1) * 1e6, 1),
            "errors": errors,
            "cores": {"server": round((cpu1 - cpu0) / (t1 - t0), 2),
                      "client": round((own1 - own0) / (t1 - t0), 2)}}


async def run(ns: argparse.Namespace, proc: subprocess.Popen[bytes], port: int
              ) -> dict[str, Any]:
    origin = Origin("http", "127.0.0.1", port)
    await wait_ready(port, proc)
    await trio.sleep(1.0)
    out: dict[str, Any] = {"streams": ns.streams, "keepalive_s": ns.keepalive,
                           "loadavg_before": _loadavg()}
    out["requests_alone"] = await request_rate(origin, ns.clients, ns.window, proc.pid)
    rss_before = server_rss_kib(proc.pid)
    streams = Streams()
    modern = round(ns.streams * ns.listen_share)
    async with trio.open_nursery() as followers:
        limiter = trio.CapacityLimiter(ns.concurrency)
        t0 = trio.current_time()
        server0, client0 = server_cpu_s(proc.pid), _own_cpu_s()
        with trio.move_on_after(ns.open_limit):
            async with trio.open_nursery() as openers:
                for i in range(ns.streams):
                    openers.start_soon(open_one, origin, i < modern, streams, followers, limiter)
        out["open_s"] = round(trio.current_time() - t0, 2)
        # Which side was the bottleneck: a core is 1.0 (each is pinned to one).
        out["open_cores"] = {
            "server": round((server_cpu_s(proc.pid) - server0) / out["open_s"], 2),
            "client": round((_own_cpu_s() - client0) / out["open_s"], 2)}
        out["opened"] = streams.opened
        out["open_failed"] = streams.failed
        out["open_failed_why"] = streams.why
        out["server_connections"] = await _connection_counters(origin)
        out["not_opened_in_time"] = ns.streams - streams.opened - sum(streams.failed.values())
        await trio.sleep(2.0)  # settle
        rss_open = server_rss_kib(proc.pid)
        cpu0 = server_cpu_s(proc.pid)
        await trio.sleep(ns.hold)
        cpu1 = server_cpu_s(proc.pid)
        rss_held = server_rss_kib(proc.pid)
        out["rss_kib"] = {"before": rss_before, "opened": rss_open, "held": rss_held}
        out["kib_per_stream"] = round((rss_held - rss_before) / max(streams.opened, 1), 2)
        keepalives = streams.opened * ns.hold / ns.keepalive
        out["idle_cpu_s"] = round(cpu1 - cpu0, 3)
        out["cpu_us_per_keepalive"] = round((cpu1 - cpu0) / max(keepalives, 1) * 1e6, 1)
        out["requests_with_streams"] = await request_rate(origin, ns.clients, ns.window,
                                                          proc.pid)
        alone = out["requests_alone"]["requests_per_s"]
        out["rate_ratio"] = round(out["requests_with_streams"]["requests_per_s"]
                                  / max(alone, 1e-9), 3)
        streams.expected = streams.opened
        async with open_http_client(origin) as http:
            mcp = McpClient(http, "/mcp", era="session")
            await mcp.open()
            streams.touched_at = trio.current_time()
            await mcp.request("tools/call", {"name": "touch", "arguments": {}})
            with trio.move_on_after(ns.fanout_limit):
                await streams.everyone_told.wait()
        told = sorted(streams.told)
        out["fanout"] = {
            "told": len(told), "missed": streams.opened - len(told),
            "p50_ms": round(told[len(told) // 2] * 1000, 1) if told else None,
            "all_ms": round(told[-1] * 1000, 1) if told else None,
        }
        followers.cancel_scope.cancel()
    out["loadavg_after"] = _loadavg()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--listen-share", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=200,
                        help="streams being opened at once")
    parser.add_argument("--open-limit", type=float, default=120.0)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--keepalive", type=float, default=5.0)
    parser.add_argument("-k", "--clients", type=int, default=16)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--fanout-limit", type=float, default=60.0)
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--log", type=Path, default=Path("/tmp/idle_streams_server.log"))
    ns = parser.parse_args(argv)
    _raise_file_limit()
    os.sched_setaffinity(0, {CLIENT_CORE})
    redis = None
    if ns.redis:
        from tests.harness.redis import RedisServer

        if shutil.which("redis-server") is None:
            raise SystemExit("--redis needs redis-server on PATH")
        redis = RedisServer()
    proc, port = start_server(ns, redis.url if redis else None)
    try:
        out = trio.run(run, ns, proc, port)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if redis is not None:
            redis.stop()
    out["command"] = " ".join(["python", *sys.argv])
    out["backend"] = "redis" if ns.redis else "memory"
    text = json.dumps(out, indent=2)
    print(text)
    if ns.json:
        ns.json.write_text(text + "\n")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
