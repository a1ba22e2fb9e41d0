"""``App``: the registry of tools, resources, prompts and completions users build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from ..protocol.types import ToolAnnotations
from .prompts import PromptSpec
from .resources import ResourceSpec, TemplateSpec, is_template
from .tools import CacheHint, ToolSpec

__all__ = ["App"]

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """An MCP server application.

    >>> app = App("demo", version="1.0")
    >>> @app.tool
    ... async def add(a: int, b: int) -> int:
    ...     return a + b
    """

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.0.0",
        title: str | None = None,
        instructions: str | None = None,
        page_size: int = 100,
        list_cache: CacheHint | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.title = title
        self.instructions = instructions
        self.page_size = page_size
        self.list_cache = list_cache or CacheHint()
        self.tools: dict[str, ToolSpec] = {}
        self.resources: dict[str, ResourceSpec] = {}
        self.templates: list[TemplateSpec] = []
        self.prompts: dict[str, PromptSpec] = {}
        self.completer: Callable[..., Any] | None = None
        self.cache_hints: dict[tuple[str, str], CacheHint] = {}

    @overload
    def tool(self, fn: F) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        structured_output: bool | None = None,
        scopes: tuple[str, ...] = (),
        requires: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        input_schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        rate_limit_rps: float | None = None,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        structured_output: bool | None = None,
        scopes: tuple[str, ...] = (),
        requires: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        input_schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        rate_limit_rps: float | None = None,
    ) -> F | Callable[[F], F]:
        """Register a tool; usable bare (``@app.tool``) or with options.

        ``requires`` names client capabilities (e.g. ``("sampling",)``) the tool needs;
        ``headers`` maps parameters to ``Mcp-Param-*`` header names (modern era);
        ``rate_limit_rps`` limits calls per second per principal (the server's
        ``rate_limit_tools`` setting overrides it). The function is returned unchanged.
        A second tool of the same name is refused (``ValueError``).
        """

        def register(f: F) -> F:
            spec = ToolSpec(
                f,
                name=name,
                title=title,
                description=description,
                annotations=annotations,
                structured_output=structured_output,
                scopes=scopes,
                requires=requires,
                headers=headers,
                input_schema=input_schema,
                meta=meta,
                rate_limit_rps=rate_limit_rps,
            )
            if spec.name in self.tools:
                raise ValueError(f"tool {spec.name!r} is already registered")
            self.tools[spec.name] = spec
            return f

        return register(fn) if fn is not None else register

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        scopes: tuple[str, ...] = (),
        cache: CacheHint | None = None,
    ) -> Callable[[F], F]:
        """Register a resource at ``uri``, or a template if ``uri`` holds ``{var}``.

        A second resource (or template) at the same URI is refused (``ValueError``).
        """

        def register(f: F) -> F:
            kw: dict[str, Any] = dict(
                name=name, title=title, description=description, mime_type=mime_type,
                scopes=scopes,
            )
            if uri in self.resources or any(t.uri == uri for t in self.templates):
                raise ValueError(f"resource {uri!r} is already registered")
            if is_template(uri):
                self.templates.append(TemplateSpec(f, uri, **kw))
            else:
                self.resources[uri] = ResourceSpec(f, uri, **kw)
            if cache is not None:
                self.cache_hints[("resource", uri)] = cache
            return f

        return register

    @overload
    def prompt(self, fn: F) -> F: ...

    @overload
    def prompt(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> Callable[[F], F]: ...

    def prompt(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> F | Callable[[F], F]:
        """Register a prompt; its string parameters are the prompt's arguments.

        Usable bare (``@app.prompt``) or with options; a second prompt of the same name is
        refused (``ValueError``).
        """

        def register(f: F) -> F:
            spec = PromptSpec(f, name=name, title=title, description=description, scopes=scopes)
            if spec.name in self.prompts:
                raise ValueError(f"prompt {spec.name!r} is already registered")
            self.prompts[spec.name] = spec
            return f

        return register(fn) if fn is not None else register

    def completion(self, fn: F) -> F:
        """Register the completion handler: ``(ref, argument, context) -> list[str]``."""
        if self.completer is not None:
            raise ValueError("a completion handler is already registered")
        self.completer = fn
        return fn

    def find_resource(self, uri: str) -> tuple[ResourceSpec, dict[str, str]] | None:
        """The resource (or template, with its variables) that serves ``uri``."""
        spec = self.resources.get(uri)
        if spec is not None:
            return spec, {}
        for template in self.templates:
            params = template.match(uri)
            if params is not None:
                return template, params
        return None

    def capabilities(self) -> dict[str, Any]:
        """The server capabilities this app declares in every era."""
        caps: dict[str, Any] = {"logging": {}}
        if self.tools:
            caps["tools"] = {"listChanged": True}
        if self.resources or self.templates:
            caps["resources"] = {"subscribe": True, "listChanged": True}
        if self.prompts:
            caps["prompts"] = {"listChanged": True}
        if self.completer is not None:
            caps["completions"] = {}
        return caps
