"""The error the bench counts, `McpError`, and a helper for errors leaving nurseries.

`McpError` kinds name what a person would look for in the report:
``http_<status>``, ``jsonrpc_<code>``, ``tool_error`` (a result with
``isError``), ``session_lost`` (404 for a session), ``no_response``,
``unexpected_request``, ``connect``, ``protocol`` (broken HTTP), ``timeout``,
``lost_events`` / ``duplicate_events`` (resume), ``decode`` (unreadable JSON).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["McpError", "single_errors"]


class McpError(Exception):
    """A failed operation; ``kind`` is the label errors are counted under."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@contextmanager
def single_errors() -> Iterator[None]:
    """Raise a group of one exception (what a nursery makes of its body's error) as that one.

    Clients that run a reader task wrap the caller's code in a nursery; this keeps
    their callers catching `McpError` or `ConnectError` as if no nursery were there.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is group:
            raise
        raise leaf from None
