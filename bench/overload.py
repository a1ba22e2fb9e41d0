"""Overload: one worker offered several times its capacity, open loop, with and without
load shedding.

    python bench/overload.py                       # about 2 min
    python bench/overload.py --repeat 3 --no-baseline
    python bench/overload.py --shed-flags "--shed-max-inflight 32 --shed-target-lag-s 0"

1. Capacity: ``scalemcp bench`` closed loop (``--capacity-clients`` clients) against one
   ``scalemcp serve --workers 1`` worker without shedding, serving the bench target's
   ``work`` (computes ``--tool-us`` us; 0: ``echo``), stateless 2026-07-28 era, memory
   backend: C requests/s.
2. An open-loop run at ``factor`` x C (``--clients`` connections, every operation timed
   from its intended start, so queueing shows), ``--timeout`` s per operation (a 503 is an
   answer, counted as shed, never as a timeout): without shedding (once), and with the
   adaptive limit (``--shed-target-lag-s 0.025``, or ``--shed-flags``), ``--repeat`` times.
   Capacity is measured again
   after each shedding run, and each run is judged against the mean of the capacities
   measured just before and just after it: on a machine shared with other work, capacity
   drifts, and a ratio against a figure from minutes earlier measures the drift.

Reported per run: accepted requests/s and their share of C, the accepted latency
percentiles against ``--p99-bound-ms``, 503s (shed), timeouts and other errors, the
server's CPU per accepted request, and whether the load generator kept up: the rate it
really offered (every answer and error over the window) against the intended one, and
its schedule lag (which the latencies include: they are timed from the intended start).
One Python generator process on one core offers about 3,000 ops/s, less than 3 x a
worker serving ``echo``: hence the default ``--tool-us 1000``, a request with work in it.
The worker (and its supervisor) is pinned to CPU 0 and the load generator to CPU 1
(``taskset``); the load average before and after each run is recorded. Results go to
``bench/results/overload-<date>.{json,md}`` unless told otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.serve import ServeProcess  # noqa: E402

TARGET = "bench.targets.scalemcp_server:app"
SERVER_CPU = 0
CLIENT_CPU = 1


def run_delay_s(pids: list[int]) -> float:
    """How long ``pids`` waited, runnable, for a CPU (other work on theirs)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[1])
        except (FileNotFoundError, IndexError):
            continue
    return total / 1e9


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Server:
    def __init__(self, *flags: str) -> None:
        self.flags = flags
        self.proc = ServeProcess(TARGET, "--workers", "1", "--stateless-only",
                                 "--log-level", "warning", *flags)
        self.pids = [self.proc.proc.pid, *self.proc.workers()]
        for pid in self.pids:
            os.sched_setaffinity(pid, {SERVER_CPU})

    def stop(self) -> None:
        self.proc.stop()


#: The load generator kept up if it offered this share of the intended rate at least.
KEPT_UP = 0.95
#: The request: set from --tool-us in main().
TOOL: list[str] = []


def bench(url: str, out: Path, *args: str) -> dict[str, Any]:
    cmd = ["taskset", "-c", str(CLIENT_CPU), sys.executable, "-m", "scalemcp.cli", "bench", url,
           "--era", "modern", "--json", str(out), "-q", "--no-progress", *TOOL, *args]
    done = subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True)
    if not out.exists():
        raise RuntimeError(f"scalemcp bench wrote no report: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def responses(server: Server) -> dict[str, float]:
    """The server's HTTP responses so far, by status (its own /metrics)."""
    with urllib.request.urlopen(server.proc.base + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'scalemcp_http_responses_total\{status="(\d+)"\} (\S+)', line)
        if match:
            found[match[1]] = float(match[2])
    return found


def run(server: Server, tmp: Path, name: str, *args: str) -> dict[str, Any]:
    answered = responses(server)
    before, waited_before = cpu_seconds(server.pids), run_delay_s(server.pids)
    started = time.monotonic()
    report = bench(server.proc.url, tmp / f"{name}.json", *args)
    wall = time.monotonic() - started
    server_cpu = cpu_seconds(server.pids) - before
    waited = run_delay_s(server.pids) - waited_before
    after = responses(server)
    by_status = {k: int(v - answered.get(k, 0)) for k, v in after.items()
                 if v - answered.get(k, 0) > 0}
    total = sum(by_status.values())
    lat = report["latency"]
    errors = report["errors_by_kind"]
    accepted = report["requests"]
    window = report["window_s"]
    return {
        "name": name,
        "args": list(args),
        "server_flags": list(server.flags),
        "window_s": report["window_s"],
        "accepted": accepted,
        "accepted_rps": report["throughput_rps"],
        "p50_ms": lat["p50_us"] / 1000, "p90_ms": lat["p90_us"] / 1000,
        "p99_ms": lat["p99_us"] / 1000, "max_ms": lat["max_us"] / 1000,
        "shed_503": errors.get("http_503", 0),
        "timeouts": errors.get("timeout", 0),
        "other_errors": {k: v for k, v in errors.items() if k not in ("http_503", "timeout")},
        "error_samples": {k: v[:2] for k, v in report.get("error_samples", {}).items()},
        "schedule_lag_p99_ms": report.get("other", {}).get("schedule_lag", {}).get(
            "p99_us", 0) / 1000,
        # what the generator really offered: every answer and error over the window
        "offered_rps_achieved": round((accepted + sum(errors.values())) / window, 1)
        if window else None,
        "client_cpu": report.get("client_cpu"),
        # the whole bench run (warm-up and set-up included), and every response of it
        "server_cpu_s": round(server_cpu, 2),
        "server_responses": by_status,
        "server_cpu_us_per_response": round(server_cpu / total * 1e6) if total else None,
        # the share of CPU 0 the worker had (of the whole bench run), and how long it
        # waited for it, runnable: other work on the machine
        "server_cpu_share": round(server_cpu / wall, 3),
        "server_run_delay_s": round(waited, 2),
        # 200s per CPU second of the worker: throughput with the machine's noise taken out
        "served_per_cpu_s": round(by_status.get("200", 0) / server_cpu) if server_cpu else None,
    }


def refusal_cost(capacity: dict[str, Any], shed: dict[str, Any]) -> dict[str, Any]:
    served_us = capacity["server_cpu_us_per_response"]
    statuses = shed["server_responses"]
    refused = statuses.get("503", 0)
    if not served_us or not refused:
        return {"refusal_cpu_us": None, "refusal_cost_ratio": None}
    served_cpu = statuses.get("200", 0) * served_us / 1e6
    per_refusal = max(0.0, shed["server_cpu_s"] - served_cpu) / refused * 1e6
    return {"refusal_cpu_us": round(per_refusal), "served_cpu_us": served_us,
            "refusal_cost_ratio": round(per_refusal / served_us, 2)}


#: Server flags of the shedding runs unless told: the adaptive limit (opt-in on the server).
ADAPTIVE = "--shed-target-lag-s 0.025"
#: Server flags: shedding off (the capacity run, the baseline).
NO_SHEDDING = ("--shed-target-lag-s", "0")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def markdown(r: dict[str, Any]) -> str:
    caps = r["capacities_rps"]
    lines = [f"# Overload {r['date']}", "",
             f"One worker (`scalemcp serve --workers 1 --stateless-only`, {r['request']} "
             f"over 2026-07-28), pinned to CPU {SERVER_CPU}; `scalemcp bench` pinned to CPU "
             f"{CLIENT_CPU}. {r['machine']}. Command: `{r['command']}`.", "",
             f"Capacity (closed loop, {r['config']['capacity_clients']} clients, "
             f"`{' '.join(NO_SHEDDING)}`), measured before the first run and after each "
             f"shedding run: " + ", ".join(f"{c:,.0f}" for c in caps) + " req/s. Offered: "
             f"{r['config']['factor']} x the first = {r['offered_rps']:,.0f} req/s, open "
             f"loop, {r['config']['clients']} connections, {r['config']['duration']} s, "
             f"timeout {r['config']['timeout']} s. Each run's share is of the mean capacity "
             f"measured around it. Load average before: {r['loadavg']}, after: "
             f"{r['loadavg_after']}. Capacity runs' worker CPU share: "
             + ", ".join(f"{c['server_cpu_share']:.0%}" for c in r["capacity_runs"])
             + "; their 200s per worker CPU second: "
             + ", ".join(f"{c['served_per_cpu_s']:,}" for c in r["capacity_runs"]) + ".",
             "", "| run | server flags | capacity around it | accepted req/s | of capacity | "
             "p50 ms | p99 ms | max ms | 503 (shed) | timeouts | other errors | generator "
             "offered req/s | its schedule lag p99 ms | load avg before | worker CPU share "
             "| worker waited for CPU s | 200s per worker CPU s (of capacity's) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|"]
    for run_ in r["runs"]:
        cap = run_["capacity_rps"]
        lines.append(
            f"| {run_['name']} | `{' '.join(run_['server_flags']) or '(defaults)'}` | "
            f"{cap:,.0f} | {run_['accepted_rps']:,.0f} | {run_['accepted_rps'] / cap:.0%} | "
            f"{run_['p50_ms']:.1f} | {run_['p99_ms']:.1f} | {run_['max_ms']:.1f} | "
            f"{run_['shed_503']:,} | {run_['timeouts']:,} | {run_['other_errors'] or '-'} | "
            f"{run_['offered_rps_achieved'] or 0:,.0f} | {run_['schedule_lag_p99_ms']:.1f} | "
            f"{run_['loadavg']} | {run_['server_cpu_share']:.0%} | "
            f"{run_['server_run_delay_s']:.1f} | {run_['served_per_cpu_s'] or 0:,} "
            f"({(run_['served_per_cpu_s'] or 0) / run_['capacity_per_cpu_s']:.0%}) |")
    lines.append("")
    bound = r["config"]["p99_bound_ms"]
    for run_ in r["runs"]:
        if not run_["name"].startswith("shedding"):
            continue
        kept_up = (run_["offered_rps_achieved"] or 0) >= KEPT_UP * r["offered_rps"]
        met = {"throughput >= 90% of capacity":
                   run_["accepted_rps"] >= 0.9 * run_["capacity_rps"],
               "per worker CPU second, >= 90% of capacity's":
                   (run_["served_per_cpu_s"] or 0) >= 0.9 * run_["capacity_per_cpu_s"],
               f"accepted p99 <= {bound:g} ms": run_["p99_ms"] <= bound,
               "no timeouts": run_["timeouts"] == 0,
               "no other errors": not run_["other_errors"],
               f"generator kept up (offered >= {KEPT_UP:.0%} of the intended rate)": kept_up}
        lines.append(f"{run_['name']}: " + "; ".join(
            f"{name}: {'met' if ok else 'NOT met'}" for name, ok in met.items()) + ".")
    lines += ["", f"Server CPU per response (a run's CPU over all its responses, warm-up "
              f"included): {r['capacity']['server_cpu_us_per_response']} us served (first "
              f"capacity run); {r['refusal_cpu_us']} us per refusal (closed loop with "
              f"`--shed-max-inflight 1`, responses {r['refusals']['server_responses']}, less "
              f"the served ones): a refusal costs {r['refusal_cost_ratio']} x a served "
              "request."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--factor", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=256, help="open-loop connections (256)")
    p.add_argument("--capacity-clients", type=int, default=16)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--tool-us", type=int, default=1000,
                   help="the request: the work tool computing this long (0: echo)")
    p.add_argument("--p99-bound-ms", type=float, default=100.0,
                   help="the accepted requests' p99 a shedding run must keep (100)")
    p.add_argument("--shed-flags", default=ADAPTIVE,
                   help=f"server flags of the shedding runs (default: {ADAPTIVE!r})")
    p.add_argument("--repeat", type=int, default=1, help="shedding runs (1)")
    p.add_argument("--no-baseline", action="store_true", help="skip the run without shedding")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    TOOL[:] = (["--tool", "work", "--args", json.dumps({"us": args.tool_us})]
               if args.tool_us else [])
    load_before = loadavg()
    stamp = datetime.date.today().isoformat()
    out_json = args.json or ROOT / "bench" / "results" / f"overload-{stamp}.json"
    out_md = args.markdown or out_json.with_suffix(".md")
    runs: list[dict[str, Any]] = []
    capacities: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="overload-") as tmp_name:
        tmp = Path(tmp_name)

        def measure_capacity() -> float:
            server = Server(*NO_SHEDDING)
            try:
                capacities.append(run(server, tmp, "capacity", "-c",
                                      str(args.capacity_clients), "-d", "5", "--warmup", "1"))
            finally:
                server.stop()
            return float(capacities[-1]["accepted_rps"])

        capacity = measure_capacity()
        offered = args.factor * capacity
        load = ["--rate", f"{offered:.0f}", "-c", str(args.clients), "-d", str(args.duration),
                "--warmup", "1", "--timeout", str(args.timeout)]
        configs = ([] if args.no_baseline else [("no shedding", NO_SHEDDING)])
        configs += [(f"shedding {i + 1}", tuple(args.shed_flags.split()))
                    for i in range(args.repeat)]
        for name, flags in configs:
            before = loadavg()
            server = Server(*flags)
            try:
                result = run(server, tmp, name, *load)
            finally:
                server.stop()
            after = measure_capacity() if name.startswith("shedding") else capacity
            result["capacity_rps"] = (capacities[-2]["accepted_rps"] + after) / 2 \
                if name.startswith("shedding") else capacity
            result["loadavg"] = before
            around = capacities[-2:] if name.startswith("shedding") else capacities[:1]
            result["capacity_per_cpu_s"] = sum(c["served_per_cpu_s"] for c in around) / len(around)
            runs.append(result)
        # What a refusal costs: closed loop with room for one request in flight, so nearly
        # every request is shed; from the server's CPU and its responses by status, less
        # what the served ones cost (the capacity run's CPU per response).
        server = Server("--shed-max-inflight", "1", "--shed-target-lag-s", "0")
        try:
            refusals = run(server, tmp, "nearly every request shed", "-c",
                           str(args.capacity_clients), "-d", "5", "--warmup", "1")
        finally:
            server.stop()
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/overload.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"{platform.release()}",
        "config": vars(args) | {"json": None, "markdown": None},
        "request": f"`work` computing {args.tool_us} us" if args.tool_us else "`echo`",
        "loadavg": load_before,
        "loadavg_after": loadavg(),
        "capacity_rps": capacity,
        "capacities_rps": [c["accepted_rps"] for c in capacities],
        "capacity_runs": capacities,
        "capacity": capacities[0],
        "offered_rps": round(offered),
        "runs": runs,
        "refusals": refusals,
        **refusal_cost(capacities[0], refusals),
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    out_md.write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out_json} and {out_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
