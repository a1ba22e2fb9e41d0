"""Worker liveness for the Redis backend: heartbeats, and ending the streams of the dead.

A POST's SSE stream is written by the one worker running its request(s), and only that
worker ends it, with the final response. If that worker dies (``kill -9``, out of memory,
its machine lost), what it wrote stays replayable, but nobody would append the final
event: a client resuming on another worker would wait forever. So (DESIGN invariant 4):

* Every worker keeps a heartbeat key, ``<prefix>worker:<id>``, alive with a TTL of
  ``ttl_s``, renewed every third of it (every half second while Redis cannot be reached).
  The first beat is written when the backend connects, before it reports started.
* The append that creates a stream records, in the same script (no extra round trip),
  its writer and its *epitaph* in ``{sid}:xe:<stream>``: the engine's JSON-RPC error for
  the stream's request(s). The stream's final append deletes that record.
* A reader that waited a whole ``wait_s`` (the SSE keep-alive interval) and then found
  nothing new learns the stream's writer from the same READ script. If the writer is
  another worker, one EXISTS asks for its heartbeat; if there is none, the BURY script
  appends the epitaph as the stream's final event, unless the stream ended meanwhile.
  Nothing is ever appended after a final event (APPEND refuses), so racing readers bury a
  stream once, and a writer presumed dead that wakes up cannot add a second answer.

Bounds: a stream whose writer died ends, for a client following or resuming it, within
``ttl_s`` + ``wait_s`` of the death (with ``RedisBackend.from_config``: three keep-alive
intervals, 45 s for the default 15 s). A worker that cannot renew its heartbeat for
``ttl_s`` while Redis serves others (stalled, or cut off from Redis) is taken for dead:
its open streams end with their epitaphs, and its later appends to them are dropped.
After Redis restarts empty, heartbeats are back within about half a second, well before
any reader has waited the ``wait_s`` it waits before checking.
"""

from __future__ import annotations

import logging

import trio

from ..errors import BackendUnavailable
from .redis_layout import Keys
from .redis_router import Link

__all__ = ["Liveness"]

log = logging.getLogger("scalemcp.state.redis")

_RETRY_S = 0.5


class Liveness:
    """This worker's heartbeat, and the question whether another worker has one."""

    def __init__(self, link: Link, keys: Keys, worker: str, *, ttl_s: float) -> None:
        self._link = link
        self._keys = keys
        self.worker = worker.encode()
        self.ttl_s = ttl_s
        self._key = keys.worker(worker)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew this worker's heartbeat until cancelled; started after the first try."""
        beating = False
        while True:
            try:
                with self._link.redis() as client, trio.fail_after(self.ttl_s / 3):
                    await client.set(self._key, b"1", px=max(1, int(self.ttl_s * 1000)))
                beating = True
            except (BackendUnavailable, trio.TooSlowError) as exc:
                if beating:
                    log.warning("worker heartbeat not renewed (retrying): %s", exc)
                beating = False
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(self.ttl_s / 3 if beating else min(_RETRY_S, self.ttl_s / 3))

    async def gone(self, worker: bytes) -> bool:
        """True if ``worker`` (not this one) has no heartbeat: it stopped or died."""
        if worker == self.worker:
            return False
        with self._link.redis() as client:
            return not await client.exists([self._keys.worker(worker.decode())])
