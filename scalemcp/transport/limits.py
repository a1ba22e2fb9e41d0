"""The input limits of :class:`~scalemcp.config.Config`, as the transports apply them."""

from __future__ import annotations

from ..config import Config
from ..errors import InvalidRequest
from ..protocol.limits import HeaderLimits, JsonLimits, check_headers
from .http import Request

__all__ = ["header_limits", "json_limits", "refuse_headers"]

#: A refused request's body is read (and dropped) up to this size, to keep the connection.
_DRAIN_BYTES = 64 * 1024


def json_limits(config: Config) -> JsonLimits:
    limits = config.limits
    return JsonLimits(depth=limits.max_json_depth, string_chars=limits.max_json_string_chars,
                      items=limits.max_json_items)


def header_limits(config: Config) -> HeaderLimits:
    limits = config.limits
    return HeaderLimits(total_bytes=limits.max_header_bytes, count=limits.max_header_count,
                        param_headers=limits.max_param_headers)


async def refuse_headers(req: Request, limits: HeaderLimits) -> bool:
    """Answer 431/400 if the request's headers break a limit; True if it was answered."""
    problem = check_headers(req.scope["headers"], limits)
    if problem is None:
        return False
    await req.drain(_DRAIN_BYTES)
    await req.respond_error(problem.status, InvalidRequest(problem.message))
    return True
