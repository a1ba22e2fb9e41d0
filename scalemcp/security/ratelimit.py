"""Rate limits: token buckets per principal and per principal and tool, fleet-wide.

Theory of operation
-------------------
Each JSON-RPC *request* a client sends (not its notifications, not its answers to the
server's own requests) takes a token from its principal's bucket; each ``tools/call``
also takes one from the bucket of that principal and tool. A bucket of rate ``r`` (per
second) holds ``r x rate_limit_burst_s`` tokens, at least 1, and starts full. The tokens
of one HTTP POST (one batch, one WebSocket frame) are taken together, all or none, in one
call to the state backend: per process with the memory backend, fleet-wide with Redis
(one EVALSHA; see :mod:`scalemcp.state.redis_buckets`). A refusal raises
:class:`~scalemcp.errors.RateLimited`: HTTP 429, ``Retry-After`` and a JSON-RPC error
where the transport can say so, the JSON-RPC error alone on legacy SSE and WebSockets.

The principal is the authenticated one; an unauthenticated caller is limited by its
client address (``addr:<ip>``; behind a proxy that is the proxy's), or as ``anonymous``
when the server sees no address (a unix socket).

Per-tool rates: ``rate_limit_tools`` entries (``<tool>=<rate>``), else the tool's own
``@app.tool(rate_limit_rps=...)``, else ``rate_limit_per_tool_rps``; 0 means no limit.
Only tools that exist and that the caller may see get a bucket, so a client cannot make
buckets up, and a refusal never reveals a hidden tool.

Failure policy: fail open. While the backend cannot be reached the request goes through
unlimited (a warning is logged at most once a minute); the Redis failure policy already
answers session-era requests 503 then, and keeps stateless requests working.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from ..app.app import App
from ..config import Config
from ..errors import BackendUnavailable, RateLimited
from ..observability.metrics import RATE_LIMITED
from ..protocol.classify import Item
from ..state.base import StateBackend, Throttled, TokenBucket

__all__ = ["RateLimits", "parse_tool_rates", "subject"]

log = logging.getLogger("scalemcp.security")
_WARN_EVERY_S = 60.0
_PRINCIPAL = "p"


def subject(principal: str | None, scope: Mapping[str, Any]) -> str:
    """Whom a request counts against: its principal, else its client address."""
    if principal is not None:
        return "principal:" + principal
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "anonymous"


def parse_tool_rates(entries: Sequence[str]) -> dict[str, float]:
    """``rate_limit_tools`` entries (``<tool>=<calls per second>``); ValueError if bad."""
    rates: dict[str, float] = {}
    for entry in entries:
        name, sep, value = entry.rpartition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not name.strip() or not math.isfinite(rate) or rate < 0:
            raise ValueError(f"rate_limit_tools: {entry!r} is not <tool>=<calls per second> "
                             "with a rate >= 0")
        rates[name.strip()] = rate
    return rates


class RateLimits:
    """The rate limits of one server, over its state backend's token buckets."""

    def __init__(self, config: Config, app: App, state: StateBackend) -> None:
        self.app = app
        self.state = state
        self.principal_rps = config.limits.rate_limit_per_principal_rps
        self.tool_rps = config.limits.rate_limit_per_tool_rps
        self.tool_rates = parse_tool_rates(config.limits.rate_limit_tools)
        self.burst_s = config.limits.rate_limit_burst_s
        self._warned_at = -math.inf
        self._active = (-1, False)  # (number of tools when computed, active)

    @property
    def active(self) -> bool:
        """False when no limit is set (then ``check`` costs nothing)."""
        tools, active = self._active
        if tools != len(self.app.tools):  # computed again if tools were added
            active = bool(self.principal_rps or self.tool_rps or any(self.tool_rates.values())
                          or any(t.rate_limit_rps for t in self.app.tools.values()))
            self._active = (len(self.app.tools), active)
        return active

    async def check(
        self, who: str, items: Sequence[Item], scopes: frozenset[str] | None
    ) -> None:
        """Take the tokens ``items`` cost ``who``; raises RateLimited if they are short."""
        buckets = self.buckets(items, scopes)
        if not buckets:
            return
        try:
            refused = await self.state.take_tokens(who, buckets)
        except BackendUnavailable as exc:
            now = trio.current_time()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning("rate limits not enforced while the state backend is "
                            "unavailable: %s", exc)
            return
        if refused is not None:
            raise self._refusal(refused, buckets)

    def buckets(self, items: Sequence[Item], scopes: frozenset[str] | None
                ) -> list[TokenBucket]:
        """The buckets (with costs) that ``items`` take from; sans-IO."""
        if not self.active:
            return []
        requests = 0
        calls: dict[str, int] = {}
        for item in items:
            if not item.message.is_request:
                continue
            requests += 1
            if item.method == "tools/call":
                name = self._visible_tool(item.target, scopes)
                if name is not None:
                    calls[name] = calls.get(name, 0) + 1
        out: list[TokenBucket] = []
        if requests and self.principal_rps:
            out.append(self._bucket(_PRINCIPAL, self.principal_rps, requests))
        for name, count in calls.items():
            rate = self.rate_of(name)
            if rate:
                out.append(self._bucket("t:" + name, rate, count))
        return out

    def rate_of(self, tool: str) -> float:
        """Calls per second per principal allowed for ``tool`` (0: no limit)."""
        if tool in self.tool_rates:
            return self.tool_rates[tool]
        spec = self.app.tools.get(tool)
        if spec is not None and spec.rate_limit_rps is not None:
            return spec.rate_limit_rps
        return self.tool_rps

    def _bucket(self, name: str, rate: float, cost: int) -> TokenBucket:
        capacity = max(1.0, rate * self.burst_s)
        if cost > capacity:
            limit = "principal" if name == _PRINCIPAL else "tool"
            RATE_LIMITED.labels(limit).inc()
            raise RateLimited(f"{cost} requests at once exceed the burst of {math.floor(capacity)}"
                              f" allowed ({_describe(name, rate)}): send fewer at once",
                              limit=limit, retry_after_s=capacity / rate)
        return TokenBucket(name, rate_per_s=rate, capacity=capacity, cost=float(cost))

    def _visible_tool(self, name: str | None, scopes: frozenset[str] | None) -> str | None:
        if name is None:
            return None  # no name, or bad params: the engine answers them
        spec = self.app.tools.get(name)
        if spec is None or (scopes is not None and not scopes.issuperset(spec.scopes)):
            return None
        return name

    def _refusal(self, refused: Throttled, buckets: list[TokenBucket]) -> RateLimited:
        bucket = next(b for b in buckets if b.name == refused.bucket)
        limit = "principal" if bucket.name == _PRINCIPAL else "tool"
        RATE_LIMITED.labels(limit).inc()
        return RateLimited(f"rate limit exceeded: {_describe(bucket.name, bucket.rate_per_s)}",
                           limit=limit, retry_after_s=refused.retry_after_s)


def _describe(bucket: str, rate: float) -> str:
    if bucket == _PRINCIPAL:
        return f"at most {rate:g} requests per second from one principal"
    return f"at most {rate:g} calls per second to tool {bucket[2:]!r} from one principal"
