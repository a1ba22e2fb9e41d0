"""The server information document served at ``GET /`` (``info_path``).

Monitors and clients written for other MCP servers look there for the server's name and
version and where its MCP endpoints are; scalemcp answers with every era it serves.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._version import __version__
from ..app.app import App
from ..config import Config
from ..protocol import versions

__all__ = ["server_document"]


def server_document(app: App, config: Config) -> bytes:
    """The JSON document, encoded once: nothing in it changes while the server runs."""
    server = config.server
    doc: dict[str, Any] = {
        "name": app.name,
        "version": app.version,
        "server": {"name": "scalemcp", "version": __version__},
        "mcp": {
            "endpoint": server.path,
            "transport": "streamable-http",
            "protocolVersions": list(versions.MODERN_VERSIONS if server.stateless_only
                                     else versions.ALL_VERSIONS),
        },
    }
    if app.instructions:
        doc["instructions"] = app.instructions
    if not server.stateless_only:
        doc["mcp"]["websocket"] = server.path
        doc["legacy"] = {"transport": "http+sse", "protocolVersion":
                         versions.LEGACY_SSE_VERSION, "sse": server.sse_path,
                         "messages": server.messages_path}
    doc["health"] = {"liveness": server.liveness_paths, "readiness": server.readiness_paths}
    return msgspec.json.encode(doc)
