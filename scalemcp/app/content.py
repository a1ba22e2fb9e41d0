"""Turning what a tool or prompt returns into MCP content blocks."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import msgspec

from ..protocol.types import (
    AudioContent,
    BlobResourceContents,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

__all__ = ["Audio", "Image", "to_content"]

CONTENT_TYPES = (TextContent, ImageContent, AudioContent, ResourceLink, EmbeddedResource)


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """Image content from raw bytes (base64-encoded for the wire)."""

    data: bytes
    mime_type: str = "image/png"

    def to_block(self) -> ImageContent:
        """The ``image`` content block (base64 data and MIME type)."""
        return ImageContent(data=base64.b64encode(self.data).decode(), mime_type=self.mime_type)


@dataclasses.dataclass(frozen=True, slots=True)
class Audio:
    """Audio content from raw bytes (base64-encoded for the wire)."""

    data: bytes
    mime_type: str = "audio/wav"

    def to_block(self) -> AudioContent:
        """The ``audio`` content block (base64 data and MIME type)."""
        return AudioContent(data=base64.b64encode(self.data).decode(), mime_type=self.mime_type)


def to_content(value: Any) -> list[ContentBlock]:
    """Map a return value to content blocks: str, bytes, Image, Audio, blocks, or lists."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        blocks: list[ContentBlock] = []
        for item in value:
            blocks.extend(to_content(item))
        return blocks
    return [_one(value)]


def _one(value: Any) -> ContentBlock:
    if isinstance(value, CONTENT_TYPES):
        return value
    if isinstance(value, str):
        return TextContent(text=value)
    if isinstance(value, Image | Audio):
        return value.to_block()
    if isinstance(value, TextResourceContents | BlobResourceContents):
        return EmbeddedResource(resource=value)
    if isinstance(value, bytes):
        return EmbeddedResource(
            resource=BlobResourceContents(
                uri="data:application/octet-stream",
                blob=base64.b64encode(value).decode(),
                mime_type="application/octet-stream",
            )
        )
    return TextContent(text=msgspec.json.encode(value).decode())
