"""Session and stream state: one async interface, two backends (memory, Redis)."""

from .base import SessionRecord, StateBackend, StateStatistics, StreamEvent, StreamRead

__all__ = ["SessionRecord", "StateBackend", "StateStatistics", "StreamEvent", "StreamRead"]
