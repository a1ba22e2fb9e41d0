"""Resources and URI templates (RFC 6570 level 1-2 expressions: ``{var}``, ``{+var}``)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import msgspec

from ..protocol.types import (
    BlobResourceContents,
    Resource,
    ResourceContents,
    ResourceTemplate,
    TextResourceContents,
)
from .context import Context
from .handlers import context_param, invoke

__all__ = ["ResourceSpec", "TemplateSpec"]

_EXPR = re.compile(r"\{(\+?)([A-Za-z0-9_]+)\}")


class ResourceSpec:
    def __init__(
        self,
        fn: Callable[..., Any],
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        self.fn = fn
        self.uri = uri
        self.mime_type = mime_type
        self.scopes = scopes
        self.ctx_param = context_param(fn)
        self.descriptor = Resource(
            uri=uri,
            name=name or fn.__name__,
            title=title or msgspec.UNSET,
            description=description or (fn.__doc__ or "").strip() or msgspec.UNSET,
            mime_type=mime_type or msgspec.UNSET,
        )

    async def read(self, ctx: Context, uri: str, params: dict[str, str]) -> list[ResourceContents]:
        kwargs: dict[str, Any] = dict(params)
        if self.ctx_param is not None:
            kwargs[self.ctx_param] = ctx
        return to_contents(uri, await invoke(self.fn, kwargs), self.mime_type)


class TemplateSpec(ResourceSpec):
    def __init__(self, fn: Callable[..., Any], uri_template: str, **kwargs: Any) -> None:
        super().__init__(fn, uri_template, **kwargs)
        self.pattern = _compile(uri_template)
        d = self.descriptor
        self.template = ResourceTemplate(
            uri_template=uri_template,
            name=d.name,
            title=d.title,
            description=d.description,
            mime_type=d.mime_type,
        )

    def match(self, uri: str) -> dict[str, str] | None:
        m = self.pattern.fullmatch(uri)
        return m.groupdict() if m else None


def _compile(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _EXPR.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m.group(2)}>.+)" if m.group(1) else f"(?P<{m.group(2)}>[^/?#]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def is_template(uri: str) -> bool:
    return _EXPR.search(uri) is not None


def to_contents(uri: str, value: Any, mime_type: str | None) -> list[ResourceContents]:
    """Map a resource function's return value to resource contents."""
    items = value if isinstance(value, list | tuple) else [value]
    out: list[ResourceContents] = []
    mt = mime_type or msgspec.UNSET
    for item in items:
        if isinstance(item, TextResourceContents | BlobResourceContents):
            out.append(item)
        elif isinstance(item, bytes):
            blob = base64.b64encode(item).decode()
            out.append(BlobResourceContents(uri=uri, blob=blob, mime_type=mime_type or
                                            "application/octet-stream"))
        elif isinstance(item, str):
            out.append(TextResourceContents(uri=uri, text=item, mime_type=mt))
        else:
            text = msgspec.json.encode(item).decode()
            out.append(TextResourceContents(uri=uri, text=text, mime_type=mime_type or
                                            "application/json"))
    return out
