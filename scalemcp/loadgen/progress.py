"""Progress of a run as it goes: a snapshot Struct, and the live line on stderr that shows it.

A run goes through three phases: ``connecting`` (clients set up their
sessions; the clock has not started), ``warm-up`` (operations run but are not
measured) and ``measuring``. Snapshots come about twice a second from the
runner, or from every bench process merged (`merge`).
"""

from __future__ import annotations

import sys
from typing import Literal, TextIO

import msgspec

__all__ = ["PHASES", "Phase", "Progress", "ProgressLine", "merge"]

Phase = Literal["connecting", "warm-up", "measuring"]
PHASES: tuple[Phase, ...] = ("connecting", "warm-up", "measuring")


class Progress(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    phase: Phase
    elapsed_s: float
    """Seconds since the clock started (at the start of the warm-up); 0 while connecting."""
    ready: int
    """Clients set up so far."""
    clients: int
    completed: int
    """Operations done in this phase (warm-up and measured counts are kept apart)."""
    failed: int
    p99_us: int | None = None


def merge(parts: list[Progress]) -> Progress:
    """One snapshot for several processes: counts add up over those in the phase shown,
    ``connecting`` until every process is past it, then the latest (processes cross
    from warm-up to measuring a tick apart)."""
    phases = [p.phase for p in parts]
    phase: Phase = "connecting" if "connecting" in phases else max(phases, key=PHASES.index)
    same = [p for p in parts if p.phase == phase]
    p99s = [p.p99_us for p in same if p.p99_us is not None]
    return Progress(
        phase=phase,
        elapsed_s=max(p.elapsed_s for p in parts),
        ready=sum(p.ready for p in parts),
        clients=sum(p.clients for p in parts),
        completed=sum(p.completed for p in same),
        failed=sum(p.failed for p in same),
        p99_us=max(p99s) if p99s else None,
    )


class ProgressLine:
    """Rewrites one status line on stderr: phase, elapsed time, completions, rate, live p99."""

    def __init__(self, total_s: float | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total_s = total_s
        self._last: Progress | None = None

    def render(self, p: Progress) -> str:
        if p.phase == "connecting":
            return f"[connecting] {p.ready}/{p.clients} clients ready"
        last = self._last
        if last is not None and (last.phase != p.phase or last.completed > p.completed):
            last = None  # a new phase counts from zero
        dt = p.elapsed_s - last.elapsed_s if last is not None else 0.0
        rate = (p.completed - last.completed) / dt if last is not None and dt > 0 else 0.0
        total = f"/{self.total_s:g}" if self.total_s else ""
        label = "warm-up: " if p.phase == "warm-up" else ""
        text = f"[{p.elapsed_s:5.1f}{total} s] {label}{p.completed} ok  {p.failed} err"
        if last is not None:
            text += f"  {rate:8.1f} req/s"
        if p.p99_us is not None and p.phase == "measuring":
            text += f"  p99 {p.p99_us / 1000:.2f} ms"
        return text

    def update(self, p: Progress) -> None:
        self.stream.write("\r" + self.render(p).ljust(78))
        self.stream.flush()
        self._last = p

    def finish(self) -> None:
        self.stream.write("\r" + " " * 78 + "\r")
        self.stream.flush()
