"""The Redis backend's link counts failures by kind and times each script's round trip."""

from __future__ import annotations

from typing import Any

import anyio
import coredis.exceptions as ce
import pytest
import trio

from scalemcp.errors import BackendUnavailable
from scalemcp.observability.metrics import REGISTRY
from scalemcp.state.redis_router import Link, error_kind


@pytest.mark.parametrize(("exc", "kind"), [
    (TimeoutError(), "timeout"),
    (ce.ConnectionError("refused"), "connection"),
    (ConnectionResetError(), "connection"),
    (anyio.EndOfStream(), "connection"),
    (ce.AuthenticationFailureError("WRONGPASS"), "auth"),
    (ce.MovedError("1 127.0.0.1:7001"), "cluster"),
    (ce.ClusterDownError("CLUSTERDOWN"), "cluster"),
    (ce.PrimaryNotFoundError("no master"), "sentinel"),
    (ce.ReadOnlyError("READONLY"), "response"),
    (ce.DataError("bad"), "other"),
])
def test_error_kinds_are_few_and_fixed(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


class _Client:
    def __init__(self, fail: BaseException | None) -> None:
        self.fail = fail

    async def evalsha(self, sha: str, *, keys: list[str], args: list[Any]) -> bytes:
        await trio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        return b"ok"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _figures() -> tuple[float, float, float, float]:
    return (_sample("scalemcp_redis_round_trip_seconds_count", operation="probe"),
            _sample("scalemcp_redis_round_trip_seconds_sum", operation="probe"),
            _sample("scalemcp_redis_errors_total", kind="unavailable"),
            _sample("scalemcp_redis_errors_total", kind="connection"))


async def test_scripts_are_timed_and_failures_counted() -> None:
    link = Link({"probe": "return 1"})
    before = _figures()
    with pytest.raises(BackendUnavailable), link.redis():
        pass  # not running: no client
    link.client = _Client(None)  # type: ignore[assignment]
    with link.redis() as client:
        assert await link.script(client, "probe", [], []) == b"ok"
    link.client = _Client(ce.ConnectionError("refused"))  # type: ignore[assignment]
    with pytest.raises(BackendUnavailable), link.redis() as client:
        await link.script(client, "probe", [], [])
    timed, seconds, unavailable, refused = _figures()
    assert timed == before[0] + 2
    assert seconds - before[1] >= 0.02
    assert (unavailable, refused) == (before[2] + 1, before[3] + 1)
