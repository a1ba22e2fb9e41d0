"""PNG charts of a report (latency by percentile), behind the optional matplotlib extra."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from .hist import Histogram
from .report import Report

__all__ = ["MissingMatplotlib", "write_latency_chart"]

_TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999)


class MissingMatplotlib(RuntimeError):
    """matplotlib is not installed; PNG charts need ``pip install matplotlib``."""


def write_latency_chart(report: Report, path: Path) -> None:
    """Latency against percentile (HdrHistogram style: the tail spread out) for each op."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError as exc:
        raise MissingMatplotlib(
            "PNG charts need matplotlib, which is not installed: pip install matplotlib"
        ) from exc
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, wire in report.histograms.items():
        if name.startswith("other:"):
            continue
        points = Histogram.from_wire(wire).cdf()
        xs = [1 / max(1 - q, 1e-6) for _, q in points]
        ys = [value / 1000 for value, _ in points]
        ax.step(xs, ys, where="post", label=f"{name} ({wire.count})")
    ax.set_xscale("log")
    ax.set_xticks([1 / (1 - t) for t in _TICKS])
    ax.set_xticklabels([f"{t * 100:g}%" for t in _TICKS])
    ax.set_xlim(1, max(10.0, 10 ** math.ceil(math.log10(max(report.requests, 10)))))
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    c = report.config
    ax.set_title(
        f"{c.scenario}, {c.clients} clients, {c.era} era: {report.throughput_rps:.0f} req/s"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
