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

from bench.soak_flows import Load, Tally, run_flow  # noqa: E402
from tests.harness.conditions import wait_until  # noqa: E402
from tests.harness.fleet import Cluster  # noqa: E402

#: An operation failing within this long of a kill (either side) counts as explained.
KILL_MARGIN_S = 0.5


# -- the fleet --------------------------------------------------------------------------------


class Fleet(Cluster):
    """The harness's fleet (redis-server, nodes, haproxy), ``nodes`` x ``workers``."""

    def __init__(self, workdir: Path, nodes: int, workers: int) -> None:
        self.workers_per_node = workers
        super().__init__(workdir, nodes=nodes, workers=workers)

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
        self.rss: dict[str, list[tuple[float, int]]] = {}
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
            nursery.start_soon(self.kill_workers, load.stop)
            await trio.sleep(self.args.duration)
            load.stop.set()  # the flows finish the call in hand, then return

    async def kill_workers(self, stop: trio.Event) -> None:
        with trio.move_on_after(self.args.duration - 2):
            while True:
                await trio.sleep(self.args.kill_every)
                workers = self.fleet.workers()
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

    async def sample_rss(self, stop: trio.Event) -> None:
        while not stop.is_set():
            now = round(time.monotonic() - self.t0, 1)
            for pid, node in self.fleet.workers().items():
                kib = rss_kib(pid)
                if kib is not None:
                    self.rss.setdefault(f"{node}/{pid}", []).append((now, kib))
            with trio.move_on_after(self.args.rss_every):
                await stop.wait()

    def explained(self, started: float, ended: float) -> bool:
        return any(started - KILL_MARGIN_S <= self.t0 + k["at_s"] <= ended + KILL_MARGIN_S
                   for k in self.kills)


def report(soak: Soak, whole: bool, elapsed: float) -> dict[str, Any]:
    t = soak.tally
    errors: dict[str, dict[str, int]] = {}
    for f in t.failures:
        entry = errors.setdefault(f"{f.flow}:{f.kind}", {"explained": 0, "unexplained": 0})
        entry["explained" if soak.explained(f.started, f.ended) else "unexplained"] += 1
    epitaphs_unexplained = sum(not soak.explained(s, e) for _, s, e in t.epitaphs)
    unexplained = sum(e["unexplained"] for e in errors.values()) + epitaphs_unexplained
    rss = {w: {"first_kib": s[0][1], "last_kib": s[-1][1], "max_kib": max(k for _, k in s),
               "samples": len(s), "from_s": s[0][0], "to_s": s[-1][0]}
           for w, s in sorted(soak.rss.items())}
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
        "fleet_whole_at_end": whole,
        "problems": t.examples,
        "rss": rss,
        "rss_series": {w: s for w, s in sorted(soak.rss.items())},
        "passed": whole and unexplained == 0 and t.lost_events == 0
        and t.duplicate_events == 0 and all(k["replacement_started_after_s"] is not None
                                            for k in soak.kills),
    }


def markdown(r: dict[str, Any]) -> str:
    c = r["config"]
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
        "", "Errors by kind (explained: a worker was killed while the operation ran):", "",
        "| flow:kind | explained | unexplained |", "|---|---:|---:|",
        *[f"| {k} | {v['explained']} | {v['unexplained']} |" for k, v in r["errors"].items()],
        "", "Worker RSS (KiB):", "", "| worker | first | last | max | samples (s) |",
        "|---|---:|---:|---:|---|",
        *[f"| {w} | {v['first_kib']:,} | {v['last_kib']:,} | {v['max_kib']:,} | "
          f"{v['samples']} ({v['from_s']}-{v['to_s']}) |" for w, v in r["rss"].items()],
    ]
    if r["problems"]:
        lines += ["", "Problems:", "", *[f"- `{p}`" for p in r["problems"]]]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120.0, help="seconds of load (120)")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="workers per node (2)")
    p.add_argument("--kill-every", type=float, default=10.0,
                   help="seconds between kill -9 of a random worker (10)")
    p.add_argument("--progress-clients", type=int, default=4)
    p.add_argument("--resume-clients", type=int, default=2)
    p.add_argument("--modern-clients", type=int, default=2)
    p.add_argument("--elicit-clients", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="progress events per call (20)")
    p.add_argument("--delay-ms", type=int, default=40, help="between progress events (40)")
    p.add_argument("--rss-every", type=float, default=2.0, help="RSS sampling interval (2 s)")
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
        fleet = Fleet(Path(tmp), args.nodes, args.workers)
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
