"""Token buckets in Redis: the Redis backend's ``take_tokens``, one EVALSHA per take.

Keys (one owner's buckets share a hash tag, so one script may touch them on a cluster)::

    <prefix>{rl:<digest of owner>}:<bucket>   hash {v: tokens, t: ms of the last take}, with a
                                              TTL of the time it takes to refill completely

The arithmetic is :mod:`scalemcp.state.buckets`', on Redis' clock (``TIME``), so workers
whose clocks disagree still share one budget. A bucket nobody takes from expires once it
would be full again, which is the same as not existing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from .base import Throttled, TokenBucket

__all__ = ["TAKE_TOKENS", "bucket_key", "take_args", "throttled"]


def bucket_key(prefix: str, owner: str, bucket: str) -> str:
    digest = hashlib.blake2b(owner.encode(), digest_size=10).hexdigest()
    return f"{prefix}{{rl:{digest}}}:{bucket}"


def take_args(buckets: Sequence[TokenBucket]) -> list[Any]:
    args: list[Any] = []
    for bucket in buckets:
        args += (repr(float(bucket.rate_per_s)), repr(float(bucket.capacity)),
                 repr(float(bucket.cost)))
    return args


def throttled(reply: Any, buckets: Sequence[TokenBucket]) -> Throttled | None:
    """TAKE_TOKENS' reply as take_tokens' answer."""
    index, wait_us = int(reply[0]), int(reply[1])
    if index == 0:
        return None
    return Throttled(buckets[index - 1].name, wait_us / 1_000_000)


#: KEYS: the buckets. ARGV: rate per second, capacity, cost for each bucket. Returns {0, 0}
#: when every cost was taken; else {1-based index of the bucket to wait longest for, the
#: wait in microseconds}, and nothing is taken.
TAKE_TOKENS = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
-- Microseconds: exact in a double, and stored as a string of digits (tostring would
-- round it to 14 significant digits).
local stamp = t[1] .. string.format('%06d', tonumber(t[2]))
local now = tonumber(stamp)
local levels = {}
local worst, worst_wait = 0, -1
for i = 1, #KEYS do
  local rate = tonumber(ARGV[3 * i - 2]) / 1000000
  local cap = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local stored = redis.call('HMGET', KEYS[i], 'v', 't')
  local tokens = cap
  if stored[1] then
    local elapsed = math.max(0, now - tonumber(stored[2]))
    tokens = math.min(cap, tonumber(stored[1]) + elapsed * rate)
  end
  levels[i] = tokens
  if tokens < cost then
    local wait = math.ceil((cost - tokens) / rate)
    if wait > worst_wait then worst, worst_wait = i, wait end
  end
end
if worst > 0 then return {worst, worst_wait} end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[3 * i - 2]) / 1000000
  local cap = tonumber(ARGV[3 * i - 1])
  local left = levels[i] - tonumber(ARGV[3 * i])
  redis.call('HSET', KEYS[i], 'v', tostring(left), 't', stamp)
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - left) / rate / 1000) + 1000)
end
return {0, 0}
"""
