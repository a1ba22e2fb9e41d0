"""``scalemcp bench URL``: drive an MCP server with many simulated clients and report.

Examples::

    scalemcp bench http://127.0.0.1:8000/mcp -c 50 -d 10
    scalemcp bench http://127.0.0.1:8000/mcp --era modern --scenario list --rate 2000
    scalemcp bench http://127.0.0.1:8000/sse --era legacy-sse --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from .config import SCENARIOS, BenchConfig, Shard
from .progress import ProgressLine
from .report import Report, build_report, render_markdown, render_text
from .stats import ProcResult, merge_results

__all__ = ["build_parser", "config_from_args", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scalemcp bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", help="the MCP endpoint (the /sse URL for --era legacy-sse)")
    p.add_argument("--era", choices=["session", "modern", "legacy-sse"], default="session")
    p.add_argument("--scenario", choices=SCENARIOS, default="call")
    p.add_argument("-c", "--clients", type=int, default=10, help="simulated clients (10)")
    p.add_argument("-d", "--duration", type=float, help="measured seconds (10, or none with -n)")
    p.add_argument("-n", "--requests", type=int, help="stop after this many measured operations")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    p.add_argument("--rate", type=float, help="open loop: operations/s in total (default closed)")
    p.add_argument("--tool", help="tool to call (default depends on the scenario)")
    p.add_argument("--args", type=json.loads, help="tool arguments as a JSON object")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeat)")
    p.add_argument("--http2", action="store_true", help="HTTP/2 (h2c prior knowledge or ALPN)")
    p.add_argument("-k", "--insecure", action="store_true", help="accept any TLS certificate")
    p.add_argument("--client", choices=["raw", "httpx", "h11"], default="raw", help="HTTP client")
    p.add_argument("--procs", type=int, default=1, help="load-generator processes (1)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-operation limit, s (30)")
    p.add_argument("--protocol-version", help="session era: version offered in initialize")
    p.add_argument("--steps", type=int, default=5, help="progress notifications per call (5)")
    p.add_argument("--step-delay-ms", type=float, default=0, help="delay between steps")
    p.add_argument("--drop-after", type=int, default=2, help="resume: events before the drop")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    p.add_argument("--markdown", type=Path, metavar="OUT", help="write a Markdown table")
    p.add_argument("--png", type=Path, metavar="OUT", help="latency chart (needs matplotlib)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    return p


def config_from_args(ns: argparse.Namespace) -> BenchConfig:
    headers: list[tuple[str, str]] = []
    for text in ns.header:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header wants 'Name: value', got {text!r}")
        headers.append((name.strip(), value.strip()))
    duration = ns.duration if ns.duration is not None else (None if ns.requests else 10.0)
    raw: dict[str, Any] = {
        "url": ns.url,
        "era": ns.era,
        "scenario": ns.scenario,
        "clients": ns.clients,
        "duration_s": duration,
        "requests": ns.requests,
        "warmup_s": ns.warmup,
        "rate": ns.rate,
        "tool": ns.tool,
        "args": ns.args,
        "headers": headers,
        "http2": ns.http2,
        "insecure": ns.insecure,
        "client": "raw" if ns.client == "h11" else ns.client,
        "procs": ns.procs,
        "timeout_s": ns.timeout,
        "protocol_version": ns.protocol_version,
        "steps": ns.steps,
        "step_delay_ms": ns.step_delay_ms,
        "drop_after": ns.drop_after,
    }
    try:
        return msgspec.convert(raw, BenchConfig)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from exc


async def _run_async(config: BenchConfig, progress: ProgressLine | None) -> list[ProcResult]:
    if config.procs > 1:
        from .procs import run_procs

        started = time.monotonic()

        def totals(completed: int, failed: int) -> None:
            if progress is not None:
                progress.update(time.monotonic() - started, completed, failed, None)

        return await run_procs(config, on_progress=totals)
    from .runner import run_shard

    shard = Shard(clients=config.clients, rate=config.rate, budget=config.requests)
    on_progress = progress.from_recorder if progress is not None else None
    return [await run_shard(config, shard, on_progress=on_progress)]


def run(config: BenchConfig, *, show_progress: bool = False) -> Report:
    """Run the bench described by ``config`` and return its report."""
    from .scenarios import make_scenario

    make_scenario(config)  # reject impossible era/scenario pairs before starting anything
    started_at = dt.datetime.now(dt.UTC)
    cpu0 = time.process_time()
    total = config.warmup_s + config.duration_s if config.duration_s is not None else None
    progress = ProgressLine(total) if show_progress else None
    try:
        results = trio.run(_run_async, config, progress)
    finally:
        if progress is not None:
            progress.finish()
    merged = merge_results(results)
    if config.procs > 1:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = time.process_time() - cpu0
        total_cpu = own + children.ru_utime + children.ru_stime
        merged = msgspec.structs.replace(merged, cpu_total_s=total_cpu)
    return build_report(config, merged, started_at, procs=len(results))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 on a clean run, 1 if anything failed, 2 on bad usage."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns)
        show = ns.progress if ns.progress is not None else sys.stderr.isatty()
        report = run(config, show_progress=show)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"scalemcp bench: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a worker process failed
        print(f"scalemcp bench: {exc}", file=sys.stderr)
        return 1
    if not ns.quiet:
        sys.stdout.write(render_text(report))
    if ns.json is not None:
        ns.json.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    if ns.markdown is not None:
        ns.markdown.write_text(render_markdown(report))
    if ns.png is not None:
        from .charts import MissingMatplotlib, write_latency_chart

        try:
            write_latency_chart(report, ns.png)
        except MissingMatplotlib as exc:
            print(f"scalemcp bench: no chart written: {exc}", file=sys.stderr)
    return 0 if report.errors == 0 and report.requests > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
