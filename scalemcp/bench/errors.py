"""The one error the bench counts: `McpError`, labelled with a short kind.

Kinds name what a person would look for in the report: ``http_<status>``,
``jsonrpc_<code>``, ``tool_error`` (a result with ``isError``), ``session_lost``
(404 for a session), ``no_response``, ``unexpected_request``, ``connect``,
``protocol`` (broken HTTP), ``timeout``, ``lost_events`` / ``duplicate_events``
(resume), ``decode`` (unreadable JSON).
"""

from __future__ import annotations

__all__ = ["McpError"]


class McpError(Exception):
    """A failed operation; ``kind`` is the label errors are counted under."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
