"""The ``scalemcp bench`` command line: flags to a `BenchConfig`, a checked run, a report.

Every failure ends in at most a few lines on stderr, never a traceback, and a
non-zero exit status: 1 when operations failed, none ran, or the target could
not be benchmarked (`scalemcp.loadgen.preflight`); 2 for bad usage (with the
usage line) or a missing optional package; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import trio

from .config import SCENARIOS, BenchConfig, Shard
from .http import parse_url
from .preflight import TargetError, check_target
from .progress import ProgressLine
from .report import Report, build_report, render_markdown, render_text
from .stats import ProcResult, merge_results

__all__ = ["build_parser", "config_from_args", "main", "run"]

USAGE = "scalemcp bench URL [options]"
DESCRIPTION = """\
Drive an MCP server with many simulated clients; report throughput, latency
percentiles, errors by kind and the load generator's own CPU per request."""
EPILOG = """\
examples:
  scalemcp bench http://127.0.0.1:8000/mcp -c 50 -d 10
  scalemcp bench http://127.0.0.1:8000/mcp --era modern --scenario list --rate 2000
  scalemcp bench http://127.0.0.1:8000/mcp --tool add --args '{"a": 1, "b": 2}'
  scalemcp bench http://127.0.0.1:8000/sse --era legacy-sse --json out.json
  scalemcp bench http://127.0.0.1:8000/mcp --era modern --scenario task --task-wait listen

The scenarios' default tools (echo, progress, ask, touch; noop for task) exist
only on the bench target servers (bench/targets/, bench/tasks_app.py); against
another server, name one of its tools with --tool. Before the load starts, one
client checks that the server answers in the chosen era and has the tool.

exit status: 0 every operation succeeded; 1 some failed, none ran, or the
server could not be benchmarked; 2 bad usage or a missing optional package.

Scenarios, eras, the report's fields and the client measurements behind the
defaults: bench/README.md in the scalemcp repository."""

_OPTIONAL_PACKAGES = {"httpx": "--client httpx", "matplotlib": "--png"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"usage: {USAGE}\n{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"wants a JSON object like '{{\"a\": 1}}', got {text!r}")
    return value


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise argparse.ArgumentTypeError(f"wants 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _url(text: str) -> str:
    try:
        parse_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; e.g. http://127.0.0.1:8000/mcp") from None
    return text


_positive_int.__name__ = _seconds.__name__ = _positive.__name__ = "number"
_json_object.__name__ = "JSON"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="scalemcp bench",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "url", type=_url, metavar="URL",
        help="the MCP endpoint, e.g. http://127.0.0.1:8000/mcp (with --era legacy-sse: the "
        "/sse URL)",
    )
    _what_to_run(p.add_argument_group("what to run"))
    _how_much_load(p.add_argument_group("how much load"))
    _http(p.add_argument_group("HTTP"))
    _output(p.add_argument_group("output"))
    return p


def _what_to_run(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--era", choices=["session", "modern", "legacy-sse"], default="session",
        help="session: initialize + Mcp-Session-Id; modern: 2026-07-28 stateless requests; "
        "legacy-sse: 2024-11-05 GET /sse + POST (default: session)",
    )
    g.add_argument(
        "--scenario", choices=SCENARIOS, default="call", metavar="NAME",
        help="what one operation is: call (tools/call), call-progress, initialize (a new "
        "session), list (tools/list), resume, elicit, listen, mixed, task (create a task, "
        "wait for it to complete) (default: call)",
    )
    g.add_argument(
        "--tool", metavar="NAME",
        help="the tool to call (default: the scenario's bench-target tool: echo, progress, "
        "ask, touch, or noop for task: bench/tasks_app.py)",
    )
    g.add_argument(
        "--args", type=_json_object, metavar="JSON",
        help="the tool's arguments as a JSON object (default: the bench tool's, else the "
        "required ones of the tool's inputSchema, made up)",
    )
    g.add_argument("--protocol-version", metavar="VERSION",
                   help="session era: the version offered in initialize (default: 2025-11-25)")
    g.add_argument("--steps", type=_positive_int, default=5, metavar="N",
                   help="call-progress, resume: notifications per progress call (default: 5)")
    g.add_argument("--step-delay-ms", type=_seconds, default=0, metavar="MS",
                   help="delay between those notifications (default: 0; resume: 20)")
    g.add_argument("--drop-after", type=_positive_int, default=2, metavar="N",
                   help="resume: SSE events read before the stream is dropped (default: 2)")
    g.add_argument("--task-wait", choices=["poll", "listen"], default="poll",
                   help="task: poll tasks/get, or (--era modern) listen on "
                   "subscriptions/listen for the task (default: poll)")
    g.add_argument("--task-poll-ms", type=_seconds, default=20, metavar="MS",
                   help="task: pause between two tasks/get polls (default: 20)")


def _how_much_load(g: argparse._ArgumentGroup) -> None:
    g.add_argument("-c", "--clients", type=_positive_int, default=10, metavar="N",
                   help="simulated clients in total (default: 10)")
    g.add_argument("-d", "--duration", type=_seconds, metavar="S",
                   help="measured seconds (default: 10; unlimited with -n alone)")
    g.add_argument("-n", "--requests", type=_positive_int, metavar="N",
                   help="stop after this many measured operations (default: no limit)")
    g.add_argument("--warmup", type=_seconds, default=1.0, metavar="S",
                   help="unmeasured seconds before the measured window (default: 1)")
    g.add_argument(
        "--rate", type=_positive, metavar="OPS",
        help="open loop: operations per second in total, each timed from its intended start "
        "(default: closed loop, each client sends its next as the last returns)",
    )
    g.add_argument("--procs", type=_positive_int, default=1, metavar="N",
                   help="load-generator processes sharing the clients (default: 1)")
    g.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                   help="seconds before an operation counts as a timeout (default: 30)")


def _http(g: argparse._ArgumentGroup) -> None:
    g.add_argument("-H", "--header", type=_header, action="append", default=[],
                   metavar="'NAME: VALUE'",
                   help="extra request header, repeatable, e.g. for auth (default: none)")
    g.add_argument("--http2", action="store_true",
                   help="HTTP/2: prior knowledge on http://, ALPN on https:// (default: HTTP/1.1)")
    g.add_argument("-k", "--insecure", action="store_true",
                   help="accept any TLS certificate (default: verify)")
    g.add_argument(
        "--client", choices=["raw", "httpx", "h11"], default="raw", metavar="{raw,httpx}",
        help="HTTP client: raw (lean HTTP/1.1, h2) or httpx, the real-client cross-check; "
        "needs httpx installed (default: raw)",
    )


def _output(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--json", type=Path, metavar="FILE",
                   help="write the report as JSON (default: not written)")
    g.add_argument("--markdown", type=Path, metavar="FILE",
                   help="write the report as a Markdown table (default: not written)")
    g.add_argument("--png", type=Path, metavar="FILE",
                   help="write a latency-by-percentile chart; needs matplotlib "
                   "(default: not written)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a live progress line on stderr (default: on when stderr is a terminal)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no summary on stdout (default: print it)")


def config_from_args(ns: argparse.Namespace) -> BenchConfig:
    """The config the parsed flags describe; ValueError if they contradict each other."""
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
        "headers": ns.header,
        "http2": ns.http2,
        "insecure": ns.insecure,
        "client": "raw" if ns.client == "h11" else ns.client,
        "procs": ns.procs,
        "timeout_s": ns.timeout,
        "protocol_version": ns.protocol_version,
        "steps": ns.steps,
        "step_delay_ms": ns.step_delay_ms,
        "drop_after": ns.drop_after,
        "task_wait": ns.task_wait,
        "task_poll_ms": ns.task_poll_ms,
    }
    try:
        config = msgspec.convert(raw, BenchConfig)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from exc
    from .scenarios import make_scenario

    make_scenario(config)  # an era/scenario pair that cannot run is a usage error
    return config


def missing_packages(config: BenchConfig, png: Path | None) -> list[str]:
    """One line per optional package the run needs and cannot import."""
    wanted = ["httpx"] if config.client == "httpx" else []
    if png is not None:
        wanted.append("matplotlib")
    missing = []
    for name in wanted:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(
                f"{_OPTIONAL_PACKAGES[name]} needs the {name} package, which is not "
                f"installed: pip install {name}"
            )
    return missing


def unwritable_outputs(ns: argparse.Namespace) -> list[str]:
    lines = []
    for flag in ("json", "markdown", "png"):
        path: Path | None = getattr(ns, flag)
        if path is not None and not path.parent.is_dir():
            lines.append(f"--{flag} {path}: the directory {path.parent} does not exist")
    return lines


async def _run_async(config: BenchConfig, progress: ProgressLine | None) -> list[ProcResult]:
    if config.procs > 1:
        from .procs import run_procs

        return await run_procs(config, on_progress=progress.update if progress else None)
    from .runner import run_shard

    shard = Shard(clients=config.clients, rate=config.rate, budget=config.requests)
    return [await run_shard(config, shard, on_progress=progress.update if progress else None)]


def run(config: BenchConfig, *, show_progress: bool = False, check: bool = True) -> Report:
    """Run the bench described by ``config`` and return its report.

    With ``check`` (the default) one client first checks the target and settles the
    tool's arguments (`scalemcp.loadgen.preflight.check_target`), raising `TargetError`.
    """
    from .scenarios import make_scenario

    make_scenario(config)  # reject impossible era/scenario pairs before starting anything
    if check:
        config = trio.run(check_target, config)
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


def _fail(code: int, *lines: str) -> int:
    for line in lines[:3]:
        print(f"scalemcp bench: {line}", file=sys.stderr)
    return code


def _write_outputs(ns: argparse.Namespace, report: Report) -> None:
    if ns.json is not None:
        ns.json.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    if ns.markdown is not None:
        ns.markdown.write_text(render_markdown(report))
    if ns.png is not None:
        from .charts import write_latency_chart

        write_latency_chart(report, ns.png)


def main(argv: list[str] | None = None) -> int:
    """Entry point; the exit status is described in the module docstring."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    if ns.client == "h11":
        print("scalemcp bench: warning: --client h11 is deprecated (that client was removed); "
              "running --client raw", file=sys.stderr)
    problems = missing_packages(config, ns.png) + unwritable_outputs(ns)
    if problems:
        return _fail(2, *(f"error: {line}" for line in problems))
    show = ns.progress if ns.progress is not None else sys.stderr.isatty()
    try:
        report = run(config, show_progress=show)
    except TargetError as exc:
        return _fail(1, str(exc))
    except RuntimeError as exc:  # a bench worker process failed
        return _fail(1, str(exc))
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except Exception as exc:
        if os.environ.get("SCALEMCP_BENCH_TRACEBACK"):
            raise
        return _fail(1, f"unexpected {type(exc).__name__}: {exc}",
                     "this is a bug: SCALEMCP_BENCH_TRACEBACK=1 shows where; please report it")
    if not ns.quiet:
        sys.stdout.write(render_text(report))
    try:
        _write_outputs(ns, report)
    except OSError as exc:
        return _fail(1, f"error: could not write the report: {exc}")
    return 0 if report.errors == 0 and report.requests > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
