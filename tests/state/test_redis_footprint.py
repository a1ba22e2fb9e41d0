"""What a session leaves in Redis: bounded while it lives, nothing once it is deleted.

The 30-minute soak (bench/soak.py) keeps a few sessions for its whole run, each making a
new stream per call; whatever a session keeps per stream it ever had grows without bound
there, and in production with any long-lived client. These tests count the entries under
a session's hash tag in the Redis itself (standalone and Cluster), whatever the keys.
"""

from __future__ import annotations

import pytest
import trio

from scalemcp.state.base import SessionRecord
from scalemcp.state.redis import RedisBackend

from .conftest import OpenBackend, Target

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

#: A command that counts the members of a key of each type that can hold one per stream
#: of the session (any other key counts as one: a stream's own length is capped).
_SIZE = {"zset": "ZCARD", "set": "SCARD", "list": "LLEN"}


def scan(target: Target, state: RedisBackend, sid: str) -> list[tuple[Target, str]]:
    """Every key under the session's hash tag, with the node that holds it."""
    pattern = f"{state.keys.prefix}{{{sid}}}*"
    return [(node, key) for node in getattr(target, "nodes", [target])
            for key in node.cli("--scan", "--pattern", pattern).split()]


def session_keys(target: Target, state: RedisBackend, sid: str) -> dict[str, int]:
    """Every key under the session's hash tag, with how many members it holds (1 but for
    a set or list)."""
    found: dict[str, int] = {}
    for node, key in scan(target, state, sid):
        kind = node.cli("TYPE", key).strip()
        found[key] = int(node.cli(_SIZE[kind], key)) if kind in _SIZE else 1
    return found


def record(sid: str) -> SessionRecord:
    return SessionRecord(session_id=sid, protocol_version="2025-11-25", principal=None)


async def test_a_long_lived_session_keeps_nothing_of_its_expired_streams(
    open_redis: OpenBackend, redis_target: Target,
) -> None:
    ttl = 1.0
    with trio.fail_after(20):
        async with open_redis(stream_ttl_s=ttl) as state:
            assert isinstance(state, RedisBackend)
            await state.create_session(record("s"))
            for i in range(60):  # one call each, as the soak's clients make them
                await state.append("s", f"p{i}", b"result", final=True)
            assert len(scan(redis_target, state, "s")) > 60  # (quick: the TTL is short)
            # The session stays busy (one stream written all along) until every one of
            # those streams has expired.
            for i in range(int(3 * ttl / 0.1)):
                await state.append("s", "busy", b"%d" % i)
                await trio.sleep(0.1)
            await state.append("s", "p-new", b"result", final=True)
            kept = session_keys(redis_target, state, "s")
            # The session record, its two live streams, and the index of the streams to
            # delete with the session, which names those two only (and not all 62).
            assert sum(kept.values()) <= 6, kept
            assert (await state.read("s", "p-new", None, wait_s=0)).events[0].data == b"result"
            assert await state.delete_session("s")
            assert session_keys(redis_target, state, "s") == {}


async def test_deletion_also_finds_streams_named_by_an_earlier_version(
    open_redis: OpenBackend, redis_target: Target,
) -> None:
    with trio.fail_after(20):
        async with open_redis() as state:
            assert isinstance(state, RedisBackend)
            await state.create_session(record("s"))
            await state.append("s", "p1", b"new")
            # What a worker of an earlier version wrote for a stream of the same session:
            # the stream, and its name in the unscored set.
            nodes = getattr(redis_target, "nodes", [redis_target])
            old_stream = state.keys.stream("s", "p0")
            written = False
            for node in nodes:
                if node.cli("EXISTS", state.keys.session("s")).strip() == "1":
                    node.cli("XADD", old_stream, "*", "d", "old")
                    node.cli("SADD", state.keys.legacy_stream_set("s"), "p0")
                    written = True
            assert written
            assert len(session_keys(redis_target, state, "s")) >= 4
            assert await state.delete_session("s")
            assert session_keys(redis_target, state, "s") == {}
