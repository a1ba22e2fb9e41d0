"""The Markdown report and the PNG chart of a python -m bench.suite result (its JSON document).

Ratios are against the baseline series (the floor) measured in the same run at the
same client count: "x floor" is throughput / floor throughput (higher is better),
"CPU vs floor" is server CPU per request / the floor's (lower is better).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["main_table", "write_chart", "write_markdown"]

MAIN_CLIENTS = 16
OTHER_CORES_WARN = 0.25
"""Cores busy with processes other than the server and the load generator, above which
a point is flagged: another program on the machine was competing."""


def _points(doc: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(p["series"], p["clients"]): p for p in doc["points"] if "failed" not in p}


def _ratio(value: float | None, base: float | None) -> str:
    if not value or not base:
        return "-"
    return f"{value / base:.2f}"


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def main_table(doc: dict[str, Any], clients: int = MAIN_CLIENTS, *, main_only: bool = False,
               full: bool = True) -> list[str]:
    """The per-target table at one client count (Markdown lines)."""
    points = _points(doc)
    base_name = doc["settings"]["baseline"]
    base = points.get((base_name, clients))
    if full:
        head = ("| target | era | answers | req/s | x floor throughput | server CPU us/req "
                "| CPU/req vs floor | p50 ms | p99 ms | server cores | client CPU us/req "
                "| errors |")
        rule = "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    else:
        head = ("| target | era | answers | req/s | x floor throughput | server CPU us/req "
                "| CPU/req vs floor |")
        rule = "|---|---|---|---:|---:|---:|---:|"
    out = [head, rule]
    for s in doc["series"]:
        if main_only and not s["main"]:
            continue
        p = points.get((s["name"], clients))
        if p is None:
            continue
        cells = [
            f"`{s['name']}`", s["era"], s["answers"], _fmt(p["throughput_rps"]),
            _ratio(p["throughput_rps"], base["throughput_rps"] if base else None),
            _fmt(p["server_us_per_request"]),
            _ratio(p["server_us_per_request"], base["server_us_per_request"] if base else None),
        ]
        if full:
            cells += [
                _fmt(p["p50_ms"], 2), _fmt(p["p99_ms"], 2), _fmt(p["server_cores"], 2),
                _fmt(p["client_us_per_request"]) + (" (sat.)" if p["client_saturated"] else ""),
                str(p["errors"]),
            ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _pivot(doc: dict[str, Any], key: str, digits: int = 0) -> list[str]:
    points = _points(doc)
    clients = doc["settings"]["clients"]
    out = [
        "| target | " + " | ".join(f"{c} clients" for c in clients) + " |",
        "|---|" + "---:|" * len(clients),
    ]
    for s in doc["series"]:
        cells = [_fmt(points[(s["name"], c)][key], digits) if (s["name"], c) in points else "-"
                 for c in clients]
        out.append(f"| `{s['name']}` | " + " | ".join(cells) + " |")
    return out


def _anomalies(doc: dict[str, Any]) -> list[str]:
    out = []
    for p in doc["points"]:
        where = f"`{p['series']}` at {p['clients']} clients"
        if "failed" in p:
            out.append(f"- {where}: failed: {p['failed']}")
            continue
        if p["errors"]:
            kinds = ", ".join(f"{k} {v}" for k, v in p["errors_by_kind"].items())
            sample = next(iter(p["error_samples"].values()), [""])
            out.append(f"- {where}: {p['errors']} errors ({kinds}) {sample[:1]}")
        if p["client_saturated"]:
            both = p["server_cores"] >= 0.95
            out.append(
                f"- {where}: the load generator was saturated ({p['client_cores']:.2f} cores"
                + (f"; the server too, {p['server_cores']:.2f} cores): throughput is bounded "
                   "by both, CPU/req stands" if both else "): the server's throughput is "
                   "understated, CPU/req stands")
            )
        if p["other_cores"] > OTHER_CORES_WARN:
            out.append(f"- {where}: {p['other_cores']:.2f} cores busy with other processes "
                       "during the window (noise)")
        missing = p["counters"].get("progress_missing")
        if missing:
            out.append(f"- {where}: {missing} answers without the progress notification")
    return out


def _updates(doc: dict[str, Any]) -> list[str]:
    out = []
    for u in doc.get("updates", []):
        out.append(
            f"Re-measured at {u['at']} with `{u['command']}` (same settings and scalemcp "
            f"commit; load average then {' '.join(u['loadavg'])}): "
            + ", ".join(f"`{name}`" for name in u["series"]) + "."
        )
    return [*out, ""] if out else []


def write_markdown(doc: dict[str, Any], path: Path, chart: Path | None) -> None:
    st, m, v = doc["settings"], doc["machine"], doc["versions"]
    pin = (
        f"every server process (and its Redis) pinned to core {st['server_cores'][0]}, the "
        f"load generator to core {st['client_cores'][0]} (sched_setaffinity)"
        if st["pinned"] else "no CPU pinning"
    )
    clients = ", ".join(str(c) for c in st["clients"])
    main_clients = MAIN_CLIENTS if MAIN_CLIENTS in st["clients"] else st["clients"][0]
    out = [
        f"# scalemcp comparative benchmark, {doc['date']}",
        "",
        f"Command: `{doc['command']}` ({doc.get('wall_s', 0) / 60:.1f} min). "
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['os']}, Linux {m['kernel']}, "
        f"{m['memory_gib']} GiB; {v['python']}.",
        "",
        *_updates(doc),
        f"Every target serves the same `echo` tool; each point is {st['tool']} in a closed "
        f"loop by {clients} simulated clients ({st['http']}), {st['duration_s']:g} s measured "
        f"after {st['warmup_s']:g} s warmup, on loopback. Setup: {pin}; the "
        "`scalemcp-redis-2w` server uses both cores, shared with the load generator. "
        f"Before each point the suite waits (within a budget) until other programs use "
        f"less than {st.get('quiet_threshold_cores', 0.15):g} cores, and re-runs a point "
        "that was disturbed anyway, keeping the less disturbed run. "
        "Server CPU: utime + stime of the server's processes (and its redis-server) from "
        "`/proc/<pid>/stat`, sampled every 50 ms and interpolated to the measured window, "
        "divided by the requests in it. It is the figure least moved by noise; throughput "
        "with one core for the server is its inverse only while the server is the "
        "bottleneck. Ratios are against the floor measured in the same run at the same "
        "client count (x floor throughput: higher is better; CPU/req vs floor: lower is "
        "better).",
        "",
        f"## {main_clients} clients",
        "",
        *main_table(doc, main_clients),
        "",
    ]
    if chart is not None:
        out += [f"![throughput and CPU per request by clients]({chart.name})", ""]
    if len(st["clients"]) > 1:
        out += [
            "## Throughput (req/s)", "", *_pivot(doc, "throughput_rps"), "",
            "## Server CPU per request (us)", "", *_pivot(doc, "server_us_per_request"), "",
            "## p99 latency (ms)", "", *_pivot(doc, "p99_ms", 1), "",
            "## Load generator CPU per request (us)", "",
            *_pivot(doc, "client_us_per_request"), "",
            "## Other work on the machine during the window (cores)", "",
            "Busy time of all tasks other than the server's and the load generator's "
            "(interrupt time not included); high values mean another program competed.", "",
            *_pivot(doc, "other_cores", 2), "",
        ]
    out += ["## Targets", ""]
    out += [f"- `{s['name']}` ({s['era']} era, {s['answers']} answers"
            + (f", scenario {s['scenario']} with {s['steps']} step" if s["scenario"] != "call"
               else "")
            + f"): {s['description']}" for s in doc["series"]]
    out += ["", "## Versions", "", "| component | version |", "|---|---|"]
    out += [f"| {k} | {val} |" for k, val in v.items()]
    anomalies = _anomalies(doc)
    notes = [f"- {n}" for n in doc.get("notes", [])]
    out += ["", "## Anomalies", "", *(anomalies + notes or ["none flagged"]), ""]
    out += [f"Load average before / after: {' '.join(m['loadavg_before'])} / "
            f"{' '.join(m.get('loadavg_after', ['?']))}.", ""]
    path.write_text("\n".join(out))


_FAMILY_COLORS = {
    "floor": "black", "scalemcp": "tab:green", "sdk": "tab:blue", "fastmcp": "tab:orange",
    "ts": "tab:red",
}
_LINESTYLES: list[Any] = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
_MARKERS = ["o", "s", "^", "D", "v"]


def write_chart(doc: dict[str, Any], path: Path) -> None:
    """Throughput and server CPU per request against clients, one line per target."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    points = _points(doc)
    clients = doc["settings"]["clients"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=100)
    seen: dict[str, int] = {}
    for s in doc["series"]:
        xs = [c for c in clients if (s["name"], c) in points]
        if not xs:
            continue
        family = s["name"].split("-")[0]
        variant = seen[family] = seen.get(family, -1) + 1
        style = {
            "color": _FAMILY_COLORS.get(family, "tab:gray"),
            "linestyle": _LINESTYLES[variant % len(_LINESTYLES)],
            "marker": _MARKERS[variant % len(_MARKERS)],
            "markersize": 4,
            "linewidth": 2.4 if family in ("scalemcp", "floor") else 1.4,
        }
        for ax, key in ((ax1, "throughput_rps"), (ax2, "server_us_per_request")):
            ax.plot(xs, [points[(s["name"], c)][key] for c in xs], label=s["name"], **style)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xticks(clients)
        ax.set_xticklabels([str(c) for c in clients])
        ax.set_xlabel("concurrent clients")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("requests/s (log)")
    ax1.set_title("throughput (server on one core)")
    ax2.set_yscale("log")
    ax2.set_ylabel("server CPU per request (us, log)")
    ax2.set_title("server CPU per request (lower is better)")
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(f"scalemcp bench suite, {doc['date']}: tools/call echo, closed loop, loopback")
    fig.tight_layout(rect=(0, 0, 0.85, 0.95))
    fig.savefig(path)
    plt.close(fig)
