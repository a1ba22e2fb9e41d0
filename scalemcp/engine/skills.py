"""The skills extension's methods: ``skills/list``, ``skills/get``, ``resources/directory/read``.

They answer in every era (a session-era or legacy client that calls them gets the same
entries); the catalog they read is the app's (``app/skills``). Their params were decoded
when the request was classified (``protocol/classify.py``); registered in dispatch.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from msgspec import UNSET

from ..app.pagination import decode_offset, encode_offset, paginate
from ..app.skills import SkillRegistry
from ..app.skills.uris import check_uri
from ..errors import InvalidParams, MethodNotFound
from ..protocol.types import GetSkillParams, ListParams, ReadDirectoryParams
from .call import Call

if TYPE_CHECKING:
    from .dispatch import Engine, ScopeMaker

__all__ = ["HANDLERS"]

#: A skills/list page stops before this many bytes of entries (but holds at least one):
#: an entry is a whole manifest, up to 512 files.
PAGE_BYTES: Final = 1024 * 1024


def _registry(engine: Engine, call: Call) -> SkillRegistry:
    """The app's skills; an app without any does not declare the extension."""
    if not engine.app.skills:
        raise MethodNotFound(f"method not found: {call.method} (this server serves no skills)")
    return engine.app.skills


def _cacheable(engine: Engine, call: Call, result: dict[str, Any]) -> dict[str, Any]:
    if call.modern:  # CacheableResult exists from 2026-07-28
        result["ttlMs"] = engine.app.list_cache.ttl_ms
        result["cacheScope"] = engine.app.list_cache.scope
    return result


async def list_skills(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    catalog = _registry(engine, call).catalog
    p = call.params_as(ListParams)
    start = decode_offset(p.cursor)
    if start > len(catalog.skills):
        raise InvalidParams("invalid cursor: past the end of the list")
    entries, end = catalog.page(start, engine.app.page_size, PAGE_BYTES)
    result: dict[str, Any] = {"skills": entries}
    if end < len(catalog.skills):
        result["nextCursor"] = encode_offset(end)
    return _cacheable(engine, call, result)


async def get_skill(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    registry = _registry(engine, call)
    uri = call.params_as(GetSkillParams).uri
    skill = registry.skill(uri)
    if skill is None:  # -32602 in every era (the extension's rule, not resources/read's)
        raise InvalidParams(f"No skill is served at {uri}", {"uri": uri})
    return _cacheable(engine, call, {"skill": skill.entry})


async def read_directory(engine: Engine, call: Call, make_scope: ScopeMaker) -> Any:
    catalog = _registry(engine, call).catalog
    p = call.params_as(ReadDirectoryParams)
    check_uri(p.uri)  # InvalidParams for a traversal attempt
    children = catalog.directory(p.uri)
    if children is None:
        reason = ("is not a directory resource" if p.uri in catalog.files
                  else "is not a directory this server serves")
        raise InvalidParams(f"{p.uri} {reason}", {"uri": p.uri})
    page, next_cursor = paginate(children, p.cursor, engine.app.page_size)
    result: dict[str, Any] = {"resources": list(page)}
    if next_cursor is not UNSET:
        result["nextCursor"] = next_cursor
    return result


HANDLERS: Final = {
    "skills/list": list_skills,
    "skills/get": get_skill,
    "resources/directory/read": read_directory,
}
