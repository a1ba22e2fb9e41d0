"""The official conformance suite (0.1.16, ``server --suite all``) through haproxy, against
3 nodes x 2 workers serving examples/conformance.py over one redis-server: every request of
every scenario may land on another node, and every scenario still passes."""

from __future__ import annotations

import csv
import io
import urllib.request
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.conftest import node_env
from tests.harness.fleet import Cluster, HAProxy, running
from tests.interop.conformance import full_suite_0_1_16, skill_scenarios, task_scenarios


@pytest.fixture(scope="module")
def conformance_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    fleet = Cluster(tmp_path_factory.mktemp("conformance"), app="examples.conformance:app")
    with running(fleet):
        yield fleet


def requests_per_node(lb: HAProxy) -> dict[str, int]:
    """HTTP requests haproxy sent to each server so far (its stats page)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{lb.stats_port}/stats;csv",
                                timeout=2) as response:
        rows = csv.DictReader(io.StringIO(response.read().decode().lstrip("# ")))
        return {r["svname"]: int(r["stot"] or 0) for r in rows
                if r["pxname"] == "scalemcp" and r["svname"] in lb.names}


T = TypeVar("T")


def spread_over_nodes(fleet: Cluster, run: Callable[[], T], at_least: int
                      ) -> tuple[T, dict[str, int]]:
    """``run()``'s result and the requests haproxy sent each node meanwhile; every node
    took at least ``at_least`` of them, and no worker logged a traceback."""
    lb = fleet.lb
    assert lb is not None
    before = requests_per_node(lb)
    result = run()
    after = requests_per_node(lb)
    spread = {name: after[name] - before.get(name, 0) for name in after}
    assert sorted(spread) == ["n0", "n1", "n2"]
    assert all(count >= at_least for count in spread.values()), spread
    logs = fleet.logs()
    assert "Traceback" not in logs, logs
    return result, spread


def test_conformance_0_1_16_through_the_load_balancer(conformance_fleet: Cluster) -> None:
    passed, spread = spread_over_nodes(
        conformance_fleet, lambda: full_suite_0_1_16(node_env(), conformance_fleet.url), 20)
    print(f"\nconformance 0.1.16 --suite all through haproxy (3 nodes x 2 workers, Redis): "
          f"{passed} checks passed, 0 failed; requests per node {spread}")


def test_skills_scenarios_through_the_load_balancer(conformance_fleet: Cluster) -> None:
    """sep-2640-skills-* (0.2.0-alpha.12) at both wires: every worker of every node scanned
    the same skills, so entries, digests and cursors agree wherever a request lands."""
    summaries, spread = spread_over_nodes(
        conformance_fleet, lambda: skill_scenarios(node_env(), conformance_fleet.url), 3)
    print(f"\nskills scenarios through haproxy: {summaries}; requests per node {spread}")


def test_task_scenarios_through_the_load_balancer(conformance_fleet: Cluster) -> None:
    """tasks-* (SEP-2663) through haproxy: a task created on one node is read, updated and
    cancelled on others, and runs on whichever worker claims it (Redis)."""
    summaries, spread = spread_over_nodes(
        conformance_fleet, lambda: task_scenarios(node_env(), conformance_fleet.url), 10)
    print(f"\ntasks scenarios through haproxy: {summaries}; requests per node {spread}")
