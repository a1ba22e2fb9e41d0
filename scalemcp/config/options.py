"""Flat options: the one list the CLI, the environment, TOML files and the docs read.

Each :class:`Option` is one field of one section of :class:`~.settings.Config`, named as the
user writes it (``redis_url``, ``--redis-url``, ``SCALEMCP_REDIS_URL``). Values from every
source are merged (CLI flag > environment > TOML file > default) and validated by msgspec
in one pass; an error names the setting as the user wrote it and where it came from.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from .settings import Config

__all__ = ["OPTIONS", "SECTION_TITLES", "Option", "build", "flatten", "load_config", "option"]

Kind = Literal["bool", "list", "value"]


class Option(msgspec.Struct, frozen=True):
    """One setting as users name it, and where it lives in :class:`Config`."""

    name: str
    section: str
    field: str
    kind: Kind
    default: Any
    description: str
    #: The values a Literal setting accepts (matched in any case), else ().
    choices: tuple[str, ...] = ()
    #: "integer", "number", "string", "boolean", "list of strings", with bounds.
    type_text: str = "string"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "SCALEMCP_" + self.name.upper()


def _options() -> tuple[Option, ...]:
    found: list[Option] = []
    config_info = mi.type_info(Config)
    assert isinstance(config_info, mi.StructType)
    for section in config_info.fields:
        section_info = section.type
        assert isinstance(section_info, mi.StructType)
        prefix: str = getattr(section_info.cls, "prefix", "")
        for field in section_info.fields:
            meta = field.type
            assert isinstance(meta, mi.Metadata), f"{section.name}.{field.name}: no description"
            description = (meta.extra_json_schema or {}).get("description")
            assert description, f"{section.name}.{field.name}: no description"
            name = (meta.extra or {}).get("option") or prefix + field.name
            tp = meta.type
            found.append(Option(
                name=name, section=section.name, field=field.name, kind=_kind(tp),
                default=field.default if field.default is not msgspec.NODEFAULT
                else field.default_factory(), description=description,
                choices=_choices(tp), type_text=_type_text(tp)))
    names = [o.name for o in found]
    assert len(names) == len(set(names)), "two settings share an option name"
    return tuple(found)


def _bare(tp: mi.Type) -> tuple[mi.Type, bool]:
    """The type without Optional, and whether it was optional."""
    if isinstance(tp, mi.UnionType):
        members = [t for t in tp.types if not isinstance(t, mi.NoneType)]
        return members[0], len(members) < len(tp.types)
    return tp, False


def _kind(tp: mi.Type) -> Kind:
    tp, _ = _bare(tp)
    if isinstance(tp, mi.BoolType):
        return "bool"
    return "list" if isinstance(tp, mi.ListType) else "value"


def _choices(tp: mi.Type) -> tuple[str, ...]:
    tp, _ = _bare(tp)
    return tuple(str(v) for v in tp.values) if isinstance(tp, mi.LiteralType) else ()


def _type_text(tp: mi.Type) -> str:
    tp, optional = _bare(tp)
    if isinstance(tp, mi.LiteralType):
        text = "one of " + ", ".join(f"`{v}`" for v in tp.values)
    elif isinstance(tp, mi.ListType):
        text = "list of strings"
    elif isinstance(tp, mi.IntType | mi.FloatType):
        text = ("integer" if isinstance(tp, mi.IntType) else "number") + _bounds(tp)
    else:
        text = {mi.StrType: "string", mi.BoolType: "boolean"}.get(type(tp), str(tp))
    return text + (" or unset" if optional else "")


def _bounds(info: mi.IntType | mi.FloatType) -> str:
    if info.ge is not None and info.le is not None:
        return f", {info.ge} to {info.le}"
    parts = [f"{op} {value}" for op, value in
             (("≥", info.ge), (">", info.gt), ("≤", info.le), ("<", info.lt))
             if value is not None]
    return ", " + ", ".join(parts) if parts else ""


def _section_titles() -> dict[str, str]:
    info = mi.type_info(Config)
    assert isinstance(info, mi.StructType)
    titles = {}
    for section in info.fields:
        assert isinstance(section.type, mi.StructType)
        doc = (section.type.cls.__doc__ or "").strip().splitlines()[0].rstrip(".")
        titles[section.name] = f"{section.name} ({doc})"
    return titles


#: Every setting, in the order of the sections and their fields.
OPTIONS: tuple[Option, ...] = _options()
#: "redis (The Redis backend: ...)" for each section, in order.
SECTION_TITLES: dict[str, str] = _section_titles()
_BY_NAME = {o.name: o for o in OPTIONS}
_BY_PATH = {(o.section, o.field): o for o in OPTIONS}
_SECTIONS = {o.section for o in OPTIONS}


def option(name: str) -> Option:
    """The option called ``name``; ``ValueError`` (with a suggestion) if there is none."""
    found = _BY_NAME.get(name)
    if found is None:
        close = difflib.get_close_matches(name, _BY_NAME, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown setting {name!r}{hint}")
    return found


def build(options: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> Config:
    """Validate flat ``options`` into a Config.

    ``sources`` names where each option came from (``--port``, ``SCALEMCP_PORT``, ...), for
    the error message; a ``ValueError`` carries one line naming the setting.
    """
    nested: dict[str, dict[str, Any]] = {}
    for name, value in options.items():
        opt = option(name)
        if opt.choices and isinstance(value, str):
            value = value.strip().lower()
        nested.setdefault(opt.section, {})[opt.field] = value
    try:
        return msgspec.convert(nested, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(_explain(str(exc), options, sources or {})) from None


_AT = re.compile(r"^(.*) - at `\$\.(\w+)(?:\.(\w+))?")


def _explain(message: str, given: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    match = _AT.match(message)
    if not match:
        return f"invalid configuration: {message}"
    text, section, field = match.groups()
    if field is not None:
        opt = _BY_PATH.get((section, field))
    else:  # a check across a section's fields: name the one that was set, if one was
        set_here = [n for n in given if _BY_NAME[n].section == section]
        opt = _BY_NAME[set_here[0]] if len(set_here) == 1 else None
    if opt is None:
        return f"invalid setting in section {section}: {text}"
    if opt.choices and text.startswith("Invalid enum value"):
        text += f"; expected one of: {', '.join(opt.choices)}"
    elif text.startswith("Expected") and opt.name in given:
        text = f"e{text[1:].split(', got `')[0]}, got {given[opt.name]!r}"
    return f"{sources.get(opt.name, opt.name)}: {text}"


def flatten(config: Config) -> dict[str, Any]:
    """Every option of ``config`` by its flat name."""
    return {o.name: getattr(getattr(config, o.section), o.field) for o in OPTIONS}


def load_config(
    cli: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    named_by: Literal["flag", "option"] = "flag",
) -> Config:
    """Merge a TOML file, ``SCALEMCP_*`` environment variables and CLI values.

    ``ValueError`` with one line naming the flag, variable or file and key at fault
    (``named_by="option"``: values given from Python are named as options, ``port``).
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or env.get("SCALEMCP_CONFIG")
    if path:
        for name, value in _read_toml(path).items():
            merged[name] = value
            sources[name] = f"{name} in {path}"
    for opt in OPTIONS:
        raw = env.get(opt.env)
        if raw is not None:
            merged[opt.name] = _from_env(opt, raw)
            sources[opt.name] = opt.env
    for name, value in (cli or {}).items():
        if value is not None:
            merged[name] = value
            sources[name] = option(name).flag if named_by == "flag" else name
    return build(merged, sources)


def _read_toml(path: str) -> dict[str, Any]:
    """Flat keys, or ``[section]`` tables with the section's field names."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            for field, inner in value.items():
                opt = _BY_PATH.get((key, field))
                if opt is None:
                    raise ValueError(f"{path}: unknown setting {field!r} in [{key}]")
                flat[opt.name] = inner
            continue
        try:
            flat[option(key).name] = value
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return flat


def _from_env(opt: Option, value: str) -> Any:
    if opt.kind == "list":
        return [v.strip() for v in value.split(",") if v.strip()]
    return value

