"""Origin validation (DNS-rebinding defence, spec 4.1): localhost always, plus an allow-list."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["HostPolicy", "OriginPolicy"]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class OriginPolicy:
    def __init__(self, allowed: list[str]) -> None:
        self.allow_any = "*" in allowed
        self.allowed = frozenset(o.rstrip("/").lower() for o in allowed if o != "*")

    def permits(self, origin: str | None) -> bool:
        """Requests without Origin (non-browser clients) are allowed."""
        if origin is None or self.allow_any:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allowed:
            return True
        try:
            parts = urlsplit(origin)
            host = parts.hostname
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and host in _LOCAL_HOSTS


class HostPolicy:
    """Host header validation: enforced when bound to loopback or given an allow-list.

    A server bound to a public address behind a load balancer sees its public names in
    Host, so without an allow-list it does not check Host (Origin is still checked).
    """

    def __init__(self, allowed: list[str], *, bound_to: str) -> None:
        self.allowed = frozenset(h.lower() for h in allowed)
        self.enforce = bool(allowed) or bound_to in _LOCAL_HOSTS or bound_to == "localhost"

    def permits(self, host: str | None) -> bool:
        if not self.enforce or host is None:
            return True
        host = host.strip().lower()
        if host in self.allowed:
            return True
        name = host[: host.find("]") + 1] if host.startswith("[") else host.split(":")[0]
        return name in _LOCAL_HOSTS or name in self.allowed
