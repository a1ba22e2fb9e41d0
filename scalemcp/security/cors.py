"""CORS for browser clients, and the security headers every response carries."""

from __future__ import annotations

__all__ = ["SECURITY_HEADERS", "CorsPolicy"]

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_EXPOSE = b"mcp-session-id, mcp-protocol-version, www-authenticate, retry-after"
_ALLOW_HEADERS = (
    b"authorization, content-type, accept, last-event-id, mcp-session-id, "
    b"mcp-protocol-version, mcp-method, mcp-name, x-api-key"
)


class CorsPolicy:
    """Answers browsers from ``cors_allowed_origins`` (``*`` for any); off when empty."""

    def __init__(self, allowed: list[str], max_age_s: int = 600) -> None:
        self.any = "*" in allowed
        self.allowed = frozenset(o.rstrip("/").lower() for o in allowed if o != "*")
        self.max_age = str(max_age_s).encode()

    def headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """Headers for an actual request from ``origin`` (none if not allowed)."""
        if origin is None or not (self.any or origin.rstrip("/").lower() in self.allowed):
            return []
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", _EXPOSE),
            (b"vary", b"Origin"),
        ]

    def preflight(self, origin: str | None, request_headers: str | None) -> list[
        tuple[bytes, bytes]
    ]:
        """Preflight headers beyond :meth:`headers` (none if not allowed)."""
        if not self.headers(origin):
            return []
        allow = _ALLOW_HEADERS
        # Mcp-Param-* names depend on the tools; echo what the browser asks for.
        if request_headers:
            extra = [h.strip() for h in request_headers.split(",")
                     if h.strip().lower().startswith("mcp-param-")]
            if extra:
                allow = allow + b", " + ", ".join(extra).encode("latin-1")
        return [(b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
                (b"access-control-allow-headers", allow),
                (b"access-control-max-age", self.max_age)]
