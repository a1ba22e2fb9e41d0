"""The public API: exactly what ``scalemcp`` exports, documented, typed, and strict about
duplicate names; ``scalemcp.run`` serves an App object."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import scalemcp
from tests.conftest import ROOT

EXPORTS = [
    "App", "Audio", "BlobResourceContents", "CacheHint", "Config", "ConfigError", "Context",
    "ElicitResult", "EmbeddedResource", "Image", "ImageContent", "InputRequest",
    "PromptMessage", "ResourceLink", "SkillError", "TaskPolicy", "TextContent",
    "TextResourceContents", "ToolAnnotations", "ToolError", "__version__", "asgi_app",
    "elicitation", "roots", "run", "sampling",
]


def test_all_is_exact_and_sorted() -> None:
    assert scalemcp.__all__ == EXPORTS == sorted(EXPORTS)
    public = {name for name in vars(scalemcp) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(scalemcp, name))}
    assert public - modules - {"annotations"} == set(EXPORTS) - {"__version__"}


@pytest.mark.parametrize("name", [n for n in EXPORTS if n != "__version__"])
def test_every_export_is_documented(name: str) -> None:
    obj = getattr(scalemcp, name)
    assert inspect.getdoc(obj), f"scalemcp.{name} has no docstring"
    if inspect.isclass(obj) and obj.__module__.startswith("scalemcp.app"):
        for attr, member in vars(obj).items():
            if not attr.startswith("_") and callable(member):
                assert inspect.getdoc(member), f"scalemcp.{name}.{attr} has no docstring"


def test_decorators_keep_the_function() -> None:
    app = scalemcp.App("t")

    async def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert app.tool(add) is add
    assert app.tool(name="plus")(add) is add
    assert app.prompt(lambda: "hi") is not None


def test_duplicate_names_are_refused() -> None:
    app = scalemcp.App("t")

    @app.tool
    async def echo(text: str) -> str:
        return text

    @app.prompt
    def review(code: str) -> str:
        return code

    @app.resource("config://app")
    def config() -> str:
        return "{}"

    @app.resource("greeting://{name}")
    def greeting(name: str) -> str:
        return name

    with pytest.raises(ValueError, match="tool 'echo' is already registered"):
        app.tool(name="echo")(lambda text: text)
    with pytest.raises(ValueError, match="prompt 'review' is already registered"):
        app.prompt(name="review")(lambda code: code)
    with pytest.raises(ValueError, match="resource 'config://app' is already registered"):
        app.resource("config://app")(lambda: "x")
    with pytest.raises(ValueError, match="already registered"):
        app.resource("greeting://{name}")(lambda name: name)
    app.completion(lambda ref, argument, context: [])
    with pytest.raises(ValueError, match="completion handler"):
        app.completion(lambda ref, argument, context: [])


def test_run_from_a_script(tmp_path: Path) -> None:
    """A script that defines an App and calls scalemcp.run(app, ...) under __main__ serves
    it, with two worker processes that import it."""
    script = tmp_path / "demo.py"
    script.write_text(textwrap.dedent('''
        import scalemcp

        app = scalemcp.App("demo")

        @app.tool
        async def add(a: int, b: int) -> int:
            return a + b

        if __name__ == "__main__":
            scalemcp.run(app, port=0, workers=2, stateless_only=True, state_keys=["k" * 32])
    '''))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        line = ""
        for line in proc.stdout:
            if "serving " in line:
                break
        assert "serving __main__:app at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].split()[0]
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}
        answer = httpx.post(url, timeout=10, headers={
            "accept": "application/json, text/event-stream", "mcp-method": "tools/call",
            "mcp-name": "add", "mcp-protocol-version": "2026-07-28"}, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 2, "b": 2}, "_meta": meta}})
        result = answer.json().get("result", {})
        assert result.get("structuredContent") == {"result": 4}, answer.text
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


def test_run_names_a_bad_option() -> None:
    app = scalemcp.App("t")
    with pytest.raises(scalemcp.ConfigError, match=r"unknown setting 'prot'.*'port'"):
        scalemcp.run(app, prot=1)
    with pytest.raises(scalemcp.ConfigError, match="workers: expected `int` >= 1"):
        scalemcp.run(app, workers=0)
