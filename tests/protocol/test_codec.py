"""The sans-IO codecs: JSON-RPC envelopes, SSE framing, list cursors.

Table-driven cases pin the exact behaviour for each message shape; hypothesis checks that
no input at all makes ``decode_body`` raise anything but a ``ProtocolError`` (a stray
``ValueError`` or ``RecursionError`` there becomes an HTTP 500), and that what we encode
decodes back to the same thing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from scalemcp.app.pagination import paginate
from scalemcp.errors import (
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    ProtocolError,
    ResourceNotFound,
)
from scalemcp.protocol import jsonrpc
from scalemcp.protocol.jsonrpc import Message, decode_body
from scalemcp.protocol.sse import KEEPALIVE, format_event, make_event_id, parse_event_id

#: Robustness properties get more examples than round trips.
SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ROUND_TRIP = settings(SETTINGS, max_examples=100)


def _decoded_params(message: Message) -> Any:
    assert message.params is not UNSET
    return jsonrpc.decode_any(message.params)


# -- decode_body: well-formed messages ----------------------------------------------------


def test_decode_request_with_int_id_and_params() -> None:
    message = decode_body(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"x"}}')
    assert isinstance(message, Message)
    assert message.is_request
    assert not message.is_notification
    assert not message.is_response
    assert message.id == 7
    assert message.method == "tools/list"
    assert _decoded_params(message) == {"cursor": "x"}
    assert message.result is UNSET
    assert message.error is UNSET


def test_decode_request_with_string_id_and_no_params() -> None:
    message = decode_body(b'{"jsonrpc":"2.0","id":"abc","method":"ping"}')
    assert isinstance(message, Message)
    assert message.is_request
    assert message.id == "abc"
    assert message.params is UNSET


def test_decode_request_keeps_params_raw_and_untouched() -> None:
    raw = b'{"b":[1,2,{"c":null}],"a":"\\u00e9"}'
    message = decode_body(b'{"jsonrpc":"2.0","id":1,"method":"m","params":' + raw + b"}")
    assert isinstance(message, Message)
    assert isinstance(message.params, msgspec.Raw)
    assert bytes(message.params) == raw


def test_decode_notification() -> None:
    message = decode_body(
        b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}'
    )
    assert isinstance(message, Message)
    assert message.is_notification
    assert not message.is_request
    assert message.id is UNSET
    assert _decoded_params(message) == {"requestId": 3}


def test_decode_result_response() -> None:
    message = decode_body(b'{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept"}}')
    assert isinstance(message, Message)
    assert message.is_response
    assert message.id == "srv-1"
    assert message.result is not UNSET
    assert jsonrpc.decode_any(message.result) == {"action": "accept"}
    assert message.error is UNSET


def test_decode_error_response() -> None:
    message = decode_body(
        b'{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"nope","data":{"x":1}}}'
    )
    assert isinstance(message, Message)
    assert message.is_response
    assert message.error is not UNSET
    assert message.error.code == -32601
    assert message.error.message == "nope"
    assert message.error.data == {"x": 1}


def test_decode_error_response_with_null_id() -> None:
    """Errors for unreadable requests may carry a null id (spec 3.1)."""
    message = decode_body(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}')
    assert isinstance(message, Message)
    assert message.is_response
    assert message.id is None


def test_decode_batch_of_mixed_messages() -> None:
    body = (
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"},'
        b'{"jsonrpc":"2.0","method":"notifications/initialized"},'
        b'{"jsonrpc":"2.0","id":"s1","result":{}}]'
    )
    batch = decode_body(body)
    assert isinstance(batch, list)
    assert [m.is_request for m in batch] == [True, False, False]
    assert [m.is_notification for m in batch] == [False, True, False]
    assert [m.is_response for m in batch] == [False, False, True]


def test_decode_empty_batch_is_an_empty_list() -> None:
    """The transport rejects it; the codec just reports what it saw."""
    assert decode_body(b"[]") == []


def test_decode_tolerates_whitespace_and_unknown_members() -> None:
    message = decode_body(b' \n{ "jsonrpc" : "2.0", "id" : 1, "method" : "ping", "x": [1] }\n')
    assert isinstance(message, Message)
    assert message.is_request


# -- decode_body: malformed input -----------------------------------------------------------

PARSE_ERRORS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="whitespace"),
    pytest.param(b"{", id="truncated-object"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping"', id="unterminated"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping"}}', id="trailing-garbage"),
    pytest.param(b'{"jsonrpc":"2.0" "id":1}', id="missing-comma"),
    pytest.param(b"{'jsonrpc':'2.0'}", id="single-quotes"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping",}', id="trailing-comma"),
    pytest.param(b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}', id="nan"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b'{"jsonrpc":"2.0","id":"\\ud800","method":"x"}', id="lone-surrogate"),
    pytest.param(b"nul\x00", id="nul-byte"),
    pytest.param(b'[{"jsonrpc":"2.0","id":1,"method":"ping"},', id="truncated-batch"),
]


@pytest.mark.parametrize("body", PARSE_ERRORS)
def test_malformed_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        decode_body(body)
    assert info.value.code == -32700
    assert info.value.http_status == 400
    assert info.value.message.startswith("malformed JSON")


INVALID_REQUESTS = [
    pytest.param(b'"ping"', "Expected `object | array`", id="string"),
    pytest.param(b"42", "Expected `object | array`", id="number"),
    pytest.param(b"null", "Expected `object | array`", id="null"),
    pytest.param(b"true", "Expected `object | array`", id="bool"),
    pytest.param(b"{}", "missing required field `jsonrpc`", id="empty-object"),
    pytest.param(b'{"id":1,"method":"ping"}', "missing required field `jsonrpc`", id="no-jsonrpc"),
    pytest.param(b'{"jsonrpc":2,"id":1,"method":"ping"}', "`$.jsonrpc`", id="jsonrpc-number"),
    pytest.param(b'{"jsonrpc":"1.0","id":1,"method":"ping"}', '"jsonrpc" must be "2.0"',
                 id="jsonrpc-1.0"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"method":5}', "`$.method`", id="method-number"),
    pytest.param(b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', "`$.id`", id="id-float"),
    pytest.param(b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', "`$.id`", id="id-array"),
    pytest.param(b'{"jsonrpc":"2.0","id":{},"method":"ping"}', "`$.id`", id="id-object"),
    pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"ping"}', "`$.id`", id="id-bool"),
    pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"ping"}', "not null", id="id-null"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}',
                 "cannot carry a result", id="request-with-result"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":1,"message":"m"}}',
                 "cannot carry a result or an error", id="request-with-error"),
    pytest.param(b'{"jsonrpc":"2.0","id":1}', "exactly one of", id="response-without-result"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}',
                 "exactly one of", id="response-with-both"),
    pytest.param(b'{"jsonrpc":"2.0","result":{}}', 'must carry an "id"', id="response-without-id"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"error":{"message":"m"}}', "`code`",
                 id="error-without-code"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}',
                 "`$.error.code`", id="error-code-string"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,"error":"bad"}', "`$.error`", id="error-string"),
    pytest.param(b"[1]", "`$[0]`", id="batch-of-number"),
    pytest.param(b'[{"jsonrpc":"2.0","id":1,"method":"ping"},"x"]', "`$[1]`",
                 id="batch-with-string"),
    pytest.param(b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"1.0","method":"x"}]',
                 '"jsonrpc" must be "2.0"', id="batch-with-bad-version"),
    pytest.param(b"[[]]", "`$[0]`", id="nested-batch"),
]


@pytest.mark.parametrize(("body", "fragment"), INVALID_REQUESTS)
def test_wrong_shape_is_an_invalid_request_naming_the_problem(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_body(body)
    assert info.value.code == -32600
    assert info.value.http_status == 400
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="top-level-arrays"),
        pytest.param(
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":'
            + b"[" * 100_000 + b"]" * 100_000 + b"}}",
            id="nested-in-params",
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":1,"method":"m","params":' + b'{"a":' * 50_000
            + b"1" + b"}" * 50_000 + b"}",
            id="nested-objects",
        ),
        pytest.param(b"[" * 100_000, id="unterminated-nesting"),
    ],
)
def test_deep_nesting_is_a_protocol_error_not_a_crash(body: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_body(body)
    assert info.value.code in (-32700, -32600)
    assert info.value.http_status == 400
    assert "nested too deeply" in info.value.message or "Expected" in info.value.message


def test_moderate_nesting_still_decodes() -> None:
    nested: Any = 1
    for _ in range(200):
        nested = [nested]
    body = jsonrpc.encode_request(1, "m", {"v": nested})
    message = decode_body(body)
    assert isinstance(message, Message)
    assert _decoded_params(message) == {"v": nested}


# -- decode_body: properties ---------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_protocol_errors(body: bytes) -> None:
    outcome = _decode_or_error(body)
    if isinstance(outcome, ProtocolError):
        assert outcome.code in (-32700, -32600)
        assert outcome.message
    else:
        assert isinstance(outcome, Message | list)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
#: Objects that look a lot like JSON-RPC messages, with each member sometimes wrong.
message_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", ""]) | json_values,
        "id": st.integers() | st.text(max_size=5) | json_values,
        "method": st.text(max_size=10) | json_values,
        "params": json_values,
        "result": json_values,
        "error": st.fixed_dictionaries(
            {}, optional={"code": st.integers() | json_values, "message": json_values,
                          "data": json_values}
        ) | json_values,
    },
)


def _decode_or_error(body: bytes) -> Message | list[Message] | ProtocolError:
    """decode_body's answer, or the ProtocolError it raised (anything else propagates)."""
    try:
        return decode_body(body)
    except ProtocolError as exc:
        return exc


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


@SETTINGS
@given(json_values | message_like | st.lists(message_like, max_size=4))
def test_random_json_only_raises_protocol_errors(value: Any) -> None:
    decoded = _decode_or_error(_json_bytes(value))
    if isinstance(decoded, ProtocolError):
        assert type(decoded) in (ParseError, InvalidRequest)
        assert decoded.message
        return
    # Whatever was accepted is a well-formed JSON-RPC 2.0 message (or a batch of them).
    for message in decoded if isinstance(decoded, list) else [decoded]:
        assert message.jsonrpc == "2.0"
        kinds = [message.is_request, message.is_notification, message.is_response]
        assert kinds.count(True) == 1
        if message.method is not UNSET:
            assert isinstance(message.id, int | str) or message.id is UNSET
        else:
            assert (message.result is UNSET) != (message.error is UNSET)


@SETTINGS
@given(st.text(max_size=200))
def test_random_text_only_raises_protocol_errors(text: str) -> None:
    outcome = _decode_or_error(text.encode("utf-8", "surrogatepass"))
    assert isinstance(outcome, ProtocolError | Message | list)


# -- encode / decode round trips ------------------------------------------------------------

request_ids = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=20)
methods = st.text(min_size=1, max_size=30)
params_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


def _same_json(a: Any, b: Any) -> bool:
    """Equality that treats -0.0 == 0.0 and int/float like JSON does."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@ROUND_TRIP
@given(request_ids, methods, params_objects)
def test_request_round_trip(request_id: int | str, method: str, params: dict[str, Any]) -> None:
    message = decode_body(jsonrpc.encode_request(request_id, method, params))
    assert isinstance(message, Message)
    assert message.is_request
    assert message.id == request_id
    assert message.method == method
    assert _same_json(_decoded_params(message), params)


@ROUND_TRIP
@given(request_ids, methods)
def test_request_without_params_omits_them(request_id: int | str, method: str) -> None:
    encoded = jsonrpc.encode_request(request_id, method)
    assert b'"params"' not in encoded
    message = decode_body(encoded)
    assert isinstance(message, Message)
    assert message.params is UNSET


@ROUND_TRIP
@given(methods, st.none() | params_objects)
def test_notification_round_trip(method: str, params: dict[str, Any] | None) -> None:
    message = decode_body(jsonrpc.encode_notification(method, params))
    assert isinstance(message, Message)
    assert message.is_notification
    assert message.method == method
    if params is None:
        assert message.params is UNSET
    else:
        assert _same_json(_decoded_params(message), params)


@ROUND_TRIP
@given(request_ids, json_values)
def test_result_round_trip(request_id: int | str, result: Any) -> None:
    message = decode_body(jsonrpc.encode_result(request_id, result))
    assert isinstance(message, Message)
    assert message.is_response
    assert message.id == request_id
    assert message.result is not UNSET
    assert _same_json(jsonrpc.decode_any(message.result), result)


ERROR_TYPES = st.sampled_from(
    [ParseError, InvalidRequest, MethodNotFound, InvalidParams, ResourceNotFound, ProtocolError]
)


@ROUND_TRIP
@given(st.none() | request_ids, ERROR_TYPES, st.text(max_size=40), st.none() | params_objects)
def test_error_round_trip(
    request_id: int | str | None, kind: type[ProtocolError], text: str, data: Any
) -> None:
    encoded = jsonrpc.encode_error(request_id, kind(text, data))
    if data is None:
        assert b'"data"' not in encoded
    message = decode_body(encoded)
    assert isinstance(message, Message)
    assert message.is_response
    assert message.id == request_id
    assert message.error is not UNSET
    assert message.error.code == kind.code
    assert message.error.message == text
    assert _same_json(message.error.data, data)


def test_encoded_messages_are_compact_json_without_raw_newlines() -> None:
    encoded = jsonrpc.encode_result(1, {"text": "a\nb\r\nc"})
    assert b"\n" not in encoded
    assert b"\r" not in encoded
    assert json.loads(encoded) == {"jsonrpc": "2.0", "id": 1, "result": {"text": "a\nb\r\nc"}}


def test_message_reencodes_to_an_equivalent_message() -> None:
    """The session service forwards client answers with ``encode(message)``."""
    body = b'{"jsonrpc":"2.0","id":"srv-x","result":{"action":"accept","content":{"a":1}}}'
    message = decode_body(body)
    assert json.loads(jsonrpc.encode(message)) == json.loads(body)


def test_decode_any_reports_malformed_json_as_parse_error() -> None:
    assert jsonrpc.decode_any(b'{"a":[1]}') == {"a": [1]}
    with pytest.raises(ParseError):
        jsonrpc.decode_any(b'{"a":')


# -- SSE framing ----------------------------------------------------------------------------


def _parse_sse(frame: bytes) -> list[dict[str, str]]:
    """A minimal SSE parser (WHATWG rules for the fields we use)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    data: list[str] = []
    for line in frame.decode().split("\n"):
        if line == "":
            if current or data:
                if data:
                    current["data"] = "\n".join(data)
                events.append(current)
            current, data = {}, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        else:
            current[field] = value
    assert not current, "frame must end with a blank line"
    assert not data, "frame must end with a blank line"
    return events


def test_format_event_with_every_field() -> None:
    frame = format_event(b'{"a":1}', event_id="p1:3", event="message", retry_ms=1500)
    assert frame == b'id: p1:3\nevent: message\nretry: 1500\ndata: {"a":1}\n\n'
    assert _parse_sse(frame) == [
        {"id": "p1:3", "event": "message", "retry": "1500", "data": '{"a":1}'}
    ]


def test_format_event_data_only() -> None:
    assert format_event(b"x") == b"data: x\n\n"


def test_priming_event_has_an_id_and_empty_data() -> None:
    frame = format_event(b"", event_id="p9:1", retry_ms=0)
    assert frame == b"id: p9:1\nretry: 0\ndata: \n\n"
    assert _parse_sse(frame) == [{"id": "p9:1", "retry": "0", "data": ""}]


def test_format_event_splits_newlines_into_data_lines() -> None:
    frame = format_event(b"one\ntwo\n\nfour", event_id="s:1")
    assert frame == b"id: s:1\ndata: one\ndata: two\ndata: \ndata: four\n\n"
    assert _parse_sse(frame) == [{"id": "s:1", "data": "one\ntwo\n\nfour"}]


def test_keepalive_is_a_comment() -> None:
    assert KEEPALIVE.startswith(b":")
    assert KEEPALIVE.endswith(b"\n\n")
    assert _parse_sse(KEEPALIVE) == []


@ROUND_TRIP
@given(
    st.text(alphabet=st.characters(blacklist_characters="\r", blacklist_categories=["Cs"]),
            max_size=80),
    st.none() | st.from_regex(r"[A-Za-z0-9]{1,10}:[0-9]{1,6}", fullmatch=True),
)
def test_format_event_round_trips_through_an_sse_parser(text: str, event_id: str | None) -> None:
    events = _parse_sse(format_event(text.encode(), event_id=event_id, event="message"))
    assert len(events) == 1
    assert events[0]["data"] == text
    assert events[0].get("id") == event_id
    assert events[0]["event"] == "message"


@ROUND_TRIP
@given(json_values)
def test_encoded_json_is_always_one_sse_data_line(value: Any) -> None:
    frame = format_event(jsonrpc.encode_notification("m", {"v": value}), event_id="a:1")
    assert frame.count(b"\ndata: ") == 1
    (event,) = _parse_sse(frame)
    assert json.loads(event["data"])["params"]["v"] == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("p0123abcd:1", ("p0123abcd", "1")),
        ("g1:42", ("g1", "42")),
        ("s:1-0", ("s", "1-0")),
        ("stream:12:34", ("stream", "12:34")),
    ],
)
def test_parse_event_id_accepts_ours(value: str, expected: tuple[str, str]) -> None:
    assert parse_event_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("12345", id="no-colon"),
        pytest.param(":5", id="no-stream"),
        pytest.param("p1:", id="no-position"),
        pytest.param(":", id="colon-only"),
        pytest.param("p" * 199 + ":12", id="too-long"),
        pytest.param("p1:\x00", id="nul"),
        pytest.param("p1:2\n3", id="newline"),
        pytest.param("pé:1", id="non-ascii"),
        pytest.param("p1:\u202e1", id="bidi-control"),
    ],
)
def test_parse_event_id_rejects_foreign_values(value: str) -> None:
    assert parse_event_id(value) is None


@ROUND_TRIP
@given(
    st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
    st.from_regex(r"[0-9]{1,20}(-[0-9]{1,5})?", fullmatch=True),
)
def test_event_ids_round_trip(stream: str, position: str) -> None:
    assert parse_event_id(make_event_id(stream, position)) == (stream, position)


@SETTINGS
@given(st.text(max_size=300))
def test_parse_event_id_never_raises(value: str) -> None:
    parsed = parse_event_id(value)
    if parsed is not None:
        stream, position = parsed
        assert stream
        assert position
        assert ":" not in stream
        assert make_event_id(stream, position) == value


# -- pagination cursors ---------------------------------------------------------------------


def _walk(items: list[int], page_size: int) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | msgspec.UnsetType = UNSET
    while True:
        page, cursor = paginate(items, cursor, page_size)
        pages.append(list(page))
        if cursor is UNSET:
            return pages
        assert isinstance(cursor, str)
        assert len(pages) <= len(items) + 1, "pagination does not terminate"


def test_first_page_and_cursor() -> None:
    page, cursor = paginate(list(range(5)), UNSET, 2)
    assert list(page) == [0, 1]
    assert isinstance(cursor, str)
    page, cursor2 = paginate(list(range(5)), cursor, 2)
    assert list(page) == [2, 3]
    page, last = paginate(list(range(5)), cursor2, 2)
    assert list(page) == [4]
    assert last is UNSET


def test_exact_multiple_has_no_trailing_empty_page() -> None:
    assert _walk(list(range(4)), 2) == [[0, 1], [2, 3]]


def test_empty_list_is_one_empty_page() -> None:
    assert _walk([], 3) == [[]]


@ROUND_TRIP
@given(st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=10))
def test_walking_all_pages_yields_every_item_once(count: int, page_size: int) -> None:
    items = list(range(count))
    pages = _walk(items, page_size)
    assert [x for page in pages for x in page] == items
    assert all(1 <= len(p) <= page_size for p in pages) or pages == [[]]


def test_cursors_are_opaque_url_safe_strings() -> None:
    _, cursor = paginate(list(range(300)), UNSET, 100)
    assert isinstance(cursor, str)
    assert cursor.isascii()
    assert all(ch.isalnum() or ch in "-_" for ch in cursor)
    assert "100" not in cursor  # not a bare offset a client would be tempted to compute


def _b64(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode("latin-1")).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("a", id="bad-padding"),
        pytest.param(_b64("x:1"), id="wrong-tag"),
        pytest.param(_b64("o"), id="no-offset"),
        pytest.param(_b64("o:"), id="empty-offset"),
        pytest.param(_b64("o:abc"), id="non-numeric"),
        pytest.param(_b64("o:-1"), id="negative"),
        pytest.param(_b64("o:1.5"), id="fraction"),
        pytest.param(_b64("o:11"), id="past-the-end"),
        pytest.param(_b64("o:" + "9" * 5000), id="huge-number"),
        pytest.param(_b64("o:\xff"), id="not-utf8"),
        pytest.param("o:1", id="plain-text"),
    ],
)
def test_invalid_cursor_is_invalid_params(cursor: str) -> None:
    with pytest.raises(InvalidParams) as info:
        paginate(list(range(10)), cursor, 3)
    assert info.value.code == -32602
    assert "cursor" in info.value.message


@SETTINGS
@given(st.text(max_size=60))
def test_any_cursor_gives_a_page_or_invalid_params(cursor: str) -> None:
    items = list(range(10))
    try:
        page, _ = paginate(items, cursor, 3)
    except InvalidParams:
        return
    assert len(page) <= 3
    assert all(x in items for x in page)
