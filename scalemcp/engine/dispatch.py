"""Method dispatch: decode a request's params with its own type, run it, encode the answer.

``Engine.run`` never raises for a bad request: every failure becomes a JSON-RPC error
response. Only cancellation propagates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import msgspec
import trio
from msgspec import UNSET, Raw

from ..app.app import App
from ..app.context import Context, RequestScope
from ..app.handlers import invoke
from ..errors import (
    BackendUnavailable,
    InternalError,
    InvalidParams,
    MethodNotFound,
    MissingClientCapability,
    ProtocolError,
)
from ..observability.calls import observe_call
from ..observability.metrics import observe_request
from ..protocol import jsonrpc
from ..protocol.headers import check_param_headers
from ..protocol.types import (
    CallToolParams,
    CompleteParams,
    GetPromptParams,
    ListParams,
    ReadResourceParams,
    RequestMeta,
)
from ..protocol.versions import features
from .call import Call, ClientRequestFailed, ContinueAsTask, InputRequired
from .request_state import RequestStateCodec
from .results import Results
from .skills import HANDLERS as SKILL_HANDLERS
from .tasks import HANDLERS as TASK_HANDLERS
from .tasks import TaskService

__all__ = ["Engine"]

log = logging.getLogger("scalemcp.engine")
P = TypeVar("P", bound=msgspec.Struct)
ScopeMaker = Callable[[Call, "RequestMeta | msgspec.UnsetType"], RequestScope]
Handler = Callable[["Engine", Call, ScopeMaker], Awaitable[Any]]

_EMPTY: Final = b"{}"


class Engine:
    """Runs MCP requests against an :class:`App`."""

    def __init__(
        self, app: App, codec: RequestStateCodec | None = None, *, request_timeout_s: float = 0.0
    ) -> None:
        self.app = app
        self.results = Results(app, codec)
        #: A handler running longer is cancelled and its request answered with an error
        #: (``request_timeout_s``; 0: no limit).
        self.request_timeout_s = request_timeout_s
        #: Durable tasks (engine/tasks.py), once the server wires a state backend in.
        self.tasks: TaskService | None = None

    async def run(self, call: Call, make_scope: ScopeMaker) -> bytes:
        """Answer one request; returns the encoded JSON-RPC response."""
        return (await self.answer(call, make_scope))[0]

    async def answer(
        self, call: Call, make_scope: ScopeMaker
    ) -> tuple[bytes, ProtocolError | None]:
        """The encoded response, and the error it carries if it is an error."""
        started = time.perf_counter()
        with observe_call(call) as observed:  # log fields; the span when tracing
            body, error = await self._answer(call, make_scope)
            observed.done(error)
        # Unknown methods are bucketed so a client cannot blow up the label set.
        method = call.method if call.method in _HANDLERS else "other"
        outcome = "ok" if error is None else f"error{error.code}"
        observe_request("modern" if call.modern else "session", method, outcome,
                                time.perf_counter() - started)
        return body, error

    async def _answer(
        self, call: Call, make_scope: ScopeMaker
    ) -> tuple[bytes, ProtocolError | None]:
        handler = _HANDLERS.get(call.method)
        try:
            if handler is None or (call.modern and call.method in _SESSION_ONLY) or (
                not call.modern and call.method == "server/discover"
            ):
                raise MethodNotFound(f"method not found: {call.method}")
            result = await self._run_within_timeout(handler, call, make_scope)
        except InputRequired as request:
            result = self.results.input_required(call, request)
        except ProtocolError as exc:
            error = self.results.error(call, exc)
            return jsonrpc.encode_error(call.request_id, error), error
        except BackendUnavailable:
            raise  # not a bug here: the caller answers it (503, or the request's error)
        except Exception:
            log.exception("internal error in %s", call.method)
            error = InternalError("internal error; see the server log")
            return jsonrpc.encode_error(call.request_id, error), error
        return jsonrpc.encode_result(call.request_id, self.results.wrap(call, result)), None

    async def _run_within_timeout(
        self, handler: Handler, call: Call, make_scope: ScopeMaker
    ) -> Any:
        if self.request_timeout_s <= 0:
            return await handler(self, call, make_scope)
        with trio.move_on_after(self.request_timeout_s):
            return await handler(self, call, make_scope)
        log.info("%s ran longer than request_timeout_s (%g s): cancelled", call.method,
                 self.request_timeout_s)
        raise InternalError(f"{call.method} ran longer than the server's request_timeout_s "
                            f"({self.request_timeout_s:g} s) and was cancelled")

    def required_scopes(self, method: str, name: str | None) -> tuple[str, ...] | None:
        """Scopes the target of a tools/call, prompts/get or resources/read needs.

        None if there is no such target; () for other methods.
        """
        if method == "tools/call":
            tool = self.app.tools.get(name or "")
            return None if tool is None else tool.scopes
        if method == "prompts/get":
            prompt = self.app.prompts.get(name or "")
            return None if prompt is None else prompt.scopes
        if method == "resources/read":
            try:
                found = self.app.find_resource(name or "")
            except InvalidParams:  # a URI refused for its shape (skill://../x): like bad
                return None        # params, answered as the request's error when it runs
            return None if found is None else found[0].scopes
        return ()

    async def discover(self, call: Call, make_scope: ScopeMaker) -> Any:
        return self.results.discover(call.protocol_version)

    # -- methods ---------------------------------------------------------------------

    async def ping(self, call: Call, make_scope: ScopeMaker) -> Any:
        return {}

    async def list_tools(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(ListParams)
        return self.results.tools_page(call, p.cursor)

    async def call_tool(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(CallToolParams)
        spec = self.app.tools.get(p.name)
        if spec is None or not call.allows(spec.scopes):  # hidden = unknown: no leak
            raise InvalidParams(f"unknown tool: {p.name!r}")
        missing = [c for c in spec.requires if c not in call.client_capabilities]
        if missing:
            raise MissingClientCapability(
                f"tool {p.name!r} needs the client capabilities {missing}",
                {"requiredCapabilities": {c: {} for c in missing}},
            )
        raw = p.arguments if isinstance(p.arguments, Raw) else _EMPTY
        if raw == b"null":
            raw = _EMPTY
        try:
            arguments = spec.decode_arguments(raw)
        except InvalidParams as exc:
            if features(call.protocol_version).argument_errors_as_results:
                return self.results.tool_error(exc.message)
            raise
        if call.headers is not None and spec.header_params:  # modern: Mcp-Param-* headers
            check_param_headers(call.headers, spec.header_params, arguments)
        if (self.tasks is not None and (spec.task is not None or p.task is not UNSET)
                and self.tasks.decide(call, p, spec)):
            return await self.tasks.create(call, p, spec)
        ctx = Context(make_scope(call, p.meta))
        try:
            return await spec.call(ctx, arguments)
        except ContinueAsTask:
            if self.tasks is None:
                raise InternalError("ctx.continue_as_task() without a task store") from None
            return await self.tasks.create(call, p, spec)
        except (ProtocolError, ClientRequestFailed) as exc:
            # In a task, a JSON-RPC error the tool raises fails the task (status "failed").
            if isinstance(exc, ProtocolError) and (self.results.propagates(exc)
                                                   or call.task_id is not None):
                raise
            return self.results.tool_error(str(exc))
        except BackendUnavailable:
            raise  # the request fails as a whole (a 503 or its error), not as a tool result
        except Exception as exc:
            log.info("tool %s raised %s", p.name, type(exc).__name__, exc_info=True)
            return self.results.tool_error(f"{type(exc).__name__}: {exc}")

    async def list_resources(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(ListParams)
        return self.results.resources_page(call, p.cursor)

    async def list_templates(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(ListParams)
        return self.results.templates_page(call, p.cursor)

    async def read_resource(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(ReadResourceParams)
        found = self.app.find_resource(p.uri)
        if found is None or not call.allows(found[0].scopes):
            raise self.results.not_found(call, p.uri)
        spec, params = found
        contents = await spec.read(Context(make_scope(call, p.meta)), p.uri, params)
        result: dict[str, Any] = {"contents": contents}
        if call.modern:
            hint = self.app.cache_hints.get(("resource", spec.uri), self.app.list_cache)
            result["ttlMs"] = hint.ttl_ms
            result["cacheScope"] = hint.scope
        return result

    async def list_prompts(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(ListParams)
        return self.results.prompts_page(call, p.cursor)

    async def get_prompt(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(GetPromptParams)
        spec = self.app.prompts.get(p.name)
        if spec is None or not call.allows(spec.scopes):
            raise InvalidParams(f"unknown prompt: {p.name!r}")
        arguments = p.arguments if isinstance(p.arguments, dict) else {}
        return await spec.get(Context(make_scope(call, p.meta)), arguments)

    async def complete(self, call: Call, make_scope: ScopeMaker) -> Any:
        p = call.params_as(CompleteParams)
        if p.ref is None or p.argument is None:
            raise InvalidParams("completion/complete needs 'ref' and 'argument'")
        if p.ref.type == "ref/prompt":
            name = p.ref.name if isinstance(p.ref.name, str) else None
            needed = self.required_scopes("prompts/get", name)
            if needed is None or not call.allows(needed):
                raise InvalidParams(f"unknown prompt: {p.ref.name!r}")
        values: list[str] = []
        if self.app.completer is not None:
            context = {} if p.context is UNSET else p.context.arguments
            got = await invoke(
                self.app.completer, {"ref": p.ref, "argument": p.argument, "context": context}
            )
            values = [str(v) for v in got or []]
        return {"completion": {"values": values[:100], "total": len(values),
                               "hasMore": len(values) > 100}}


_HANDLERS: Final[dict[str, Handler]] = {
    "ping": Engine.ping,
    "tools/list": Engine.list_tools,
    "tools/call": Engine.call_tool,
    "resources/list": Engine.list_resources,
    "resources/templates/list": Engine.list_templates,
    "resources/read": Engine.read_resource,
    "prompts/list": Engine.list_prompts,
    "prompts/get": Engine.get_prompt,
    "completion/complete": Engine.complete,
    "server/discover": Engine.discover,
    **SKILL_HANDLERS,  # the skills extension (engine/skills.py)
    **TASK_HANDLERS,  # durable tasks (engine/tasks.py)
}
_SESSION_ONLY: Final = frozenset({"ping"})
