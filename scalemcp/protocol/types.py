"""MCP wire types as msgspec Structs (camelCase on the wire).

One set of Structs covers 2025-03-26..2026-07-28: fields that a version lacks are
optional and omitted when unset, and the engine leaves out what an older client
cannot read (see ``engine.results``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, Raw, UnsetType

Meta = dict[str, Any]
LogLevel = Literal[
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
]
LOG_LEVELS: tuple[str, ...] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency",
)


class _Wire(msgspec.Struct, omit_defaults=True, rename="camel"):
    pass


# -- content -----------------------------------------------------------------------------


class Annotations(_Wire):
    audience: list[Literal["user", "assistant"]] | UnsetType = UNSET
    priority: float | UnsetType = UNSET
    last_modified: str | UnsetType = UNSET


class TextContent(_Wire, tag_field="type", tag="text"):
    text: str
    annotations: Annotations | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class ImageContent(_Wire, tag_field="type", tag="image"):
    data: str
    mime_type: str
    annotations: Annotations | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class AudioContent(_Wire, tag_field="type", tag="audio"):
    data: str
    mime_type: str
    annotations: Annotations | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class ResourceLink(_Wire, tag_field="type", tag="resource_link"):
    uri: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mime_type: str | UnsetType = UNSET
    size: int | UnsetType = UNSET
    annotations: Annotations | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class TextResourceContents(_Wire):
    uri: str
    text: str
    mime_type: str | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class BlobResourceContents(_Wire):
    uri: str
    blob: str
    mime_type: str | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


ResourceContents = TextResourceContents | BlobResourceContents


class EmbeddedResource(_Wire, tag_field="type", tag="resource"):
    resource: TextResourceContents | BlobResourceContents
    annotations: Annotations | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


ContentBlock = TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource


# -- primitives as listed ----------------------------------------------------------------


class Icon(_Wire):
    src: str
    mime_type: str | UnsetType = UNSET
    sizes: list[str] | UnsetType = UNSET


class ToolAnnotations(_Wire):
    title: str | UnsetType = UNSET
    read_only_hint: bool | UnsetType = UNSET
    destructive_hint: bool | UnsetType = UNSET
    idempotent_hint: bool | UnsetType = UNSET
    open_world_hint: bool | UnsetType = UNSET


class Tool(_Wire):
    name: str
    input_schema: dict[str, Any]
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    output_schema: dict[str, Any] | UnsetType = UNSET
    annotations: ToolAnnotations | UnsetType = UNSET
    icons: list[Icon] | UnsetType = UNSET
    #: 2025-11-25: ``{taskSupport}`` (durable tasks).
    execution: dict[str, Any] | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class Resource(_Wire):
    uri: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mime_type: str | UnsetType = UNSET
    size: int | UnsetType = UNSET
    annotations: Annotations | UnsetType = UNSET
    icons: list[Icon] | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class ResourceTemplate(_Wire):
    uri_template: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mime_type: str | UnsetType = UNSET
    annotations: Annotations | UnsetType = UNSET
    icons: list[Icon] | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class PromptArgument(_Wire):
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    required: bool | UnsetType = UNSET


class Prompt(_Wire):
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    arguments: list[PromptArgument] | UnsetType = UNSET
    icons: list[Icon] | UnsetType = UNSET
    meta: Meta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class PromptMessage(_Wire):
    role: Literal["user", "assistant"]
    content: ContentBlock


# -- request params ------------------------------------------------------------------------


class RequestMeta(msgspec.Struct, omit_defaults=True):
    progress_token: int | str | UnsetType = msgspec.field(default=UNSET, name="progressToken")
    protocol_version: str | UnsetType = msgspec.field(
        default=UNSET, name="io.modelcontextprotocol/protocolVersion"
    )
    client_capabilities: dict[str, Any] | UnsetType = msgspec.field(
        default=UNSET, name="io.modelcontextprotocol/clientCapabilities"
    )
    client_info: dict[str, Any] | UnsetType = msgspec.field(
        default=UNSET, name="io.modelcontextprotocol/clientInfo"
    )
    log_level: str | UnsetType = msgspec.field(
        default=UNSET, name="io.modelcontextprotocol/logLevel"
    )
    #: W3C trace context carried in ``_meta`` (OpenTelemetry's MCP conventions).
    traceparent: str | UnsetType = UNSET
    tracestate: str | UnsetType = UNSET
    baggage: str | UnsetType = UNSET


class _Params(_Wire):
    meta: RequestMeta | UnsetType = msgspec.field(default=UNSET, name="_meta")


class EmptyParams(_Params):
    pass


class InitializeParams(_Params):
    protocol_version: str = ""
    capabilities: dict[str, Any] = {}
    client_info: dict[str, Any] = {}


class ListParams(_Params):
    cursor: str | UnsetType = UNSET


class TaskParams(_Wire):
    """``params.task`` of a 2025-11-25 task-augmented request (a 2026-07-28 server ignores it)."""

    ttl: int | UnsetType | None = UNSET


class CallToolParams(_Params):
    name: str = ""
    arguments: Raw | UnsetType = UNSET
    input_responses: dict[str, Any] | UnsetType = UNSET
    request_state: str | UnsetType = UNSET
    task: TaskParams | UnsetType = UNSET


class TaskIdParams(_Params, kw_only=True):
    """``tasks/get``, ``tasks/result``, ``tasks/cancel``."""

    task_id: str


class UpdateTaskParams(_Params, kw_only=True):
    """``tasks/update`` (the tasks extension)."""

    task_id: str
    input_responses: dict[str, Any] = {}


class ReadResourceParams(_Params):
    uri: str = ""
    input_responses: dict[str, Any] | UnsetType = UNSET
    request_state: str | UnsetType = UNSET


class GetPromptParams(_Params):
    name: str = ""
    arguments: dict[str, str] | UnsetType | None = UNSET
    input_responses: dict[str, Any] | UnsetType = UNSET
    request_state: str | UnsetType = UNSET


class SubscribeParams(_Params):
    uri: str = ""


class SetLevelParams(_Params):
    level: LogLevel = "info"


# The skills extension (SEP-2640): ``skills/list`` takes ListParams.


class GetSkillParams(_Params, kw_only=True):
    """``skills/get``: the skill whose ``SKILL.md`` is at ``uri``."""

    uri: str


class ReadDirectoryParams(_Params, kw_only=True):
    """``resources/directory/read``: the children of the directory resource ``uri``."""

    uri: str
    cursor: str | UnsetType = UNSET


class CompletionRef(msgspec.Struct, omit_defaults=True):
    type: Literal["ref/prompt", "ref/resource"]
    name: str | UnsetType = UNSET
    uri: str | UnsetType = UNSET


class CompletionArgument(msgspec.Struct):
    name: str
    value: str


class CompletionContext(msgspec.Struct, omit_defaults=True):
    arguments: dict[str, str] = {}


class CompleteParams(_Params):
    ref: CompletionRef | None = None
    argument: CompletionArgument | None = None
    context: CompletionContext | UnsetType = UNSET


class CancelledParams(msgspec.Struct, omit_defaults=True, rename="camel"):
    request_id: int | str | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class ListenNotifications(_Wire):
    tools_list_changed: bool = False
    prompts_list_changed: bool = False
    resources_list_changed: bool = False
    resource_subscriptions: list[str] = []
    #: ``notifications/tasks`` for these tasks (the tasks extension).
    task_ids: list[str] | UnsetType = UNSET


class ListenParams(_Params):
    notifications: ListenNotifications = msgspec.field(default_factory=ListenNotifications)
