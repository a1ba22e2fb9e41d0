"""Tool registration: schemas and validation from type hints, results from return values."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import msgspec

from ..errors import InvalidParams, ToolError
from ..protocol.schema import ArgumentModel, build_argument_model, output_schema_for
from ..protocol.types import ContentBlock, TextContent, Tool, ToolAnnotations
from .content import CONTENT_TYPES, Audio, Image, to_content
from .context import Context
from .handlers import context_param, invoke, is_context
from .tasks import TaskPolicy

__all__ = ["CacheHint", "ToolSpec"]

_UNSTRUCTURED = (str, bytes, type(None), Image, Audio, *CONTENT_TYPES)


class CacheHint(msgspec.Struct, frozen=True):
    """Caching hints for the modern era (``ttlMs`` / ``cacheScope``)."""

    ttl_ms: int = 0
    scope: str = "private"


class ToolSpec:
    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        structured_output: bool | None = None,
        scopes: tuple[str, ...] = (),
        requires: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        input_schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        rate_limit_rps: float | None = None,
        task: TaskPolicy | None = None,
    ) -> None:
        self.fn = fn
        #: How the tool runs as a durable task (None: never; app/tasks.py).
        self.task = task
        self.name = name or fn.__name__
        self.scopes = scopes
        if rate_limit_rps is not None and rate_limit_rps < 0:
            raise ValueError(f"tool {self.name!r}: rate_limit_rps must be >= 0")
        #: Calls per second per principal (None: the server's default; 0: no limit).
        self.rate_limit_rps = rate_limit_rps
        #: Client capabilities the tool cannot run without (checked before it runs).
        self.requires = requires
        self.ctx_param = context_param(fn)
        self.model: ArgumentModel = build_argument_model(fn, self.name, is_context)
        schema = dict(input_schema or self.model.schema)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        self.header_params = dict(headers or {})
        for param, header in self.header_params.items():
            prop = schema["properties"].get(param)
            if prop is None:
                raise ValueError(f"tool {self.name!r}: header param {param!r} is not a parameter")
            schema["properties"][param] = {**prop, "x-mcp-header": header}
        self.output_type, self.output_schema, self.wrap_output = _output(fn, structured_output)
        self.descriptor = Tool(
            name=self.name,
            input_schema=schema,
            title=title or msgspec.UNSET,
            description=description or inspect.getdoc(fn) or self.name,
            output_schema=self.output_schema if self.output_schema else msgspec.UNSET,
            annotations=annotations or msgspec.UNSET,
            execution={"taskSupport": task.support} if task is not None else msgspec.UNSET,
            meta=meta or msgspec.UNSET,
        )

    def decode_arguments(self, raw: bytes) -> dict[str, Any]:
        try:
            return self.model.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidParams(f"invalid arguments for tool {self.name!r}: {exc}") from None

    async def call(self, ctx: Context, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.ctx_param is not None:
            arguments = {**arguments, self.ctx_param: ctx}
        try:
            value = await invoke(self.fn, arguments)
        except ToolError as exc:
            return error_result(str(exc))
        return self._result(value)

    def _result(self, value: Any) -> dict[str, Any]:
        if self.output_schema is None:
            return {"content": to_content(value)}
        structured = msgspec.to_builtins(value)
        # The text block is for clients without structured output: a wrapped primitive
        # reads as itself ("3"), not as the {"result": 3} wrapper the schema needs.
        text: ContentBlock = TextContent(text=msgspec.json.encode(structured).decode())
        if self.wrap_output:
            structured = {"result": structured}
        return {"content": [text], "structuredContent": structured}


def error_result(message: str) -> dict[str, Any]:
    return {"content": [TextContent(text=message)], "isError": True}


def _output(
    fn: Callable[..., Any], structured: bool | None
) -> tuple[Any, dict[str, Any] | None, bool]:
    if structured is False:
        return None, None, False
    tp = get_type_hints(fn).get("return", inspect.Signature.empty)
    if tp is inspect.Signature.empty or tp is Any:
        return None, None, False
    if structured is None and _is_unstructured(tp):
        return None, None, False
    schema = output_schema_for(tp)
    if schema.get("type") == "object":
        return tp, schema, False
    wrapped = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
    if "$defs" in schema:
        wrapped["$defs"] = schema.pop("$defs")
    return tp, wrapped, True


def _is_unstructured(tp: Any) -> bool:
    if tp in _UNSTRUCTURED or tp is Any:
        return True
    if get_origin(tp) in (list, tuple, Union, UnionType):
        return all(_is_unstructured(a) for a in get_args(tp) if a is not Ellipsis)
    return False
