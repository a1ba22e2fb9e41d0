"""The load generator behind ``scalemcp bench``.

Many simulated MCP clients per process on Trio (session-era sessions, modern
2026-07-28 stateless requests, or legacy HTTP+SSE), closed or open loop, over
HTTP/1.1 keep-alive or HTTP/2, optionally in several processes whose
measurements merge into one report. Entry point: `scalemcp.loadgen.cli.main`.
"""

from __future__ import annotations

from .config import BenchConfig as BenchConfig
from .hist import Histogram as Histogram
from .report import Report as Report

__all__ = ["BenchConfig", "Histogram", "Report"]
