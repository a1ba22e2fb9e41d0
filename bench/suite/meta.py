"""What a result records about the machine and the versions measured."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .environment import Env, git


def _version(dist: str, python: str | None = None) -> str:
    if python is None or python == sys.executable:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "not installed"


def _command(args: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=10)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"


def versions(env: Env) -> dict[str, str]:
    out = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for dist in ("trio", "hypercorn", "h11", "msgspec", "mcp", "mcp-types", "uvicorn",
                 "starlette", "sse-starlette", "anyio", "pydantic", "httptools", "uvloop",
                 "coredis"):
        out[dist] = _version(dist)
    out["fastmcp"] = _version("fastmcp", env.fastmcp_python)
    if env.node_env is not None:
        out["node"] = _command(["node", "--version"], env.node_env)
        sdk = Path(env.node_env["MCP_TS_SDK_DIR"])
        out["@modelcontextprotocol/sdk"] = json.loads((sdk / "package.json").read_text())["version"]
        zod = sdk.parents[1] / "zod" / "package.json"
        if zod.exists():
            out["zod"] = json.loads(zod.read_text())["version"]
    if env.redis_server:
        out["redis-server"] = _command([env.redis_server, "--version"]).split(" sha=")[0]
    commit = env.scalemcp_src.name if env.scalemcp_src else git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "scalemcp").splitlines()
    served = "git archive of the commit" if env.scalemcp_src else "working tree"
    out["scalemcp"] = f"{commit[:12]} ({served})"
    out["scalemcp commit"] = commit
    out["scalemcp working tree"] = f"{len(dirty)} changed file(s) under scalemcp/" if dirty \
        else "clean"
    out["load generator"] = "scalemcp.loadgen from the working tree (raw HTTP/1.1 client)"
    return out


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    os_release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    debian = Path("/etc/debian_version")
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "os": os_release.get("PRETTY_NAME", "?").strip('"')
        + (f" ({debian.read_text().strip()})" if debian.exists() else ""),
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }

