"""JSON Schemas and argument decoders built from a function's type hints.

The same types give the tool's ``inputSchema`` and the msgspec decoder that validates
its arguments, so the advertised schema and the validation can never disagree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import msgspec

__all__ = ["ArgumentModel", "build_argument_model", "output_schema_for"]

_REF_PREFIX = "#/$defs/"


class ArgumentModel:
    """A Struct type made from a signature, with its schema and decoder."""

    def __init__(self, struct: type[msgspec.Struct], names: tuple[str, ...]) -> None:
        self.struct = struct
        self.names = names
        self.decoder = msgspec.json.Decoder(struct)
        self.schema = _inline_root(msgspec.json.schema(struct, ref_template=_REF_PREFIX + "{name}"))

    def decode(self, raw: bytes) -> dict[str, Any]:
        """Decode and validate arguments; raises msgspec.ValidationError / DecodeError."""
        obj = self.decoder.decode(raw)
        return {name: getattr(obj, name) for name in self.names}


def build_argument_model(
    fn: Callable[..., Any], name: str, skip: Callable[[Any], bool]
) -> ArgumentModel:
    """Build an ArgumentModel from ``fn``'s parameters, leaving out those ``skip`` marks."""
    hints = get_type_hints(fn, include_extras=True)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    names: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        if skip(annotation):
            continue
        names.append(param.name)
        if param.default is inspect.Parameter.empty:
            fields.append((param.name, annotation))
        else:
            fields.append((param.name, annotation, param.default))
    struct = msgspec.defstruct(
        _struct_name(name), fields, forbid_unknown_fields=False, kw_only=True
    )
    return ArgumentModel(struct, tuple(names))


def output_schema_for(tp: Any) -> dict[str, Any]:
    return _inline_root(msgspec.json.schema(tp, ref_template=_REF_PREFIX + "{name}"))


def _struct_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name)
    return f"{cleaned}_arguments"


def _inline_root(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec puts a Struct's own schema under $defs and $refs it; MCP wants it inline."""
    ref = schema.get("$ref")
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        root = dict(defs.pop(ref[len(_REF_PREFIX):]))
        root.pop("title", None)
        if defs:
            root["$defs"] = defs
        return root
    return schema
