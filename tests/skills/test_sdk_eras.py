"""Existing clients read skills as ordinary resources in every era: the official Python SDK
(2026-07-28, 2025-11-25 sessions, and the HTTP+SSE transport; a real server, since the SDK
brings its own HTTP client) and a raw 2024-11-05 client (in memory) see the extension
declared where their version has it, list the SKILL.md resources and read files whose
bytes match the manifest ``skills/list`` publishes; the skills methods answer on the
legacy transport."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp
import mcp_types as types
import pytest
import trio
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from scalemcp.testing import open_server
from tests.harness import client as raw
from tests.harness.asgi import open_client

from .support import EXTENSION, all_skills, modern, sha256
from .test_methods import examples_app

pytestmark = [pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")]


@asynccontextmanager
async def sdk(url: str, era: str) -> AsyncIterator[Any]:
    """An SDK session in ``era``; yields (the session, its server capabilities)."""
    if era == "http+sse":  # the SDK negotiates its newest version over the old transport
        async with sse_client(url.removesuffix("/mcp") + "/sse") as (read, write), \
                mcp.ClientSession(read, write) as session:
            init = await session.initialize()
            yield session, init.capabilities
        return
    # "auto" asks server/discover (a pinned version would adopt it without asking).
    mode = "legacy" if era == "2025-11-25" else "auto"
    async with httpx2.AsyncClient() as http, Client(
            streamable_http_client(url, http_client=http), mode=mode,
            read_timeout_seconds=10) as client:
        assert client.protocol_version == era
        yield client, client.server_capabilities


@pytest.mark.parametrize("era", ["2026-07-28", "2025-11-25", "http+sse"])
async def test_skill_files_are_ordinary_resources(era: str) -> None:
    with trio.fail_after(30):
        async with open_server(examples_app()) as url, httpx.AsyncClient(timeout=10) as c:
            entries, _ = await all_skills(modern(c, url))
            manifest = {r["uri"]: r for e in entries for r in e["resources"]}
            async with sdk(url, era) as (client, capabilities):
                assert (capabilities.extensions or {}).get(EXTENSION) == {"directoryRead": True}
                listed = {str(r.uri): r for r in (await client.list_resources()).resources}
                refunds = listed["skill://acme/billing/refunds/SKILL.md"]
                assert (refunds.name, refunds.mime_type) == ("refunds", "text/markdown")
                assert refunds.description is not None
                assert refunds.description.startswith("Process a customer's refund")
                for uri in ("skill://acme/billing/refunds/SKILL.md",
                            "skill://acme/billing/refunds/assets/refund-flow.png",
                            "skill://git-workflow/scripts/check-branch.sh"):
                    (contents,) = (await client.read_resource(uri)).contents
                    if isinstance(contents, types.TextResourceContents):
                        data = contents.text.encode()
                    else:
                        assert isinstance(contents, types.BlobResourceContents)
                        data = base64.b64decode(contents.blob)
                    assert (sha256(data), len(data)) == (manifest[uri]["digest"],
                                                         manifest[uri]["size"])


async def test_a_2024_11_05_client_over_http_and_sse() -> None:
    with trio.fail_after(30):
        async with open_client(examples_app(), timeout=10) as (url, c), \
                raw.open_legacy(c, url.removesuffix("/mcp")) as legacy:

            async def ask(rid: int, method: str, params: dict[str, Any]) -> Any:
                assert (await legacy.post(raw.request(method, params, rid))).status_code == 202
                message = await legacy.answer_to(rid)
                return message.get("result", message.get("error"))

            init = await legacy.initialize()
            assert init["result"]["protocolVersion"] == "2024-11-05"
            # Too old to be told about extensions; the files are ordinary resources.
            capabilities = init["result"]["capabilities"]
            assert "extensions" not in capabilities
            assert "resources" in capabilities
            listed = await ask(2, "resources/list", {})
            assert "skill://git-workflow/SKILL.md" in [r["uri"] for r in listed["resources"]]
            read = await ask(3, "resources/read", {"uri": "skill://git-workflow/SKILL.md"})
            (contents,) = read["contents"]
            skills = await ask(4, "skills/list", {})
            git = next(e for e in skills["skills"] if e["uri"] == contents["uri"])
            data = contents["text"].encode()
            assert {"uri": contents["uri"], "digest": sha256(data), "size": len(data)} in \
                git["resources"]
            hostile = await ask(5, "resources/read", {"uri": "skill://git-workflow/../x"})
            assert hostile["code"] == -32602
