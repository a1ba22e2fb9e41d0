"""Input limits, sans-IO: JSON shape (depth, strings, items) and request headers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalemcp.errors import InvalidRequest, ParseError
from scalemcp.protocol.jsonrpc import Message, decode_body
from scalemcp.protocol.limits import (
    HeaderLimits,
    JsonLimits,
    check_headers,
    check_json,
)

SMALL = JsonLimits(depth=4, string_chars=10, items=5)


def call(arguments: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "t", "arguments": arguments}}).encode()


# -- JSON: each limit, where it is hit, and just inside it ----------------------------------


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param(call({"a": [[1]]}), ("nested too deeply", "more than 4 levels",
                                          "$.params.arguments.a[0]", "max_json_depth"),
                     id="depth"),
        pytest.param(call({"msg": "x" * 11}), ("longer than 10 characters",
                                               "$.params.arguments.msg", "max_json_string_chars"),
                     id="string"),
        pytest.param(call({"k" * 11: 1}), ("longer than 10", "$.params.arguments (a key)"),
                     id="object-key"),
        pytest.param(call({"v": ["é" * 11]}), ("longer than 10", "$.params.arguments.v[0]"),
                     id="string-counted-in-characters"),
        pytest.param(call({"v": [1, 2, 3, 4, 5, 6]}), ("an array has more than 5 items",
                                                       "$.params.arguments.v", "max_json_items"),
                     id="array-items"),
        pytest.param(call({str(i): i for i in range(6)}), ("an object has more than 5 items",
                                                           "$.params.arguments"),
                     id="object-items"),
        pytest.param(json.dumps([{"jsonrpc": "2.0", "method": "n"}] * 6).encode(),
                     ("an array has more than 5 items at $ ",), id="batch"),
        pytest.param(b'"' + b"y" * 11 + b'"', ("longer than 10", "at $ "), id="top-level"),
    ],
)
def test_a_limit_is_an_invalid_request_naming_it(body: bytes, fragments: tuple[str, ...]) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_json(body, SMALL)
    assert (info.value.code, info.value.http_status) == (-32600, 400)
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    assert info.value.data["limit"] in info.value.message


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"a": [1]}, id="depth-4"),  # $ > params > arguments > a
        pytest.param({"m": "x" * 10}, id="string-10"),
        pytest.param({"m": "\\u00e9" * 10}, id="escaped-string-10"),
        pytest.param({"v": [1, 2, 3, 4, 5]}, id="items-5"),
    ],
)
def test_just_inside_every_limit_passes(arguments: Any) -> None:
    body = call(arguments).replace(b"\\\\u00e9", b"\\u00e9")  # a real escape: 6 bytes, 1 char
    check_json(body, SMALL)
    message = decode_body(body, SMALL)
    assert isinstance(message, Message)


@pytest.mark.parametrize(
    ("body", "limits", "limit"),
    [
        pytest.param(b"[1,2,3,4,5,6]", JsonLimits(depth=99, string_chars=99, items=5),
                     "max_json_items", id="items"),  # 5 commas, 6 items
        pytest.param(b"[[[[[]]]]]", JsonLimits(depth=4, string_chars=99, items=99),
                     "max_json_depth", id="depth"),
        pytest.param(b'"' + b"x" * 11 + b'"', JsonLimits(depth=99, string_chars=10, items=99),
                     "max_json_string_chars", id="string"),
    ],
)
def test_the_smallest_body_over_a_limit(body: bytes, limits: JsonLimits, limit: str) -> None:
    """Just over one limit, nothing else near a limit: the byte counts must not miss it."""
    with pytest.raises(InvalidRequest, match=limit):
        check_json(body, limits)


def test_deep_beyond_the_recursion_limit_is_a_depth_error() -> None:
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        check_json(b"[" * 100_000 + b"]" * 100_000, JsonLimits())


def test_numbers_beyond_a_float_are_not_a_shape_problem() -> None:
    """1e400 is valid JSON (a tool's decoder may refuse it): the check only counts."""
    body = call({"v": [1, 2, 3, 4, 5]}).replace(b"[1, 2, 3", b"[1e400, -1e999, " + b"9" * 400)
    check_json(body, SMALL)  # wide enough to be decoded
    with pytest.raises(InvalidRequest, match="max_json_items"):
        check_json(body.replace(b"5]", b"5, 6]"), SMALL)


def test_malformed_json_stays_a_parse_error() -> None:
    # Malformed and wide enough to be decoded by the check: the parse error wins.
    with pytest.raises(ParseError):
        check_json(b"[" + b"1," * 10, SMALL)
    # Too small to need the check: decode_body reports it.
    with pytest.raises(ParseError):
        decode_body(b'{"jsonrpc":', SMALL)


def test_small_bodies_are_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The byte counts clear an ordinary message without a second decode."""
    from scalemcp.protocol import limits

    class Refuse:
        def decode(self, body: bytes) -> Any:
            raise AssertionError("decoded")

    monkeypatch.setattr(limits, "_decoder", Refuse())
    check_json(call({"message": "hello", "n": [1, 2, 3]}), JsonLimits())
    with pytest.raises(AssertionError, match="decoded"):
        check_json(call({"n": list(range(20))}), SMALL)


# -- JSON: agrees with a direct reading of the limits, whatever the document ---------------


def shape(value: Any) -> tuple[int, int, int]:
    """(depth, longest string or key, most items) of a decoded JSON value."""
    if isinstance(value, str):
        return 0, len(value), 0
    if isinstance(value, list | dict):
        children = list(value.values()) if isinstance(value, dict) else value
        keys = [len(k) for k in value] if isinstance(value, dict) else []
        inner = [shape(c) for c in children]
        return (1 + max((d for d, _, _ in inner), default=0),
                max([*keys, *(s for _, s, _ in inner)], default=0),
                max([len(value), *(n for _, _, n in inner)]))
    return 0, 0, 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=7),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(1, 6), st.integers(0, 12), st.integers(0, 7))
def test_check_json_agrees_with_the_definition(value: Any, depth: int, chars: int,
                                               items: int) -> None:
    limits = JsonLimits(depth=depth, string_chars=chars, items=items)
    body = json.dumps(value, ensure_ascii=False).encode()
    got_depth, got_chars, got_items = shape(value)
    broken = got_depth > depth or got_chars > chars or got_items > items
    if broken:
        with pytest.raises(InvalidRequest):
            check_json(body, limits)
    else:
        check_json(body, limits)


# -- headers -------------------------------------------------------------------------------


LIMITS = HeaderLimits(total_bytes=300, count=5, param_headers=2)
BASE = [(b"host", b"example.com"), (b"accept", b"*/*")]


@pytest.mark.parametrize(
    ("extra", "status", "fragment"),
    [
        pytest.param([(b"x-a", b"1")] * 4, 431, "max_header_count", id="count"),
        pytest.param([(b"cookie", b"c" * 300)], 431, "max_header_bytes", id="bytes"),
        pytest.param([(b"mcp-param-a", b"1"), (b"mcp-param-b", b"2"), (b"mcp-param-c", b"3")],
                     400, "Mcp-Param-*", id="param-headers"),
        pytest.param([(b"last-event-id", b"p1:" + b"9" * 300)], 400, "Last-Event-ID",
                     id="last-event-id"),
    ],
)
def test_headers_over_a_limit(extra: list[tuple[bytes, bytes]], status: int,
                              fragment: str) -> None:
    problem = check_headers([*BASE, *extra], LIMITS)
    assert isinstance(problem, InvalidRequest)
    assert problem.http_status == status
    assert fragment in problem.message


def test_headers_at_the_limits_pass() -> None:
    headers = [*BASE, (b"mcp-param-a", b"1"), (b"mcp-param-b", b"2"),
               (b"last-event-id", b"p1:" + b"9" * 150)]
    assert check_headers(headers, LIMITS) is None
