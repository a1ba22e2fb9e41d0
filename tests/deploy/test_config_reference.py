"""docs/configuration.md is generated from the settings and must stay current; every
setting reaches its Config field from each source the reference documents.

When a setting is added or changed: give it a description in scalemcp/config/settings.py,
then run ``python -m scalemcp.config.reference`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scalemcp.config import OPTIONS, Config, Option, load_config
from scalemcp.config import reference as config_reference

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
REGENERATE = f"run `{config_reference.COMMAND}` from the repository root"


def test_configuration_md_is_current() -> None:
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == config_reference.render(), f"docs/configuration.md is stale: {REGENERATE}"


def test_every_setting_has_a_row_with_its_flag_and_env_var() -> None:
    rows = {line.split(" | ")[0].removeprefix("| ").strip("`"): line
            for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")}
    assert list(rows) == [o.name for o in OPTIONS]
    for opt in OPTIONS:
        row = rows[opt.name]
        assert f"`{opt.flag}`" in row
        assert f"`{opt.env}`" in row
        assert opt.description in row


def test_option_names_are_unchanged() -> None:
    """The flat names users write in flags, env and TOML (a rename breaks deployments)."""
    assert len(OPTIONS) >= 77
    for name in ("redis_url", "state_keys", "auth", "stream_maxlen", "sse_keepalive_s",
                 "max_body_bytes", "session_idle_ttl_s", "log_level", "request_state_ttl_s",
                 "jwt_jwks_url", "rate_limit_tools", "drain_timeout_s", "metrics_dir"):
        assert any(o.name == name for o in OPTIONS), name


def _sample(opt: Option) -> tuple[str, Any]:
    """A value other than the default, as an env var string and as Config holds it."""
    if opt.kind == "bool":
        return ("false", False) if opt.default else ("true", True)
    if opt.name == "state_keys":
        return "a" * 32 + ", " + "b" * 32, ["a" * 32, "b" * 32]
    if opt.name == "trusted_proxies":
        return "10.0.0.0/8, ::1", ["10.0.0.0/8", "::1"]
    if opt.kind == "list":
        return "a.example, b.example", ["a.example", "b.example"]
    if opt.choices:
        value = next(v for v in opt.choices if v != opt.default)
        return value.upper(), value  # any case
    if opt.name == "metrics_port":
        return "9090", 9090
    if isinstance(opt.default, bool):
        raise AssertionError(opt)
    if isinstance(opt.default, int):
        return str(opt.default + 1), opt.default + 1
    if isinstance(opt.default, float):
        return str(opt.default + 1.5), opt.default + 1.5
    return "/some/value", "/some/value"


def _value(config: Config, opt: Option) -> Any:
    return getattr(getattr(config, opt.section), opt.field)


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_documented_env_var_sets_the_field(opt: Option) -> None:
    """What the reference says about SCALEMCP_<NAME> (lists comma-separated) holds."""
    raw, expected = _sample(opt)
    assert _value(load_config(env={opt.env: raw}), opt) == expected, f"{opt.env}={raw!r}"


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_toml_key_and_section_table_set_the_field(opt: Option, tmp_path: Path) -> None:
    raw, expected = _sample(opt)
    value: Any = expected if not opt.choices else raw
    flat = tmp_path / "flat.toml"
    table = tmp_path / "table.toml"
    literal = _toml(value)
    flat.write_text(f"{opt.name} = {literal}\n")
    table.write_text(f"[{opt.section}]\n{opt.field} = {literal}\n")
    assert _value(load_config(env={}, config_file=str(flat)), opt) == expected
    assert _value(load_config(env={}, config_file=str(table)), opt) == expected


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    target = tmp_path / "configuration.md"
    assert config_reference.main(["--output", str(target)]) == 0
    assert config_reference.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("`8000`", "`8080`"))
    assert config_reference.main(["--check", "--output", str(target)]) == 1
    assert config_reference.COMMAND in capsys.readouterr().err


def test_from_options_and_replace_round_trip() -> None:
    config = Config.from_options(redis_url="redis://h:1/0", max_body_bytes=2048)
    assert config.redis.url == "redis://h:1/0"
    assert config.limits.max_body_bytes == 2048
    again = config.replace(port=0)
    assert again.server.port == 0
    assert again.redis.url == "redis://h:1/0"
    with pytest.raises(ValueError, match="did you mean 'redis_url'"):
        Config.from_options(redis_ur="x")
