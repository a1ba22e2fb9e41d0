"""Classifying what a client sent: bytes and a version header in, one decision out.

Theory of operation
-------------------
A POST body is decoded once into JSON-RPC :class:`~.jsonrpc.Message` envelopes, and each
message's ``params`` once more, into the Struct its method defines (:data:`PARAMS`), by
:func:`decode_params`: the only place params are decoded. The resulting :class:`Post`
says which era the request belongs to, which version it names, and for each message its
typed params (or why they failed to decode), its target (tool, prompt or resource) and
its ``_meta``. Rate limits, header rules, scope checks and the handler all read this
decision; none decodes again. Bad params are not an error of the POST: they are kept with
their message and answered as that request's JSON-RPC error when it runs.

Pure: no I/O, no trio; errors are :mod:`scalemcp.errors` classes carrying their status.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, Raw, UnsetType

from ..errors import InvalidParams, InvalidRequest
from . import versions
from .jsonrpc import Message, decode_body
from .limits import JsonLimits
from .types import (
    CallToolParams,
    CancelledParams,
    CompleteParams,
    EmptyParams,
    GetPromptParams,
    GetSkillParams,
    InitializeParams,
    ListenParams,
    ListParams,
    ReadDirectoryParams,
    ReadResourceParams,
    RequestMeta,
    SetLevelParams,
    SubscribeParams,
    TaskIdParams,
    UpdateTaskParams,
)

__all__ = ["PARAMS", "Era", "Item", "Post", "classify", "classify_post", "decode_params"]

Era = Literal["modern", "session"]

#: The params Struct of each method; any other method's params decode as EmptyParams
#: (``_meta`` only; unknown fields are ignored).
PARAMS: Final[dict[str, type[msgspec.Struct]]] = {
    "initialize": InitializeParams,
    "tools/list": ListParams,
    "resources/list": ListParams,
    "resources/templates/list": ListParams,
    "prompts/list": ListParams,
    "tools/call": CallToolParams,
    "resources/read": ReadResourceParams,
    "prompts/get": GetPromptParams,
    "resources/subscribe": SubscribeParams,
    "resources/unsubscribe": SubscribeParams,
    "logging/setLevel": SetLevelParams,
    "completion/complete": CompleteParams,
    "subscriptions/listen": ListenParams,
    "notifications/cancelled": CancelledParams,
    # the skills extension (SEP-2640; engine/skills.py)
    "skills/list": ListParams,
    "skills/get": GetSkillParams,
    "resources/directory/read": ReadDirectoryParams,
    # durable tasks (engine/tasks.py): the extension's and 2025-11-25's
    "tasks/get": TaskIdParams,
    "tasks/update": UpdateTaskParams,
    "tasks/cancel": TaskIdParams,
    "tasks/result": TaskIdParams,
    "tasks/list": ListParams,
}
_PARAM_TYPES: Final[list[type[msgspec.Struct]]] = [*PARAMS.values(), EmptyParams]
_DECODERS: Final[dict[type[msgspec.Struct], msgspec.json.Decoder[Any]]] = {
    tp: msgspec.json.Decoder(tp) for tp in _PARAM_TYPES
}
_EMPTY: Final = b"{}"
#: The param naming a method's target (``Mcp-Name``, scopes, per-tool rate limits).
_TARGET_FIELD: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri",
                        # the tasks extension: Mcp-Name is the task id
                        "tasks/get": "task_id", "tasks/update": "task_id",
                        "tasks/cancel": "task_id"}


def decode_params(method: str, raw: Raw | UnsetType) -> Any:
    """``raw`` decoded into ``method``'s params Struct; :class:`InvalidParams` if it fails."""
    tp = PARAMS.get(method, EmptyParams)
    try:
        return _DECODERS[tp].decode(_EMPTY if raw is UNSET or raw == b"null" else raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidParams(f"invalid params: {exc}") from None


class Item(msgspec.Struct, frozen=True):
    """One JSON-RPC message of a POST, with its params decoded (requests, notifications)."""

    message: Message
    #: The method's params Struct; None for responses and for params that failed.
    params: Any = None
    #: Why the params failed to decode; answered when the request runs.
    error: InvalidParams | None = None
    #: The params' ``_meta`` (read even when the rest of the params failed).
    meta: RequestMeta | None = None

    @property
    def method(self) -> str | None:
        method = self.message.method
        return None if method is UNSET else method

    @property
    def request_id(self) -> int | str | None:
        rid = self.message.id
        return rid if isinstance(rid, int | str) else None

    @property
    def target(self) -> str | None:
        """The tool, prompt or resource a request names, if its method names one."""
        field = _TARGET_FIELD.get(self.method or "")
        value = getattr(self.params, field, None) if field else None
        return value if isinstance(value, str) else None

    @property
    def names_version(self) -> str | None:
        """The protocol version the message's own ``_meta`` names (2026-07-28 onwards)."""
        meta = self.meta
        if meta is None or meta.protocol_version is UNSET:
            return None
        return meta.protocol_version


def classify(message: Message) -> Item:
    """``message`` with its params decoded (once)."""
    if message.method is UNSET:
        return Item(message)
    try:
        params = decode_params(message.method, message.params)
    except InvalidParams as exc:
        return Item(message, error=exc, meta=_meta_of_failed(message.params))
    meta = getattr(params, "meta", UNSET)
    return Item(message, params, meta=None if meta is UNSET else meta)


def _meta_of_failed(raw: Raw | UnsetType) -> RequestMeta | None:
    """The ``_meta`` of params that failed their Struct: it still says the request's era,
    so its error is answered as that era answers (the error path only)."""
    try:
        meta = _DECODERS[EmptyParams].decode(_EMPTY if raw is UNSET else raw).meta
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return None if meta is UNSET else meta


class Post(msgspec.Struct, frozen=True):
    """What one POST to the MCP endpoint is: its era, version and messages."""

    era: Era
    items: tuple[Item, ...]
    batch: bool
    #: The version the request names (header, ``_meta`` or initialize's request), or the
    #: session era's default when it names none.
    version: str

    @property
    def single(self) -> Item | None:
        """The one message of a POST that is not a batch."""
        return None if self.batch else self.items[0]


def classify_post(body: bytes, version_header: str | None,
                  limits: JsonLimits | None = None) -> Post:
    """Decode and classify a POST body.

    Raises :class:`~scalemcp.errors.ParseError` or :class:`InvalidRequest` (no request id
    is known) when the body is not JSON-RPC at all.
    """
    decoded = decode_body(body, limits)
    batch = isinstance(decoded, list)
    items = tuple(classify(m) for m in (decoded if isinstance(decoded, list) else [decoded]))
    if not items:
        raise InvalidRequest("an empty batch is not a JSON-RPC message")
    era, version = _era(items[0] if not batch else None, version_header)
    return Post(era, items, batch, version)


def _era(single: Item | None, header: str | None) -> tuple[Era, str]:
    """A version header that names no session-era version sends the request down the
    modern path whatever its method (there it is validated); so does modern ``_meta``."""
    if header is not None:
        header = header.strip()
        return ("session" if header in versions.NEGOTIABLE_VERSIONS else "modern"), header
    if single is not None and single.method != "initialize":
        named = single.names_version
        if named is not None:
            return "modern", named
    if single is not None and isinstance(single.params, InitializeParams) and \
            single.params.protocol_version:
        return "session", single.params.protocol_version
    return "session", versions.DEFAULT_HEADER_VERSION
