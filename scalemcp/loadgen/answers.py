"""Values a bench client makes up from a JSON Schema: elicitation answers and tool arguments.

Sans-IO. `elicitation_result` answers an ``elicitation/create`` the way a user
who fills in every field of the form would: each property of the requested
schema (the spec's flat object of primitives) gets its ``default`` when it has
one, else a value of its type that meets its constraints: the first ``enum`` /
``oneOf`` option, a string of ``minLength`` or in its ``format`` (email, uri,
date, date-time), a number within ``minimum``/``maximum``, ``True`` for a
boolean, ``minItems`` options for a multi-select. `fill_arguments` does the
same for the required properties a tool's ``inputSchema`` asks for and the
given arguments lack.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["elicitation_result", "fill_arguments", "sample_value"]

_FORMATS: dict[str, str] = {
    "email": "bench@example.com",
    "uri": "https://example.com/bench",
    "date": "2025-01-01",
    "date-time": "2025-01-01T00:00:00Z",
}


def _options(schema: dict[str, Any]) -> list[Any]:
    """The allowed values of a single-select enum (untitled, titled or legacy), if any."""
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    for key in ("oneOf", "anyOf"):
        choices = schema.get(key)
        if isinstance(choices, list):
            return [c["const"] for c in choices if isinstance(c, dict) and "const" in c]
    if "const" in schema:
        return [schema["const"]]
    return []


def _string(schema: dict[str, Any]) -> str:
    text = _FORMATS.get(str(schema.get("format")), "bench")
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if high is not None and len(text) > int(high):
        text = text[: int(high)]
    return text


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if integer:
        value = 1
        if lo is not None:
            value = max(value, math.ceil(lo))
        if xlo is not None:
            value = max(value, math.floor(xlo) + 1)
        if hi is not None:
            value = min(value, math.floor(hi))
        if xhi is not None:
            value = min(value, math.ceil(xhi) - 1)
        return value
    low: float | None = lo if lo is not None else xlo
    high: float | None = hi if hi is not None else xhi
    if low is not None and high is not None:
        return (low + high) / 2
    if low is not None:
        return low + 1
    return high - 1 if high is not None else 1


def _array(schema: dict[str, Any]) -> list[Any]:
    items = schema.get("items")
    items = items if isinstance(items, dict) else {}
    count = max(int(schema.get("minItems", 1)), 1)
    if schema.get("maxItems") is not None:
        count = min(count, int(schema["maxItems"]))
    choices = _options(items)
    if choices:
        return choices[:count]
    return [sample_value(items) for _ in range(count)]


def sample_value(schema: Any) -> Any:
    """A value that ``schema`` accepts (see the module docstring); ``"bench"`` if unsure."""
    if not isinstance(schema, dict):
        return "bench"
    if "default" in schema:
        return schema["default"]
    options = _options(schema)
    if options:
        return options[0]
    for key in ("anyOf", "oneOf"):  # a union of types: the first that is not null
        subs = [s for s in schema.get(key) or () if isinstance(s, dict)]
        if subs:
            real = [s for s in subs if s.get("type") != "null"]
            return sample_value((real or subs)[0])
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: take the first real type
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "array":
        return _array(schema)
    if kind == "object":
        return fill_arguments(schema, {})
    if kind == "null":
        return None
    return "bench"


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def fill_arguments(schema: Any, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` plus a sample value for each required property of ``schema`` it lacks."""
    if not isinstance(schema, dict):
        return dict(given)
    props = _properties(schema)
    required = schema.get("required")
    filled = dict(given)
    for name in required if isinstance(required, list) else []:
        if isinstance(name, str) and name not in filled:
            filled[name] = sample_value(props.get(name, {}))
    return filled


def elicitation_result(params: dict[str, Any]) -> dict[str, Any]:
    """The result for an ``elicitation/create`` with these params: accept, every field filled.

    URL-mode requests (2025-11-25) are accepted without content, as consent.
    """
    if params.get("mode") == "url":
        return {"action": "accept"}
    schema = params.get("requestedSchema")
    content = fill_arguments(schema, {})
    for name, prop in _properties(schema if isinstance(schema, dict) else {}).items():
        if name not in content:
            content[name] = sample_value(prop)
    return {"action": "accept", "content": content}
