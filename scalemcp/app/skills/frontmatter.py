"""SKILL.md frontmatter: found, parsed as YAML and checked against the Agent Skills rules.

The ``frontmatter`` of a skill entry must be identical in content to what a host parses
out of the file, and hosts parse with YAML 1.2 libraries (the conformance suite uses
eemeli/yaml) as well as YAML 1.1 ones (PyYAML). So the block is read twice, with PyYAML's
safe loader under the YAML 1.2 core schema and under its own YAML 1.1 rules, and a value
the two read differently (``yes``, ``on``, ``0777``, dates, ``1:20``) is refused with the
field named: the author quotes it, and every host then sees the same object. Aliases are
refused (they buy nothing in metadata and make expansion unbounded), so are duplicate
keys, non-string keys and values JSON cannot carry (NaN, infinities, dates, binary).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

__all__ = [
    "MAX_COMPATIBILITY",
    "MAX_DESCRIPTION",
    "FrontmatterError",
    "check_name",
    "parse_frontmatter",
    "validate_frontmatter",
]

MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
#: Agent Skills names: a-z, 0-9 and single hyphens, 1-64 characters, no hyphen at an end.
_NAME = re.compile(r"(?!.*--)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
#: The block hosts look for (the same expression the conformance suite uses): ``---`` on
#: the first line (after an optional BOM), up to the next line that is ``---``.
_BLOCK = re.compile(r"---\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|\Z)")
_RESERVED_METADATA = "io.modelcontextprotocol/"


class FrontmatterError(ValueError):
    """The frontmatter is missing, is not valid YAML, or breaks an Agent Skills rule."""


class _StrictMixin:
    """No aliases, no duplicate keys (both loaders)."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):  # type: ignore[attr-defined]
            event = self.peek_event()  # type: ignore[attr-defined]
            raise yaml.MarkedYAMLError(
                None, None, "aliases (*name) are not allowed in frontmatter", event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # type: ignore[attr-defined]  # YAML 1.1 merge keys first
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
            if isinstance(key, str | int | float | bool) or key is None:
                if key in seen:
                    raise yaml.MarkedYAMLError(None, None, f"duplicate key {key!r}",
                                               key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc,no-any-return]


class _Yaml11Loader(_StrictMixin, yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.1 implicit types, in a table of its own (other
    libraries add resolvers to PyYAML's shared one: yamllint does, at import)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


class _CoreLoader(_StrictMixin, yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's implicit types."""

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def construct_core_int(self, node: Node) -> int:
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        if value.startswith("0o"):
            return int(value[2:], 8)
        if value.startswith("0x"):
            return int(value[2:], 16)
        return int(value, 10)  # "017" is seventeen in YAML 1.2

    def construct_core_float(self, node: Node) -> float:
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        lowered = value.lower()
        if lowered.endswith(".inf"):
            return -math.inf if value.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(value)


_CORE_TYPES = [
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)", "-+0123456789."),
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
]
# The YAML 1.1 types (yaml.org/type/): bool without y/n (as PyYAML reads it), ints with
# "_", 0-octal, 0b and base 60, floats needing a dot, timestamps, merge and value keys.
_YAML11_TYPES = [
    ("tag:yaml.org,2002:bool",
     r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
     "yYnNtTfFoO"),
    ("tag:yaml.org,2002:int",
     r"[-+]?0b[01_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
     r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+][0-9]+)?"
     r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
     "-+0123456789."),
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:timestamp",
     r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}"
     r":[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
     "0123456789"),
    ("tag:yaml.org,2002:merge", r"<<", ["<"]),
    ("tag:yaml.org,2002:value", r"=", ["="]),
]
for _loader, _types in ((_CoreLoader, _CORE_TYPES), (_Yaml11Loader, _YAML11_TYPES)):
    for _tag, _pattern, _first in _types:
        _loader.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), list(_first))
_CoreLoader.add_constructor("tag:yaml.org,2002:int", _CoreLoader.construct_core_int)
_CoreLoader.add_constructor("tag:yaml.org,2002:float", _CoreLoader.construct_core_float)


def parse_frontmatter(text: str) -> dict[str, Any]:
    """The frontmatter of a SKILL.md as a JSON-ready object; FrontmatterError if unusable."""
    if text.startswith("\ufeff"):
        text = text[1:]
    block = _BLOCK.match(text)
    if block is None:
        raise FrontmatterError("SKILL.md must begin with YAML frontmatter: a line '---', the "
                               "fields, and a closing line '---'")
    source = block.group(1)
    core = _load(source, _CoreLoader)
    if not isinstance(core, dict):
        raise FrontmatterError("the frontmatter must be a YAML mapping (name: ..., "
                               "description: ...)")
    _check_json(core, "")
    difference = _first_difference(core, _load(source, _Yaml11Loader), "")
    if difference is not None:
        raise FrontmatterError(
            f"frontmatter field {difference} is read differently by YAML 1.1 and YAML 1.2 "
            "parsers (yes/no/on/off, leading-zero numbers, dates, 1:20 ...): quote the value "
            "so every host sees the same frontmatter")
    # Hosts cut the block with or without its last line break; a block scalar (| or >)
    # at the very end would then differ by a trailing newline.
    difference = _first_difference(core, _load(source + "\n", _CoreLoader), "")
    if difference is not None:
        raise FrontmatterError(
            f"frontmatter field {difference} ends the frontmatter with a block scalar, whose "
            "final line break depends on how a host cuts the block: end it with |- or >-, or "
            "put another field after it")
    return core


def _load(source: str, loader: type[yaml.SafeLoader]) -> Any:
    try:
        # The leading newline stands for the opening '---', so marks count file lines.
        return yaml.load("\n" + source, Loader=loader)  # only ever safe loaders
    except yaml.MarkedYAMLError as exc:
        where = "" if exc.problem_mark is None else f" (line {exc.problem_mark.line + 1})"
        raise FrontmatterError(f"the frontmatter is not valid YAML{where}: "
                               f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise FrontmatterError(f"the frontmatter is not valid YAML: {exc}") from None


def _check_json(value: Any, path: str) -> None:
    """Refuse what a JSON object cannot carry verbatim."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FrontmatterError(f"frontmatter key {key!r} in {path or 'the top level'} "
                                       "is not a string: quote it")
            _check_json(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise FrontmatterError(f"frontmatter field {path!r} is {value}, which JSON cannot "
                                   "carry: quote it")
    elif not (isinstance(value, str | int | bool) or value is None):
        raise FrontmatterError(f"frontmatter field {path!r} is a {type(value).__name__}, "
                               "which JSON cannot carry: quote it")


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            missing = next((k for k in [*a, *b] if k not in a or k not in b), None)
            return repr(f"{path}.{missing}" if path else str(missing))
        for key in a:
            found = _first_difference(a[key], b[key], f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if type(a) is not type(b) or a != b:
        return repr(path)
    return None


def check_name(name: Any) -> str | None:
    """Why ``name`` breaks the Agent Skills naming rules, or None if it keeps them."""
    if not isinstance(name, str):
        return f"'name' must be a string, not {type(name).__name__}"
    if _NAME.fullmatch(name) is None:
        return (f"'name' is {name!r}: a skill name is 1-{MAX_NAME} characters of a-z, 0-9 and "
                "'-', with no '-' at either end and no '--'")
    return None


def validate_frontmatter(frontmatter: dict[str, Any], directory_name: str | None) -> list[str]:
    """Every Agent Skills rule the frontmatter breaks (empty: none).

    ``directory_name`` is the last segment of the skill's path, which must equal ``name``
    (None where the path is made from the name).
    """
    problems: list[str] = []
    if "name" not in frontmatter:
        problems.append("the frontmatter has no 'name'")
    else:
        name = frontmatter["name"]
        wrong = check_name(name)
        if wrong is not None:
            problems.append(wrong)
        elif directory_name is not None and name != directory_name:
            problems.append(f"'name' is {name!r} but the skill's directory is "
                            f"{directory_name!r}: the last segment of a skill's path must "
                            "equal its name")
    description = frontmatter.get("description")
    if "description" not in frontmatter:
        problems.append("the frontmatter has no 'description'")
    elif not isinstance(description, str) or not description.strip():
        problems.append("'description' must be a non-empty string")
    elif len(description) > MAX_DESCRIPTION:
        problems.append(f"'description' has {len(description)} characters; the limit is "
                        f"{MAX_DESCRIPTION}")
    if "compatibility" in frontmatter:
        compatibility = frontmatter["compatibility"]
        if not isinstance(compatibility, str) or not compatibility.strip():
            problems.append("'compatibility' must be a non-empty string")
        elif len(compatibility) > MAX_COMPATIBILITY:
            problems.append(f"'compatibility' has {len(compatibility)} characters; the limit "
                            f"is {MAX_COMPATIBILITY}")
    if "metadata" in frontmatter and not isinstance(frontmatter["metadata"], dict):
        problems.append("'metadata' must be a mapping")
    return problems


def reserved_metadata_keys(frontmatter: dict[str, Any]) -> list[str]:
    """``metadata`` keys under the prefix reserved for MCP extensions (none defined yet)."""
    metadata = frontmatter.get("metadata")
    if not isinstance(metadata, dict):
        return []
    return [key for key in metadata if key.startswith(_RESERVED_METADATA)]
