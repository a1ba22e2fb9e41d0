"""Form elicitation: the ``requestedSchema`` subset of the spec, and checking answers to it.

A form's schema is a flat object whose properties are primitives (2025-06-18 onwards):
strings (``minLength``, ``maxLength``, ``format`` email/uri/date/date-time, ``enum`` or
titled ``oneOf`` consts), numbers and integers (``minimum``, ``maximum``), booleans, and
(2025-11-25) arrays of enum strings for multi-select (``minItems``, ``maxItems``).

:func:`check_answer` checks an accepted answer against the schema the server sent, so a
tool never sees content its own schema rules out; :func:`schema_for` makes that schema from
a msgspec Struct type.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec

__all__ = ["AnswerMismatch", "check_answer", "schema_for"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


class AnswerMismatch(ValueError):
    """The client's answer does not fit the requested schema; the message says where."""


def schema_for(tp: type[msgspec.Struct]) -> dict[str, Any]:
    """The flat form schema of a Struct type (properties, required)."""
    schema = msgspec.json.schema(tp)
    ref = schema.get("$ref", "")
    body: dict[str, Any] = schema.get("$defs", {}).get(ref.rpartition("/")[2], schema)
    out: dict[str, Any] = {"type": "object", "properties": body.get("properties", {})}
    if body.get("required"):
        out["required"] = body["required"]
    return out


def check_answer(content: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """``content`` if it fits ``schema``, keeping only the properties the schema names.

    Raises :class:`AnswerMismatch` naming the first property that does not fit.
    """
    if not isinstance(content, dict):
        raise AnswerMismatch(f"content must be an object, not {_kind(content)}")
    properties: dict[str, Any] = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in content or content[name] is None:
            raise AnswerMismatch(f"required property {name!r} is missing")
    kept: dict[str, Any] = {}
    for name, prop in properties.items():
        if name in content and content[name] is not None:
            _check_value(name, content[name], prop if isinstance(prop, dict) else {})
            kept[name] = content[name]
    return kept


def _check_value(name: str, value: Any, prop: dict[str, Any]) -> None:
    kind = prop.get("type")
    allowed = _allowed(prop)
    if kind == "array":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AnswerMismatch(f"{name!r} must be a list of strings, not {_kind(value)}")
        items = _allowed(prop.get("items") or {})
        bad = [v for v in value if items is not None and v not in items]
        if bad:
            raise AnswerMismatch(f"{name!r}: {bad[0]!r} is not one of {sorted(items or ())}")
        _bounds(name, len(value), prop.get("minItems"), prop.get("maxItems"), "items")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise AnswerMismatch(f"{name!r} must be a boolean, not {_kind(value)}")
    elif kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind == "integer" and not float(value).is_integer()):
            article = "an integer" if kind == "integer" else "a number"
            raise AnswerMismatch(f"{name!r} must be {article}, not {_kind(value)}")
        _bounds(name, value, prop.get("minimum"), prop.get("maximum"), "")
    elif kind == "string" or allowed is not None:
        if not isinstance(value, str):
            raise AnswerMismatch(f"{name!r} must be a string, not {_kind(value)}")
        if allowed is not None and value not in allowed:
            raise AnswerMismatch(f"{name!r}: {value!r} is not one of {sorted(allowed)}")
        _bounds(name, len(value), prop.get("minLength"), prop.get("maxLength"), "characters")
        _check_format(name, value, prop.get("format"))


def _allowed(prop: dict[str, Any]) -> set[Any] | None:
    """The values an enum property allows (``enum``, or ``oneOf``/``anyOf`` consts)."""
    if isinstance(prop.get("enum"), list):
        return set(prop["enum"])
    for key in ("oneOf", "anyOf"):
        options = prop.get(key)
        if isinstance(options, list):
            return {o.get("const") for o in options if isinstance(o, dict)}
    return None


def _bounds(name: str, value: float, low: Any, high: Any, unit: str) -> None:
    what = f"{value} {unit}".strip()
    if isinstance(low, int | float) and value < low:
        raise AnswerMismatch(f"{name!r}: {what} is less than the minimum {low}")
    if isinstance(high, int | float) and value > high:
        raise AnswerMismatch(f"{name!r}: {what} is more than the maximum {high}")


def _check_format(name: str, value: str, fmt: Any) -> None:
    ok = True
    if fmt == "email":
        ok = bool(_EMAIL.match(value))
    elif fmt == "uri":
        ok = bool(_URI.match(value))
    elif fmt in ("date", "date-time"):
        try:
            parse = dt.date.fromisoformat if fmt == "date" else dt.datetime.fromisoformat
            parse(value.replace("Z", "+00:00"))
        except ValueError:
            ok = False
    if not ok:
        raise AnswerMismatch(f"{name!r}: {value!r} is not a valid {fmt}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
