"""Fixtures for the state tests: private Redis deployments (standalone, Cluster, Sentinel;
see tests/harness/redis.py) and backends to test against them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import pytest
from trio.testing import MockClock

from scalemcp.state.base import StateBackend
from scalemcp.state.memory import MemoryBackend
from tests.harness.redis import RedisClusterNodes, RedisServer, SentinelDeployment

BACKENDS = ["memory", "redis", "redis-cluster"]
REDIS_KINDS = ["redis", "redis-cluster"]

OpenBackend = Callable[..., AbstractAsyncContextManager[StateBackend]]


class Target(Protocol):
    url: str

    def command(self, *args: str) -> bytes: ...


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    cluster = RedisClusterNodes()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A Sentinel deployment the tests share (never failed over: see test_sentinel)."""
    deployment = SentinelDeployment()
    yield deployment
    deployment.stop()


_TARGETS = {"redis": "redis_server", "redis-cluster": "redis_cluster",
            "redis-sentinel": "redis_sentinel"}


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(backend_kind: str) -> MockClock | None:
    """The test's clock (pytest-trio runs a test on a Clock it takes as an argument): mock
    time that jumps ahead whenever every task waits, for the memory backend, which keeps
    time with Trio; Redis expires keys in real time, so the Redis kinds run on a real one."""
    return MockClock(autojump_threshold=0) if backend_kind == "memory" else None


@pytest.fixture(params=REDIS_KINDS)
def redis_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def opener(kind: str, request: pytest.FixtureRequest) -> OpenBackend:
    """``open(**settings)`` for a backend of ``kind``; Redis ones share a key prefix."""
    prefix = f"t{secrets.token_hex(4)}:"

    @asynccontextmanager
    async def open_(**settings: Any) -> AsyncIterator[StateBackend]:
        if kind == "memory":
            backend = MemoryBackend(**settings)
            async with backend.running():
                yield backend
            return
        from scalemcp.state.redis import RedisBackend

        target: Target = request.getfixturevalue(_TARGETS[kind])
        redis = RedisBackend(target.url, key_prefix=prefix, **settings)
        async with redis.running():
            yield redis

    return open_


@pytest.fixture
def open_backend(backend_kind: str, request: pytest.FixtureRequest) -> OpenBackend:
    """``open_backend(**settings)``: a running backend of the test's kind.

    Redis backends opened by one test share a key prefix of their own, so they act as
    workers of one fleet and never see another test's keys.
    """
    return opener(backend_kind, request)


@pytest.fixture
def open_redis(redis_kind: str, request: pytest.FixtureRequest) -> OpenBackend:
    """Like ``open_backend``, Redis (standalone or Cluster) only: each call is another
    worker of one fleet."""
    return opener(redis_kind, request)


@pytest.fixture
def redis_target(redis_kind: str, request: pytest.FixtureRequest) -> Target:
    """The deployment ``open_redis`` connects to."""
    target: Target = request.getfixturevalue(_TARGETS[redis_kind])
    return target


#: Task leases of the durable-task tests on Redis (the memory store keeps each task's own).
LEASE_S = 0.3


@pytest.fixture
def open_store(open_backend: OpenBackend, backend_kind: str) -> OpenBackend:
    """Backends whose task leases are LEASE_S (the memory store keeps each task's own)."""
    def open_(**settings: object) -> object:
        if backend_kind != "memory":
            settings.setdefault("task_lease_s", LEASE_S)
        return open_backend(**settings)
    return open_  # type: ignore[return-value]


@asynccontextmanager
async def workers(open_store: OpenBackend) -> AsyncIterator[tuple[StateBackend, StateBackend]]:
    """Two workers of one fleet: two Redis backends, or the one memory backend twice."""
    async with open_store() as one:
        if one.name == "memory":
            yield one, one
            return
        async with open_store() as two:
            yield one, two
