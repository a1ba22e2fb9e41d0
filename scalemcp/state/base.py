"""The state interface every backend implements.

Theory of operation
-------------------
A *session* is a record (negotiated version, client capabilities, principal, log level,
subscriptions) with an idle TTL that every successful load renews.

A session owns named *streams*: append-only event logs, one per SSE stream (``get`` for
the standalone GET stream, ``p<random>`` for each POST answered with SSE). Every message
sent on a resumable SSE stream is appended first; its position becomes the SSE event id,
and ``read`` replays everything after a position and then waits for more, from any
worker. A stream is *ended* when its final event (the JSON-RPC response) is appended, or
its *epitaph* when the worker writing it died first.

*Mailboxes* route a message to the worker running a request: the worker that runs a
request opens a mailbox keyed by (session, key); ``deliver`` from any worker puts a
payload in it (client responses to server->client requests, cancellations). A
cancellation mailbox, opened for every request and rarely used, is a *callback* instead
(``on_delivery``): nothing waits on it, so it costs no task and no channel.

*Changes* (list_changed, resources/updated) are published once and seen by every worker.

*Token buckets* (rate limits) belong to an *owner* (a principal): ``take_tokens`` takes
from several of one owner's buckets at once, all or none, fleet-wide on a shared backend.
A bucket nobody takes from refills and is forgotten.

Nothing crosses this interface but bytes and msgspec Structs, so a backend may live in
another process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol

import msgspec
import trio

from .hub import ChangeFeed
from .tasks import TaskStore

__all__ = [
    "ANSWER_MAILBOX",
    "CANCEL_MAILBOX",
    "SessionRecord",
    "StateBackend",
    "StateStatistics",
    "StreamEvent",
    "StreamRead",
    "Throttled",
    "TokenBucket",
]


#: Mailbox keys: ``ANSWER_MAILBOX + <id>`` receives the client's answer to the server's
#: request ``<id>``; ``CANCEL_MAILBOX + <id>`` the client's cancellation of its request.
ANSWER_MAILBOX = "r:"
CANCEL_MAILBOX = "c:"


class SessionRecord(msgspec.Struct, kw_only=True):
    session_id: str
    protocol_version: str
    client_capabilities: dict[str, Any] = {}
    client_info: dict[str, Any] = {}
    principal: str | None = None
    log_level: str | None = None
    subscriptions: list[str] = []
    initialized: bool = False
    created_at: float = 0.0


class StreamEvent(msgspec.Struct, frozen=True):
    position: str
    data: bytes


class StreamRead(msgspec.Struct, frozen=True):
    events: list[StreamEvent]
    #: The stream's final event is among what was read, or was read before.
    ended: bool = False
    #: The stream (or its session) does not exist or has expired.
    missing: bool = False


class TokenBucket(msgspec.Struct, frozen=True):
    """One bucket of an owner: holds up to ``capacity`` tokens, refilled at ``rate_per_s``;
    a take needs ``cost`` tokens (at most ``capacity``). New buckets start full."""

    name: str
    rate_per_s: float
    capacity: float
    cost: float = 1.0


class Throttled(msgspec.Struct, frozen=True):
    """A take refused: the bucket short of tokens (the one to wait longest for) and how
    long until it holds enough."""

    bucket: str
    retry_after_s: float


class StateStatistics(msgspec.Struct, frozen=True):
    backend: str
    sessions: int
    streams: int
    mailboxes: int
    healthy: bool


class StateBackend(Protocol):
    """What the transport and engine need from a state backend."""

    name: str
    #: Durable tasks (:mod:`scalemcp.state.tasks`).
    tasks: TaskStore

    async def create_session(self, record: SessionRecord) -> None: ...

    async def load_session(self, session_id: str) -> SessionRecord | None:
        """The session, its idle TTL renewed; None if unknown, expired or deleted."""

    async def update_session(self, session_id: str, **changes: Any) -> None: ...

    async def subscribe(self, session_id: str, uri: str, subscribed: bool) -> None:
        """Add (or remove) one resource subscription of a session, atomically."""

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its streams; open streams end. False if unknown."""

    async def count_sessions(self, principal: str | None) -> int: ...

    async def append(
        self, session_id: str, stream: str, data: bytes, *, final: bool = False,
        epitaph: bytes | None = None,
    ) -> str:
        """Append an event to a stream and return its position.

        Nothing is appended after a stream's final event. ``epitaph``, given with the
        append that creates a stream, is the final event the stream gets if the worker
        writing it dies before ending it; a backend shared by processes appends it once
        that worker is known to be gone (one in a single process need not keep it).
        """

    async def read(
        self, session_id: str, stream: str, after: str | None, *, wait_s: float
    ) -> StreamRead:
        """Events after ``after`` (None: from the start); wait up to ``wait_s`` for some."""

    def open_mailbox(
        self, session_id: str, key: str
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[bytes]]: ...

    def on_delivery(
        self, session_id: str, key: str, callback: Callable[[bytes], None]
    ) -> AbstractContextManager[None]:
        """A mailbox for ``CANCEL_MAILBOX`` keys held by a callback: within the block, a
        payload delivered to (session, key) from any worker calls ``callback(payload)``
        on this one (at once when delivered here; when the worker's reader gets it
        otherwise). The callback must not block."""

    async def deliver(self, session_id: str, key: str, payload: bytes) -> bool:
        """Route ``payload`` to whoever holds the mailbox; False if nobody does."""

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        """True the first time ``key`` is claimed within ``ttl_s``; False after (replays)."""

    async def take_tokens(self, owner: str, buckets: Sequence[TokenBucket]) -> Throttled | None:
        """Take each bucket's ``cost`` from ``owner``'s buckets, all or none, atomically.

        None if taken; else nothing is taken and the answer says which bucket is short.
        """

    async def acquire_inflight(self, session_id: str, n: int, limit: int) -> bool:
        """Count ``n`` more requests of the session in flight, unless that makes more than
        ``limit`` across every process sharing the backend (then False, nothing counted)."""

    async def release_inflight(self, session_id: str, n: int) -> None:
        """Count ``n`` of the session's requests as finished."""

    async def publish_change(self, payload: bytes) -> None: ...

    def open_changes(self) -> AbstractAsyncContextManager[ChangeFeed]: ...

    async def ready(self) -> bool: ...

    def statistics(self) -> StateStatistics: ...

    def running(self) -> AbstractAsyncContextManager[None]:
        """The backend's lifetime: its background work (stream readers, upkeep) runs for
        the duration of the block, and it is closed at its end. Outside it, operations may
        fail with :class:`~scalemcp.errors.BackendUnavailable`."""
