"""The live progress line on stderr (only on a terminal, or when asked for)."""

from __future__ import annotations

import sys
from typing import TextIO

from .stats import Recorder

__all__ = ["ProgressLine"]


class ProgressLine:
    """Rewrites one status line: elapsed time, completions, rate, errors, live p99."""

    def __init__(self, total_s: float | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total_s = total_s
        self._last_count = 0
        self._last_t = 0.0

    def update(self, elapsed_s: float, completed: int, failed: int, p99_us: int | None) -> None:
        dt = max(elapsed_s - self._last_t, 1e-9)
        rate = (completed - self._last_count) / dt
        self._last_count, self._last_t = completed, elapsed_s
        total = f"/{self.total_s:g}" if self.total_s else ""
        text = f"[{elapsed_s:5.1f}{total} s] {completed} ok  {failed} err  {rate:8.1f} req/s"
        if p99_us is not None:
            text += f"  p99 {p99_us / 1000:.2f} ms"
        self.stream.write("\r" + text.ljust(78))
        self.stream.flush()

    def from_recorder(self, rec: Recorder, elapsed_s: float) -> None:
        p99 = max((h.percentile(99) for h in rec.ops.values()), default=None)
        self.update(elapsed_s, rec.completed, rec.failed, p99)

    def finish(self) -> None:
        self.stream.write("\r" + " " * 78 + "\r")
        self.stream.flush()
