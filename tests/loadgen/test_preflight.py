"""Settling the tool and its arguments against what a server lists (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from scalemcp.loadgen.config import BenchConfig
from scalemcp.loadgen.messages import ListedTool
from scalemcp.loadgen.preflight import TargetError, settle

URL = "http://127.0.0.1:8000/mcp"


def tools(**schemas: dict[str, Any]) -> dict[str, ListedTool]:
    return {name: ListedTool(name, schema) for name, schema in schemas.items()}


ECHO_TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OPEN = {"type": "object"}


def test_bench_target_tools_keep_their_default_arguments() -> None:
    offered = tools(echo={"type": "object", "properties": {"message": {"type": "string"}}})
    settled = settle(BenchConfig(url=URL), offered)
    assert (settled.tool, settled.args) == ("echo", {"message": "hello"})


def test_default_arguments_the_tool_does_not_take_are_dropped_and_required_ones_made_up() -> None:
    settled = settle(BenchConfig(url=URL), tools(echo=ECHO_TEXT))
    assert settled.args == {"text": "bench"}


def test_given_arguments_are_sent_as_given() -> None:
    config = BenchConfig(url=URL, tool="echo", args={"x": 1})
    assert settle(config, tools(echo=ECHO_TEXT)).args == {"x": 1}


def test_a_missing_default_tool_explains_the_bench_targets() -> None:
    with pytest.raises(TargetError) as info:
        settle(BenchConfig(url=URL, scenario="elicit"), tools(add=OPEN))
    text = str(info.value)
    assert "no tool 'ask'" in text
    assert "(it has: add)" in text
    assert "--tool NAME" in text
    assert "bench/targets" in text


def test_a_missing_given_tool_points_at_the_flag() -> None:
    with pytest.raises(TargetError, match=r"no tool 'nope' \(it lists no tools\): check --tool"):
        settle(BenchConfig(url=URL, tool="nope"), {})


def test_mixed_needs_progress_too() -> None:
    with pytest.raises(TargetError, match="--scenario mixed also calls 'progress'"):
        settle(BenchConfig(url=URL, scenario="mixed"), tools(echo=OPEN))
    both = tools(echo=OPEN, progress=OPEN)
    assert set(settle(BenchConfig(url=URL, scenario="mixed"), both).tools_called()) == {
        "echo",
        "progress",
    }


def test_scenarios_without_tools_need_none() -> None:
    config = BenchConfig(url=URL, scenario="list")
    assert settle(config, {}) == config
    assert config.tools_called() == {}
