"""Streamable HTTP, modern era (spec section 5): stateless POSTs, JSON or a plain SSE stream.

The handler runs in the HTTP request's task: when the client closes the response
stream, the handler is cancelled and nothing more is sent for it (spec 5.2).
"""

from __future__ import annotations

import msgspec
import trio

from ..config import Config
from ..engine.call import Call
from ..engine.inflight import Slots
from ..engine.modern import ModernService
from ..engine.tasks import TaskService
from ..errors import InvalidRequest, answer_status
from ..protocol import jsonrpc
from ..protocol.changes import Change, wanted_by_listener
from ..protocol.classify import Item
from ..protocol.sse import KEEPALIVE, format_event
from ..protocol.types import ListenNotifications, ListenParams
from ..security.ratelimit import subject
from ..state.base import StateBackend
from .http import Request
from .send_guard import guard_sends
from .sse_response import end_body, send_chunk, start_sse
from .stream_scope import StreamScope

__all__ = ["ModernTransport"]

SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"


class _LiveResponse:
    """JSON unless the handler sends something first; then an SSE stream without ids."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.streaming = False

    async def emit(self, data: bytes) -> None:
        if not self.streaming:
            self.streaming = True
            await start_sse(self.req)
        await send_chunk(self.req, format_event(data, event="message"))

    async def finish(self, body: bytes, status: int) -> None:
        if self.streaming:
            await send_chunk(self.req, format_event(body, event="message"))
            await end_body(self.req)
        else:
            await self.req.respond_json(status, body)


class ModernTransport:
    def __init__(self, service: ModernService, state: StateBackend, config: Config) -> None:
        self.service = service
        self.state = state
        self.config = config
        #: Requests of one principal running on this worker (listen streams included).
        self.inflight = Slots(config.limits.max_inflight_per_principal, "principal")

    async def post(
        self,
        req: Request,
        item: Item,
        principal: str | None,
        granted_scopes: frozenset[str] | None = None,
    ) -> None:
        if item.message.is_response:
            raise InvalidRequest("in 2026-07-28 clients do not send JSON-RPC responses")
        if item.message.is_notification:
            await req.respond(202)
            return
        call = await self.service.prepare(item, req.headers, principal, granted_scopes)
        with self.inflight.hold(subject(principal, req.scope)):  # RateLimited: HTTP 429
            await self._run(req, call)

    async def _run(self, req: Request, call: Call) -> None:
        if call.method == "subscriptions/listen":
            await self._listen(req, call)
            return
        live = _LiveResponse(req)
        # A disconnect, or a client too slow to read (the guard), cancels the handler
        # (spec 5.2); nothing more is sent then.
        async with StreamScope(req, drain=False):
            body, error = await self.service.answer(call, live.emit)
            await live.finish(body, answer_status(error, "modern"))

    async def _listen(self, req: Request, call: Call) -> None:
        wanted = call.params_as(ListenParams).notifications
        request_id = call.request_id
        tasks = self.service.engine.tasks
        task_ids: list[str] = []
        if wanted.task_ids is not msgspec.UNSET and wanted.task_ids and tasks is not None:
            task_ids = await tasks.agreed(call, wanted.task_ids)  # -32021 if undeclared
            wanted = msgspec.structs.replace(wanted, task_ids=task_ids)
        ack = {
            "notifications": msgspec.to_builtins(wanted),
            "_meta": {SUBSCRIPTION_ID: request_id},
        }
        await start_sse(req)
        await send_chunk(req, format_event(
            jsonrpc.encode_notification("notifications/subscriptions/acknowledged", ack),
            event="message"))
        # One task an idle listener on scalemcp's loop (a disconnect and the drain reach
        # it through callbacks; a slow client trips the guard: all cancelled), two on
        # another server (a disconnect watcher).
        async with StreamScope(req) as scope:
            if task_ids and tasks is not None:
                await self._relay_with_tasks(req, wanted, request_id, tasks, task_ids)
            else:
                await self._relay_changes(req, wanted, request_id)
        if not scope.guard.tripped:
            async with guard_sends(req, streaming=True):
                await end_body(req)


    async def _relay_changes(self, req: Request, wanted: ListenNotifications,
                             request_id: int | str) -> None:
        """Send the changes the listener asked for, and keepalives, until cancelled."""
        async with self.state.open_changes() as changes:
            while True:
                change = None
                with trio.move_on_after(self.config.sse.keepalive_s):
                    change = await changes.receive()
                if change is None:
                    await send_chunk(req, KEEPALIVE)
                    continue
                tagged = _tag(change, wanted, request_id)
                if tagged is not None:
                    await send_chunk(req, format_event(tagged, event="message"))

    async def _feed_changes(self, send: trio.MemorySendChannel[bytes],
                            wanted: ListenNotifications, request_id: int | str) -> None:
        async with send, self.state.open_changes() as changes:
            async for change in changes:
                tagged = _tag(change, wanted, request_id)
                if tagged is not None:
                    await send.send(tagged)

    async def _relay_with_tasks(self, req: Request, wanted: ListenNotifications,
                                request_id: int | str, tasks: TaskService,
                                task_ids: list[str]) -> None:
        """As :meth:`_relay_changes`, and ``notifications/tasks`` for the followed tasks:
        two feeders into one channel, this task sending."""
        send, outgoing = trio.open_memory_channel[bytes](64)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._feed_changes, send.clone(), wanted, request_id)
            nursery.start_soon(_feed_tasks, send.clone(), tasks, task_ids, request_id)
            send.close()
            while True:
                data = None
                with trio.move_on_after(self.config.sse.keepalive_s):
                    data = await outgoing.receive()
                await send_chunk(req, KEEPALIVE if data is None
                                 else format_event(data, event="message"))


async def _feed_tasks(send: trio.MemorySendChannel[bytes], tasks: TaskService,
                      task_ids: list[str], request_id: int | str) -> None:
    """``notifications/tasks`` for the followed tasks: the DetailedTask as tasks/get shows it."""
    async with send, tasks.follow(task_ids) as changed:
        async for task_id in changed:
            record = await tasks.store.get(task_id)
            if record is None:
                continue
            params = tasks.detailed(record)
            params["_meta"] = {SUBSCRIPTION_ID: request_id}
            await send.send(jsonrpc.encode_notification("notifications/tasks", params))


def _tag(change: Change, wanted: ListenNotifications, subscription_id: int | str
         ) -> bytes | None:
    """The change re-addressed to one listen stream, or None if it did not ask for it."""
    if not wanted_by_listener(change, wanted):
        return None
    params = dict(change.params)  # the change is shared by every stream: copy, then tag
    params["_meta"] = {**params.get("_meta", {}), SUBSCRIPTION_ID: subscription_id}
    return jsonrpc.encode_notification(change.method, params)
