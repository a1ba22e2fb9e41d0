"""Agent Skills served over MCP: the ``io.modelcontextprotocol/skills`` extension (SEP-2640).

``App.add_skills(path)`` / ``App.add_skill(...)`` register skills; the engine answers
``skills/list``, ``skills/get`` and ``resources/directory/read`` from the registry's
catalog (``engine/skills.py``), and every skill file is an ordinary resource under
``skill://``. See docs/skills.md.
"""

from .catalog import MAX_BYTES, MAX_FILES, Catalog, Skill, SkillFile
from .registry import SkillError, SkillRegistry, SkillResource

__all__ = [
    "EXTENSION",
    "MAX_BYTES",
    "MAX_FILES",
    "Catalog",
    "Skill",
    "SkillError",
    "SkillFile",
    "SkillRegistry",
    "SkillResource",
]

#: The extension's identifier under ``capabilities.extensions``.
EXTENSION = "io.modelcontextprotocol/skills"
