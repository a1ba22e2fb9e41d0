"""Prompt registration: arguments from the signature, messages from the return value."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import InvalidParams
from ..protocol.types import Prompt, PromptArgument, PromptMessage, TextContent
from .content import to_content
from .context import Context
from .handlers import context_param, invoke

__all__ = ["PromptSpec"]


class PromptSpec:
    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.scopes = scopes
        self.ctx_param = context_param(fn)
        self.arguments: list[PromptArgument] = []
        self.required: set[str] = set()
        for param in inspect.signature(fn).parameters.values():
            if param.name == self.ctx_param:
                continue
            required = param.default is inspect.Parameter.empty
            if required:
                self.required.add(param.name)
            self.arguments.append(PromptArgument(name=param.name, required=required))
        self.description = description or inspect.getdoc(fn) or self.name
        self.descriptor = Prompt(
            name=self.name,
            title=title or msgspec.UNSET,
            description=self.description,
            arguments=self.arguments,
        )

    async def get(self, ctx: Context, arguments: dict[str, str]) -> dict[str, Any]:
        missing = sorted(self.required - arguments.keys())
        if missing:
            raise InvalidParams(f"prompt {self.name!r} is missing required arguments: {missing}")
        known = {a.name for a in self.arguments}
        kwargs: dict[str, Any] = {k: v for k, v in arguments.items() if k in known}
        if self.ctx_param is not None:
            kwargs[self.ctx_param] = ctx
        value = await invoke(self.fn, kwargs)
        return {"description": self.description, "messages": _messages(value)}


def _messages(value: Any) -> list[PromptMessage]:
    items = value if isinstance(value, list | tuple) else [value]
    out: list[PromptMessage] = []
    for item in items:
        if isinstance(item, PromptMessage):
            out.append(item)
        elif isinstance(item, dict):
            out.append(msgspec.convert(item, PromptMessage))
        else:
            out.extend(PromptMessage(role="user", content=b) for b in to_content(item))
    return out or [PromptMessage(role="user", content=TextContent(text=""))]
