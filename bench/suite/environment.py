"""What the targets need (fastmcp, Node and the TypeScript SDK, redis-server, an export
of the scalemcp commit), found or prepared once per run."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .paths import CACHE, ROOT
from .series import Series


@dataclass
class Env:
    """What the targets need, found or prepared once per run."""

    pin: bool
    scalemcp_src: Path | None
    fastmcp_python: str | None
    node_env: dict[str, str] | None
    redis_server: str | None
    notes: list[str] = field(default_factory=list)


def export_commit(commit: str) -> Path:
    """The ``scalemcp`` package as committed at ``commit``, in .cache/bench-src/<commit>."""
    dest = CACHE / "bench-src" / commit
    if not (dest / "scalemcp" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "scalemcp"],
            check=True,
            capture_output=True,
        ).stdout
        tmp = dest / "export.tar"
        tmp.write_bytes(archive)
        with tarfile.open(tmp) as tar:
            tar.extractall(dest, filter="data")
        tmp.unlink()
    return dest


def find_fastmcp(notes: list[str]) -> str | None:
    """A Python that imports fastmcp: this one, or a venv made for it under .cache/."""
    probe = [sys.executable, "-c", "import fastmcp, uvicorn"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return sys.executable
    venv = CACHE / "bench-venvs" / "fastmcp"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"fastmcp is not importable here: creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "fastmcp", "uvicorn"], check=True
        )
    if subprocess.run([str(python), *probe[1:]], capture_output=True).returncode != 0:
        notes.append(f"fastmcp: neither {sys.executable} nor {python} imports it: skipped")
        return None
    notes.append(f"fastmcp ran from its own venv ({python.relative_to(ROOT)})")
    return str(python)


def find_node(notes: list[str]) -> dict[str, str] | None:
    """The environment for ts_server.mjs: node on PATH and MCP_TS_SDK_DIR."""
    env = dict(os.environ)
    script = CACHE / "node-tools" / "env.sh"
    if "MCP_TS_SDK_DIR" not in env and script.exists():
        out = subprocess.run(
            ["bash", "-c", f'source "{script}" && env -0'], capture_output=True, check=True
        ).stdout
        env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    if "MCP_TS_SDK_DIR" not in env or not shutil.which("node", path=env.get("PATH")):
        notes.append("TypeScript SDK targets skipped: run scripts/install-node-tools")
        return None
    return env


def prepare(ns: argparse.Namespace, series: list[Series], commit: str | None = None) -> Env:
    """``commit``: serve scalemcp from this commit (default HEAD, unless --scalemcp-src)."""
    notes: list[str] = []
    kinds = {s.server.kind for s in series}
    redis = any(s.server.redis for s in series)
    export = ns.scalemcp_src == "HEAD" and bool(kinds & {"scalemcp", "serve"})
    env = Env(
        pin=ns.pin and (os.cpu_count() or 1) >= 2,
        scalemcp_src=export_commit(commit or git("rev-parse", "HEAD")) if export else None,
        fastmcp_python=find_fastmcp(notes) if "fastmcp" in kinds else None,
        node_env=find_node(notes) if "node" in kinds else None,
        redis_server=shutil.which("redis-server") if redis else None,
        notes=notes,
    )
    if redis and env.redis_server is None:
        notes.append("Redis targets skipped: no redis-server on PATH")
    return env


def runnable(s: Series, env: Env) -> bool:
    kind = s.server.kind
    if kind == "fastmcp":
        return env.fastmcp_python is not None
    if kind == "node":
        return env.node_env is not None
    return not s.server.redis or env.redis_server is not None


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()

