"""Modern-era request headers (spec 5.3): Mcp-Method, Mcp-Name, Mcp-Param-*, base64 sentinel.

Pure functions: the transport passes the headers and the decoded body fields in and gets
a :class:`HeaderMismatch` (HTTP 400, -32020) or nothing back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ..errors import HeaderMismatch

__all__ = [
    "check_param_headers",
    "check_request_headers",
    "check_version_header",
    "decode_header_value",
]

_NAMED_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri",
                  "tasks/get": "taskId", "tasks/update": "taskId", "tasks/cancel": "taskId"}
_PREFIX, _SUFFIX = "=?base64?", "?="


def decode_header_value(value: str) -> str:
    """Decode the ``=?base64?...?=`` sentinel; other values pass through unchanged."""
    if value.startswith(_PREFIX) and value.endswith(_SUFFIX) and len(value) >= 11:
        encoded = value[len(_PREFIX) : -len(_SUFFIX)]
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise HeaderMismatch(f"header value {value!r} is not valid base64 UTF-8") from None
    # (isprintable() is True for none of them: the exact test only runs when it is False)
    if not value.isprintable() and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise HeaderMismatch("header value holds control characters")
    return value


def check_version_header(headers: Mapping[str, str], version: str) -> None:
    """MCP-Protocol-Version must be present and equal to ``_meta``'s protocolVersion."""
    header_version = headers.get("mcp-protocol-version")
    if header_version is None:
        raise HeaderMismatch("missing MCP-Protocol-Version header")
    if header_version.strip() != version:
        raise HeaderMismatch(
            f"MCP-Protocol-Version header {header_version!r} does not match "
            f"_meta protocolVersion {version!r}"
        )


def check_request_headers(headers: Mapping[str, str], method: str, name: str | None) -> None:
    """Mcp-Method always; Mcp-Name for tools/call, prompts/get and resources/read."""
    header_method = headers.get("mcp-method")
    if header_method is None:
        raise HeaderMismatch("missing Mcp-Method header")
    if decode_header_value(header_method.strip()) != method:
        raise HeaderMismatch(f"Mcp-Method header {header_method!r} does not match {method!r}")
    field = _NAMED_METHODS.get(method)
    if field is None:
        return
    header_name = headers.get("mcp-name")
    if header_name is None:
        raise HeaderMismatch(f"missing Mcp-Name header (params.{field} of {method})")
    if decode_header_value(header_name.strip()) != name:
        raise HeaderMismatch(f"Mcp-Name header does not match params.{field}")


def check_param_headers(
    headers: Mapping[str, str], mapping: Mapping[str, str], arguments: Mapping[str, Any]
) -> None:
    """Check ``Mcp-Param-<Name>`` headers for params marked ``x-mcp-header: <Name>``."""
    for param, header in mapping.items():
        value = arguments.get(param)
        sent = headers.get(f"mcp-param-{header.lower()}")
        if value is None:
            continue
        if sent is None:
            raise HeaderMismatch(f"missing Mcp-Param-{header} header for argument {param!r}")
        decoded = decode_header_value(sent)
        if not _same(decoded, value):
            raise HeaderMismatch(f"Mcp-Param-{header} header does not match argument {param!r}")


def _same(header: str, value: Any) -> bool:
    if isinstance(value, bool):
        return header.lower() == ("true" if value else "false")
    if isinstance(value, int):
        try:
            return int(header) == value
        except ValueError:
            return False
    return header == str(value)
