"""Durable tasks in the engine: making them, running a tool as one, and the tasks/* methods.

Two wires, one engine (``features(version).tasks``):

- ``extension`` (2026-07-28, ``io.modelcontextprotocol/tasks``): the client declares the
  extension in each request's ``_meta`` capabilities; the server decides; a flat
  ``CreateTaskResult`` (``resultType: "task"``); ``tasks/get`` inlines the result, the
  error or the outstanding ``inputRequests``; ``tasks/update`` answers them; no worker is
  held while a task waits for input (it is parked, then run again with the answers).
- ``core`` (2025-11-25): the client asks with ``params.task``; ``{task: {...}}``;
  ``tasks/get``, ``tasks/result`` (waits for the end), ``tasks/list``, ``tasks/cancel``;
  input through real ``elicitation/create`` requests on the session, while the task
  shows ``input_required``.

The task's record holds what the call was (:class:`StoredCall`); whichever worker claims
it rebuilds the :class:`Call` and runs the tool through the same ``call_tool`` as inline.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio
from msgspec import UNSET, Raw

from ..app.tasks import EXTENSION, TaskPolicy
from ..app.tools import ToolSpec
from ..errors import (
    InternalError,
    InvalidParams,
    MethodNotFound,
    MissingClientCapability,
    ProtocolError,
    RateLimited,
)
from ..observability.metrics import RATE_LIMITED, TASKS_CREATED
from ..protocol import jsonrpc
from ..protocol.changes import for_session
from ..protocol.types import CallToolParams, ListParams, TaskIdParams, UpdateTaskParams
from ..protocol.versions import features
from ..state.base import StateBackend
from ..state.tasks import (
    NO_LIMITS,
    TERMINAL,
    Claim,
    QueueFull,
    RunLimits,
    TaskEvent,
    TaskRecord,
    TaskStore,
)
from ..tasks import Outcome, TaskRunner
from .call import Call, InputRequired
from .task_polls import PollPacer

if TYPE_CHECKING:
    from .dispatch import Engine, ScopeMaker

__all__ = ["EXTENSION", "HANDLERS", "RELATED_TASK", "StoredCall", "TaskService"]

log = logging.getLogger("scalemcp.engine.tasks")

RELATED_TASK: Final = "io.modelcontextprotocol/related-task"
#: Most tasks one listen stream follows.
_MAX_FOLLOWED: Final = 100
_MISSING_EXTENSION: Final[dict[str, Any]] = {
    "requiredCapabilities": {"extensions": {EXTENSION: {}}}}


class StoredCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a task runs: the ``tools/call`` as the engine saw it."""

    tool: str
    arguments: Raw = Raw(b"{}")
    request_id: int | str = 0
    protocol_version: str
    client_capabilities: dict[str, Any] = {}
    session_id: str | None = None
    log_level: str | None = None
    modern: bool = False
    granted_scopes: list[str] | None = None
    progress_token: int | str | None = None


_STORED = msgspec.json.Decoder(StoredCall)
_CREATED = {True: TASKS_CREATED.labels("modern"), False: TASKS_CREATED.labels("session")}
_encode = msgspec.json.encode


@functools.lru_cache(maxsize=4096)  # (a task's two stamps are formatted at every poll)
def iso(ms: int) -> str:
    stamp = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def declares_extension(call: Call) -> bool:
    extensions = call.client_capabilities.get("extensions")
    return isinstance(extensions, dict) and EXTENSION in extensions


class TaskService:
    """The engine's side of durable tasks, on one state backend's task store."""

    def __init__(self, engine: Engine, state: StateBackend, *, worker: str,
                 lease_s: float = 3.0, concurrency: int = 16, run_tasks: bool = True,
                 ask_timeout_s: float = 300.0, max_active: int = 0,
                 limits: RunLimits = NO_LIMITS, poll_min_interval_s: float = 1.0) -> None:
        self.engine = engine
        self.state = state
        self.store: TaskStore = state.tasks
        self.lease_ms = max(100, int(lease_s * 1000))
        self.runner = TaskRunner(self.store, self.execute, worker=worker,
                                 concurrency=concurrency, run_tasks=run_tasks,
                                 on_written=self.status_changed, limits=limits)
        #: How long a session-era task waits for the client's answer to one request.
        self.ask_timeout_s = ask_timeout_s
        #: Most tasks waiting or running, fleet-wide (0: no limit).
        self.max_active = max_active
        #: Holds tasks/get polls that come faster than asked (task_polls.py).
        self.polls = PollPacer(poll_min_interval_s)
        self.runner.listen(self.polls.on_event)

    # -- making a task ---------------------------------------------------------------

    def decide(self, call: Call, p: CallToolParams, spec: ToolSpec) -> bool:
        """True to answer ``call`` with a task now; raises if it needs one it cannot get."""
        policy = spec.task
        era = features(call.protocol_version).tasks
        if call.task_id is not None or policy is None or era == "none":
            if era == "core" and p.task is not UNSET and call.task_id is None:
                raise MethodNotFound(f"tool {spec.name!r} does not run as a task")
            return False
        if era == "extension":
            declared = declares_extension(call)
            if not declared:
                if policy.support == "required":
                    raise MissingClientCapability(
                        f"tool {spec.name!r} runs only as a task: declare the {EXTENSION} "
                        "extension in the request's client capabilities", _MISSING_EXTENSION)
                return False
        else:
            declared = p.task is not UNSET
            if not declared:
                if policy.support == "required":
                    raise MethodNotFound(f"tool {spec.name!r} must be called as a task "
                                         "(params.task)")
                return False
        if policy.support == "forbidden":
            if era == "core":
                raise MethodNotFound(f"tool {spec.name!r} does not run as a task")
            return False
        if policy.inline_first:
            call.may_become_task = True
            return False
        return True

    async def create(self, call: Call, p: CallToolParams, spec: ToolSpec) -> dict[str, Any]:
        """Store the task (durably: any worker's ``tasks/get`` resolves it) and describe it."""
        policy = spec.task or TaskPolicy()
        meta = p.meta
        token = None if meta is UNSET or meta.progress_token is UNSET else meta.progress_token
        stored = StoredCall(
            tool=spec.name,
            arguments=p.arguments if isinstance(p.arguments, Raw) else Raw(b"{}"),
            request_id=call.request_id, protocol_version=call.protocol_version,
            client_capabilities=call.client_capabilities, session_id=call.session_id,
            log_level=call.log_level, modern=call.modern,
            granted_scopes=None if call.granted_scopes is None else sorted(call.granted_scopes),
            progress_token=token)
        ttl_ms = int(policy.ttl_s * 1000)
        if p.task is not UNSET and isinstance(p.task.ttl, int) and p.task.ttl > 0:
            ttl_ms = min(ttl_ms, p.task.ttl)  # (a client may ask for less, not more)
        record = TaskRecord(
            task_id=secrets.token_urlsafe(32),  # 256 bits: the id is unguessable
            principal=call.principal, request=_encode(stored), ttl_ms=ttl_ms,
            poll_interval_ms=max(1, int(policy.poll_interval_s * 1000)),
            lease_ms=self.lease_ms, max_attempts=policy.max_attempts, tool=spec.name,
            answers={k: _encode(v) for k, v in (call.input_responses or {}).items()})
        try:
            stored_record = await self._store(record)
        except QueueFull:
            RATE_LIMITED.labels("task_queue").inc()
            raise RateLimited(f"the server holds {self.max_active} tasks already",
                              limit="task_queue", retry_after_s=1.0) from None
        _CREATED[call.modern].inc()
        if call.modern:
            return {"resultType": "task", **self.describe(stored_record, modern=True)}
        return {"task": self.describe(stored_record, modern=False)}

    async def _store(self, record: TaskRecord) -> TaskRecord:
        """Create the task; with a free slot here, claim the next one in the same round
        trip and start it (a short task is then often done before the client's first
        poll, and skips a trip through the queue)."""
        runner = self.runner
        if not runner.reserve():
            return await self.store.create(record, max_active=self.max_active)
        claim = None
        try:
            # Shielded (one round trip): a claim made but never seen would leave its
            # task leased by nobody until the lease ran out.
            with trio.CancelScope(shield=True):
                stored, claim = await self.store.create_and_claim(
                    record, runner.worker, max_active=self.max_active, limits=runner.limits)
        finally:
            if claim is None:
                runner.unreserve()
        if claim is not None:
            runner.start(claim)
        return stored

    def describe(self, record: TaskRecord, *, modern: bool) -> dict[str, Any]:
        """The Task object of the wire (no result, error or input requests)."""
        task: dict[str, Any] = {
            "taskId": record.task_id,
            "status": record.status,
            "createdAt": iso(record.created_ms),
            "lastUpdatedAt": iso(record.updated_ms or record.created_ms),
        }
        if record.status_message:
            task["statusMessage"] = record.status_message
        if modern:
            task["ttlMs"] = record.ttl_ms
            task["pollIntervalMs"] = record.poll_interval_ms
        else:
            task["ttl"] = record.ttl_ms
            task["pollInterval"] = record.poll_interval_ms
        return task

    def detailed(self, record: TaskRecord) -> dict[str, Any]:
        """The extension's DetailedTask: the Task with its result, error or input requests."""
        task = self.describe(record, modern=True)
        if record.status == "completed" and record.result is not None:
            task["result"] = Raw(record.result)
        elif record.status == "failed" and record.error is not None:
            task["error"] = Raw(record.error)
        elif record.status == "input_required":
            task["inputRequests"] = {k: Raw(v) for k, v in record.input_requests.items()}
        return task

    async def status_changed(self, claim: Claim, status: str) -> None:
        """A 2025-11-25 task's new status, pushed to its session
        (``notifications/tasks/status``; the extension pushes on listen streams)."""
        try:
            stored = _STORED.decode(claim.record.request)
        except msgspec.DecodeError:
            return
        if not stored.modern and stored.session_id is not None:
            await self.push_status(stored.session_id, claim.task_id)

    async def push_status(self, session_id: str, task_id: str) -> None:
        record = await self.store.get(task_id)
        if record is None:
            return
        note = jsonrpc.encode_notification("notifications/tasks/status",
                                           self.describe(record, modern=False))
        await self.state.publish_change(for_session(session_id, note))

    # -- running a task --------------------------------------------------------------

    async def execute(self, claim: Claim) -> Outcome:
        """Run the task's tool call (the runner's ``execute``); never raises but Cancelled."""
        from .task_scope import TaskScope  # (the scope needs this module's names)

        try:
            stored = _STORED.decode(claim.record.request)
        except msgspec.DecodeError:
            return _failed(InternalError("the task's stored request cannot be read"))
        answers = {k: msgspec.json.decode(v) for k, v in claim.record.answers.items()}
        params = CallToolParams(name=stored.tool, arguments=stored.arguments)
        call = Call(request_id=stored.request_id, method="tools/call", params=params,
                    protocol_version=stored.protocol_version,
                    client_capabilities=stored.client_capabilities,
                    session_id=stored.session_id, principal=claim.record.principal,
                    log_level=stored.log_level, input_responses=answers or None,
                    modern=stored.modern, task_id=claim.task_id,
                    granted_scopes=None if stored.granted_scopes is None
                    else frozenset(stored.granted_scopes))
        scope = TaskScope(call, claim, self, stored.progress_token)

        def make_scope(c: Call, meta: Any) -> TaskScope:
            return scope

        try:
            result = await self.engine.call_tool(call, make_scope)
        except InputRequired as needed:
            return Outcome(kind="park", requests={
                key: _encode({"method": r.method, "params": r.params})
                for key, r in needed.requests.items()}, message="waiting for the client")
        except ProtocolError as exc:
            return _failed(exc)
        except Exception:
            log.exception("task %s: internal error", claim.task_id)
            return _failed(InternalError("internal error; see the server log"))
        if not call.modern:
            result = self.engine.results.wrap(call, result)
        return Outcome(kind="completed", result=_encode(result))

    # -- reading and waiting ---------------------------------------------------------

    async def owned(self, call: Call, task_id: str) -> TaskRecord:
        """The caller's task; InvalidParams if unknown, expired or another principal's."""
        record = await self.store.get(task_id)
        if record is None or record.principal != call.principal:
            raise InvalidParams(f"Failed to retrieve task: Task not found ({task_id!r})")
        return record

    async def agreed(self, call: Call, task_ids: list[str]) -> list[str]:
        """Which of ``task_ids`` a listen stream will follow: the caller's live tasks.
        Asking for task notifications needs the extension (-32021 otherwise)."""
        if not declares_extension(call):
            raise MissingClientCapability(
                f"task notifications need the {EXTENSION} extension in the request's client "
                "capabilities", _MISSING_EXTENSION)
        agreed = []
        for task_id in dict.fromkeys(task_ids[:_MAX_FOLLOWED]):
            record = await self.store.get(task_id)
            if record is not None and record.principal == call.principal:
                agreed.append(task_id)
        return agreed

    @asynccontextmanager
    async def follow(self, task_ids: list[str]
                     ) -> AsyncIterator[trio.MemoryReceiveChannel[str]]:
        """The ids of ``task_ids`` as they change (a task seen twice quickly may come once)."""
        send, receive = trio.open_memory_channel[str](_MAX_FOLLOWED)
        wanted = frozenset(task_ids)

        def on_event(event: TaskEvent) -> None:
            if event.task_id in wanted:
                # WouldBlock: it is told already; Broken/Closed: the follower has gone (an
                # event may come while its channel closes, before the listener is removed).
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError,
                                         trio.ClosedResourceError):
                    send.send_nowait(event.task_id)

        stop = self.runner.listen(on_event)
        try:
            async with receive:
                yield receive
        finally:
            stop()

    async def wait_until(self, call: Call, task_id: str,
                         done: Callable[[TaskRecord], bool]) -> TaskRecord:
        """The task once ``done(record)``: woken by its events, checked on each."""
        wake = trio.Event()
        wanted = task_id

        def on_event(event: TaskEvent) -> None:
            if event.task_id == wanted:
                wake.set()

        stop = self.runner.listen(on_event)
        try:
            while True:
                record = await self.owned(call, task_id)
                if done(record):
                    return record
                with trio.move_on_after(max(0.05, record.poll_interval_ms / 1000)):
                    await wake.wait()
                wake = trio.Event()
        finally:
            stop()


def _failed(exc: ProtocolError) -> Outcome:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        error["data"] = exc.data
    return Outcome(kind="failed", error=_encode(error), message=exc.message)


_BY_CODE: Final[dict[int, type[ProtocolError]]] = {
    cls.code: cls for cls in (InvalidParams, MethodNotFound, MissingClientCapability)}


def _stored_error(raw: bytes, related: dict[str, Any]) -> ProtocolError:
    """The JSON-RPC error a failed task stored, raised again (``tasks/result``)."""
    error = msgspec.json.decode(raw)
    cls = _BY_CODE.get(int(error.get("code", -32603)), InternalError)
    data = error.get("data")
    return cls(str(error.get("message", "the task failed")),
               {**data, **related} if isinstance(data, dict) else related)


# -- the methods ----------------------------------------------------------------------


def _service(engine: Engine, call: Call) -> TaskService:
    service = engine.tasks
    era = features(call.protocol_version).tasks
    if service is None or era == "none" or (
            era == "extension" and call.method in ("tasks/result", "tasks/list")):
        raise MethodNotFound(f"method not found: {call.method}")
    if era == "extension" and not declares_extension(call):
        raise MissingClientCapability(
            f"{call.method} needs the {EXTENSION} extension in the request's client "
            "capabilities", _MISSING_EXTENSION)
    return service


async def get_task(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    service = _service(engine, call)
    task_id = call.params_as(TaskIdParams).task_id
    polls = service.polls
    await polls.pace(call.principal, task_id)
    seen = polls.reading(call.principal, task_id)
    try:
        record = await service.owned(call, task_id)
    except InvalidParams:
        polls.read(seen, task_id, None)
        raise
    polls.read(seen, task_id, record)
    if call.modern:
        return service.detailed(record)
    return service.describe(record, modern=False)


async def update_task(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    service = _service(engine, call)
    p = call.params_as(UpdateTaskParams)
    await service.owned(call, p.task_id)
    # An answer that is not an object is no answer (the request stays outstanding).
    responses = {k: _encode(v) for k, v in p.input_responses.items() if isinstance(v, dict)}
    if await service.store.answer(p.task_id, responses) is None:
        raise InvalidParams(f"Failed to update task: Task not found ({p.task_id!r})")
    return {}


async def cancel_task(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    service = _service(engine, call)
    task_id = call.params_as(TaskIdParams).task_id
    record = await service.owned(call, task_id)
    if not call.modern and record.terminal:
        raise InvalidParams(f"task {task_id!r} is already {record.status}")
    after = await service.store.cancel(task_id)
    if after is None:
        raise InvalidParams(f"Failed to cancel task: Task not found ({task_id!r})")
    if call.modern:
        return {}
    if after.terminal and call.session_id is not None:  # a queued or parked task: ended now
        await service.push_status(call.session_id, task_id)
    if not after.terminal:  # 2025-11-25 answers with the task: show it as it settles
        with trio.move_on_after(1.0):
            after = await service.wait_until(call, task_id, lambda r: r.terminal)
    return service.describe(after, modern=False)


async def task_result(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    service = _service(engine, call)
    task_id = call.params_as(TaskIdParams).task_id
    record = await service.wait_until(call, task_id, lambda r: r.status in TERMINAL)
    related = {RELATED_TASK: {"taskId": task_id}}
    if record.status == "completed" and record.result is not None:
        result = msgspec.json.decode(record.result)
        if isinstance(result, dict):
            result["_meta"] = {**result.get("_meta", {}), **related}
        return result
    if record.status == "failed" and record.error is not None:
        raise _stored_error(record.error, related)
    raise InvalidParams(f"task {task_id!r} was cancelled", related)


async def list_tasks(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    service = _service(engine, call)
    call.params_as(ListParams)
    records = await service.store.list(call.principal)
    return {"tasks": [service.describe(r, modern=False) for r in records]}


HANDLERS: Final = {
    "tasks/get": get_task,
    "tasks/update": update_task,
    "tasks/cancel": cancel_task,
    "tasks/result": task_result,
    "tasks/list": list_tasks,
}
