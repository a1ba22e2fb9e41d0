"""Where skills come from: a directory on disk (watched), or files handed over by code.

A directory is walked without leaving it: hidden entries (``.git``, and the ``..data``
indirection of a Kubernetes ConfigMap volume) are not served, a symbolic link is followed
only if its target lies inside the directory, and only regular files are ever opened
(``O_NOFOLLOW | O_NONBLOCK``, so a FIFO or a link swapped in later is refused). What a
file holds is hashed once per scan; a request reads it again and serves it only if the
bytes still match the manifest (``registry.py``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from typing import NamedTuple

from .catalog import MAX_BYTES, MAX_FILES, RootInfo, SkillFile, SourceScan
from .frontmatter import FrontmatterError, check_name, parse_frontmatter
from .uris import SKILL_FILE, encode, is_textual, join, mime_type_of, usable_name

__all__ = ["DirectorySource", "MemorySource", "read_file", "sha256"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_OPEN_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_file(top: str, path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file at ``path``, a real path under the
    directory ``top``. Every directory between them is opened without following a
    symbolic link, and so is the file: a link swapped in anywhere since the scan makes
    this fail (OSError) instead of reaching outside ``top``."""
    parts = path[len(top) + 1:].split(os.sep)
    if not path.startswith(top + os.sep) or any(p in ("", ".", "..") for p in parts):
        raise OSError(f"{path} is not inside {top}")
    fd = os.open(top, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], _OPEN_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return file.read(limit + 1)


class _Walk(NamedTuple):
    files: dict[str, tuple[str, os.stat_result]]  # relative path -> (real path, stat)
    dirs: list[str]  # relative paths; "" is the top
    warnings: list[str]
    signature: str


def _walk(top: str, label: str) -> _Walk:
    files: dict[str, tuple[str, os.stat_result]] = {}
    dirs = [""]
    warnings: list[str] = []
    seen = {_inode(os.stat(top))}
    stack = [("", top)]
    while stack:
        rel, real_dir = stack.pop()
        try:
            with os.scandir(real_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            warnings.append(f"{label}/{rel}: cannot be listed ({exc.strerror}); not served")
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if not usable_name(entry.name):
                if not entry.name.startswith("."):
                    warnings.append(f"{label}/{child}: a name with a backslash or a control "
                                    "character; not served")
                continue
            real = entry.path  # under real_dir, which is a real path already
            if entry.is_symlink():
                real = os.path.realpath(real)
                if real != top and not real.startswith(top + os.sep):
                    warnings.append(f"{label}/{child}: a symbolic link out of the skills "
                                    "directory; not served")
                    continue
            try:
                st = os.stat(real, follow_symlinks=False)
            except OSError:
                warnings.append(f"{label}/{child}: a dangling symbolic link, or gone; "
                                "not served")
                continue
            if stat.S_ISDIR(st.st_mode):
                if _inode(st) in seen:
                    warnings.append(f"{label}/{child}: a directory already served elsewhere "
                                    "(a symbolic link loop or a second link); not served")
                    continue
                seen.add(_inode(st))
                dirs.append(child)
                stack.append((child, real))
            elif stat.S_ISREG(st.st_mode):
                files[child] = (real, st)
    digest = hashlib.sha256()
    for rel, (real, st) in sorted(files.items()):
        digest.update(f"{rel}\0{real}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    for rel in sorted(dirs):
        digest.update(f"{rel}/\n".encode())
    return _Walk(files, dirs, warnings, digest.hexdigest())


def _inode(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _enclosing(rel: str) -> list[str]:
    """The directories that hold ``rel``, from the top ("") down to its parent."""
    parts = rel.split("/")
    return ["", *("/".join(parts[:n]) for n in range(1, len(parts)))]


class DirectorySource:
    """A directory of skill directories (nested to any depth), or with ``single`` one
    skill directory, served under ``prefix``."""

    watched = True

    def __init__(self, path: str | os.PathLike[str], prefix: list[str], *, single: bool) -> None:
        self.label = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"{self.label}: not a directory")
        self.single = single
        self.name = os.path.basename(os.path.abspath(path))
        self.base = [*prefix, encode(self.name)] if single else list(prefix)

    def signature(self) -> str:
        """Changes whenever a file or directory is added, removed, replaced or written."""
        try:
            return _walk(os.path.realpath(self.label), self.label).signature
        except OSError as exc:  # the directory itself is gone
            return f"gone: {exc}"

    def scan(self) -> SourceScan:
        # Resolved on every scan: a deployment may point a link ("current") elsewhere.
        top = os.path.realpath(self.label)
        try:
            walk = _walk(top, self.label)
        except OSError as exc:
            return SourceScan(label=self.label, files={}, dirs=set(), roots=[], texts={},
                              errors=[f"{self.label}: cannot be read ({exc.strerror})"],
                              warnings=[], signature=f"gone: {exc}")
        out = SourceScan(label=self.label, files={}, dirs=set(), roots=[], texts={},
                         errors=[], warnings=walk.warnings, signature=walk.signature)
        skill_dirs = [d for d in walk.dirs if _join(d, SKILL_FILE) in walk.files]
        if self.single and "" not in skill_dirs:
            out.errors.append(f"{self.label}: no {SKILL_FILE} in this directory")
            return out
        if not self.single and "" in skill_dirs:
            out.errors.append(f"{self.label}/{SKILL_FILE}: this directory is itself a skill; "
                              "register it with app.add_skill(), not app.add_skills()")
            return out
        roots = self._within_limits(skill_dirs, walk, out.errors)
        needed = {rel for rel in walk.files if any(a in roots for a in _enclosing(rel))}
        unreadable, skill_mds = self._read(top, walk, needed, out)
        broken = {a for rel in unreadable for a in _enclosing(rel) if a in roots}
        served = set()
        for d in sorted(roots):
            uri = self._uri(d)
            label = f"{self.label}/{_join(d, SKILL_FILE)}"
            if d in broken:
                out.errors.append(f"{label}: a file of this skill could not be read")
                continue
            try:
                out.texts[f"{uri}/{SKILL_FILE}"] = skill_mds[_join(d, SKILL_FILE)].decode()
            except UnicodeDecodeError:
                out.errors.append(f"{label}: not UTF-8 text")
                continue
            name = (self.name if d == "" else d.rsplit("/", 1)[-1])
            out.roots.append(RootInfo(uri=uri, directory_name=name, label=label))
            served.add(d)
        out.dirs.update(self._uri(x) for x in walk.dirs
                        if any(a in served for a in _enclosing(x)))
        return out

    def _uri(self, rel: str) -> str:
        return join(self.base + ([encode(s) for s in rel.split("/")] if rel else []))

    def _within_limits(self, skill_dirs: list[str], walk: _Walk, errors: list[str]) -> set[str]:
        """The skill directories whose files (nested skills' included) keep the limits."""
        count = dict.fromkeys(skill_dirs, 0)
        total = dict.fromkeys(skill_dirs, 0)
        for rel, (_, st) in walk.files.items():
            for directory in _enclosing(rel):
                if directory in count:
                    count[directory] += 1
                    total[directory] += st.st_size
        within = set()
        for directory in skill_dirs:
            if count[directory] <= MAX_FILES and total[directory] <= MAX_BYTES:
                within.add(directory)
            else:
                errors.append(f"{self.label}/{_join(directory, SKILL_FILE)}: the skill has "
                              f"{count[directory]} files of {total[directory]} bytes; the "
                              f"limits are {MAX_FILES} files and {MAX_BYTES} bytes (16 MiB)")
        return within

    def _read(self, top: str, walk: _Walk, needed: set[str],
              out: SourceScan) -> tuple[set[str], dict[str, bytes]]:
        """Hash every needed file into ``out.files``; returns the ones that could not be
        read, and the content of each SKILL.md."""
        unreadable = set()
        skill_mds = {}
        for rel in sorted(needed):
            real, _ = walk.files[rel]
            try:
                data = read_file(top, real, MAX_BYTES)
            except OSError as exc:
                out.errors.append(f"{self.label}/{rel}: cannot be read ({exc})")
                unreadable.add(rel)
                continue
            uri = self._uri(rel)
            out.files[uri] = _file(uri, data, f"{self.label}/{rel}", top=top, path=real)
            if rel.rsplit("/", 1)[-1] == SKILL_FILE:
                skill_mds[rel] = data
        return unreadable, skill_mds


def _file(uri: str, data: bytes, label: str, *, top: str | None = None,
          path: str | None = None) -> SkillFile:
    mime = mime_type_of(uri.rsplit("/", 1)[-1], data)
    return SkillFile(uri=uri, digest=sha256(data), size=len(data), mime_type=mime,
                     text=is_textual(mime, data), label=label, top=top, path=path,
                     data=None if path is not None else data)


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


class MemorySource:
    """One skill whose files code hands over (``{"SKILL.md": ..., "scripts/x.py": ...}``),
    or read once from package data; its path is ``prefix`` + its name."""

    watched = False

    def __init__(self, files: Mapping[str, bytes], prefix: list[str], label: str,
                 directory_name: str | None = None) -> None:
        self.label = label
        self._scan = self._build(files, prefix, directory_name)

    def scan(self) -> SourceScan:
        return self._scan

    def signature(self) -> str:
        return ""

    def _build(self, files: Mapping[str, bytes], prefix: list[str],
               directory_name: str | None) -> SourceScan:
        for rel in files:
            parts = rel.split("/")
            if any(p in ("", ".", "..") or not usable_name(p) for p in parts):
                raise ValueError(f"{self.label}: {rel!r} is not a relative path of plain names "
                                 "(no '.', '..', hidden or empty parts)")
        if SKILL_FILE not in files:
            raise ValueError(f"{self.label}: no {SKILL_FILE}")
        try:
            text = files[SKILL_FILE].decode("utf-8")
            name = parse_frontmatter(text).get("name")
        except (UnicodeDecodeError, FrontmatterError) as exc:
            raise ValueError(f"{self.label}/{SKILL_FILE}: {exc}") from None
        wrong = check_name(name)
        if wrong is not None:
            raise ValueError(f"{self.label}/{SKILL_FILE}: {wrong}")
        assert isinstance(name, str)
        root = join([*prefix, name])
        out = SourceScan(label=self.label, files={}, dirs={root}, roots=[], texts={},
                         errors=[], warnings=[])
        for rel, data in files.items():
            uri = f"{root}/{'/'.join(encode(p) for p in rel.split('/'))}"
            out.files[uri] = _file(uri, data, f"{self.label}/{rel}")
            parts = uri.split("/")
            out.dirs.update("/".join(parts[:n]) for n in range(root.count("/") + 1, len(parts)))
        out.texts[f"{root}/{SKILL_FILE}"] = text
        out.roots.append(RootInfo(uri=root, directory_name=directory_name,
                                  label=f"{self.label}/{SKILL_FILE}"))
        return out


def read_traversable(top: Traversable) -> dict[str, bytes]:
    """Every file under ``top`` (package data), by relative path; hidden entries left out."""
    files: dict[str, bytes] = {}
    stack: list[tuple[str, Traversable]] = [("", top)]
    while stack:
        rel, node = stack.pop()
        for child in node.iterdir():
            if not usable_name(child.name):
                continue
            path = f"{rel}/{child.name}" if rel else child.name
            if child.is_dir():
                stack.append((path, child))
            elif child.is_file():
                files[path] = child.read_bytes()
    return files
