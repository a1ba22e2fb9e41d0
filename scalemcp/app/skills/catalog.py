"""The catalog: every skill, file and directory the server serves, as of one scan.

Sources (``scan.py``) report what they hold as URIs; :meth:`Catalog.build` checks every
skill against the Agent Skills rules and the extension's limits, makes each entry (its
verbatim frontmatter and complete manifest, encoded once), and the directory listings.
A catalog never changes: a rescan builds a new one and the registry swaps it in whole,
so one request always sees one consistent snapshot.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from ...protocol.types import Resource
from .frontmatter import FrontmatterError, parse_frontmatter, validate_frontmatter
from .uris import DIRECTORY_MIME, SCHEME, SKILL_FILE, segment_name

__all__ = ["MAX_BYTES", "MAX_FILES", "Catalog", "RootInfo", "Skill", "SkillFile", "SourceScan"]

#: The extension's per-skill limits: files (SKILL.md included) and their total size.
MAX_FILES = 512
MAX_BYTES = 16 * 1024 * 1024


class SkillFile(msgspec.Struct, frozen=True):
    """One served file: its manifest facts and where its bytes are."""

    uri: str
    digest: str  # "sha256:<64 hex>"
    size: int
    mime_type: str
    text: bool  # served as text (UTF-8), else as a base64 blob
    label: str  # where it came from, for messages (a path as given, or "<code>/...")
    top: str | None = None  # the real path of the directory it was found in
    path: str | None = None  # its real path on disk, under ``top``
    data: bytes | None = None  # the content, for skills registered from code/package data


class RootInfo(msgspec.Struct, frozen=True):
    """A directory holding a SKILL.md."""

    uri: str  # the skill's directory URI (no trailing slash)
    directory_name: str | None  # must equal the frontmatter name (None: made from it)
    label: str  # the SKILL.md, for messages


class SourceScan(msgspec.Struct):
    """What one source holds: files and directories under its skills, by URI."""

    label: str
    files: dict[str, SkillFile]
    dirs: set[str]
    roots: list[RootInfo]
    texts: dict[str, str]  # SKILL.md URI -> its text
    errors: list[str]  # skills left out, and why
    warnings: list[str]  # entries left out of the tree (links leaving it, odd names)
    signature: str = ""  # changes whenever the source's files may have (watched sources)


class Skill(msgspec.Struct, frozen=True):
    uri: str  # .../SKILL.md
    root: str
    frontmatter: dict[str, Any]
    files: tuple[SkillFile, ...]
    entry: msgspec.Raw  # the encoded Skill entry
    descriptor: Resource  # the SKILL.md as resources/list shows it


_encoder = msgspec.json.Encoder()


class Catalog:
    """An immutable snapshot; build it with :meth:`build`."""

    def __init__(self, skills: Iterable[Skill], files: dict[str, SkillFile],
                 children: dict[str, tuple[Resource, ...]], errors: Sequence[str]) -> None:
        self.skills = tuple(sorted(skills, key=lambda s: s.uri))
        self.by_uri = {s.uri: s for s in self.skills}
        self.files = files
        self.children = children
        self.errors = tuple(errors)
        digest = hashlib.sha256()
        for skill in self.skills:
            digest.update(skill.entry)
        for uri in sorted(children):
            digest.update(uri.encode() + b"\0")
        #: Changes whenever anything a client can see changes.
        self.fingerprint = digest.hexdigest()

    @classmethod
    def build(cls, scans: Sequence[SourceScan]) -> Catalog:
        errors = [e for scan in scans for e in scan.errors]
        errors += _conflicts(scans)
        skills = []
        dirs: set[str] = set()
        for scan in scans:
            file_uris, dir_uris = sorted(scan.files), sorted(scan.dirs)
            for root in scan.roots:
                skill = _skill(scan, root, _under(file_uris, root.uri), errors)
                if skill is not None:
                    skills.append(skill)
                    dirs.update([skill.root, *_under(dir_uris, skill.root),
                                 *_ancestors(skill.root)])
        files = {f.uri: f for skill in skills for f in skill.files}
        return cls(skills, files, _children(files, dirs), errors)

    def directory(self, uri: str) -> tuple[Resource, ...] | None:
        """The children of a directory resource, or None if ``uri`` is not one."""
        return self.children.get(uri)

    def page(self, start: int, max_items: int, max_bytes: int) -> tuple[list[msgspec.Raw], int]:
        """Entries from ``start``: at most ``max_items``, and no more than ``max_bytes`` of
        them unless one alone is larger; an entry is never split. Returns the next start."""
        out: list[msgspec.Raw] = []
        used = 0
        index = start
        while index < len(self.skills) and len(out) < max_items:
            entry = self.skills[index].entry
            if out and used + len(entry) > max_bytes:
                break
            out.append(entry)
            used += len(entry)
            index += 1
        return out, index


def _under(uris: list[str], directory: str) -> list[str]:
    """The URIs (sorted) below ``directory``: they sort between "<dir>/" and "<dir>0"."""
    return uris[bisect_left(uris, directory + "/"):bisect_left(uris, directory + "0")]


def _skill(scan: SourceScan, root: RootInfo, member_uris: list[str],
           errors: list[str]) -> Skill | None:
    """The skill at ``root``, or None (with the reasons appended to ``errors``)."""
    uri = f"{root.uri}/{SKILL_FILE}"
    text = scan.texts.get(uri)
    if text is None:
        return None  # the source reported why
    try:
        frontmatter = parse_frontmatter(text)
    except FrontmatterError as exc:
        errors.append(f"{root.label}: {exc}")
        return None
    problems = validate_frontmatter(frontmatter, root.directory_name)
    members = tuple(scan.files[u] for u in member_uris)
    total = sum(f.size for f in members)
    if len(members) > MAX_FILES:
        problems.append(f"the skill has {len(members)} files; the limit is {MAX_FILES}")
    if total > MAX_BYTES:
        problems.append(f"the skill's files add up to {total} bytes; the limit is "
                        f"{MAX_BYTES} (16 MiB)")
    if problems:
        errors.extend(f"{root.label}: {p}" for p in problems)
        return None
    entry = {
        "uri": uri,
        "frontmatter": frontmatter,
        "resources": [{"uri": f.uri, "digest": f.digest, "size": f.size} for f in members],
    }
    skill_md = scan.files[uri]
    descriptor = Resource(uri=uri, name=frontmatter["name"],
                          description=frontmatter["description"],
                          mime_type=skill_md.mime_type, size=skill_md.size)
    return Skill(uri=uri, root=root.uri, frontmatter=frontmatter, files=members,
                 entry=msgspec.Raw(_encoder.encode(entry)), descriptor=descriptor)


def _conflicts(scans: Sequence[SourceScan]) -> list[str]:
    """Two sources serving one URI, or one source's files inside another's skill."""
    owner: dict[str, int] = {}
    problems = []
    for index, scan in enumerate(scans):
        for uri in [*scan.files, *scan.dirs]:
            other = owner.setdefault(uri, index)
            if other != index and uri in scan.files:
                problems.append(f"{uri} is served by both {scans[other].label} and "
                                f"{scan.label}")
    if len(scans) < 2:
        return problems
    keys = sorted(owner)
    for index, scan in enumerate(scans):
        for root in scan.roots:
            inside = [u for u in _under(keys, root.uri) if owner[u] != index]
            if inside:
                problems.append(f"{root.label}: {inside[0]} (from another source) lies inside "
                                "this skill; a skill's files must come from one source")
    return problems


def _ancestors(root: str) -> list[str]:
    segments = root[len(SCHEME):].split("/")
    return [SCHEME + "/".join(segments[:n]) for n in range(1, len(segments))]


def _children(files: dict[str, SkillFile],
              dirs: set[str]) -> dict[str, tuple[Resource, ...]]:
    listing: dict[str, list[Resource]] = {d: [] for d in dirs}
    for uri in dirs:
        parent = _parent(uri)
        if parent is not None and parent in listing:
            listing[parent].append(Resource(uri=uri, name=segment_name(uri),
                                            mime_type=DIRECTORY_MIME))
    for uri, file in files.items():
        parent = _parent(uri)
        if parent is not None and parent in listing:
            listing[parent].append(Resource(uri=uri, name=segment_name(uri),
                                            mime_type=file.mime_type, size=file.size))
    return {d: tuple(sorted(items, key=lambda r: r.uri)) for d, items in listing.items()}


def _parent(uri: str) -> str | None:
    cut = uri.rfind("/")
    return uri[:cut] if cut > len(SCHEME) else None
