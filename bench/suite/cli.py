"""``python -m bench.suite``: parse the arguments, run the series, write the results."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __doc__ as SUITE_DOC
from .environment import Env, prepare, runnable
from .measure import Quiet, measure_quietly
from .meta import machine, versions
from .paths import CACHE, CLIENT_CORES, DEFAULT_CLIENTS, RESULTS_DIR, SERVER_CORES
from .procs import running
from .report import write_chart, write_markdown
from .series import BASELINE, SERIES, Series


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.suite",
                                     description=(SUITE_DOC or "").split("\n\n")[0])
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
        "command": "python -m bench.suite " + " ".join(argv),
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
        write_outputs(json.loads(ns.report_only.read_text()), ns.report_only.with_suffix(""))
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
        "command": "python -m bench.suite" + "".join(f" {a}" for a in argv),
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
