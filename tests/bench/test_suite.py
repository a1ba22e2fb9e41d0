"""The comparative suite (``python -m bench.suite``) runs one real point end to end and
rewrites a report from its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.suite", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_list_names_every_series() -> None:
    out = _suite("--list")
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names[0] == "floor"
    assert "scalemcp" in names
    assert "sdk-json" in names


def test_one_point_measured_and_reported(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    out = _suite("--targets", "floor", "--clients", "2", "--duration", "0.5", "--warmup",
                 "0.2", "--no-pin", "--wait-budget", "0", "--output", str(prefix))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(prefix.with_suffix(".json").read_text())
    [point] = doc["points"]
    assert point["series"] == "floor"
    assert point["clients"] == 2
    assert point["requests"] > 0
    assert point["errors"] == 0
    assert point["server_us_per_request"] > 0
    report = prefix.with_suffix(".md").read_text()
    assert "floor" in report
    prefix.with_suffix(".md").unlink()
    again = _suite("--report-only", str(prefix.with_suffix(".json")))
    assert again.returncode == 0, again.stderr
    assert prefix.with_suffix(".md").read_text() == report
