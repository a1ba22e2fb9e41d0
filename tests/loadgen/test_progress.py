"""The live progress line: phases, rates that restart with a phase, several processes merged."""

from __future__ import annotations

import io

from scalemcp.loadgen.progress import Progress, ProgressLine, merge


def snap(phase: str, elapsed: float, completed: int, **kw: int) -> Progress:
    return Progress(
        phase=phase,  # type: ignore[arg-type]
        elapsed_s=elapsed,
        ready=kw.get("ready", 4),
        clients=kw.get("clients", 4),
        completed=completed,
        failed=kw.get("failed", 0),
        p99_us=kw.get("p99_us"),
    )


def test_phases_render_as_themselves() -> None:
    line = ProgressLine(11.0, stream=io.StringIO())
    assert line.render(snap("connecting", 0, 0, ready=1)) == "[connecting] 1/4 clients ready"
    line.update(snap("warm-up", 0.5, 100))
    assert "warm-up: 200 ok" in line.render(snap("warm-up", 1.0, 200))
    assert "200.0 req/s" in line.render(snap("warm-up", 1.0, 200))
    line.update(snap("warm-up", 1.0, 200))
    first = line.render(snap("measuring", 1.5, 30, p99_us=2500))
    assert "warm-up" not in first
    assert "req/s" not in first  # no rate until two samples of the same phase
    assert "p99 2.50 ms" in first


def test_merge_waits_for_every_process_then_shows_the_latest_phase() -> None:
    connecting = merge([snap("connecting", 0, 0, ready=2), snap("warm-up", 0.5, 10)])
    assert (connecting.phase, connecting.ready, connecting.clients) == ("connecting", 6, 8)
    crossing = merge([snap("warm-up", 1.0, 50), snap("measuring", 1.0, 7, p99_us=900)])
    assert (crossing.phase, crossing.completed, crossing.p99_us) == ("measuring", 7, 900)
    both = merge([snap("measuring", 2.0, 70), snap("measuring", 2.1, 80)])
    assert (both.completed, both.elapsed_s) == (150, 2.1)
