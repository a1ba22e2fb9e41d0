"""Protocol versions and the eras they belong to."""

from __future__ import annotations

from typing import Final

MODERN_VERSIONS: Final = ("2026-07-28",)
SESSION_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26")
LEGACY_SSE_VERSION: Final = "2024-11-05"
#: Versions a session (``initialize``) may negotiate, newest first.
NEGOTIABLE_VERSIONS: Final = (*SESSION_VERSIONS, LEGACY_SSE_VERSION)
ALL_VERSIONS: Final = (*MODERN_VERSIONS, *NEGOTIABLE_VERSIONS)
LATEST_SESSION_VERSION: Final = SESSION_VERSIONS[0]
#: Assumed when a session-era request has no MCP-Protocol-Version header (spec 4.7).
DEFAULT_HEADER_VERSION: Final = "2025-03-26"


def negotiate(requested: str) -> str:
    """Answer a client's ``initialize`` version: echo it if we speak it, else our newest."""
    if requested in NEGOTIABLE_VERSIONS:
        return requested
    return LATEST_SESSION_VERSION


def at_least(version: str, minimum: str) -> bool:
    """Dated versions compare correctly as strings."""
    return version >= minimum


def allows_batches(version: str) -> bool:
    return version == "2025-03-26"


def is_modern(version: str) -> bool:
    return version in MODERN_VERSIONS
