"""JSON-RPC messages as the bench client sends and reads them (msgspec, built once).

Incoming messages decode into one loose `Message` Struct whose ``result`` and
``params`` stay `msgspec.Raw`, so a plain tool result costs one shallow decode.
Outgoing requests are dicts encoded by one shared encoder; the bodies are
small and built per call, because ids differ.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "MODERN_VERSION",
    "SESSION_VERSION",
    "ErrorObject",
    "Message",
    "decode_message",
    "encode",
    "modern_meta",
]

MODERN_VERSION = "2026-07-28"
SESSION_VERSION = "2025-11-25"
LEGACY_SSE_VERSION = "2024-11-05"
CLIENT_INFO = {"name": "scalemcp-bench", "version": "1"}

RequestId = int | str


_EMPTY = msgspec.Raw()


class ErrorObject(msgspec.Struct, frozen=True):
    code: int
    message: str = ""
    data: msgspec.Raw | None = None


class Message(msgspec.Struct, frozen=True):
    """Any JSON-RPC message: request, notification, result or error."""

    jsonrpc: str = "2.0"
    id: RequestId | None = None
    method: str | None = None
    params: msgspec.Raw = _EMPTY
    """Empty (falsy) when absent; msgspec.Raw cannot sit in a union with None."""
    result: msgspec.Raw = _EMPTY
    """Empty (falsy) when absent."""
    error: ErrorObject | None = None


class ToolResultHead(msgspec.Struct, frozen=True, rename="camel"):
    """The parts of a tools/call result the bench checks."""

    is_error: bool = False
    result_type: str = "complete"
    request_state: str | None = None
    input_requests: dict[str, Message] | None = None


class ProgressParams(msgspec.Struct, frozen=True, rename="camel"):
    progress_token: RequestId
    progress: float


class InitializeResultHead(msgspec.Struct, frozen=True, rename="camel"):
    protocol_version: str


_encoder = msgspec.json.Encoder()
_message_decoder = msgspec.json.Decoder(Message)
_list_decoder = msgspec.json.Decoder(list[Message])
_tool_head_decoder = msgspec.json.Decoder(ToolResultHead)
_progress_decoder = msgspec.json.Decoder(ProgressParams)
_init_decoder = msgspec.json.Decoder(InitializeResultHead)


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def decode_message(data: bytes) -> Message:
    return _message_decoder.decode(data)


def decode_messages(data: bytes) -> list[Message]:
    """One message or a batch (2025-03-26 allowed batched answers)."""
    stripped = data.lstrip()
    if stripped.startswith(b"["):
        return _list_decoder.decode(stripped)
    return [_message_decoder.decode(stripped)]


def decode_tool_head(raw: msgspec.Raw) -> ToolResultHead:
    return _tool_head_decoder.decode(raw)


def decode_progress(raw: msgspec.Raw) -> ProgressParams:
    return _progress_decoder.decode(raw)


def decode_initialize(raw: msgspec.Raw) -> InitializeResultHead:
    return _init_decoder.decode(raw)


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
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id, "method": method}
    if params is not None:
        body["params"] = params
    return _encoder.encode(body)


def notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    return _encoder.encode(body)


def response(req_id: RequestId, result: dict[str, Any]) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "id": req_id, "result": result})


def initialize_params(version: str) -> dict[str, Any]:
    return {
        "protocolVersion": version,
        "capabilities": {"elicitation": {}},
        "clientInfo": CLIENT_INFO,
    }
