"""The short soak: ``bench/soak.py --duration 20`` (2 nodes x 2 workers behind haproxy,
a worker ``kill -9``ed every 5 s, mixed load) must lose and repeat no event and have no
error that a kill does not explain. About 30 s; deselect with ``-m 'not soak'``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.soak
def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "bench/soak.py", "--duration", "20", "--kill-every", "5",
         "--json", str(out), "--markdown", str(tmp_path / "soak.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    print("\n" + (tmp_path / "soak.md").read_text())
    context = json.dumps({k: result[k] for k in ("errors", "problems", "kills")}, indent=1)
    assert result["lost_events"] == 0, context
    assert result["duplicate_events"] == 0, context
    assert result["unexplained_errors"] == 0, context
    assert result["fleet_whole_at_end"], result.get("logs", "")[-4000:]
    assert len(result["kills"]) >= 3, result["kills"]
    assert all(k["replacement_started_after_s"] is not None for k in result["kills"])
    outcomes = result["outcomes"]
    for flow in ("progress", "resume", "modern", "elicit"):  # every flow really ran
        assert outcomes.get(f"{flow}-completed", 0) >= 5, outcomes
    assert result["requests"].get("resume-resume", 0) >= 5, result["requests"]
    assert proc.returncode == 0, proc.stderr[-3000:]
