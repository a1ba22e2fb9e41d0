"""Elicitation answers and tool arguments made up from schemas, checked with a real validator."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from scalemcp.loadgen.answers import elicitation_result, fill_arguments, sample_value

PRIMITIVES: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "string", "minLength": 12},
    {"type": "string", "maxLength": 2},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uri"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "date-time"},
    {"type": "integer"},
    {"type": "integer", "minimum": 7, "maximum": 9},
    {"type": "integer", "maximum": -3},
    {"type": "integer", "exclusiveMinimum": 1.5},
    {"type": "number", "minimum": 0.25, "maximum": 0.5},
    {"type": "number", "exclusiveMaximum": 0},
    {"type": "boolean"},
    {"type": "string", "enum": ["red", "green"]},
    {"type": "string", "oneOf": [{"const": "a", "title": "A"}, {"const": "b", "title": "B"}]},
    {"type": "string", "enum": ["x", "y"], "enumNames": ["X", "Y"]},
    {"type": "array", "items": {"type": "string", "enum": ["p", "q", "r"]}, "minItems": 2},
    {"type": "array", "items": {"anyOf": [{"const": "p", "title": "P"}]}, "maxItems": 1},
    {"type": "string", "default": "kept"},
    {"anyOf": [{"type": "integer", "minimum": 3}, {"type": "null"}]},
]


@pytest.mark.parametrize("schema", PRIMITIVES)
def test_sample_values_satisfy_their_schema(schema: dict[str, Any]) -> None:
    value = sample_value(schema)
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(value)


def test_default_wins_and_enum_takes_the_first_option() -> None:
    assert sample_value({"type": "string", "default": "kept"}) == "kept"
    assert sample_value({"type": "string", "enum": ["red", "green"]}) == "red"
    assert sample_value({"type": "integer", "minimum": 7, "maximum": 9}) == 7


def test_elicitation_answer_fills_every_property_of_the_form() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "age": {"type": "integer", "minimum": 18},
            "email": {"type": "string", "format": "email"},
            "subscribe": {"type": "boolean"},
            "plan": {"type": "string", "enum": ["free", "pro"]},
        },
        "required": ["name", "age"],
    }
    result = elicitation_result({"message": "Who?", "requestedSchema": schema})
    assert result["action"] == "accept"
    assert set(result["content"]) == {"name", "age", "email", "subscribe", "plan"}
    jsonschema.validate(result["content"], schema)


def test_the_quickstart_ask_name_form_gets_its_name() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    result = elicitation_result({"message": "What is your name?", "requestedSchema": schema})
    assert isinstance(result["content"]["name"], str)
    assert result["content"]["name"]


def test_url_mode_is_accepted_without_content() -> None:
    assert elicitation_result({"mode": "url", "url": "https://x", "elicitationId": "1"}) == {
        "action": "accept"
    }


def test_fill_arguments_adds_only_missing_required_ones() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "string"}},
        "required": ["a", "b"],
    }
    assert fill_arguments(schema, {"a": 5}) == {"a": 5, "b": 1}
    assert fill_arguments({"type": "object"}, {"x": 1}) == {"x": 1}
    assert fill_arguments(None, {}) == {}
    jsonschema.validate(fill_arguments(schema, {}), schema)


def test_a_form_of_every_primitive_is_answered_validly() -> None:
    schema = {"type": "object", "properties": {f"p{i}": p for i, p in enumerate(PRIMITIVES)}}
    result = elicitation_result({"requestedSchema": schema})
    jsonschema.validate(json.loads(json.dumps(result["content"])), schema)
