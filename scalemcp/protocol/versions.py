"""Protocol versions, their eras, and what each one has: one frozen table.

Theory of operation
-------------------
Every difference between MCP versions that scalemcp acts on is a field of
:class:`Features`, and :data:`FEATURES` says, once, which versions have it (as h11 keeps
its state transitions in tables). Code asks ``features(version).structured_output``;
it never compares version strings. A new version is one new row.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

__all__ = [
    "ALL_VERSIONS",
    "DEFAULT_HEADER_VERSION",
    "FEATURES",
    "LATEST_SESSION_VERSION",
    "LEGACY_SSE_VERSION",
    "MODERN_VERSIONS",
    "NEGOTIABLE_VERSIONS",
    "SESSION_VERSIONS",
    "Features",
    "features",
    "is_modern",
    "negotiate",
]

Era = Literal["modern", "session", "legacy"]


class Features(msgspec.Struct, frozen=True, kw_only=True):
    """What one protocol version has."""

    era: Era
    #: JSON-RPC batches in one POST (2025-03-26 only).
    batches: bool = False
    #: ``message`` in ``notifications/progress``.
    progress_message: bool = False
    #: ``structuredContent`` and ``outputSchema`` on tools.
    structured_output: bool = False
    #: ``title`` on tools, resources, prompts and ``serverInfo``.
    titles: bool = False
    #: ``icons`` on tools, resources and prompts.
    icons: bool = False
    #: ``_meta`` on tool descriptors.
    tool_meta: bool = False
    #: ``mode`` on ``elicitation/create`` (form or URL elicitation).
    elicitation_mode: bool = False
    #: SSE polling: a priming event and ``retry:`` on resumable streams.
    sse_polling: bool = False
    #: Tool arguments that fail validation are an ``isError`` result, not a JSON-RPC error.
    argument_errors_as_results: bool = False
    #: ``capabilities.extensions`` (SEP-2133), where the server declares extensions such
    #: as skills. 2026-07-28 defines it; 2025-11-25's schema does not, but both official
    #: SDKs and the conformance suite read it from a 2025-11-25 ``initialize`` result.
    #: Older clients are told nothing (their schemas close ``ServerCapabilities``).
    extensions: bool = False
    #: Durable tasks: ``core`` (2025-11-25: ``capabilities.tasks``, ``params.task``,
    #: ``tasks/get|result|list|cancel``), ``extension`` (2026-07-28: the
    #: ``io.modelcontextprotocol/tasks`` extension), or none.
    tasks: Literal["none", "core", "extension"] = "none"


FEATURES: Final[dict[str, Features]] = {
    "2026-07-28": Features(era="modern", progress_message=True, structured_output=True,
                           titles=True, icons=True, tool_meta=True, elicitation_mode=True,
                           argument_errors_as_results=True, extensions=True,
                           tasks="extension"),
    "2025-11-25": Features(era="session", progress_message=True, structured_output=True,
                           titles=True, icons=True, tool_meta=True, elicitation_mode=True,
                           sse_polling=True, argument_errors_as_results=True,
                           extensions=True, tasks="core"),
    "2025-06-18": Features(era="session", progress_message=True, structured_output=True,
                           titles=True, tool_meta=True),
    "2025-03-26": Features(era="session", batches=True, progress_message=True),
    "2024-11-05": Features(era="legacy"),
}

MODERN_VERSIONS: Final = tuple(v for v, f in FEATURES.items() if f.era == "modern")
SESSION_VERSIONS: Final = tuple(v for v, f in FEATURES.items() if f.era == "session")
LEGACY_SSE_VERSION: Final = next(v for v, f in FEATURES.items() if f.era == "legacy")
#: Versions a session (``initialize``) may negotiate, newest first.
NEGOTIABLE_VERSIONS: Final = (*SESSION_VERSIONS, LEGACY_SSE_VERSION)
ALL_VERSIONS: Final = (*MODERN_VERSIONS, *NEGOTIABLE_VERSIONS)
LATEST_SESSION_VERSION: Final = SESSION_VERSIONS[0]
#: Assumed when a session-era request has no MCP-Protocol-Version header (spec 4.7).
DEFAULT_HEADER_VERSION: Final = "2025-03-26"


def features(version: str) -> Features:
    """What ``version`` has; ``KeyError`` for a version scalemcp does not speak."""
    return FEATURES[version]


def negotiate(requested: str) -> str:
    """Answer a client's ``initialize`` version: echo it if we speak it, else our newest."""
    if requested in NEGOTIABLE_VERSIONS:
        return requested
    return LATEST_SESSION_VERSION


def is_modern(version: str) -> bool:
    found = FEATURES.get(version)
    return found is not None and found.era == "modern"
