"""Helpers for the skills tests: skill trees on disk, raw JSON-RPC over HTTP in the modern
and the session era, and checking a manifest against what ``resources/read`` returns."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE_SKILLS = ROOT / "examples" / "skills"
MODERN = "2026-07-28"
SESSION = "2025-11-25"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
META = {"io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {}}


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


class Modern:
    """Stateless 2026-07-28 requests: ``_meta`` in every body, Mcp-Method/Mcp-Name headers."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self._id = 0

    async def post(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON-RPC response (``result`` or ``error``)."""
        self._id += 1
        headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method}
        if method == "resources/read":
            headers["mcp-name"] = (params or {})["uri"]
        elif method == "tools/call":
            headers["mcp-name"] = (params or {})["name"]
        body = {"jsonrpc": "2.0", "id": self._id, "method": method,
                "params": {**(params or {}), "_meta": META}}
        response = await self.client.post(self.url, json=body, headers=headers)
        message = _message(response)
        assert message["id"] == self._id, message
        return message

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        message = await self.post(method, params)
        assert "result" in message, message
        return message["result"]

    async def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = await self.post(method, params)
        assert "error" in message, message
        return dict(message["error"])


class Session(Modern):
    """Session-era requests (initialize first, then ``Mcp-Session-Id`` on each)."""

    def __init__(self, client: httpx.AsyncClient, url: str, version: str = SESSION) -> None:
        super().__init__(client, url)
        self.version = version
        self.headers: dict[str, str] = {}
        self.initialize_result: dict[str, Any] = {}

    async def start(self) -> Session:
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": self.version, "capabilities": {},
            "clientInfo": {"name": "skills-test", "version": "1"}}}
        response = await self.client.post(self.url, json=init, headers=ACCEPT)
        self.initialize_result = _message(response)["result"]
        self.headers = {**ACCEPT, "mcp-session-id": response.headers["mcp-session-id"],
                        "mcp-protocol-version": self.version}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.client.post(self.url, json=initialized,
                                       headers=self.headers)).status_code == 202
        return self

    async def post(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}}
        response = await self.client.post(self.url, json=body, headers=self.headers)
        message = _message(response)
        assert message["id"] == self._id, message
        return message


def _message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response in a JSON or an SSE answer (the last message event)."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines()
                if line.startswith("data:") and line[5:].strip()]
        messages = [json.loads(d) for d in data]
        return next(m for m in reversed(messages) if "id" in m)
    return dict(response.json())


async def all_skills(rpc: Modern) -> tuple[list[dict[str, Any]], int]:
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


async def verify_entry(rpc: Modern, entry: dict[str, Any]) -> dict[str, str]:
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
