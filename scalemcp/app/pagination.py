"""Opaque, node-independent list cursors: the offset of the next page, base64url-encoded."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from msgspec import UNSET, UnsetType

from ..errors import InvalidParams

T = TypeVar("T")


def paginate(
    items: Sequence[T], cursor: str | UnsetType, page_size: int
) -> tuple[Sequence[T], str | UnsetType]:
    start = 0 if cursor is UNSET else _decode(cursor)
    if start > len(items):
        raise InvalidParams("invalid cursor: past the end of the list")
    end = start + page_size
    next_cursor: str | UnsetType = _encode(end) if end < len(items) else UNSET
    return items[start:end], next_cursor


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, number = raw.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParams("invalid cursor: pass back a nextCursor exactly as received") from None
    if tag != "o" or offset < 0:
        raise InvalidParams("invalid cursor: pass back a nextCursor exactly as received")
    return offset


def decode_offset(cursor: str | UnsetType) -> int:
    """Where a page starts, from a cursor ``paginate`` (or ``encode_offset``) made."""
    return 0 if cursor is UNSET else _decode(cursor)


def encode_offset(offset: int) -> str:
    """The cursor of a page starting at ``offset``."""
    return _encode(offset)
