"""``Context``: what a tool, resource or prompt handler may do while it runs.

The same calls work in every era. The engine supplies a :class:`RequestScope`; in the
session era ``elicit``/``sample``/``list_roots`` send a server->client request and wait,
in the modern era they end the call with an ``input_required`` result and the handler is
run again when the client retries with the answers (multi round-trip requests).
"""

from __future__ import annotations

from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import msgspec
from msgspec import UNSET

from ..errors import InvalidParams, ToolError
from ..protocol.elicitation import AnswerMismatch, check_answer, schema_for
from ..protocol.types import LOG_LEVELS
from ..protocol.versions import features

__all__ = [
    "Context",
    "ElicitResult",
    "InputRequest",
    "RequestScope",
    "elicitation",
    "roots",
    "sampling",
]


T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)


class RequestScope(Protocol):
    """The engine's side of a running request (one per request)."""

    @property
    def request_id(self) -> int | str: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def protocol_version(self) -> str: ...
    @property
    def client_capabilities(self) -> dict[str, Any]: ...
    @property
    def principal(self) -> str | None: ...
    @property
    def progress_token(self) -> int | str | None: ...
    @property
    def log_level(self) -> str | None: ...

    async def notify(self, method: str, params: Any) -> None:
        """Send a notification related to this request."""

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        """Ask the client (elicitation, sampling, roots); results by key."""

    async def drop_connection(self) -> None:
        """End the response's HTTP connection but not its stream (SSE polling)."""

    async def publish_change(self, method: str, params: Any) -> None:
        """Fan out a change notification (list_changed, resources/updated) to listeners."""

    @property
    def task_id(self) -> str | None:
        """The durable task this request runs as (None: inline)."""

    async def continue_as_task(self) -> None:
        """Make the call a task from here on, if it may become one (see Context)."""


class InputRequest(msgspec.Struct, frozen=True):
    """One question for the client: ``elicitation/create``, ``sampling/createMessage``, ..."""

    method: str
    params: dict[str, Any]


def elicitation(message: str, schema: dict[str, Any]) -> InputRequest:
    """An ``elicitation/create`` form request (for :meth:`Context.ask`)."""
    return InputRequest("elicitation/create",
                        {"mode": "form", "message": message, "requestedSchema": schema})


def sampling(
    messages: list[dict[str, Any]] | str, *, max_tokens: int = 512, **extra: Any
) -> InputRequest:
    """A ``sampling/createMessage`` request (for :meth:`Context.ask`)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": {"type": "text", "text": messages}}]
    return InputRequest("sampling/createMessage",
                        {"messages": messages, "maxTokens": max_tokens, **extra})


def roots() -> InputRequest:
    """A ``roots/list`` request (for :meth:`Context.ask`)."""
    return InputRequest("roots/list", {})


class ElicitResult(msgspec.Struct, Generic[T], omit_defaults=True):
    """The user's answer: ``content`` is set when ``action`` is ``"accept"``.

    ``content`` has been checked against the requested schema; asked with a Struct type,
    it is an instance of that type, else a dict of the schema's properties.
    """

    action: Literal["accept", "decline", "cancel"]
    content: T | None = None


class _RawElicitResult(msgspec.Struct):
    action: Literal["accept", "decline", "cancel"]
    content: Any = None


class Context:
    """Passed to handlers that declare a parameter annotated ``Context``."""

    def __init__(self, scope: RequestScope) -> None:
        self._scope = scope
        self._progress = float("-inf")
        self._asks = 0

    @property
    def request_id(self) -> int | str:
        """The JSON-RPC id of the request being handled."""
        return self._scope.request_id

    @property
    def session_id(self) -> str | None:
        """The session of the request (None in the stateless era)."""
        return self._scope.session_id

    @property
    def protocol_version(self) -> str:
        """The protocol version the client speaks."""
        return self._scope.protocol_version

    @property
    def client_capabilities(self) -> dict[str, Any]:
        """The capabilities the client declared."""
        return self._scope.client_capabilities

    @property
    def principal(self) -> str | None:
        """Who is calling (the authenticated principal), or None without auth."""
        return self._scope.principal

    @property
    def task_id(self) -> str | None:
        """The durable task this call runs as, or None when it runs inline.

        Tasks run at least once (a task whose worker dies runs again, per the tool's
        retry policy): use the task id as the idempotency key of what the tool changes.
        """
        return self._scope.task_id

    async def continue_as_task(self) -> None:
        """Go on as a durable task, if the tool allows tasks and the client declared them.

        Called while the tool runs inline (after gathering input, say), it ends this
        request with a task handle; the task runs the tool again from the start, with
        every answer the client gave so far. In a task, or where no task can be made,
        it returns at once and the tool goes on inline.
        """
        await self._scope.continue_as_task()

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress`` if the client asked for it; progress must increase."""
        token = self._scope.progress_token
        if token is None or progress <= self._progress:
            return
        self._progress = progress
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None and features(self.protocol_version).progress_message:
            params["message"] = message
        await self._scope.notify("notifications/progress", params)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send ``notifications/message`` if ``level`` is at or above the client's level."""
        threshold = self._scope.log_level
        if threshold is None or level not in LOG_LEVELS:
            return
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self._scope.notify("notifications/message", params)

    async def debug(self, data: Any) -> None:
        """Log ``data`` at level debug (see :meth:`log`)."""
        await self.log("debug", data)

    async def info(self, data: Any) -> None:
        """Log ``data`` at level info (see :meth:`log`)."""
        await self.log("info", data)

    async def warning(self, data: Any) -> None:
        """Log ``data`` at level warning (see :meth:`log`)."""
        await self.log("warning", data)

    async def error(self, data: Any) -> None:
        """Log ``data`` at level error (see :meth:`log`)."""
        await self.log("error", data)

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        """Ask the client several things at once; returns its answers by key.

        Session era: one server->client request each. Modern era: one ``input_required``
        result carrying every unanswered request; the handler runs again with the answers.
        """
        return await self._scope.ask(requests)

    @overload
    async def elicit(self, message: str, schema: type[S], *,
                     key: str | None = None) -> ElicitResult[S]: ...
    @overload
    async def elicit(self, message: str, schema: dict[str, Any], *,
                     key: str | None = None) -> ElicitResult[dict[str, Any]]: ...

    async def elicit(
        self, message: str, schema: dict[str, Any] | type[msgspec.Struct], *,
        key: str | None = None
    ) -> ElicitResult[Any]:
        """Ask the user for input matching ``schema``: a flat object schema (primitive
        properties), or a msgspec Struct type whose fields make it.

        An accepted answer is checked against the schema: one that does not fit raises
        :class:`~scalemcp.ToolError` (the call ends with that message, ``isError``).
        """
        as_type = schema if isinstance(schema, type) else None
        wire_schema = schema_for(schema) if isinstance(schema, type) else schema
        request = elicitation(message, wire_schema)
        if not features(self.protocol_version).elicitation_mode:
            request = InputRequest(request.method,
                                   {k: v for k, v in request.params.items() if k != "mode"})
        key = key or self._next_key("elicit")
        answer = (await self.ask({key: request}))[key]
        try:
            raw = msgspec.convert(answer, _RawElicitResult)
        except msgspec.ValidationError as exc:
            raise InvalidParams(f"invalid elicitation response: {exc}") from None
        if raw.action != "accept":
            return ElicitResult(raw.action)
        try:
            content = check_answer(raw.content, wire_schema)
            return ElicitResult("accept", content if as_type is None
                                else msgspec.convert(content, as_type))
        except (AnswerMismatch, msgspec.ValidationError) as exc:
            raise ToolError(f"the answer to {message!r} does not fit the requested schema: "
                            f"{exc}") from None

    async def sample(
        self,
        messages: list[dict[str, Any]] | str,
        *,
        max_tokens: int = 512,
        system_prompt: str | None = None,
        key: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Ask the client's model for a completion (``sampling/createMessage``)."""
        if system_prompt is not None:
            extra["systemPrompt"] = system_prompt
        key = key or self._next_key("sample")
        answer = (await self.ask({key: sampling(messages, max_tokens=max_tokens, **extra)}))[key]
        return dict(answer)

    async def list_roots(self, *, key: str | None = None) -> list[dict[str, Any]]:
        """Ask the client for its roots (``roots/list``)."""
        key = key or self._next_key("roots")
        answer = (await self.ask({key: roots()}))[key]
        return list(answer.get("roots", []))

    async def close_sse_stream(self) -> None:
        """Close the HTTP connection of this request's SSE stream; the client resumes it.

        Session era only (2025-11-25 SSE polling); elsewhere it does nothing.
        """
        await self._scope.drop_connection()

    async def notify_tools_changed(self) -> None:
        """Tell every client listening that the tool list changed."""
        await self._scope.publish_change("notifications/tools/list_changed", UNSET)

    async def notify_prompts_changed(self) -> None:
        """Tell every client listening that the prompt list changed."""
        await self._scope.publish_change("notifications/prompts/list_changed", UNSET)

    async def notify_resources_changed(self) -> None:
        """Tell every client listening that the resource list changed."""
        await self._scope.publish_change("notifications/resources/list_changed", UNSET)

    async def notify_resource_updated(self, uri: str) -> None:
        """Tell the clients subscribed to ``uri`` that it changed."""
        await self._scope.publish_change("notifications/resources/updated", {"uri": uri})

    def _next_key(self, kind: str) -> str:
        # Deterministic per call order, so a modern-era retry finds its earlier answers.
        self._asks += 1
        return f"{kind}-{self._asks}"
