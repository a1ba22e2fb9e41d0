"""Before any load: one client of the era under test checks that the target can be benchmarked.

It opens a session (session and legacy eras; the modern era has none), lists
the tools, checks that every tool the scenario calls is there, and settles
the arguments: ``--args`` as given; else the bench targets' defaults (``echo``
gets a message, ``progress`` its steps) keeping only the properties the
tool's ``inputSchema`` has, plus a sample value for each required property
still missing (`scalemcp.loadgen.answers`). The settled tool and arguments go
into the config every client (and every bench process) uses, and into the
report.

Whatever stops it becomes a `TargetError` whose message is one line a person
can act on: the connection refused, an HTTP status (with what it usually
means), a server that does not speak JSON-RPC, a tool that is not there.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from .answers import fill_arguments
from .clients import McpLike, open_mcp_client
from .config import DEFAULT_TOOLS, BenchConfig
from .errors import McpError
from .http import ConnectError, HttpError
from .messages import ListedTool, ToolsPage, decode_part

__all__ = ["TargetError", "check_target"]

_MAX_PAGES = 100
_BENCH_TOOLS = sorted(set(DEFAULT_TOOLS.values()))
_SHOWN_TOOLS = 12


class TargetError(Exception):
    """The target cannot be benchmarked as asked; ``str()`` is one line for the user."""


async def list_tools(mcp: McpLike) -> dict[str, ListedTool]:
    """Every tool the server lists (following ``nextCursor``), by name."""
    tools: dict[str, ListedTool] = {}
    params: dict[str, Any] = {}
    for _ in range(_MAX_PAGES):
        result = (await mcp.request("tools/list", params)).result
        page = decode_part(ToolsPage, result, "tools/list result")
        tools.update((tool.name, tool) for tool in page.tools)
        if not page.next_cursor:
            break
        params = {"cursor": page.next_cursor}
    return tools


def _missing_tool(config: BenchConfig, name: str, offered: dict[str, ListedTool]) -> str:
    names = sorted(offered)
    shown = ", ".join(names[:_SHOWN_TOOLS]) + (", ..." if len(names) > _SHOWN_TOOLS else "")
    has = f"it has: {shown}" if names else "it lists no tools"
    where = f"the server at {config.url} has no tool {name!r} ({has})"
    if config.tool is not None and name == config.tool:
        return f"{where}: check --tool"
    if config.scenario == "mixed" and name == "progress":
        return (
            f"{where}; --scenario mixed also calls 'progress', which only the bench/targets "
            "servers have: use --scenario call --tool NAME for other servers"
        )
    return (
        f"{where}; the scenarios' default tools ({', '.join(_BENCH_TOOLS)}) exist only on the "
        f"bench/targets servers: pick one of the server's tools with --tool NAME (and --args JSON)"
    )


def _settle_args(config: BenchConfig, tool: ListedTool) -> dict[str, Any]:
    if config.args is not None:
        return config.args
    schema = tool.input_schema
    args = config.tool_args()
    props = schema.get("properties")
    if isinstance(props, dict) and schema.get("additionalProperties") is not True:
        args = {k: v for k, v in args.items() if k in props}
    return fill_arguments(schema, args)


def settle(config: BenchConfig, offered: dict[str, ListedTool] | None) -> BenchConfig:
    """``config`` with its tool and arguments settled against ``offered``; raises if missing."""
    wanted = config.tools_called()
    if not wanted or offered is None:
        return config
    for name in wanted:
        if name not in offered:
            raise TargetError(_missing_tool(config, name, offered))
    tool = offered[config.tool_name]
    return msgspec.structs.replace(config, tool=tool.name, args=_settle_args(config, tool))


def _explain(config: BenchConfig, step: str, exc: McpError) -> str:
    url, kind, detail = config.url, exc.kind, exc.detail or exc.kind
    if kind in ("http_401", "http_403"):
        return f"{step} at {url} was refused ({detail}): pass credentials with -H 'Name: value'"
    if kind == "http_404" and step != "tools/list":
        hint = "the /sse URL" if config.era == "legacy-sse" else "the MCP endpoint (often /mcp)"
        return f"{step} at {url} answered {detail}: is the URL {hint}?"
    if kind.startswith("http_"):
        hint = {
            "modern": " (servers that predate 2026-07-28 want --era session)",
            "legacy-sse": " (--era legacy-sse wants the server's /sse URL)",
        }.get(config.era, "")
        return f"{step} at {url} answered {detail}{hint}"
    if kind.startswith("jsonrpc_"):
        return f"{step} at {url} failed with JSON-RPC error {kind[8:]}: {detail}"
    if kind == "decode":
        return f"{step} at {url}: the answer is not MCP JSON-RPC ({detail})"
    return f"{step} at {url} failed: {kind}: {detail}"


async def _probe(config: BenchConfig) -> dict[str, ListedTool] | None:
    step = {"modern": "the first request", "legacy-sse": "the SSE handshake"}.get(
        config.era, "initialize"
    )
    async with open_mcp_client(config) as mcp:
        try:
            await mcp.open()
            if not config.tools_called() and config.scenario != "list":
                return None
            step = "tools/list"
            return await list_tools(mcp)
        except McpError as exc:
            raise TargetError(_explain(config, step, exc)) from exc
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await mcp.close()


async def check_target(config: BenchConfig) -> BenchConfig:
    """Check ``config.url`` can run ``config``'s scenario; the config with settled tool args."""
    try:
        with trio.fail_after(config.timeout_s):
            offered = await _probe(config)
    except trio.TooSlowError:
        raise TargetError(
            f"{config.url} did not answer within --timeout {config.timeout_s:g} s"
        ) from None
    except ConnectError as exc:
        raise TargetError(f"{exc} (is the server running at {config.url}?)") from exc
    except HttpError as exc:
        hint = " (does it speak HTTP/2? try without --http2)" if config.http2 else ""
        raise TargetError(f"{config.url} broke the HTTP exchange: {exc}{hint}") from exc
    return settle(config, offered)
