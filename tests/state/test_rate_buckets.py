"""``take_tokens``: one contract for every backend, then a fleet of two Redis workers
sharing one budget, and a Redis that is gone.

Rates are small and timing is checked loosely: a refused take says how long to wait, and
waiting that long (plus slack) is enough; nothing asserts a tight deadline.
"""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from scalemcp.errors import BackendUnavailable
from scalemcp.state.base import TokenBucket
from scalemcp.state.redis import RedisBackend
from tests.harness.ports import refused_port

from .conftest import OpenBackend

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

#: 10 tokens a second, 3 at most.
PER_PRINCIPAL = TokenBucket("p", rate_per_s=10.0, capacity=3.0)


def tool(name: str, rate: float = 2.0, capacity: float = 1.0) -> TokenBucket:
    return TokenBucket(f"t:{name}", rate_per_s=rate, capacity=capacity)


async def test_a_bucket_empties_and_refills(open_backend: OpenBackend,
                                           clock: MockClock | None) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            for _ in range(3):  # a new bucket starts full
                assert await state.take_tokens("alice", [PER_PRINCIPAL]) is None
            refused = await state.take_tokens("alice", [PER_PRINCIPAL])
            assert refused is not None
            assert refused.bucket == "p"
            # One token comes back every 0.1 s; some of that time has passed already.
            assert 0 < refused.retry_after_s <= 0.1 + 1e-6
            await trio.sleep(refused.retry_after_s + 0.05)
            assert await state.take_tokens("alice", [PER_PRINCIPAL]) is None
            # Owners are independent.
            assert await state.take_tokens("bob", [PER_PRINCIPAL]) is None


async def test_all_or_nothing(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            slow = tool("slow", rate=0.5)
            assert await state.take_tokens("alice", [PER_PRINCIPAL, slow]) is None
            refused = await state.take_tokens("alice", [PER_PRINCIPAL, slow])
            assert refused is not None
            assert refused.bucket == "t:slow"
            assert 1.0 < refused.retry_after_s <= 2.0 + 1e-6
            # The refused take took nothing from the principal's bucket: 2 tokens are left.
            other = tool("other")
            assert await state.take_tokens("alice", [PER_PRINCIPAL, other]) is None
            assert await state.take_tokens("alice", [PER_PRINCIPAL]) is None
            refused = await state.take_tokens("alice", [PER_PRINCIPAL])
            assert refused is not None
            assert refused.bucket == "p"


async def test_the_longest_wait_is_reported_and_costs_count(open_backend: OpenBackend) -> None:
    with trio.fail_after(10):
        async with open_backend() as state:
            batch = TokenBucket("p", rate_per_s=10.0, capacity=3.0, cost=3.0)
            assert await state.take_tokens("carol", [batch]) is None
            slow = tool("slow", rate=1.0)
            assert await state.take_tokens("carol", [slow]) is None
            refused = await state.take_tokens("carol", [batch, slow])
            assert refused is not None
            assert refused.bucket == "t:slow"  # about 1 s, against about 0.3 s for "p"
            assert refused.retry_after_s > 0.5
            assert await state.take_tokens("carol", []) is None


# -- a fleet of Redis workers ------------------------------------------------------------


async def test_two_workers_share_one_budget(open_redis: OpenBackend) -> None:
    bucket = TokenBucket("p", rate_per_s=0.2, capacity=4.0)
    with trio.fail_after(15):
        async with open_redis() as one, open_redis() as two:
            taken = 0
            for state in (one, two, one, two, one, two):
                if await state.take_tokens("alice", [bucket]) is None:
                    taken += 1
            assert taken == 4  # not 4 per worker
            refused = await two.take_tokens("alice", [bucket])
            assert refused is not None
            assert 0 < refused.retry_after_s <= 5.0 + 1e-6


async def test_buckets_expire_once_refilled(open_redis: OpenBackend) -> None:
    with trio.fail_after(15):
        async with open_redis() as state:
            assert isinstance(state, RedisBackend)
            await state.take_tokens("dave", [TokenBucket("p", rate_per_s=100.0, capacity=1.0)])
            from scalemcp.state.redis_buckets import bucket_key

            key = bucket_key(state.keys.prefix, "dave", "p")
            with state._redis() as client:
                ttl = await client.pttl(key)
            assert 0 < ttl <= 1100  # refilled in 10 ms, plus a second of slack


async def test_a_dead_redis_raises_backend_unavailable() -> None:
    with refused_port() as port, trio.fail_after(10):
        state = RedisBackend(f"redis://127.0.0.1:{port}/0", connect_timeout_s=0.5)
        async with state.running():
            with pytest.raises(BackendUnavailable):
                await state.take_tokens("alice", [PER_PRINCIPAL])
