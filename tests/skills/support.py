"""Helpers for the skills tests: skill trees on disk, the skills methods over the harness's
raw clients (tests/harness/client.py) in either era, a session's GET stream followed, and
checking a manifest against what ``resources/read`` returns."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from tests.harness import client
from tests.harness.serve import ROOT
from tests.harness.sse import sse_events

EXAMPLE_SKILLS = ROOT / "examples" / "skills"
EXTENSION = "io.modelcontextprotocol/skills"
LIST_CHANGED = "notifications/resources/list_changed"
#: The methods whose 2026-07-28 requests name their target in ``Mcp-Name``.
_NAMED_BY = {"resources/read": "uri", "tools/call": "name"}


def skill_md(name: str, description: str = "A skill for tests. Use in tests.",
             body: str = "# Body\n", **fields: Any) -> str:
    front = yaml.safe_dump({"name": name, "description": description, **fields},
                           sort_keys=False)
    return f"---\n{front}---\n\n{body}"


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path -> content) under ``root``; returns ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def copy_examples(target: Path) -> Path:
    shutil.copytree(EXAMPLE_SKILLS, target)
    return target


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_bytes(contents: dict[str, Any]) -> bytes:
    """The raw bytes a ``resources/read`` content item carries (text or blob)."""
    if "text" in contents:
        return str(contents["text"]).encode()
    return base64.b64decode(contents["blob"])


class Rpc:
    """Requests of one era over a raw harness client, each answered with its JSON-RPC
    message (``result`` or ``error``)."""

    def __init__(self, raw: client.Session | client.Stateless,
                 initialized: dict[str, Any] | None = None) -> None:
        self.raw = raw
        #: The ``initialize`` result (session era).
        self.initialized = initialized or {}

    async def post(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if isinstance(self.raw, client.Session):
            return await self.raw.call(method, params or {})
        field = _NAMED_BY.get(method)
        name = (params or {})[field] if field else None
        answer = await self.raw.call(method, params, name)
        # Bad params, unknown skills, hostile URIs: answered as the request's error (200).
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == client.JSON, answer.text
        message: dict[str, Any] = answer.json()
        return message

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        message = await self.post(method, params)
        assert "result" in message, message
        return message["result"]

    async def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = await self.post(method, params)
        assert "error" in message, message
        return dict(message["error"])


def modern(http: httpx.AsyncClient, url: str) -> Rpc:
    """Stateless 2026-07-28 requests."""
    return Rpc(client.Stateless(http, url))


async def session(http: httpx.AsyncClient, url: str,
                  version: str = client.SESSION_VERSION) -> Rpc:
    """A new session of ``version`` (initialized)."""
    raw = client.Session(http, url, version, name="skills-test")
    return Rpc(raw, (await raw.initialize())["result"])


class Seen:
    """The methods of the notifications a GET stream delivered, and a wake-up per arrival."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.arrived = trio.Event()

    def add(self, method: str) -> None:
        self.methods.append(method)
        self.arrived.set()
        self.arrived = trio.Event()

    def count(self, method: str) -> int:
        return self.methods.count(method)

    async def wait_for(self, method: str, count: int) -> None:
        """Until ``count`` notifications of ``method`` arrived in all."""
        while self.count(method) < count:
            await self.arrived.wait()


@asynccontextmanager
async def notifications(rpc: Rpc) -> AsyncIterator[Seen]:
    """Follow the GET stream of ``rpc``'s session while the block runs."""
    assert isinstance(rpc.raw, client.Session)
    raw = rpc.raw
    seen = Seen()

    async def follow(task_status: trio.TaskStatus[None]) -> None:
        async with raw.listen() as stream:
            assert stream.status_code == 200
            task_status.started()
            async for event in sse_events(stream):
                if event.data:
                    seen.add(event.message["method"])

    async with trio.open_nursery() as nursery:
        await nursery.start(follow)
        yield seen
        nursery.cancel_scope.cancel()


async def all_skills(rpc: Rpc) -> tuple[list[dict[str, Any]], int]:
    """Every entry of skills/list, following nextCursor; and how many pages it took."""
    entries: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        result = await rpc.result("skills/list", {"cursor": cursor} if cursor else {})
        pages += 1
        entries += result["skills"]
        cursor = result.get("nextCursor")
        if not cursor:
            return entries, pages


async def verify_entry(rpc: Rpc, entry: dict[str, Any]) -> dict[str, str]:
    """Read every file of a skill entry and check it against the manifest: size and digest
    recomputed from the bytes ``resources/read`` returns, the frontmatter parsed back from
    the SKILL.md. Returns each file's MIME type."""
    assert isinstance(entry["resources"], list)
    uris = [r["uri"] for r in entry["resources"]]
    assert entry["uri"] in uris
    assert len(uris) == len(set(uris))
    mime_types = {}
    for item in entry["resources"]:
        result = await rpc.result("resources/read", {"uri": item["uri"]})
        (contents,) = result["contents"]
        assert contents["uri"] == item["uri"]
        data = content_bytes(contents)
        assert (len(data), sha256(data)) == (item["size"], item["digest"]), item["uri"]
        mime_types[item["uri"]] = contents["mimeType"]
    skill = await rpc.result("resources/read", {"uri": entry["uri"]})
    text = skill["contents"][0]["text"]
    assert yaml.safe_load(text.split("---\n")[1]) == entry["frontmatter"]
    return mime_types
