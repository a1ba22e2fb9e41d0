"""The fleet the cluster tests share (tests/harness/fleet.py: redis-server, 3 nodes of 2
workers, haproxy in front), one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.fleet import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    fleet = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
