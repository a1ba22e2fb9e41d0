"""scalemcp's own CPU time per request, in process: the ASGI app called directly, no socket.

What a server (Hypercorn, the TCP loop) costs is left out: each simulated client is a Trio
task that calls the ASGI app with a ready ``scope``, a ``receive`` that hands over the body
and a ``send`` that keeps what it is given, as a server would. What is measured is the CPU
time (``resource.getrusage``, user + system) of the one process that runs the app and this
driver, per request, over the measured window only; the driver's own part is measured too
(the ``floor`` scenario: a bare ASGI app answering canned bytes) and is small.

Every measurement runs in a fresh child process pinned to one core (``taskset``), and each
figure is the median of ``--repeats`` runs, interleaved between the trees measured, so the
ratio to a baseline is measured in the same run on the same machine load:

    python bench/asgi_cost.py --baseline fbb8f3d            # this tree against a commit
    python bench/asgi_cost.py --scenario session-redis -c 16 -c 256 -n 4000

Scenarios: ``session`` (2025-11-25 ``tools/call`` of ``echo``, JSON answer, memory
backend), ``session-redis`` (the same on a private redis-server, pinned to the other
core; the Redis process's CPU is not counted), ``modern`` (2026-07-28 stateless
``tools/call``), ``initialize`` (``initialize`` + ``notifications/initialized`` + ``DELETE``:
an operation is those three requests, reported per request), ``floor``.
``--idle-sessions N`` creates N more sessions first (memory backend: the cost must not grow
with them). Writes a Markdown table to stdout and, with ``--json``, the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("session", "session-redis", "modern", "initialize", "floor")
SESSION_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"


# -- the child: one tree, one scenario, one client count -------------------------------------


def _child(ns: argparse.Namespace) -> None:
    sys.path.insert(0, ns.src)
    import trio

    trio.run(_drive, ns)


def _headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    base = [("host", "127.0.0.1:8000"), ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"), ("user-agent", "asgi-cost")]
    return [(k.encode(), v.encode()) for k, v in [*base, *pairs]]


def _scope(method: str, headers: list[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
    if method == "POST":
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": method, "scheme": "http", "path": "/mcp",
            "raw_path": b"/mcp", "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            "extensions": {"scalemcp.on_disconnect": _never_gone}}


def _never_gone(callback: Any) -> Any:
    """The serving loop's disconnect hook (``scalemcp.serving.tasks.DISCONNECT_HOOK``), as
    it is for a client that stays: registered, never fired (older trees ignore it)."""
    return _unregister


def _unregister() -> None:
    pass


async def _drive(ns: argparse.Namespace) -> None:
    import trio

    app = _build_app(ns)
    done = trio.Event()

    async def exchange(method: str, headers: list[tuple[bytes, bytes]], body: bytes
                       ) -> tuple[int, dict[bytes, bytes], bytes]:
        sent = False
        out: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any] | None) -> None:
            if message is not None:
                out.append(message)

        await app(_scope(method, headers, body), receive, send)
        status = out[0]["status"]
        head = dict(out[0].get("headers", []))
        return status, head, b"".join(m.get("body", b"") for m in out[1:])

    def rpc(rid: int, method: str, params: dict[str, Any]) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                           "params": params}, separators=(",", ":")).encode()

    init = rpc(1, "initialize", {"protocolVersion": SESSION_VERSION,
                                 "capabilities": {"elicitation": {}},
                                 "clientInfo": {"name": "asgi-cost", "version": "1"}})
    initialized = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
    version = [("mcp-protocol-version", SESSION_VERSION)]

    async def open_session() -> list[tuple[bytes, bytes]]:
        status, head, _ = await exchange("POST", _headers(), init)
        assert status == 200, status
        sid = head[b"mcp-session-id"].decode()
        headers = _headers(("mcp-session-id", sid), *version)
        status, _, _ = await exchange("POST", headers, initialized)
        assert status == 202, status
        return headers

    call_params = {"name": "echo", "arguments": {"message": "hello"}}
    modern_params = {**call_params, "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "asgi-cost", "version": "1"}}}
    modern_headers = _headers(("mcp-protocol-version", MODERN_VERSION),
                              ("mcp-method", "tools/call"), ("mcp-name", "echo"))

    async def one_op(client: dict[str, Any]) -> int:
        """One operation of the scenario; returns how many HTTP requests it made."""
        client["rid"] += 1
        if ns.scenario in ("session", "session-redis"):
            status, _, answer = await exchange("POST", client["headers"],
                                               rpc(client["rid"], "tools/call", call_params))
        elif ns.scenario in ("modern", "floor"):
            status, _, answer = await exchange("POST", modern_headers,
                                               rpc(client["rid"], "tools/call", modern_params))
        else:
            headers = await open_session()
            status, _, answer = await exchange("DELETE", headers, b"")
            assert status == 200, (status, answer)
            return 3
        if status != 200 or b'"result"' not in answer:
            raise RuntimeError(f"unexpected answer: {status} {answer[:200]!r}")
        return 1

    async def lifespan(task_status: Any) -> None:
        to_app_send, to_app = trio.open_memory_channel[dict[str, Any]](10)
        from_app_send, from_app = trio.open_memory_channel[dict[str, Any]](10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"},
                                     "state": {}}, to_app.receive, from_app_send.send)
            await to_app_send.send({"type": "lifespan.startup"})
            started = await from_app.receive()
            assert started["type"] == "lifespan.startup.complete", started
            task_status.started()
            await done.wait()
            await to_app_send.send({"type": "lifespan.shutdown"})
            await from_app.receive()

    async with trio.open_nursery() as nursery:
        await nursery.start(lifespan)
        clients: list[dict[str, Any]] = []
        for _ in range(ns.clients):
            headers = await open_session() if ns.scenario.startswith("session") else []
            clients.append({"headers": headers, "rid": 1})
        for _ in range(ns.idle_sessions):
            await open_session()
        counter = {"ops": 0, "requests": 0}

        async def loop(client: dict[str, Any], budget: int) -> None:
            while counter["ops"] < budget:
                counter["ops"] += 1
                made = await one_op(client)  # (not +=: that reads the count before awaiting)
                counter["requests"] += made

        async def phase(budget: int) -> None:
            async with trio.open_nursery() as inner:
                for client in clients:
                    inner.start_soon(loop, client, budget)

        await phase(ns.warmup)
        counter.update(ops=0, requests=0)
        usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await phase(ns.requests)
        usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        done.set()
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    print(json.dumps({"requests": counter["requests"], "cpu_s": cpu, "wall_s": wall1 - wall0,
                      "maxrss_kib": usage1.ru_maxrss}))


def _build_app(ns: argparse.Namespace) -> Any:
    if ns.scenario == "floor":
        answer = b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'

        async def floor(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
                return
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})

        return floor
    import scalemcp

    app = scalemcp.App("asgi-cost", version="1")

    @app.tool
    async def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    options: dict[str, Any] = {"log_level": "warning"}
    if ns.redis_url:
        options["redis_url"] = ns.redis_url
    config = scalemcp.Config.from_options(**options)
    return scalemcp.asgi_app(app, config)


# -- the parent: trees, repeats, pinning, the table ------------------------------------------


def _export(rev: str) -> str:
    """The scalemcp package of ``rev``, exported to a temporary directory."""
    out = tempfile.mkdtemp(prefix="asgi-cost-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "scalemcp"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


def _measure(src: str, scenario: str, clients: int, ns: argparse.Namespace,
             redis_url: str | None) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", "--src", src, "--scenario", scenario,
            "-c", str(clients), "-n", str(ns.requests), "--warmup", str(ns.warmup),
            "--idle-sessions", str(ns.idle_sessions)]
    if redis_url:
        argv += ["--redis-url", redis_url]
    if ns.core is not None:
        argv = ["taskset", "-c", str(ns.core), *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{scenario} -c {clients} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("-c", "--clients", type=int, action="append")
    parser.add_argument("-n", "--requests", type=int, default=3000,
                        help="operations measured per run")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idle-sessions", type=int, default=0)
    parser.add_argument("--baseline", help="a git revision measured beside this tree")
    parser.add_argument("--core", type=int, default=1, help="pin the app to this core")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--src", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        ns.scenario, ns.clients = ns.scenario[0], ns.clients[0]
        _child(ns)
        return
    scenarios = ns.scenario or ["floor", "session", "session-redis", "modern", "initialize"]
    client_counts = ns.clients or [16, 256]
    trees = {"this tree": str(ROOT)}
    if ns.baseline:
        trees = {f"baseline {ns.baseline}": _export(ns.baseline), **trees}
    redis = None
    if "session-redis" in scenarios:
        sys.path.insert(0, str(ROOT))
        from tests.harness.redis import RedisServer

        os.sched_setaffinity(0, {0 if ns.core else 1})  # redis-server inherits the other core
        redis = RedisServer()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    rows: list[dict[str, Any]] = []
    try:
        for scenario in scenarios:
            for clients in client_counts:
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
                for _ in range(ns.repeats):
                    for name, src in trees.items():
                        url = None
                        if redis is not None and scenario == "session-redis":
                            url = redis.url
                            redis.command("FLUSHALL")
                        runs[name].append(_measure(src, scenario, clients, ns, url))
                for name, got in runs.items():
                    us = [r["cpu_s"] / r["requests"] * 1e6 for r in got]
                    rows.append({"scenario": scenario, "clients": clients, "tree": name,
                                 "us_per_request": round(statistics.median(us), 1),
                                 "us_least": round(min(us), 1),
                                 "us_runs": [round(u, 1) for u in us],
                                 "maxrss_kib": max(r["maxrss_kib"] for r in got)})
                print(f"done {scenario} -c {clients}", file=sys.stderr)
    finally:
        if redis is not None:
            redis.stop()
    _report(rows, trees, ns)


def _report(rows: list[dict[str, Any]], trees: dict[str, str], ns: argparse.Namespace) -> None:
    names = list(trees)
    print(f"CPU us per request: median and least of {ns.repeats} runs, each in a fresh "
          f"process pinned to core {ns.core}; {ns.requests} operations measured after "
          f"{ns.warmup} of warm-up; {ns.idle_sessions} idle sessions besides\n")
    head = "| scenario | clients | " + " | ".join(f"{n}: median (least)" for n in names)
    if len(names) == 2:
        head += " | ratio of medians (of leasts)"
    print(head + " |")
    print("|---|---:|" + "---:|" * (len(names) + (len(names) == 2)))
    keyed = {(r["scenario"], r["clients"], r["tree"]): r for r in rows}
    for scenario, clients in dict.fromkeys((r["scenario"], r["clients"]) for r in rows):
        cells = [keyed[scenario, clients, n] for n in names]
        line = f"| {scenario} | {clients} | " + " | ".join(
            f"{c['us_per_request']} ({c['us_least']})" for c in cells)
        if len(names) == 2:
            line += (f" | {cells[1]['us_per_request'] / cells[0]['us_per_request']:.2f} "
                     f"({cells[1]['us_least'] / cells[0]['us_least']:.2f})")
        print(line + " |")
    if ns.json:
        ns.json.write_text(json.dumps({"argv": sys.argv, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
