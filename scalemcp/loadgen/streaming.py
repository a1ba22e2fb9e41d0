"""Scenarios that hold streams open: resume, elicit and listen.

- ``resume`` (session era): call a slow streaming tool, drop the SSE response
  after ``drop_after`` events, reconnect with GET + ``Last-Event-ID`` and read
  to the response; progress values seen twice are duplicates, values never
  seen are lost. How many to expect: the tool's ``steps`` argument (the bench
  targets' ``progress`` tool), else the ``total`` the notifications announce
  when they count 1, 2, ... total; with neither only duplicates are counted.
  A call that fails is reported as its error, never as lost events.
- ``elicit``: a tool asks the client for input, answered from the requested
  schema (`scalemcp.loadgen.answers`). Session era: the ``elicitation/create``
  request arrives on the POST's SSE stream and the client POSTs the answer.
  Modern era: the result is ``input_required`` and the client retries with
  ``inputResponses`` and the echoed ``requestState``.
- ``listen``: all clients but one per process hold a notification stream
  (modern: ``subscriptions/listen``; session: the GET stream); the last one
  calls a tool (``touch``) that changes the tool list. An operation is one
  round, timed until every listener has the notification (or a 5 s limit);
  each listener's own delay goes to the ``listen_fanout`` histogram. The
  session era needs a server that fans changes out to every session's GET
  stream (the SDK target does not: rounds then end as ``listen_missed``).
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import msgspec
import trio
from msgspec import UNSET

from . import messages
from .answers import elicitation_result
from .client import McpClient, check_response, read_messages
from .errors import McpError
from .http import Response
from .messages import Message, ProgressParams
from .scenarios import ClientCtx, Scenario, check_tool_result

__all__ = ["ElicitScenario", "ListenScenario", "ResumeScenario"]

_MAX_RECONNECTS = 5
_MAX_ROUNDS = 5
_ROUND_LIMIT_S = 5.0


def _session_client(ctx: ClientCtx) -> McpClient:
    assert isinstance(ctx.mcp, McpClient)
    return ctx.mcp


async def _get_stream(mcp: McpClient, last_event_id: str | None) -> Response:
    headers = [h for h in mcp.headers() if h[0] not in (b"accept", b"content-type")]
    headers.append((b"accept", b"text/event-stream"))
    if last_event_id is not None:
        headers.append((b"last-event-id", last_event_id.encode()))
    response = await mcp.http.send("GET", mcp.path, headers, b"")
    if response.status != 200:
        await response.aclose()
        raise McpError(f"http_{response.status}", f"GET stream answered {response.status}")
    return response


class ResumeScenario(Scenario):
    unsupported_eras = ("modern", "legacy-sse")

    async def op(self, ctx: ClientCtx) -> str:
        mcp = _session_client(ctx)
        await self.ensure_open(ctx)
        token = ctx.token()
        req_id = mcp.next_id()
        params = {"name": self.tool, "arguments": self.args, "_meta": {"progressToken": token}}
        seen: dict[float, int] = {}
        totals: set[float] = set()
        state: dict[str, Any] = {"last_id": None, "final": None}

        async def consume(response: Response, limit: int | None) -> None:
            events = 0
            async with aclosing(read_messages(response)) as stream:
                async for message, event_id in stream:
                    state["last_id"] = event_id or state["last_id"]
                    if message.method == "notifications/progress":
                        progress = messages.decode_part(ProgressParams, message.params, "progress")
                        if progress.progress_token == token:
                            seen[progress.progress] = seen.get(progress.progress, 0) + 1
                            if progress.total is not None:
                                totals.add(progress.total)
                    elif message.is_response and message.id == req_id:
                        state["final"] = message
                        return
                    events += 1
                    if limit is not None and events >= limit:
                        return

        headers, body = mcp.build("tools/call", params, req_id)
        response = await mcp.post(headers, body)
        try:
            await consume(response, self.config.drop_after)
        finally:
            await response.aclose()
        reconnects = 0
        while state["final"] is None:
            if state["last_id"] is None or reconnects >= _MAX_RECONNECTS:
                raise McpError("resume_failed", f"no response after {reconnects} reconnects")
            reconnects += 1
            response = await _get_stream(mcp, state["last_id"])
            try:
                await consume(response, None)
            finally:
                await response.aclose()
        ctx.rec.count("resume_reconnects", reconnects)
        check_tool_result(check_response(state["final"]))
        self._account(ctx, seen, self._expected(seen, totals))
        return "tools/call+resume"

    def _expected(self, seen: dict[float, int], totals: set[float]) -> int | None:
        """How many progress notifications the call should have sent; see the module doc."""
        steps = self.args.get("steps")
        if isinstance(steps, int):
            return steps
        if len(totals) != 1:
            return None
        total = totals.pop()
        counting = all(v.is_integer() and 1 <= v <= total for v in seen)
        return int(total) if total.is_integer() and counting else None

    def _account(self, ctx: ClientCtx, seen: dict[float, int], expected: int | None) -> None:
        duplicated = sum(n - 1 for n in seen.values())
        lost = max(0, expected - len(seen)) if expected is not None else 0
        ctx.rec.count("progress_notifications", sum(seen.values()))
        ctx.rec.count("events_duplicated", duplicated)
        ctx.rec.count("events_lost", lost)
        if lost:
            detail = f"{lost} of {expected} progress notifications never arrived"
            raise McpError("lost_events", detail)
        if duplicated:
            raise McpError("duplicate_events", f"{duplicated} progress notifications repeated")


def _params(message: Message) -> dict[str, Any]:
    if message.params is UNSET:
        return {}
    try:
        params = msgspec.json.decode(message.params)
    except msgspec.DecodeError as exc:
        raise McpError("decode", f"{message.method} params: {exc}") from exc
    return params if isinstance(params, dict) else {}


class ElicitScenario(Scenario):
    unsupported_eras = ("legacy-sse",)

    async def op(self, ctx: ClientCtx) -> str:
        await self.ensure_open(ctx)

        async def on_request(message: Message) -> dict[str, Any]:
            if message.method != "elicitation/create":
                raise McpError("unexpected_request", f"server sent {message.method}")
            ctx.rec.count("elicitations")
            return elicitation_result(_params(message))

        params: dict[str, Any] = {"name": self.tool, "arguments": self.args}
        for _ in range(_MAX_ROUNDS):
            result = await ctx.mcp.request("tools/call", params, on_request=on_request)
            head = check_tool_result(result)
            if head.result_type != "input_required":
                return "tools/call+elicit"
            ctx.rec.count("input_required_rounds")
            responses: dict[str, Any] = {}
            for key, request in (head.input_requests or {}).items():
                responses[key] = await on_request(request.as_message())
            params = {**params, "inputResponses": responses}
            if head.request_state is not None:
                params["requestState"] = head.request_state
        raise McpError("elicit_rounds", f"still input_required after {_MAX_ROUNDS} rounds")


class ListenScenario(Scenario):
    unsupported_eras = ("legacy-sse",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.listening = 0
        self.received = 0
        self.sent_at = 0.0
        self.round_done = trio.Event()

    def background_clients(self, clients: int) -> int:
        return max(0, clients - 1)

    async def setup(self, ctx: ClientCtx) -> None:
        await ctx.mcp.open()
        if ctx.state != "listener":
            return
        mcp = _session_client(ctx)
        if mcp.era == "modern":
            params = {"notifications": {"toolsListChanged": True}}
            headers, body = mcp.build("subscriptions/listen", params, mcp.next_id())
            response = await mcp.post(headers, body)
        else:
            response = await _get_stream(mcp, None)
        ctx.state = response
        self.listening += 1

    async def background(self, ctx: ClientCtx) -> None:
        response: Response = ctx.state
        try:
            async with aclosing(read_messages(response)) as messages:
                async for message, _ in messages:
                    if message.method == "notifications/tools/list_changed":
                        ctx.rec.observe("listen_fanout", trio.current_time() - self.sent_at)
                        ctx.rec.count("listen_notifications")
                        self.received += 1
                        if self.received >= self.listening:
                            self.round_done.set()
        finally:
            await response.aclose()

    async def op(self, ctx: ClientCtx) -> str:
        self.received = 0
        self.round_done = trio.Event()
        self.sent_at = trio.current_time()
        result = await ctx.mcp.request("tools/call", {"name": self.tool, "arguments": self.args})
        check_tool_result(result)
        with trio.move_on_after(_ROUND_LIMIT_S):
            await self.round_done.wait()
        missed = self.listening - self.received
        if missed > 0:
            ctx.rec.count("listen_missed", missed)
            raise McpError("listen_missed", f"{missed} of {self.listening} listeners not notified")
        return "listen_round"
