"""The Redis backend's link counts failures by kind and times each script's round trip."""

from __future__ import annotations

from typing import Any

import anyio
import coredis.exceptions as ce
import pytest
import trio

from scalemcp.errors import BackendUnavailable
from scalemcp.observability.metrics import REDIS_ERRORS, REDIS_ROUND_TRIP
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


async def test_scripts_are_timed_and_failures_counted() -> None:
    link = Link({"probe": "return 1"})
    timed = REDIS_ROUND_TRIP.labels("probe")
    before = (sum(timed.counts), timed.sum)
    unavailable = REDIS_ERRORS.labels("unavailable")
    refused = REDIS_ERRORS.labels("connection")
    counts = (unavailable.value, refused.value)
    with pytest.raises(BackendUnavailable), link.redis():
        pass  # not running: no client
    link.client = _Client(None)  # type: ignore[assignment]
    with link.redis() as client:
        assert await link.script(client, "probe", [], []) == b"ok"
    link.client = _Client(ce.ConnectionError("refused"))  # type: ignore[assignment]
    with pytest.raises(BackendUnavailable), link.redis() as client:
        await link.script(client, "probe", [], [])
    assert sum(timed.counts) == before[0] + 2
    assert timed.sum - before[1] >= 0.02
    assert (unavailable.value, refused.value) == (counts[0] + 1, counts[1] + 1)
