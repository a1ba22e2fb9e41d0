"""Scenarios that hold streams open: resume, elicit and listen.

- ``resume`` (session era): call a slow streaming tool, drop the SSE response
  after ``drop_after`` events, reconnect with GET + ``Last-Event-ID`` and read
  to the response; progress values seen twice are duplicates, values never
  seen are lost.
- ``elicit``: a tool asks the client for input. Session era: the
  ``elicitation/create`` request arrives on the POST's SSE stream and the
  client POSTs the answer. Modern era: the result is ``input_required`` and the
  client retries with ``inputResponses`` and the echoed ``requestState``.
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

import trio

from . import jsonrpc
from .client import McpClient, read_messages
from .errors import McpError
from .http import Response
from .jsonrpc import Message
from .scenarios import ClientCtx, Scenario, check_tool_result

__all__ = ["ElicitScenario", "ListenScenario", "ResumeScenario"]

_MAX_RECONNECTS = 5
_MAX_ROUNDS = 5
_ROUND_LIMIT_S = 5.0
ELICIT_ANSWER: dict[str, Any] = {"action": "accept", "content": {"answer": "bench"}}


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
        state: dict[str, Any] = {"last_id": None, "final": None}

        async def consume(response: Response, limit: int | None) -> None:
            events = 0
            async with aclosing(read_messages(response)) as messages:
                async for message, event_id in messages:
                    state["last_id"] = event_id or state["last_id"]
                    if message.method == "notifications/progress" and message.params:
                        progress = jsonrpc.decode_progress(message.params)
                        if progress.progress_token == token:
                            seen[progress.progress] = seen.get(progress.progress, 0) + 1
                    elif message.method is None and message.id == req_id:
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
        self._account(ctx, seen)
        final: Message = state["final"]
        if final.error is not None:
            raise McpError(f"jsonrpc_{final.error.code}", final.error.message)
        check_tool_result(final)
        return "tools/call+resume"

    def _account(self, ctx: ClientCtx, seen: dict[float, int]) -> None:
        duplicated = sum(n - 1 for n in seen.values())
        lost = max(0, int(self.args.get("steps", self.config.steps)) - len(seen))
        ctx.rec.count("progress_notifications", sum(seen.values()))
        ctx.rec.count("events_duplicated", duplicated)
        ctx.rec.count("events_lost", lost)
        if lost:
            raise McpError("lost_events", f"{lost} progress notifications never arrived")
        if duplicated:
            raise McpError("duplicate_events", f"{duplicated} progress notifications repeated")


class ElicitScenario(Scenario):
    unsupported_eras = ("legacy-sse",)

    async def op(self, ctx: ClientCtx) -> str:
        await self.ensure_open(ctx)

        async def on_request(message: Message) -> dict[str, Any]:
            if message.method != "elicitation/create":
                raise McpError("unexpected_request", f"server sent {message.method}")
            ctx.rec.count("elicitations")
            return ELICIT_ANSWER

        params: dict[str, Any] = {"name": self.tool, "arguments": self.args}
        for _ in range(_MAX_ROUNDS):
            result = await ctx.mcp.request("tools/call", params, on_request=on_request)
            head = check_tool_result(result)
            if head.result_type != "input_required":
                return "tools/call+elicit"
            ctx.rec.count("input_required_rounds")
            responses: dict[str, Any] = {}
            for key, request in (head.input_requests or {}).items():
                responses[key] = await on_request(request)
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
