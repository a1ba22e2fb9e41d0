"""The MCP messages a bench client sends and reads, on scalemcp's own JSON-RPC codec.

The envelope is `scalemcp.protocol.jsonrpc`, the codec the server uses: a body
decodes once into `Message` (or a batch of them) with ``params`` and
``result`` left as `msgspec.Raw`, so a plain tool result costs one shallow
decode; the few parts of a result the bench checks decode with the small
Structs below, each decoder built once. This module adds what a client needs
on top: request bodies, the modern era's per-request ``_meta``, and the
``initialize`` params.

The server's codec also checks what it decodes (UTF-8, the JSON-RPC envelope
rules), so a broken answer is counted as ``decode`` rather than misread.
Measured against the bench's former loose decoder (one ``tools/call`` result,
encode + decode + result head, in-process, interleaved): 8.1 us against 5.9 us,
a 1-2 % share of the client's CPU per request; not worth a second codec.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from msgspec import Raw, UnsetType

from ..errors import ProtocolError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import ErrorObject, Message, RequestId
from ..protocol.versions import LATEST_SESSION_VERSION, LEGACY_SSE_VERSION, MODERN_VERSIONS
from .errors import McpError

__all__ = [
    "LEGACY_SSE_VERSION",
    "MODERN_VERSION",
    "SESSION_VERSION",
    "ErrorObject",
    "InitializeResultHead",
    "InputRequest",
    "ListedTool",
    "Message",
    "ProgressParams",
    "RequestId",
    "ToolResultHead",
    "ToolsPage",
    "decode",
    "decode_part",
    "initialize_params",
    "modern_meta",
    "notification",
    "request",
    "response",
]

MODERN_VERSION: Final = MODERN_VERSIONS[0]
SESSION_VERSION: Final = LATEST_SESSION_VERSION
CLIENT_INFO: Final = {"name": "scalemcp-bench", "version": "1"}


class InputRequest(msgspec.Struct, frozen=True):
    """One entry of a 2026-07-28 ``inputRequests`` map: a request without id or envelope."""

    method: str
    params: Raw = Raw(b"{}")

    def as_message(self) -> Message:
        return Message(jsonrpc="2.0", method=self.method, params=self.params)


class ToolResultHead(msgspec.Struct, frozen=True, rename="camel"):
    """The parts of a tools/call result the bench checks."""

    is_error: bool = False
    result_type: str = "complete"
    request_state: str | None = None
    input_requests: dict[str, InputRequest] | None = None


class ProgressParams(msgspec.Struct, frozen=True, rename="camel"):
    progress_token: RequestId
    progress: float
    total: float | None = None


class InitializeResultHead(msgspec.Struct, frozen=True, rename="camel"):
    protocol_version: str


class ListedTool(msgspec.Struct, frozen=True, rename="camel"):
    name: str
    input_schema: dict[str, Any] = {}


class ToolsPage(msgspec.Struct, frozen=True, rename="camel"):
    tools: list[ListedTool] = []
    next_cursor: str | None = None


_decoders: Final[dict[type, msgspec.json.Decoder[Any]]] = {
    kind: msgspec.json.Decoder(kind)
    for kind in (ToolResultHead, ProgressParams, InitializeResultHead, ToolsPage)
}
T = TypeVar("T", ToolResultHead, ProgressParams, InitializeResultHead, ToolsPage)


def decode(data: bytes) -> list[Message]:
    """One message or a batch (2025-03-26 allowed batched answers); `McpError` if unreadable."""
    try:
        decoded = jsonrpc.decode_body(data)
    except ProtocolError as exc:
        raise McpError("decode", f"{exc.message}: {data[:120]!r}") from exc
    return decoded if isinstance(decoded, list) else [decoded]


def decode_part(kind: type[T], raw: Raw | UnsetType, what: str) -> T:
    """The ``params`` or ``result`` ``raw`` (named ``what`` in errors) as a ``kind``."""
    if isinstance(raw, UnsetType):
        raise McpError("decode", f"{what} is missing")
    try:
        value: T = _decoders[kind].decode(raw)
    except msgspec.DecodeError as exc:
        raise McpError("decode", f"{what}: {exc}") from exc
    return value


def modern_meta(
    capabilities: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The per-request ``_meta`` every 2026-07-28 request carries."""
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    }
    if extra:
        meta.update(extra)
    return meta


def request(req_id: RequestId, method: str, params: dict[str, Any] | None) -> bytes:
    return jsonrpc.encode_request(req_id, method, params)


def notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    return jsonrpc.encode_notification(method, params)


def response(req_id: RequestId, result: dict[str, Any]) -> bytes:
    return jsonrpc.encode_result(req_id, result)


def initialize_params(version: str) -> dict[str, Any]:
    return {
        "protocolVersion": version,
        "capabilities": {"elicitation": {}},
        "clientInfo": CLIENT_INFO,
    }
