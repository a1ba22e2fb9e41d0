"""The scope of a tool running as a durable task: what ``ctx`` does inside a task.

- Progress and log messages become the task's ``statusMessage`` (visible in ``tasks/get``
  and pushed to listeners); in the session era they also go to the session, tagged with
  the related task.
- Asking the client: in the extension (2026-07-28) the questions are the task's
  ``inputRequests`` (the task is parked: no worker waits; it runs again with the
  answers); in the session era (2025-11-25) each is a real server->client request on the
  session's GET stream, whose answer may reach any worker (mailboxes route it here).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import trio

from ..app.context import InputRequest
from ..errors import InternalError
from ..protocol import jsonrpc
from ..protocol.changes import for_session
from ..state.base import ANSWER_MAILBOX
from ..state.tasks import Claim
from .call import (
    Call,
    CallFacts,
    ClientRequestFailed,
    InputRequired,
    client_result,
    require_capability,
)

if TYPE_CHECKING:
    from .tasks import TaskService

__all__ = ["TaskScope"]

_RELATED = "io.modelcontextprotocol/related-task"


class TaskScope(CallFacts):
    def __init__(self, call: Call, claim: Claim, service: TaskService,
                 progress_token: int | str | None) -> None:
        self._call = call
        self._claim = claim
        self._service = service
        self._state = service.state
        # Progress is always reported inside a task: it becomes the status message.
        self._progress_token = progress_token if progress_token is not None else claim.task_id

    @property
    def log_level(self) -> str | None:
        return self._call.log_level or "info"

    @property
    def task_id(self) -> str | None:
        return self._claim.task_id

    async def continue_as_task(self) -> None:
        await trio.lowlevel.checkpoint()  # already one

    async def drop_connection(self) -> None:
        return None

    async def publish_change(self, method: str, params: Any) -> None:
        await self._state.publish_change(jsonrpc.encode_notification(method, params))

    async def notify(self, method: str, params: Any) -> None:
        message = _status_message(method, params)
        if message is not None:
            await self._service.store.progress(self._claim, message)
        sid = self._call.session_id
        if self._call.modern or sid is None:
            return  # the extension sends no progress or log messages for tasks
        if method == "notifications/progress" and self._progress_token == self._claim.task_id:
            return  # the client asked for no progress: only the status message has it
        tagged = {**params, "_meta": {**params.get("_meta", {}), **self._related()}}
        await self._to_session(sid, jsonrpc.encode_notification(method, tagged))

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        for request in requests.values():
            require_capability(self._call, request.method)
        if self._call.modern:
            answers = self._call.input_responses or {}
            missing = {k: r for k, r in requests.items() if not isinstance(answers.get(k), dict)}
            if missing:
                raise InputRequired(missing)
            return {key: answers[key] for key in requests}
        return {key: await self._ask_session(key, r) for key, r in requests.items()}

    async def _ask_session(self, key: str, request: InputRequest) -> Any:
        sid = self._call.session_id
        if sid is None:
            raise InternalError("server->client requests need a session")
        request_id = f"task-{key}-{secrets.token_hex(6)}"
        params = {**request.params, "_meta": self._related()}
        await self._service.store.progress(self._claim, f"waiting for {request.method}")
        async with self._state.open_mailbox(sid, ANSWER_MAILBOX + request_id) as mailbox:
            await self._to_session(sid, jsonrpc.encode_request(request_id, request.method,
                                                               params))
            with trio.move_on_after(self._service.ask_timeout_s):
                payload = await mailbox.receive()
                await self._service.store.progress(self._claim, "working")
                return client_result(payload, request.method)
        raise ClientRequestFailed(f"the client did not answer {request.method} in time")

    def _related(self) -> dict[str, Any]:
        return {_RELATED: {"taskId": self._claim.task_id}}

    async def _to_session(self, session_id: str, message: bytes) -> None:
        await self._state.publish_change(for_session(session_id, message))


def _status_message(method: str, params: Any) -> str | None:
    if not isinstance(params, dict):
        return None
    if method == "notifications/progress":
        text = params.get("message")
        if isinstance(text, str):
            return text
        total = params.get("total")
        done = params.get("progress")
        return f"{done:g} of {total:g}" if isinstance(total, int | float) else f"{done}"
    if method == "notifications/message":
        data = params.get("data")
        return data if isinstance(data, str) else None
    return None
