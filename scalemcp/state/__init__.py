"""Session and stream state: one async interface, two backends (memory, Redis).

:func:`make_state` is the one place a backend is chosen from the configuration; every
backend's lifetime is ``async with backend.running():`` (:func:`open_state` does both).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..config import Config
from .base import SessionRecord, StateBackend, StateStatistics, StreamEvent, StreamRead

__all__ = [
    "SessionRecord",
    "StateBackend",
    "StateStatistics",
    "StreamEvent",
    "StreamRead",
    "make_state",
    "open_state",
]


def make_state(config: Config) -> StateBackend:
    """The backend ``config`` names (Redis with ``redis_url``, else memory), not running."""
    if config.redis.url:
        from .redis import RedisBackend

        return RedisBackend.from_config(config)
    from .memory import MemoryBackend

    return MemoryBackend(idle_ttl_s=config.sessions.session_idle_ttl_s,
                         stream_maxlen=config.sse.stream_maxlen,
                         stream_ttl_s=config.sse.stream_ttl_s,
                         max_sessions=config.sessions.max_sessions)


@asynccontextmanager
async def open_state(config: Config) -> AsyncIterator[StateBackend]:
    """The backend ``config`` names, running for the duration of the block."""
    state = make_state(config)
    async with state.running():
        yield state
