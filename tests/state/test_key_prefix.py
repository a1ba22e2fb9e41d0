"""``redis_key_prefix``: two deployments on one Redis (standalone or Cluster) keep apart.

The backends are built from ``Config`` as ``scalemcp serve`` builds them, so the setting is
tested from the configuration through to the keys in Redis.
"""

from __future__ import annotations

import secrets

import pytest
import trio

from scalemcp.config import Config, load_config
from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend

from .conftest import Target


def redis_keys(target: Target, pattern: str) -> list[str]:
    """Every key matching ``pattern``, on each node of a cluster."""
    nodes = getattr(target, "nodes", [target])
    return [key for node in nodes for key in node.cli("--scan", "--pattern", pattern).split()]


def record(session_id: str) -> SessionRecord:
    return SessionRecord(session_id=session_id, protocol_version="2025-11-25", principal=None)


async def test_two_releases_on_one_redis_see_only_their_own_keys(redis_target: Target) -> None:
    run = secrets.token_hex(3)
    blue = RedisBackend.from_config(Config.from_options(redis_url=redis_target.url,
                                           redis_key_prefix=f"smcp:ns/blue-{run}:"))
    green = RedisBackend.from_config(Config.from_options(redis_url=redis_target.url,
                                            redis_key_prefix=f"smcp:ns/green-{run}:"))
    with trio.fail_after(20):
        async with blue.running(), green.running():
            await blue.create_session(record("same-id"))
            await blue.append("same-id", "get", b"blue event")
            assert await green.load_session("same-id") is None
            assert await green.count_sessions(None) == 0
            await green.create_session(record("same-id"))
            await green.delete_session("same-id")
            # The other release's session, with its stream, is untouched.
            assert await blue.load_session("same-id") is not None
            events = (await blue.read("same-id", "get", None, wait_s=0)).events
            assert [e.data for e in events] == [b"blue event"]
            assert await blue.count_sessions(None) == 1
            assert await blue.claim_once("state-nonce", 60)
            assert await green.claim_once("state-nonce", 60)  # replay sets are apart too
    keys = redis_keys(redis_target, f"smcp:ns/*-{run}:*")
    assert keys
    assert all(k.startswith((f"smcp:ns/blue-{run}:", f"smcp:ns/green-{run}:")) for k in keys)
    assert any(k.startswith(f"smcp:ns/blue-{run}:{{same-id}}") for k in keys)


@pytest.mark.parametrize("prefix", ["a{b}:", "{x}", "}"])
def test_a_prefix_with_braces_is_refused_at_configuration(prefix: str) -> None:
    with pytest.raises(ValueError, match="SCALEMCP_REDIS_KEY_PREFIX: expected `str` matching"):
        load_config(env={"SCALEMCP_REDIS_KEY_PREFIX": prefix})


def test_the_default_prefix_is_kept() -> None:
    assert Config().redis.key_prefix == "smcp:"
    backend = RedisBackend.from_config(Config.from_options(redis_url="redis://127.0.0.1:1/0"))
    assert backend.keys.prefix == "smcp:"
