"""Where the answer to a POST goes: one JSON body, or a resumable event stream.

A request answers with JSON when its handler sends nothing before the result. The first
message it sends early (progress, a log line, an elicitation) turns the answer into a
stream: a new stream is opened in the state backend (with a priming event for clients
that resume), and from then on every message is appended there before it is sent, so a
client that loses the connection resumes from the backend on any worker.

A stream opened for requests is created with an *epitaph*: a JSON-RPC error for each of
them, which the backend appends as the stream's final event if this worker dies before
ending it (see ``StateBackend.append``), so a client resuming elsewhere is answered.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import trio

from ..errors import InternalError
from ..protocol import jsonrpc
from ..protocol.sse import POST_STREAM
from ..state.base import StateBackend

__all__ = ["Outbox"]


class Outbox:
    def __init__(
        self,
        state: StateBackend,
        session_id: str,
        *,
        expected: int = 1,
        priming: bool = True,
        fixed_stream: str | None = None,
        request_ids: Sequence[int | str] = (),
    ) -> None:
        self._state = state
        self._session_id = session_id
        self._remaining = expected
        self._priming = priming
        self._lock = trio.Lock()
        self._request_ids = request_ids
        self._epitaph: bytes | None = None
        self._results: list[bytes] = []
        #: Set once the answer's form is known: ``stream`` set, or ``results`` complete.
        self.decided = trio.Event()
        #: Set when a handler asks to drop the connection (the stream goes on; SSE polling).
        self.drop_connection = trio.Event()
        self.stream: str | None = fixed_stream
        #: A fixed stream (legacy HTTP+SSE) carries many requests and never ends with one.
        self._fixed = fixed_stream is not None
        if self._fixed:
            self.decided.set()

    @property
    def results(self) -> list[bytes]:
        return self._results

    async def emit(self, data: bytes) -> None:
        async with self._lock:
            if self.stream is None:
                await self._open_stream()
            await self._append(data)

    async def finish(self, response: bytes) -> None:
        if self.stream is None and not self._lock.locked():
            # A JSON answer (the common case): nothing to await, so no lock to take.
            self._finish_json(response)
            return
        async with self._lock:
            if self.stream is None:
                self._finish_json(response)
                return
            self._remaining -= 1
            await self._append(response, final=self._remaining <= 0 and not self._fixed)

    def _finish_json(self, response: bytes) -> None:
        self._remaining -= 1
        self._results.append(response)
        if self._remaining <= 0:
            self.decided.set()

    async def drop(self) -> None:
        """End the HTTP connection after what is sent so far; the stream goes on."""
        async with self._lock:
            if self.stream is None:
                await self._open_stream()
        self.drop_connection.set()

    async def _open_stream(self) -> None:
        self.stream = POST_STREAM + secrets.token_hex(8)
        self._epitaph = _epitaph(self._request_ids)
        try:
            if self._priming:
                await self._append(b"")
            for earlier in self._results:
                await self._append(earlier)
        except BaseException:
            # Not opened (the backend refused it): the answer stays JSON, so that the
            # request's result or error can still be answered without the backend.
            self.stream = None
            raise
        self._results.clear()
        self.decided.set()

    def answer_without_backend(self, response: bytes) -> bool:
        """Answer with JSON when the stream could not be opened; False if it was (the
        answer then belongs to the stream, which the backend refused)."""
        if self.stream is not None:
            return False
        self._results.append(response)
        self.decided.set()
        return True

    async def _append(self, data: bytes, final: bool = False) -> None:
        """Append to the stream; the first append creates it, with its epitaph."""
        assert self.stream is not None
        epitaph, self._epitaph = self._epitaph, None
        await self._state.append(self._session_id, self.stream, data, final=final,
                                 epitaph=epitaph)


def _epitaph(request_ids: Sequence[int | str]) -> bytes | None:
    """The answer to ``request_ids`` if the worker running them dies (a batch: an array)."""
    if not request_ids:
        return None
    error = InternalError("the server process running this request stopped before it "
                          "finished; its outcome is unknown")
    errors = [jsonrpc.encode_error(rid, error) for rid in request_ids]
    return errors[0] if len(errors) == 1 else b"[" + b",".join(errors) + b"]"
