"""One incoming request, as the engine sees it, and its ``RequestScope``."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec
import trio
from msgspec import UNSET, Raw, UnsetType

from ..app.context import InputRequest
from ..errors import InternalError, InvalidParams, MissingClientCapability, ProtocolError
from ..protocol import jsonrpc
from ..protocol.classify import Item
from ..protocol.types import RequestMeta
from ..state.base import ANSWER_MAILBOX, StateBackend

__all__ = ["Call", "ClientRequestFailed", "ContinueAsTask", "InputRequired", "ModernScope",
           "SessionScope", "client_result", "require_capability"]

Emit = Callable[[bytes], Awaitable[None]]
P = TypeVar("P", bound=msgspec.Struct)

_CAPABILITY_FOR = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


class InputRequired(BaseException):
    """Modern era: the handler needs the client's input; the call ends ``input_required``.

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """

    def __init__(self, requests: dict[str, InputRequest]) -> None:
        super().__init__(sorted(requests))
        self.requests = requests


class ContinueAsTask(BaseException):
    """The tool asked to go on as a task (``ctx.continue_as_task()``); the engine makes one.

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """


class ClientRequestFailed(Exception):
    """The client answered a server->client request with an error, or not in time."""


class Call(msgspec.Struct, kw_only=True):
    """An incoming request: what it asks and who asks, independent of the transport.

    ``params`` is the method's params Struct, decoded once when the request was classified
    (:mod:`scalemcp.protocol.classify`); handlers read it with :meth:`params_as`.
    """

    request_id: int | str
    method: str
    params: Any = None
    #: Why the params failed to decode (raised when a handler reads them).
    params_error: InvalidParams | None = None
    #: The params as sent: only the modern era's request digest reads them.
    raw_params: Raw | UnsetType = UNSET
    protocol_version: str
    client_capabilities: dict[str, Any] = {}
    session_id: str | None = None
    principal: str | None = None
    log_level: str | None = None
    #: Modern era: answers to earlier input requests, verified from ``requestState``.
    input_responses: dict[str, Any] | None = None
    modern: bool = False
    #: The caller's scopes; None when authentication is off (nothing is filtered).
    granted_scopes: frozenset[str] | None = None
    #: Modern era: the request's headers (``Mcp-Param-*`` are checked against arguments).
    headers: Mapping[str, str] | None = None
    #: The tool allows tasks, the client declared them, and this call is not one yet.
    may_become_task: bool = False
    #: The durable task this call runs as (engine/tasks.py).
    task_id: str | None = None

    @classmethod
    def of(cls, item: Item, **facts: Any) -> Call:
        """The Call for a classified request; ``facts`` say who asks and in what version."""
        assert item.method is not None
        return cls(request_id=item.request_id if item.request_id is not None else 0,
                   method=item.method, params=item.params, params_error=item.error,
                   raw_params=item.message.params, **facts)

    def params_as(self, tp: type[P]) -> P:
        """The params, which classification decoded as ``tp``; InvalidParams if they failed."""
        if self.params_error is not None:
            raise self.params_error
        if not isinstance(self.params, tp):
            raise InternalError(f"{self.method}: params were decoded as "
                                f"{type(self.params).__name__}, not {tp.__name__}")
        return self.params

    def allows(self, required: Iterable[str]) -> bool:
        """True if the caller holds every scope in ``required``."""
        return self.granted_scopes is None or self.granted_scopes.issuperset(required)


class CallFacts:
    """The facts of a call a handler's context reads (``Context`` asks its scope for them):
    what every scope, the eras' and a durable task's, shares."""

    _call: Call
    _progress_token: int | str | None

    @property
    def request_id(self) -> int | str:
        return self._call.request_id

    @property
    def session_id(self) -> str | None:
        return self._call.session_id

    @property
    def protocol_version(self) -> str:
        return self._call.protocol_version

    @property
    def client_capabilities(self) -> dict[str, Any]:
        return self._call.client_capabilities

    @property
    def principal(self) -> str | None:
        return self._call.principal

    @property
    def progress_token(self) -> int | str | None:
        return self._progress_token

    @property
    def log_level(self) -> str | None:
        return self._call.log_level

    @property
    def task_id(self) -> str | None:
        return None


class _Scope(CallFacts):
    """What both eras' request scopes share: the call's facts, notify, publish."""

    def __init__(
        self, call: Call, meta: RequestMeta | UnsetType, emit: Emit, state: StateBackend
    ) -> None:
        self._call = call
        self._emit = emit
        self._state = state
        token = UNSET if meta is UNSET else meta.progress_token
        self._progress_token: int | str | None = None if token is UNSET else token


    async def continue_as_task(self) -> None:
        if self._call.may_become_task:
            raise ContinueAsTask
        await trio.lowlevel.checkpoint()

    async def notify(self, method: str, params: Any) -> None:
        await self._emit(jsonrpc.encode_notification(method, params))

    async def publish_change(self, method: str, params: Any) -> None:
        await self._state.publish_change(jsonrpc.encode_notification(method, params))


class SessionScope(_Scope):
    """A request's scope in the session era: asks go to the client over the SSE stream."""

    def __init__(
        self,
        call: Call,
        meta: RequestMeta | UnsetType,
        emit: Emit,
        state: StateBackend,
        drop: Callable[[], Awaitable[None]],
        *,
        ask_timeout_s: float,
    ) -> None:
        super().__init__(call, meta, emit, state)
        self._drop = drop
        self._ask_timeout_s = ask_timeout_s

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        for request in requests.values():
            require_capability(self._call, request.method)
        return {key: await self._ask_one(key, r.method, r.params) for key, r in requests.items()}

    async def _ask_one(self, key: str, method: str, params: Any) -> Any:
        sid = self._call.session_id
        if sid is None:
            raise InternalError("server->client requests need a session")
        request_id = f"srv-{key}-{secrets.token_hex(6)}"
        async with self._state.open_mailbox(sid, ANSWER_MAILBOX + request_id) as mailbox:
            await self._emit(jsonrpc.encode_request(request_id, method, params))
            with trio.move_on_after(self._ask_timeout_s) as timeout:
                payload = await mailbox.receive()
        if timeout.cancelled_caught:
            await self.notify(
                "notifications/cancelled", {"requestId": request_id, "reason": "timed out"}
            )
            raise ClientRequestFailed(f"the client did not answer {method} in time")
        return client_result(payload, method)

    async def drop_connection(self) -> None:
        await self._drop()


class ModernScope(_Scope):
    """A request's scope in the modern era: asks end the call as ``input_required``."""

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        for request in requests.values():
            require_capability(self._call, request.method)
        answers = self._call.input_responses or {}
        # An answer that is not an object is no answer: ask again (spec 11.4: re-ask).
        missing = {k: r for k, r in requests.items() if not isinstance(answers.get(k), dict)}
        if missing:
            raise InputRequired(missing)
        return {key: answers[key] for key in requests}

    async def drop_connection(self) -> None:
        return None


def require_capability(call: Call, method: str) -> None:
    capability = _CAPABILITY_FOR.get(method)
    if capability is not None and capability not in call.client_capabilities:
        raise MissingClientCapability(
            f"{method} needs the client capability {capability!r}, which this client did not "
            "declare",
            {"requiredCapabilities": {capability: {}}},
        )


def client_result(payload: bytes, method: str) -> Any:
    message = jsonrpc.decode_body(payload)
    assert not isinstance(message, list)
    if message.error is not UNSET:
        raise ClientRequestFailed(f"the client refused {method}: {message.error.message}")
    if message.result is UNSET:
        raise ProtocolError(f"the client's answer to {method} has no result")
    return jsonrpc.decode_any(message.result)
