"""JSON-RPC 2.0 envelope: decode once into a Struct, keep params raw, encode answers.

A message is decoded into :class:`Message`, whose ``params``/``result`` stay
``msgspec.Raw`` until the handler that owns them decodes them with its own type.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET, Raw, UnsetType

from ..errors import InvalidRequest, ParseError, WireError
from .limits import JsonLimits, check_json

__all__ = [
    "ErrorObject",
    "Message",
    "decode_body",
    "encode",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_result",
]

RequestId = int | str


class ErrorObject(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class Message(msgspec.Struct, omit_defaults=True):
    """Any JSON-RPC message: request, notification or response."""

    jsonrpc: str
    id: RequestId | UnsetType | None = UNSET
    method: str | UnsetType = UNSET
    params: Raw | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: ErrorObject | UnsetType = UNSET

    @property
    def is_request(self) -> bool:
        return self.method is not UNSET and self.id is not UNSET

    @property
    def is_notification(self) -> bool:
        return self.method is not UNSET and self.id is UNSET

    @property
    def is_response(self) -> bool:
        return self.method is UNSET


class _Response(msgspec.Struct):
    jsonrpc: str
    id: RequestId | None
    result: Any


class _ErrorResponse(msgspec.Struct):
    jsonrpc: str
    id: RequestId | None
    error: ErrorObject


class _Request(msgspec.Struct, omit_defaults=True):
    jsonrpc: str
    id: RequestId
    method: str
    params: Any = None


class _Notification(msgspec.Struct, omit_defaults=True):
    jsonrpc: str
    method: str
    params: Any = None


_decoder: Final = msgspec.json.Decoder(Message | list[Message])
_any_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()
encode: Final = _encoder.encode


def decode_body(body: bytes, limits: JsonLimits | None = None) -> Message | list[Message]:
    """Decode a POST body; raise :class:`ParseError` or :class:`InvalidRequest`.

    With ``limits`` (what clients send), the body's depth, strings and item counts are
    checked first (:func:`~scalemcp.protocol.limits.check_json`).
    """
    try:  # RFC 8259: JSON is UTF-8. msgspec checks only the strings it decodes, so bad
        body.decode()  # bytes in params would fail later, in a handler's decoder.
    except UnicodeDecodeError as exc:
        raise ParseError(f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})"
                         ) from None
    if limits is not None:
        check_json(body, limits)
    try:
        decoded: Message | list[Message] = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"not a JSON-RPC 2.0 message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply") from None
    for message in decoded if isinstance(decoded, list) else (decoded,):
        _check(message)
    return decoded


def _check(message: Message) -> None:
    if message.jsonrpc != "2.0":
        raise InvalidRequest('"jsonrpc" must be "2.0"')
    if message.method is not UNSET:
        if message.id is None:
            raise InvalidRequest('request "id" must be a string or an integer, not null')
        if message.result is not UNSET or message.error is not UNSET:
            raise InvalidRequest("a request cannot carry a result or an error")
    elif (message.result is UNSET) == (message.error is UNSET):
        raise InvalidRequest('a response carries exactly one of "result" and "error"')
    elif message.id is UNSET:
        raise InvalidRequest('a response must carry an "id"')


def encode_result(request_id: RequestId | None, result: Any) -> bytes:
    return _encoder.encode(_Response("2.0", request_id, result))


def encode_error(request_id: RequestId | None, error: WireError) -> bytes:
    obj = ErrorObject(error.code, error.message, error.data)
    return _encoder.encode(_ErrorResponse("2.0", request_id, obj))


def encode_request(request_id: RequestId, method: str, params: Any = None) -> bytes:
    return _encoder.encode(_Request("2.0", request_id, method, params))


def encode_notification(method: str, params: Any = None) -> bytes:
    return _encoder.encode(_Notification("2.0", method, params))


def decode_any(data: bytes | Raw) -> Any:
    """Decode JSON into builtins (used for small, already size-checked payloads)."""
    try:
        return _any_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ParseError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply") from None
