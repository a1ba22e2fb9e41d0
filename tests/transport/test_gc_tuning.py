"""The worker's garbage collector settings (transport/gc_tuning.py), set at startup."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import scalemcp
from scalemcp.transport import gc_tuning
from tests.harness.asgi import open_asgi


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The thresholds as they were, restored after the test."""
    before = gc.get_threshold()
    gc.set_threshold(700, before[1], before[2])
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def test_zero_leaves_the_collector_alone(thresholds: tuple[int, int, int]) -> None:
    gc_tuning.tune_gc(0)
    assert gc.get_threshold()[0] == 700


def test_raises_the_first_threshold_only(thresholds: tuple[int, int, int]) -> None:
    gc_tuning.tune_gc(50_000)
    assert gc.get_threshold() == (50_000, thresholds[1], thresholds[2])
    gc_tuning.tune_gc(10_000)  # never lowered: another app in the process asked for more
    assert gc.get_threshold()[0] == 50_000
    assert gc_tuning._frozen
    assert gc.get_freeze_count() > 0


async def test_the_app_sets_it_at_startup(thresholds: tuple[int, int, int]) -> None:
    app = scalemcp.App("gc")
    async with open_asgi(app, scalemcp.Config.from_options(gc_threshold=40_000)):
        assert gc.get_threshold()[0] == 40_000
