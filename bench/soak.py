"""Soak: a fleet under mixed load while its workers are killed, with every event counted.

    python bench/soak.py --duration 120            # about 2 min, plus ~10 s to start
    python bench/soak.py --duration 20 --json out.json --markdown out.md

Starts redis-server, ``--nodes`` nodes of ``scalemcp serve --workers --redis-url`` behind
haproxy (the fleet of tests/harness/fleet.py, the one tests/cluster uses, with
deploy/haproxy.cfg), and runs the flows of ``bench/soak_flows.py`` through haproxy:
numbered-progress SSE calls (resumed with ``Last-Event-ID`` whenever cut), deliberate
hang-up-and-resume, stateless 2026-07-28 calls and elicitation round trips. Every
``--kill-every`` seconds it ``kill -9``s a random worker; the node's supervisor replaces it.

It reports requests by kind, errors by kind (*explained*: a worker was killed while that
operation ran; *unexplained*: none was), lost and duplicated progress events, streams
that ended with the server's error for a killed worker, the kills and how long each
replacement took to appear, and each worker's RSS over time (``/proc``). Results go to
``bench/results/soak-<date>.{json,md}`` unless ``--json``/``--markdown`` say otherwise.
The exit code is 1 if any event was lost or repeated, any error is unexplained, or the
fleet is not whole at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.redis_census import census  # noqa: E402
from bench.soak_flows import Load, Tally, run_flow  # noqa: E402
from tests.harness.conditions import wait_until  # noqa: E402
from tests.harness.faults import Fault, ThreadedFaultProxy  # noqa: E402
from tests.harness.fleet import Fleet as HarnessFleet  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

#: An operation failing within this long of a kill (either side) counts as explained.
KILL_MARGIN_S = 0.5
#: ... and within this long after a Redis fault ended (a request that met the fault waits
#: for Redis' reply timeout and the pool's before it fails).
FAULT_MARGIN_S = 4.0
#: The first part of a long run (this share of it, at least 60 s) is warm-up: not in the
#: slopes.
WARMUP_SHARE = 0.2
#: The nodes' stream_ttl_s unless --stream-ttl-s says otherwise (scalemcp's default).
DEFAULT_STREAM_TTL_S = 600.0


# -- the fleet --------------------------------------------------------------------------------


#: Redis timeouts of the nodes while faults are injected: a request that meets a silent
#: Redis is answered (503) within about 2 s rather than the default 10.
FAULT_ENV = {"SCALEMCP_REDIS_SOCKET_TIMEOUT_S": "1.5", "SCALEMCP_REDIS_CONNECT_TIMEOUT_S": "1",
             "SCALEMCP_REDIS_POOL_TIMEOUT_S": "1"}
FAULTS = [Fault.LATENCY, Fault.BLACK_HOLE, Fault.RESET, Fault.CUT_UP, Fault.CUT_DOWN]


class Fleet(HarnessFleet):
    """The harness's fleet (redis-server, nodes, haproxy), ``nodes`` x ``workers``; with
    ``faults``, the nodes reach Redis through a fault proxy (tests/harness/faults.py)."""

    def __init__(self, workdir: Path, nodes: int, workers: int, faults: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.workers_per_node = workers
        self.redis = RedisServer(log=workdir / "redis.log")
        self.proxy: ThreadedFaultProxy | None = None
        url = self.redis.url
        if faults:
            self.proxy = ThreadedFaultProxy(self.redis.port)
            self.proxy.start()
            url = self.proxy.url
        super().__init__(workdir, url, nodes=nodes, workers=workers,
                         env={**(FAULT_ENV if faults else {}), **(env or {})} or None)

    def stop(self) -> None:
        super().stop()
        if self.proxy is not None:
            self.proxy.stop()
        self.redis.stop()

    def redis_memory(self) -> int | None:
        """Redis' ``used_memory`` in bytes (straight to Redis, not through the proxy)."""
        return self.redis_info().get("used_memory")

    def redis_info(self) -> dict[str, int]:
        """Redis' memory figures and client count (``INFO``): the parts of used_memory
        (the data set, client buffers, scripts) and connected_clients."""
        wanted = ("used_memory", "used_memory_dataset", "used_memory_overhead",
                  "mem_clients_normal", "used_memory_scripts", "connected_clients")
        out: dict[str, int] = {}
        for line in self.redis.cli("INFO").splitlines():
            name, _, value = line.strip().partition(":")
            if name in wanted and value.isdigit():
                out[name] = int(value)
        return out

    def whole(self) -> bool:
        """Every node up with all its workers, and haproxy routing to each."""
        assert self.lb is not None
        per_node = list(self.workers().values())
        status = self.lb.server_status()
        return all(per_node.count(n.name) == self.workers_per_node
                   and status.get(n.name, "").startswith("UP") for n in self.nodes)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


# -- the soak --------------------------------------------------------------------------------


class Soak:
    def __init__(self, fleet: Fleet, args: argparse.Namespace) -> None:
        self.fleet = fleet
        self.args = args
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.kills: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.rss: dict[str, list[tuple[float, int]]] = {}
        self.redis_mem: list[tuple[float, int]] = []
        #: (t s, Redis' INFO figures): what used_memory is made of, and client count.
        self.redis_info: list[tuple[float, dict[str, int]]] = []
        #: (t s, {kind: {"keys": n, "bytes": b}}): what Redis holds, by kind of key.
        self.census: list[tuple[float, dict[str, dict[str, int]]]] = []
        self.t0 = 0.0

    async def run(self) -> None:
        assert self.fleet.lb is not None
        load = Load(self.fleet.lb.url, steps=self.args.steps, delay_ms=self.args.delay_ms)
        self.t0 = time.monotonic()
        flows = (["progress"] * self.args.progress_clients + ["resume"] * self.args.resume_clients
                 + ["modern"] * self.args.modern_clients + ["elicit"] * self.args.elicit_clients)
        async with trio.open_nursery() as nursery:
            for index, flow in enumerate(flows, start=1):
                nursery.start_soon(run_flow, flow, index, load, self.tally)
            nursery.start_soon(self.sample_rss, load.stop)
            if self.args.census_every > 0:
                nursery.start_soon(self.take_census, load.stop)
            if self.args.kill_every > 0:
                nursery.start_soon(self.kill_workers, load.stop)
            if self.fleet.proxy is not None:
                nursery.start_soon(self.inject_faults)
            await trio.sleep(self.args.duration)
            load.stop.set()  # the flows finish the call in hand, then return

    async def kill_workers(self, stop: trio.Event) -> None:
        with trio.move_on_after(self.args.duration - 2):
            while True:
                await trio.sleep(self.args.kill_every)
                workers = {pid: node for pid, node in self.fleet.workers().items()
                           if node not in self.args.spare}
                if not workers:
                    continue
                pid = self.rng.choice(sorted(workers))
                node = workers[pid]
                at = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                kill = {"at_s": round(at - self.t0, 2), "node": node, "pid": pid,
                        "replacement_started_after_s": None}
                self.kills.append(kill)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:  # the supervisor starts another process
                    now = self.fleet.workers()
                    if list(now.values()).count(node) == self.fleet.workers_per_node \
                            and pid not in now:
                        kill["replacement_started_after_s"] = round(time.monotonic() - at, 2)
                        break
                    await trio.sleep(0.05)

    async def inject_faults(self) -> None:
        """Every ``fault_every`` s a random Redis fault for ``fault_s`` s, then none."""
        proxy = self.fleet.proxy
        assert proxy is not None
        with trio.move_on_after(self.args.duration - self.args.fault_s - 2):
            while True:
                await trio.sleep(self.args.fault_every)
                fault = self.rng.choice(FAULTS)
                at = time.monotonic()
                await trio.to_thread.run_sync(lambda f=fault: proxy.set(f, latency_s=0.25))
                try:
                    await trio.sleep(self.args.fault_s)
                finally:
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(lambda: proxy.set(Fault.PASS))
                    self.faults.append({"at_s": round(at - self.t0, 2), "fault": fault.value,
                                        "for_s": round(time.monotonic() - at, 2)})

    async def sample_rss(self, stop: trio.Event) -> None:
        while not stop.is_set():
            now = round(time.monotonic() - self.t0, 1)
            for pid, node in self.fleet.workers().items():
                kib = rss_kib(pid)
                if kib is not None:
                    self.rss.setdefault(f"{node}/{pid}", []).append((now, kib))
            info = await trio.to_thread.run_sync(self.fleet.redis_info)
            if "used_memory" in info:
                self.redis_mem.append((now, info["used_memory"]))
                self.redis_info.append((now, info))
            with trio.move_on_after(self.args.rss_every):
                await stop.wait()

    async def take_census(self, stop: trio.Event) -> None:
        """Every ``census_every`` s, Redis' keys by kind (straight to Redis)."""
        while not stop.is_set():
            now = round(time.monotonic() - self.t0, 1)
            taken = await trio.to_thread.run_sync(census, self.fleet.redis.port)
            self.census.append((now, taken))
            with trio.move_on_after(self.args.census_every):
                await stop.wait()

    def explained(self, started: float, ended: float, flow: str = "") -> bool:
        return self.explanation(started, ended, flow) is not None

    def explanation(self, started: float, ended: float, flow: str = "") -> str | None:
        """What explains a failure of an operation that ran from ``started`` to ``ended``: a
        worker killed while it ran, or (session-era flows only: the stateless era needs no
        Redis) a Redis fault on while it ran; None if nothing."""
        for k in self.kills:
            if started - KILL_MARGIN_S <= self.t0 + k["at_s"] <= ended + KILL_MARGIN_S:
                return f"kill at {k['at_s']} s"
        if flow == "modern":
            return None
        for f in self.faults:
            if (self.t0 + f["at_s"] - KILL_MARGIN_S <= ended
                    and started <= self.t0 + f["at_s"] + f["for_s"] + FAULT_MARGIN_S):
                return f"{f['fault']} at {f['at_s']} s"
        return None


def report(soak: Soak, whole: bool, elapsed: float) -> dict[str, Any]:
    t = soak.tally
    errors: dict[str, dict[str, int]] = {}
    for f in t.failures:
        entry = errors.setdefault(f"{f.flow}:{f.kind}", {"explained": 0, "unexplained": 0})
        entry["explained" if soak.explained(f.started, f.ended, f.flow)
              else "unexplained"] += 1
    epitaphs_unexplained = sum(not soak.explained(s, e) for _, s, e in t.epitaphs)
    unexplained = sum(e["unexplained"] for e in errors.values()) + epitaphs_unexplained
    warmup = max(60.0, WARMUP_SHARE * soak.args.duration) if soak.args.duration > 120 else 0.0
    rss = {w: {"first_kib": s[0][1], "last_kib": s[-1][1], "max_kib": max(k for _, k in s),
               "samples": len(s), "from_s": s[0][0], "to_s": s[-1][0],
               "slope_kib_per_min": slope(s, warmup)}
           for w, s in sorted(soak.rss.items())}
    redis_mem = soak.redis_mem
    # Redis keeps each stream stream_ttl_s after its last event: until then its memory
    # grows with the streams of the run so far by design, so its slope starts after it.
    retention = soak.args.stream_ttl_s or DEFAULT_STREAM_TTL_S
    redis_warmup = max(warmup, retention + 60.0) if warmup else 0.0
    redis_slope = slope(redis_mem, redis_warmup)
    memory = {
        "warmup_s": warmup,
        "redis_warmup_s": redis_warmup,
        "redis_first_bytes": redis_mem[0][1] if redis_mem else None,
        "redis_last_bytes": redis_mem[-1][1] if redis_mem else None,
        "redis_max_bytes": max((b for _, b in redis_mem), default=None),
        "redis_slope_kib_per_min": None if redis_slope is None else round(redis_slope / 1024, 2),
        "redis_last_third_slope_kib_per_min": _per_kib(
            slope(redis_mem, max(redis_warmup, soak.args.duration * 2 / 3))),
        # Workers that lived through the whole measured part: the ones whose slope says
        # something (the others were killed or started during the run).
        "long_lived_worker_slopes_kib_per_min": {
            w: v["slope_kib_per_min"] for w, v in rss.items()
            if v["slope_kib_per_min"] is not None and v["from_s"] <= warmup + 5
            and v["to_s"] >= soak.args.duration - 10},
        # The same over the last third only: an allocator's high-water mark rises while
        # the peaks of concurrency still grow, then levels off; a leak keeps rising.
        "long_lived_worker_last_third_slopes_kib_per_min": {
            w: slope(soak.rss[w], soak.args.duration * 2 / 3) for w, v in rss.items()
            if v["slope_kib_per_min"] is not None and v["from_s"] <= warmup + 5
            and v["to_s"] >= soak.args.duration - 10},
    }
    memory["redis_by_kind"] = census_summary(soak.census, redis_warmup)
    # The parts of used_memory: the data set (the keys above) or the rest (client
    # buffers, scripts...), and how many clients are connected, each with its slope.
    memory["redis_parts"] = {
        name: {"last": soak.redis_info[-1][1].get(name), "max": max(
            (i.get(name, 0) for _, i in soak.redis_info), default=None),
            "slope_per_min": slope([(t, i.get(name, 0)) for t, i in soak.redis_info],
                                   redis_warmup)}
        for name in ("used_memory_dataset", "used_memory_overhead", "mem_clients_normal",
                     "used_memory_scripts", "connected_clients")} if soak.redis_info else {}
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "config": {k: v for k, v in vars(soak.args).items() if k not in ("json", "markdown")},
        "elapsed_s": round(elapsed, 1),
        "requests": dict(sorted(t.requests.items())),
        "outcomes": dict(sorted(t.outcomes.items())),
        "errors": errors,
        "lost_events": t.lost_events,
        "duplicate_events": t.duplicate_events,
        "streams_ended_by_kill": len(t.epitaphs),
        "epitaphs_without_a_kill": epitaphs_unexplained,
        "unexplained_errors": unexplained,
        "kills": soak.kills,
        "faults": soak.faults,
        "memory": memory,
        "redis_memory_series": redis_mem,
        "redis_census_series": soak.census,
        "redis_info_series": soak.redis_info,
        "fleet_whole_at_end": whole,
        "problems": t.examples,
        # Every failure, in s into the load, with what explains it (None: nothing).
        "failures": [{"flow": f.flow, "kind": f.kind, "started_s": round(f.started - soak.t0, 2),
                      "ended_s": round(f.ended - soak.t0, 2), "detail": f.detail[:120],
                      "explained_by": soak.explanation(f.started, f.ended, f.flow)}
                     for f in t.failures],
        "rss": rss,
        "rss_series": {w: s for w, s in sorted(soak.rss.items())},
        "passed": whole and unexplained == 0 and t.lost_events == 0
        and t.duplicate_events == 0 and all(k["replacement_started_after_s"] is not None
                                            for k in soak.kills),
    }


def census_summary(series: list[tuple[float, dict[str, dict[str, int]]]],
                   warmup: float) -> dict[str, dict[str, Any]]:
    """Per kind of Redis key: keys and bytes at the last census, the most bytes, and the
    slopes of both after the warm-up (None with too few censuses)."""
    kinds = sorted({k for _, c in series for k in c})
    out: dict[str, dict[str, Any]] = {}
    for k in kinds:
        keys = [(t, c.get(k, {}).get("keys", 0)) for t, c in series]
        size = [(t, c.get(k, {}).get("bytes", 0)) for t, c in series]
        byte_slope = slope(size, warmup, min_points=4)
        out[k] = {"last_keys": keys[-1][1], "last_bytes": size[-1][1],
                  "max_bytes": max(b for _, b in size),
                  "keys_slope_per_min": slope(keys, warmup, min_points=4),
                  "slope_kib_per_min": None if byte_slope is None
                  else round(byte_slope / 1024, 2)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["max_bytes"]))


def slope(series: list[tuple[float, int]], after_s: float,
          min_points: int = 10) -> float | None:
    """Least-squares slope of ``series`` (t s, value) after ``after_s``, per minute; None
    with fewer than ``min_points`` points or under 60 s of them."""
    points = [(t, v) for t, v in series if t >= after_s]
    if len(points) < min_points or points[-1][0] - points[0][0] < 60:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(60 * cov / var, 2) if var else None


def markdown(r: dict[str, Any]) -> str:
    c = r["config"]
    m = r["memory"]
    lines = [
        f"# Soak {r['date']} ({'passed' if r['passed'] else 'FAILED'})", "",
        f"{c['nodes']} nodes x {c['workers']} workers behind haproxy, Redis; "
        f"{r['elapsed_s']} s of load; a worker `kill -9`ed every {c['kill_every']} s; "
        f"commit {r['commit']}; {r['machine']['cpus']} CPUs, Python {r['machine']['python']}.",
        "", "| measure | value |", "|---|---:|",
        *[f"| requests: {k} | {v:,} |" for k, v in r["requests"].items()],
        *[f"| outcome: {k} | {v:,} |" for k, v in r["outcomes"].items()],
        f"| lost progress events | {r['lost_events']} |",
        f"| duplicated progress events | {r['duplicate_events']} |",
        f"| streams ended by a killed worker's error | {r['streams_ended_by_kill']} |",
        f"| unexplained errors | {r['unexplained_errors']} |",
        f"| workers killed / replacement started | {len(r['kills'])} / "
        f"{sum(k['replacement_started_after_s'] is not None for k in r['kills'])} |",
        f"| fleet whole at the end | {r['fleet_whole_at_end']} |",
        "", "Kills (s into the load, node, new process after s): " + ", ".join(
            f"{k['at_s']} {k['node']} {k['replacement_started_after_s']}" for k in r["kills"]),
        "", "Redis faults (s into the load, fault, for s): " + (", ".join(
            f"{f['at_s']} {f['fault']} {f['for_s']}" for f in r["faults"]) or "none"),
        "", "Memory per component after its warm-up (workers: the first "
        f"{m['warmup_s']:g} s; Redis: {m.get('redis_warmup_s', m['warmup_s']):g} s, as it "
        "holds every stream for stream_ttl_s after its last event; only workers that lived "
        "through the whole run; target: flat):", "",
        "| component | first | last | max | slope after warm-up (KiB/min) | "
        "last third (KiB/min) |", "|---|---:|---:|---:|---:|---:|",
        f"| Redis used_memory | {_mib(m['redis_first_bytes'])} | {_mib(m['redis_last_bytes'])} "
        f"| {_mib(m['redis_max_bytes'])} | {m['redis_slope_kib_per_min']} | "
        f"{m.get('redis_last_third_slope_kib_per_min')} |",
        *[f"| worker {w} | {_kib(r['rss'][w]['first_kib'])} | {_kib(r['rss'][w]['last_kib'])} | "
          f"{_kib(r['rss'][w]['max_kib'])} | {v} | "
          f"{m.get('long_lived_worker_last_third_slopes_kib_per_min', {}).get(w)} |"
          for w, v in m["long_lived_worker_slopes_kib_per_min"].items()],
        "", "Redis' used_memory in parts (INFO; slopes after its warm-up, per min): " + (
            ", ".join(f"{k} last {v['last']:,} max {v['max']:,} slope {v['slope_per_min']}"
                      for k, v in m.get("redis_parts", {}).items()
                      if v["last"] is not None) or "none"),
        "", "Redis by kind of key (`MEMORY USAGE` summed; slopes after the warm-up):", "",
        "| kind | keys (last) | MiB (last) | MiB (max) | keys/min | KiB/min |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| `{k}` | {v['last_keys']:,} | {v['last_bytes'] / 2**20:.2f} | "
          f"{v['max_bytes'] / 2**20:.2f} | {v['keys_slope_per_min']} | "
          f"{v['slope_kib_per_min']} |"
          for k, v in r["memory"].get("redis_by_kind", {}).items()],
        "", "Errors by kind (explained: a worker was killed while the operation ran, or for "
        "session-era flows a Redis fault was on: from 0.5 s before it to "
        f"{FAULT_MARGIN_S:g} s after it; each failure and what explains it: the JSON's "
        "`failures`):", "",
        "| flow:kind | explained | unexplained |", "|---|---:|---:|",
        *[f"| {k} | {v['explained']} | {v['unexplained']} |" for k, v in r["errors"].items()],
        "", "Worker RSS (KiB):", "",
        "| worker | first | last | max | samples (s) | slope after warm-up (KiB/min) |",
        "|---|---:|---:|---:|---|---:|",
        *[f"| {w} | {v['first_kib']:,} | {v['last_kib']:,} | {v['max_kib']:,} | "
          f"{v['samples']} ({v['from_s']}-{v['to_s']}) | {v['slope_kib_per_min']} |"
          for w, v in r["rss"].items()],
    ]
    if r["problems"]:
        lines += ["", "Problems:", "", *[f"- `{p}`" for p in r["problems"]]]
    return "\n".join(lines) + "\n"


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.1f} MiB"


def _per_kib(value: float | None) -> float | None:
    return None if value is None else round(value / 1024, 2)


def _kib(value: int) -> str:
    return f"{value / 1024:.1f} MiB"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120.0, help="seconds of load (120)")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="workers per node (2)")
    p.add_argument("--kill-every", type=float, default=10.0,
                   help="seconds between kill -9 of a random worker (10)")
    p.add_argument("--spare", nargs="*", default=[],
                   help="nodes whose workers are never killed (their memory over the whole "
                        "run gives the slopes), e.g. --spare n0")
    p.add_argument("--faults", action="store_true",
                   help="nodes reach Redis through a fault proxy; every --fault-every s a "
                        "random fault (latency, black hole, reset, one direction cut)")
    p.add_argument("--fault-every", type=float, default=30.0)
    p.add_argument("--fault-s", type=float, default=4.0, help="how long each fault lasts (4)")
    p.add_argument("--progress-clients", type=int, default=4)
    p.add_argument("--resume-clients", type=int, default=2)
    p.add_argument("--modern-clients", type=int, default=2)
    p.add_argument("--elicit-clients", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="progress events per call (20)")
    p.add_argument("--delay-ms", type=int, default=40, help="between progress events (40)")
    p.add_argument("--rss-every", type=float, default=2.0, help="RSS sampling interval (2 s)")
    p.add_argument("--stream-ttl-s", type=float, default=None,
                   help="the nodes' stream_ttl_s (default: theirs, 600): Redis holds every "
                        "stream this long after its last event, so its memory levels off "
                        "only after it; the Redis slopes are taken after it")
    p.add_argument("--node-env", type=_assignment, action="append", default=[],
                   metavar="NAME=VALUE", help="an environment variable for the nodes (an "
                   "A/B run of a setting, e.g. SCALEMCP_GC_THRESHOLD=0); repeatable")
    p.add_argument("--census-every", type=float, default=60.0,
                   help="Redis keys by kind (count, MEMORY USAGE) every this many s; 0: "
                        "never (60)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.date.today().isoformat()
    out_json = args.json or ROOT / "bench" / "results" / f"soak-{stamp}.json"
    out_md = args.markdown or out_json.with_suffix(".md")
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        env = dict(args.node_env)
        if args.stream_ttl_s is not None:
            env["SCALEMCP_STREAM_TTL_S"] = f"{args.stream_ttl_s:g}"
        fleet = Fleet(Path(tmp), args.nodes, args.workers, faults=args.faults, env=env)
        try:
            fleet.start()
            soak = Soak(fleet, args)
            started = time.monotonic()
            trio.run(soak.run)
            elapsed = time.monotonic() - started
            whole = _wait_whole(fleet)
            result = report(soak, whole, elapsed)
            if not result["passed"]:
                result["logs"] = fleet.logs()
        finally:
            fleet.stop()
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    out_md.write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out_json} and {out_md}")
    return 0 if result["passed"] else 1


def _wait_whole(fleet: Fleet, timeout: float = 30.0) -> bool:
    try:
        wait_until(fleet.whole, "the fleet whole again", timeout)
    except TimeoutError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
