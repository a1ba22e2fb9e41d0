"""``App``: the registry of tools, resources, prompts and completions users build."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import trio

from ..protocol.types import ToolAnnotations
from ..protocol.versions import features
from . import skills
from .prompts import PromptSpec
from .resources import ResourceSpec, TemplateSpec, is_template
from .tasks import EXTENSION as TASKS_EXTENSION
from .tasks import TaskPolicy, TaskSupport, policy_of
from .tools import CacheHint, ToolSpec

if TYPE_CHECKING:
    from ..state.base import StateBackend

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
        #: Agent Skills served under ``skill://`` (:meth:`add_skills`, :meth:`add_skill`).
        self.skills = skills.SkillRegistry(taken=self.resources.__contains__)

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
        task: bool | TaskSupport | TaskPolicy | None = None,
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
        task: bool | TaskSupport | TaskPolicy | None = None,
    ) -> F | Callable[[F], F]:
        """Register a tool; usable bare (``@app.tool``) or with options.

        ``requires`` names client capabilities (e.g. ``("sampling",)``) the tool needs;
        ``headers`` maps parameters to ``Mcp-Param-*`` header names (modern era);
        ``rate_limit_rps`` limits calls per second per principal (the server's
        ``rate_limit_tools`` setting overrides it); ``task`` lets it run as a durable task
        (``True``, ``"optional"``, ``"required"`` or a :class:`TaskPolicy`; see
        docs/tasks.md). The function is returned unchanged.
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
                task=policy_of(task),
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

        A second resource (or template) at the same URI, or one at a skill file's URI, is
        refused (``ValueError``).
        """

        def register(f: F) -> F:
            kw: dict[str, Any] = dict(
                name=name, title=title, description=description, mime_type=mime_type,
                scopes=scopes,
            )
            if (uri in self.resources or any(t.uri == uri for t in self.templates)
                    or uri in self.skills.catalog.files):
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

    def add_skills(
        self, path: str | os.PathLike[str], *, prefix: str = "", poll_interval_s: float = 2.0
    ) -> None:
        """Serve every skill under the directory ``path`` (skill extension, SEP-2640).

        Each directory holding a ``SKILL.md`` is a skill, at ``skill://<prefix>/<its path
        under path>``; directories above it are prefixes (``acme/billing/refunds``). Every
        skill is checked now (SkillError names each file that breaks a rule). Each worker
        looks for changes every ``poll_interval_s`` seconds (0: never).
        """
        self.skills.add_directory(path, prefix, single=False, poll_interval_s=poll_interval_s)

    def add_skill(
        self,
        source: str | os.PathLike[str] | Traversable | Mapping[str, str | bytes],
        *,
        prefix: str = "",
        poll_interval_s: float = 2.0,
    ) -> None:
        """Serve one skill at ``skill://<prefix>/<name>``, from a directory (watched like
        :meth:`add_skills`), from package data (``importlib.resources.files(...) / "x"``,
        read once), or from code: ``{"SKILL.md": "...", "scripts/run.py": b"..."}``."""
        if isinstance(source, str | os.PathLike):
            self.skills.add_directory(source, prefix, single=True,
                                      poll_interval_s=poll_interval_s)
        else:
            self.skills.add_files(source, prefix)

    def listed_resources(self) -> list[Any]:
        """What ``resources/list`` shows: registered resources, then each skill's SKILL.md."""
        return [*self.resources.values(), *self.skills.listed()]

    async def serve_background(
        self, state: StateBackend, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run what the app needs beside requests (the skills watcher) until cancelled."""
        await self.skills.serve(state, task_status=task_status)

    def find_resource(
        self, uri: str
    ) -> tuple[ResourceSpec | skills.SkillResource, dict[str, str]] | None:
        """The resource (or template, with its variables) that serves ``uri``."""
        spec = self.resources.get(uri)
        if spec is not None:
            return spec, {}
        if self.skills:
            found = self.skills.find_resource(uri)  # InvalidParams for a traversal attempt
            if found is not None:
                return found, {}
        for template in self.templates:
            params = template.match(uri)
            if params is not None:
                return template, params
        return None

    def capabilities(self, version: str) -> dict[str, Any]:
        """The server capabilities this app declares to a client of ``version``."""
        caps: dict[str, Any] = {"logging": {}}
        if self.tools:
            caps["tools"] = {"listChanged": True}
        if self.resources or self.templates or self.skills:
            caps["resources"] = {"subscribe": True, "listChanged": True}
        if self.prompts:
            caps["prompts"] = {"listChanged": True}
        if self.completer is not None:
            caps["completions"] = {}
        if self.skills and features(version).extensions:
            caps["extensions"] = {skills.EXTENSION: {"directoryRead": True}}
        if any(t.task is not None and t.task.support != "forbidden"
               for t in self.tools.values()):
            era = features(version).tasks
            if era == "extension":
                caps.setdefault("extensions", {})[TASKS_EXTENSION] = {}
            elif era == "core":
                caps["tasks"] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
        return caps
