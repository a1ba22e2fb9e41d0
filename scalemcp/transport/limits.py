"""The input limits of :class:`~scalemcp.config.Config`, as the transports apply them."""

from __future__ import annotations

from ..config import Config
from ..protocol.limits import HeaderLimits, JsonLimits, check_headers

__all__ = ["check_request_headers", "header_limits", "json_limits"]


def json_limits(config: Config) -> JsonLimits:
    limits = config.limits
    return JsonLimits(depth=limits.max_json_depth, string_chars=limits.max_json_string_chars,
                      items=limits.max_json_items)


def header_limits(config: Config) -> HeaderLimits:
    limits = config.limits
    return HeaderLimits(total_bytes=limits.max_header_bytes, count=limits.max_header_count,
                        param_headers=limits.max_param_headers)


def check_request_headers(headers: list[tuple[bytes, bytes]], limits: HeaderLimits) -> None:
    """Raise the error (431 or 400) for the first header limit ``headers`` break."""
    problem = check_headers(headers, limits)
    if problem is not None:
        raise problem
