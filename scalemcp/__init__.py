"""scalemcp: serve MCP tools, resources and prompts over HTTP at scale."""

from ._version import __version__
from .app.app import App
from .app.content import Audio, Image
from .app.context import Context, ElicitResult, InputRequest, elicitation, roots, sampling
from .app.skills import SkillError
from .app.tasks import TaskPolicy
from .app.tools import CacheHint
from .config import Config
from .errors import ToolError
from .protocol.types import (
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
    PromptMessage,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from .server import ConfigError, asgi_app, run

__all__ = [
    "App",
    "Audio",
    "BlobResourceContents",
    "CacheHint",
    "Config",
    "ConfigError",
    "Context",
    "ElicitResult",
    "EmbeddedResource",
    "Image",
    "ImageContent",
    "InputRequest",
    "PromptMessage",
    "ResourceLink",
    "SkillError",
    "TaskPolicy",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
    "ToolError",
    "__version__",
    "asgi_app",
    "elicitation",
    "roots",
    "run",
    "sampling",
]
