"""Input limits on JSON-RPC bodies and request headers (sans-IO).

``check_json`` bounds the shape of a message before it is decoded into Structs: nesting
depth, string length (object keys included) and the item count of any array or object,
anywhere in the message (tool arguments, sampling results, a batch itself). Most bodies
are shown safe by byte counts alone (C speed: a body with few brackets cannot be deep, one
with few commas has no long array, a short one has no long string); only the others are
decoded into builtins and walked, one level at a time. A violation is an
:class:`InvalidRequest` (-32600, HTTP 400) naming the limit, its setting and where in the
message it was hit; JSON that does not parse stays a :class:`ParseError` (-32700).

``check_headers`` bounds a request's header block (total size and count: HTTP 431) and
the MCP headers whose values are ours (Mcp-Session-Id, Last-Event-ID) or repeatable
(Mcp-Param-*: HTTP 400).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from ..errors import HeadersTooLarge, InvalidRequest, ParseError

__all__ = [
    "MAX_EVENT_ID_CHARS",
    "MAX_SESSION_ID_CHARS",
    "HeaderLimits",
    "JsonLimits",
    "check_headers",
    "check_json",
]

#: Our session ids are 32 characters; a longer one is unknown without a backend lookup.
MAX_SESSION_ID_CHARS: Final = 128
#: Our event ids are ``<stream>:<position>``, well under this.
MAX_EVENT_ID_CHARS: Final = 200

_decoder: Final = msgspec.json.Decoder()
_floats_as_text: Final = msgspec.json.Decoder(float_hook=len)  # only shapes matter here
_OPENERS: Final = (b"[", b"{")


class JsonLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Bounds on one JSON-RPC body; the setting names appear in error messages."""

    depth: int = 64
    string_chars: int = 1024 * 1024
    items: int = 10_000


def check_json(body: bytes, limits: JsonLimits) -> None:
    """Raise InvalidRequest if ``body`` breaks a limit (ParseError if it is not JSON)."""
    # Each count bounds what it measures: nesting <= brackets, items <= commas + 1,
    # characters of a string <= bytes of the body (escapes only make it shorter).
    deep = sum(body.count(b) for b in _OPENERS) > limits.depth
    long = len(body) > limits.string_chars
    wide = body.count(b",") >= limits.items
    if not (deep or long or wide):
        return
    try:
        try:
            root = _decoder.decode(body)
        except msgspec.ValidationError:  # e.g. 1e400: valid JSON, beyond a float
            root = _floats_as_text.decode(body)
    except msgspec.DecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise _too_deep(limits, "$") from None
    _walk(root, limits, check_strings=long)


def _walk(root: Any, limits: JsonLimits, *, check_strings: bool) -> None:
    """Breadth first, one nesting level per round; scalars are skipped at C speed."""
    if isinstance(root, str):
        _check_strings((root,), limits, root)
    level = [root] if isinstance(root, list | dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > limits.depth:
            raise _too_deep(limits, _path_to(root, level[0]))
        below: list[Any] = []
        for node in level:
            if len(node) > limits.items:
                kind = "an object has" if isinstance(node, dict) else "an array has"
                raise InvalidRequest(
                    f"{kind} more than {limits.items} items at {_path_to(root, node)} "
                    "(limit: max_json_items)", {"limit": "max_json_items", "max": limits.items})
            children = node.values() if isinstance(node, dict) else node
            kinds = set(map(type, children))
            if check_strings:
                if isinstance(node, dict):
                    _check_strings(node, limits, root)
                if str in kinds:
                    _check_strings(filter(str.__instancecheck__, children), limits, root)
            if list in kinds or dict in kinds:
                below.extend(c for c in children if isinstance(c, list | dict))
        level = below


def _check_strings(strings: Iterable[str], limits: JsonLimits, root: Any) -> None:
    if max(map(len, strings), default=0) > limits.string_chars:
        path = _path_to(root, lambda v: isinstance(v, str) and len(v) > limits.string_chars)
        raise InvalidRequest(
            f"a string is longer than {limits.string_chars} characters at {path} "
            "(limit: max_json_string_chars)",
            {"limit": "max_json_string_chars", "max": limits.string_chars})


def _too_deep(limits: JsonLimits, path: str) -> InvalidRequest:
    return InvalidRequest(
        f"JSON nested too deeply: more than {limits.depth} levels at {path} "
        "(limit: max_json_depth)", {"limit": "max_json_depth", "max": limits.depth})


def _path_to(root: Any, target: Any) -> str:
    """The JSON path of ``target`` (a node, or a predicate on keys and values) in ``root``.

    Only run to word an error, so it may be slow; the search depth is bounded by the
    walk that found the problem.
    """
    match = target if callable(target) else (lambda v: v is target)
    level: list[tuple[Any, str]] = [(root, "$")]
    while level:
        below: list[tuple[Any, str]] = []
        for node, path in level:
            if match(node):
                return path
            if isinstance(node, dict):
                for key, value in node.items():
                    if match(key):
                        return f"{path} (a key)"
                    below.append((value, f"{path}.{key}"))
            elif isinstance(node, list):
                below.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
        level = below
    return "$"


# -- headers ----------------------------------------------------------------------------


class HeaderLimits(msgspec.Struct, frozen=True, kw_only=True):
    total_bytes: int = 16 * 1024
    count: int = 100
    param_headers: int = 32


def check_headers(
    headers: Iterable[tuple[bytes, bytes]], limits: HeaderLimits
) -> InvalidRequest | None:
    """The error for the first limit the header block breaks, or None."""
    size = count = params = 0
    for name, value in headers:
        count += 1
        size += len(name) + len(value) + 4  # "name: value\r\n", as on the wire
        if name[:10].lower() == b"mcp-param-":
            params += 1
        elif name.lower() == b"last-event-id" and len(value) > MAX_EVENT_ID_CHARS:
            return InvalidRequest(f"Last-Event-ID is longer than {MAX_EVENT_ID_CHARS} "
                                  "characters: not an event id of this server")
    if count > limits.count:
        return HeadersTooLarge(f"the request has {count} headers; at most {limits.count} "
                               "are accepted (max_header_count)")
    if size > limits.total_bytes:
        return HeadersTooLarge(f"the request headers take {size} bytes; at most "
                               f"{limits.total_bytes} are accepted (max_header_bytes)")
    if params > limits.param_headers:
        return InvalidRequest(f"the request has {params} Mcp-Param-* headers; at most "
                              f"{limits.param_headers} are accepted (max_param_headers)")
    return None
