"""Shaping results for the version that asked: list pages, errors, modern-era extras."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ..app.app import App
from ..app.pagination import paginate
from ..app.tools import error_result
from ..errors import (
    InternalError,
    InvalidParams,
    MissingClientCapability,
    ProtocolError,
    ResourceNotFound,
)
from ..protocol import versions
from ..protocol.types import Prompt, Resource, ResourceTemplate, Tool
from ..protocol.versions import features
from .call import Call, InputRequired
from .request_state import RequestStateCodec, digest_params

__all__ = ["Results"]

T = TypeVar("T", Resource, ResourceTemplate, Prompt)


class Results:
    def __init__(self, app: App, codec: RequestStateCodec | None = None) -> None:
        self.app = app
        self.codec = codec

    def input_required(self, call: Call, request: InputRequired) -> dict[str, Any]:
        if not call.modern or self.codec is None:
            raise InternalError("input_required results exist only in the modern era")
        if call.method not in ("tools/call", "prompts/get", "resources/read"):
            raise InternalError(f"{call.method} cannot ask the client for input")
        raw = call.raw_params
        digest = digest_params(call.method, None if raw is UNSET else bytes(raw))
        state = self.codec.seal(digest, call.principal, call.input_responses or {})
        return {
            "resultType": "input_required",
            "inputRequests": {
                key: {"method": r.method, "params": r.params} for key, r in request.requests.items()
            },
            "requestState": state,
        }

    def discover(self, version: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "supportedVersions": list(versions.ALL_VERSIONS),
            "capabilities": self.app.capabilities(version),
            "ttlMs": self.app.list_cache.ttl_ms,
            "cacheScope": self.app.list_cache.scope,
        }
        if self.app.instructions:
            result["instructions"] = self.app.instructions
        return result

    def wrap(self, call: Call, result: Any) -> Any:
        if (call.method == "tools/call" and not features(call.protocol_version).structured_output
                and isinstance(result, dict) and "structuredContent" in result):
            # 2025-03-26 has no structured output; the text block carries the same JSON.
            result = {k: v for k, v in result.items() if k != "structuredContent"}
        if not call.modern:
            return result
        if isinstance(result, dict) and "resultType" not in result:
            result = {**result, "resultType": "complete"}
            meta = dict(result.get("_meta") or {})
            meta["io.modelcontextprotocol/serverInfo"] = self.server_info()
            result["_meta"] = meta
        return result

    def error(self, call: Call, exc: ProtocolError) -> ProtocolError:
        if call.modern and isinstance(exc, ResourceNotFound):
            return InvalidParams(exc.message, exc.data)
        return exc

    def propagates(self, exc: ProtocolError) -> bool:
        """Errors a tool raises that stay JSON-RPC errors rather than ``isError`` results."""
        return isinstance(exc, MissingClientCapability)

    def not_found(self, call: Call, uri: str) -> ProtocolError:
        return ResourceNotFound(f"resource not found: {uri}", {"uri": uri})

    def tool_error(self, message: str) -> dict[str, Any]:
        return error_result(message)

    def server_info(self, version: str | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.app.name, "version": self.app.version}
        if self.app.title and (version is None or features(version).titles):
            info["title"] = self.app.title
        return info

    def tools_page(self, call: Call, cursor: str | UnsetType) -> dict[str, Any]:
        tools = [_tool_for(spec.descriptor, call.protocol_version)
                 for spec in self.app.tools.values() if call.allows(spec.scopes)]
        return self._page(call, "tools", tools, cursor)

    def resources_page(self, call: Call, cursor: str | UnsetType) -> dict[str, Any]:
        items = [_untitled(spec.descriptor, call.protocol_version)
                 for spec in self.app.listed_resources() if call.allows(spec.scopes)]
        return self._page(call, "resources", items, cursor)

    def templates_page(self, call: Call, cursor: str | UnsetType) -> dict[str, Any]:
        items = [_untitled(spec.template, call.protocol_version)
                 for spec in self.app.templates if call.allows(spec.scopes)]
        return self._page(call, "resourceTemplates", items, cursor)

    def prompts_page(self, call: Call, cursor: str | UnsetType) -> dict[str, Any]:
        items = [_untitled(spec.descriptor, call.protocol_version)
                 for spec in self.app.prompts.values() if call.allows(spec.scopes)]
        return self._page(call, "prompts", items, cursor)

    def _page(
        self, call: Call, key: str, items: Sequence[Any], cursor: str | UnsetType
    ) -> dict[str, Any]:
        page, next_cursor = paginate(items, cursor, self.app.page_size)
        result: dict[str, Any] = {key: list(page)}
        if next_cursor is not UNSET:
            result["nextCursor"] = next_cursor
        if call.modern:
            hint = self.app.list_cache
            result["ttlMs"] = hint.ttl_ms
            result["cacheScope"] = hint.scope
        return result


def _tool_for(tool: Tool, version: str) -> Tool:
    has = features(version)
    dropped: dict[str, Any] = {}
    if not has.titles:
        dropped["title"] = UNSET
    if not has.structured_output:
        dropped["output_schema"] = UNSET
    if not has.icons:
        dropped["icons"] = UNSET
    if not has.tool_meta:
        dropped["meta"] = UNSET
    if has.tasks != "core" and tool.execution is not UNSET:
        dropped["execution"] = UNSET
    return msgspec.structs.replace(tool, **dropped) if dropped else tool


def _untitled(item: T, version: str) -> T:
    """``title`` and ``icons`` for the versions that have them."""
    has = features(version)
    dropped = {name: UNSET for name, present in (("title", has.titles), ("icons", has.icons))
               if not present}
    return msgspec.structs.replace(item, **dropped) if dropped else item
