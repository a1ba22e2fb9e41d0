"""docs/configuration.md is generated from scalemcp.config.Config and must stay current.

When a setting is added or changed: describe it in ``FIELD_HELP`` (scalemcp/config.py), then
run ``python -m scalemcp.config_reference`` from the repository root.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from scalemcp import config_reference
from scalemcp.config import FIELD_HELP, Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
REGENERATE = f"run `{config_reference.COMMAND}` from the repository root"
FIELDS = msgspec.structs.fields(Config)


def test_every_setting_has_a_description() -> None:
    missing = config_reference.missing_help()
    assert not missing, (
        f"Config fields without a description: {missing}. Add one line each to FIELD_HELP "
        f"in scalemcp/config.py, then {REGENERATE}."
    )
    unknown = config_reference.unknown_help()
    assert not unknown, f"FIELD_HELP describes fields Config does not have: {unknown}"


def test_configuration_md_is_current() -> None:
    assert not config_reference.missing_help(), "see test_every_setting_has_a_description"
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == config_reference.render(), f"docs/configuration.md is stale: {REGENERATE}"


def test_every_setting_has_a_row_with_its_flag_and_env_var() -> None:
    rows = {line.split(" | ")[0].removeprefix("| ").strip("`"): line
            for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")}
    assert list(rows) == [f.name for f in FIELDS]
    for field in FIELDS:
        row = rows[field.name]
        assert f"`--{field.name.replace('_', '-')}`" in row
        assert f"`SCALEMCP_{field.name.upper()}`" in row
        assert FIELD_HELP[field.name] in row


def _sample(field: msgspec.structs.FieldInfo, info: mi.Type) -> tuple[str, Any]:
    """A value other than the default, as an env var string and as Config holds it."""
    if isinstance(info, mi.UnionType):
        info = next(t for t in info.types if not isinstance(t, mi.NoneType))
    if isinstance(info, mi.BoolType):
        return ("false", False) if field.default else ("true", True)
    if isinstance(info, mi.ListType):
        return "a.example, b.example", ["a.example", "b.example"]
    if isinstance(info, mi.LiteralType):
        value = next(v for v in info.values if v != field.default)
        return str(value), value
    if isinstance(info, mi.IntType):
        value = 9090 if field.default is None else field.default + 1
        return str(value), value
    if isinstance(info, mi.FloatType):
        return str(field.default + 1.5), field.default + 1.5
    return "/some/value", "/some/value"


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_documented_env_var_sets_the_field(field: msgspec.structs.FieldInfo) -> None:
    """What the reference says about SCALEMCP_<NAME> (lists comma-separated) holds."""
    info = next(f.type for f in mi.type_info(Config).fields if f.name == field.name)
    raw, expected = _sample(field, info)
    config = load_config(env={f"SCALEMCP_{field.name.upper()}": raw})
    assert getattr(config, field.name) == expected, (
        f"SCALEMCP_{field.name.upper()}={raw!r} gave {getattr(config, field.name)!r}"
        + (" (a list field missing from _from_env in scalemcp/config.py?)"
           if typing.get_origin(field.type) is list else "")
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    target = tmp_path / "configuration.md"
    assert config_reference.main(["--output", str(target)]) == 0
    assert config_reference.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("`8000`", "`8080`"))
    assert config_reference.main(["--check", "--output", str(target)]) == 1
    assert config_reference.COMMAND in capsys.readouterr().err


def test_generator_refuses_a_field_without_description(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(FIELD_HELP, "port")
    assert config_reference.missing_help() == ["port"]
    assert config_reference.main(["--output", "-"]) == 1
    assert "FIELD_HELP for: port" in capsys.readouterr().err
