"""``scalemcp bench --scenario task`` against a real ``scalemcp serve bench.tasks_app:app``:
each operation creates a task (2026-07-28 extension, or 2025-11-25 ``params.task``) and
waits for it to complete, by polling ``tasks/get`` or on ``subscriptions/listen``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scalemcp.loadgen.cli import main
from tests.harness.serve import ServeProcess


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    served = ServeProcess("bench.tasks_app:app")
    yield served
    log = served.stop()
    assert "Traceback" not in log, log


def bench(url: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    code = main([url, "--scenario", "task", "-c", "4", "-d", "1", "--warmup", "0.2",
                 "--timeout", "10", "-q", "--no-progress", "--json", str(out), *args])
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["errors_by_kind"] == {}, report["error_samples"]
    assert code == 0
    assert list(report["ops"]) == ["task"]
    assert report["requests"] > 0
    assert report["counters"]["tasks_created"] == report["requests"]
    assert report["other"]["task_create"]["count"] == report["requests"]
    return report


@pytest.mark.parametrize("era", ["modern", "session"])
def test_create_and_poll(server: ServeProcess, tmp_path: Path, era: str) -> None:
    report = bench(server.url, tmp_path, "--era", era, "--task-poll-ms", "5")
    assert report["counters"]["task_polls"] >= report["requests"]  # one at least, each


def test_create_and_listen(server: ServeProcess, tmp_path: Path) -> None:
    report = bench(server.url, tmp_path, "--era", "modern", "--task-wait", "listen")
    assert "task_polls" not in report["counters"]


def test_listen_needs_the_modern_era(server: ServeProcess, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    with pytest.raises(SystemExit) as exited:
        main([server.url, "--scenario", "task", "--task-wait", "listen", "-q"])
    assert exited.value.code == 2
    assert "--era modern" in capsys.readouterr().err
