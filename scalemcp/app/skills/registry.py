"""The skills an app serves: its sources, the current catalog, reads, and the watcher.

Theory of operation. Every worker scans its sources when the app is imported (a broken
skill stops the start with a message naming the file) and again whenever a watched
directory changes: each worker polls a cheap signature (names, sizes, mtimes, inodes;
no reading) every ``poll_interval_s``, and polls at once when any worker announces
``notifications/resources/list_changed``, so the fleet converges in about one broadcast
after the first worker notices. A rescan builds a new :class:`Catalog` and swaps it in
whole. The first worker to see a given new catalog *from a given state of the files*
(a claim in the state backend keyed by both) publishes ``list_changed``; workers sharing
the files stay quiet, so a change is announced once per copy of the files, not once per
worker. ``resources/read`` reads the file again and serves it only if its size and
digest still match the manifest; if they do not, the worker rescans first, so it never
serves bytes its own manifest does not describe.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING

import trio
from msgspec import UNSET

from ...errors import BackendUnavailable, InternalError, ResourceNotFound
from ...protocol import jsonrpc
from ...protocol.changes import RESOURCES_LIST_CHANGED
from ...protocol.types import (
    BlobResourceContents,
    Resource,
    ResourceContents,
    TextResourceContents,
)
from .catalog import Catalog, Skill, SkillFile, SourceScan
from .frontmatter import reserved_metadata_keys
from .scan import DirectorySource, MemorySource, read_file, read_traversable, sha256
from .uris import check_prefix, check_uri, segment_name

if TYPE_CHECKING:
    from ...state.base import StateBackend
    from ..context import Context

__all__ = ["SkillError", "SkillRegistry", "SkillResource"]

log = logging.getLogger("scalemcp.skills")
#: How long a claim to announce one change lives: far longer than any worker takes to
#: notice it (its key names the state of the files, so a later change never collides).
_CLAIM_TTL_S = 3600.0

Source = DirectorySource | MemorySource


class SkillError(ValueError):
    """Skills that cannot be served; the message names each file and what is wrong."""


class SkillResource:
    """A skill file as the resource machinery sees it (``resources/list``, ``read``)."""

    scopes: tuple[str, ...] = ()

    def __init__(self, registry: SkillRegistry, file: SkillFile, descriptor: Resource) -> None:
        self.uri = file.uri
        self.file = file
        self.descriptor = descriptor
        self._registry = registry

    async def read(self, ctx: Context, uri: str, params: dict[str, str]) -> list[ResourceContents]:
        return await self._registry.read(self.file)


class SkillRegistry:
    """What ``App.add_skills`` / ``App.add_skill`` registered, and the catalog they make."""

    def __init__(self, taken: Callable[[str], bool] = lambda uri: False) -> None:
        #: True for a URI the app serves otherwise (a registered resource): refused here.
        self._taken = taken
        self._sources: list[Source] = []
        self._scans: list[SourceScan] = []
        self._catalog = Catalog.build([])
        self._handles: dict[str, SkillResource] = {}
        self._listed: tuple[SkillResource, ...] = ()
        #: How often a worker looks for changes in watched directories.
        self.poll_interval_s = 2.0
        self._states: list[StateBackend] = []
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self._reported: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._sources)

    @property
    def catalog(self) -> Catalog:
        """The current snapshot (replaced whole when the files change)."""
        return self._catalog

    # -- registration (at import, before any worker serves) --------------------------

    def add_directory(self, path: str | os.PathLike[str], prefix: str, *, single: bool,
                      poll_interval_s: float | None) -> None:
        try:
            source = DirectorySource(path, check_prefix(prefix), single=single)
        except ValueError as exc:
            raise SkillError(str(exc)) from None
        if poll_interval_s is None or poll_interval_s <= 0:
            source.watched = False
        else:
            self.poll_interval_s = min(self.poll_interval_s, poll_interval_s)
        self._add(source)

    def add_files(self, files: Mapping[str, str | bytes] | Traversable, prefix: str) -> None:
        try:
            if isinstance(files, Traversable):
                source = MemorySource(read_traversable(files), check_prefix(prefix),
                                      str(files), directory_name=files.name)
            else:
                data = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
                source = MemorySource(data, check_prefix(prefix), "<code>")
        except ValueError as exc:
            raise SkillError(str(exc)) from None
        self._add(source)

    def _add(self, source: Source) -> None:
        scan = source.scan()
        catalog = Catalog.build([*self._scans, scan])
        errors = [*catalog.errors, *(f"{uri} is already registered as a resource"
                                     for uri in sorted(scan.files) if self._taken(uri))]
        if errors:
            raise SkillError("skills that cannot be served:\n  " + "\n  ".join(errors))
        self._sources.append(source)
        self._scans.append(scan)
        self._swap(catalog)
        self._report(scan.warnings)

    # -- lookups -----------------------------------------------------------------------

    def find_resource(self, uri: str) -> SkillResource | None:
        """The skill file at ``uri``; InvalidParams if the URI is shaped like a traversal."""
        check_uri(uri)
        return self._handles.get(uri)

    def listed(self) -> tuple[SkillResource, ...]:
        """The SKILL.md of every skill, as ``resources/list`` shows them."""
        return self._listed

    def skill(self, uri: str) -> Skill | None:
        check_uri(uri)
        return self._catalog.by_uri.get(uri)

    async def read(self, file: SkillFile) -> list[ResourceContents]:
        """The contents of ``file``, exactly the bytes its manifest entry describes."""
        data = await _content(file)
        if data is None:
            # It changed on disk: look again (even if not watched), never serve stale bytes.
            await self.refresh(unwatched=True)
            current = self._catalog.files.get(file.uri)
            if current is None:
                raise ResourceNotFound(f"resource not found: {file.uri}", {"uri": file.uri})
            data = await _content(current)
            if data is None:
                raise InternalError(f"{file.uri} is changing on the server; retry")
            file = current
        if file.text:
            return [TextResourceContents(uri=file.uri, text=data.decode(),
                                         mime_type=file.mime_type)]
        return [BlobResourceContents(uri=file.uri, blob=base64.b64encode(data).decode(),
                                     mime_type=file.mime_type)]

    # -- changes -----------------------------------------------------------------------

    async def serve(self, state: StateBackend, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the directories for changes until cancelled (one per worker)."""
        self._states.append(state)
        try:
            if not any(source.watched for source in self._sources):
                task_status.started()
                await trio.sleep_forever()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow, state)
                task_status.started()
                while True:
                    with trio.move_on_after(self.poll_interval_s):
                        await self._wake.wait()
                    self._wake = trio.Event()
                    try:
                        await self.refresh()
                    except Exception:  # the watcher outlives any one bad scan
                        log.exception("rescanning the skills failed")
        finally:
            self._states.remove(state)

    async def _follow(self, state: StateBackend) -> None:
        """Look again at once when any worker announces a change."""
        async with state.open_changes() as changes:
            async for change in changes:
                if change.method == RESOURCES_LIST_CHANGED:
                    self._wake.set()

    async def refresh(self, *, unwatched: bool = False) -> bool:
        """Rescan the watched directories that changed (with ``unwatched``, every
        directory); True if what clients see changed."""
        async with self._lock:
            rescanned = await trio.to_thread.run_sync(self._rescan, unwatched)
            if rescanned is None:
                return False
            scans, catalog = rescanned
            self._scans = scans
            changed = catalog.fingerprint != self._catalog.fingerprint
            self._swap(catalog)
            self._report([w for s in scans for w in s.warnings] + list(catalog.errors))
        if changed:
            log.info("skills changed: %d skills, %d files", len(catalog.skills),
                     len(catalog.files))
            await self._announce(catalog, scans)
        return changed

    def _rescan(self, unwatched: bool) -> tuple[list[SourceScan], Catalog] | None:
        """New scans of the sources whose signature moved, and the catalog they make;
        None if no signature moved. Runs in a worker thread."""
        scans, moved = [], False
        for source, old in zip(self._sources, self._scans, strict=True):
            if (source.watched or unwatched) and source.signature() != old.signature:
                scans.append(source.scan())
                moved = True
            else:
                scans.append(old)
        return (scans, Catalog.build(scans)) if moved else None

    async def _announce(self, catalog: Catalog, scans: list[SourceScan]) -> None:
        key = hashlib.sha256(
            (catalog.fingerprint + "".join(s.signature for s in scans)).encode()).hexdigest()
        payload = jsonrpc.encode_notification(RESOURCES_LIST_CHANGED, UNSET)
        for state in list(self._states):
            try:
                if await state.claim_once(f"skills:{key[:32]}", _CLAIM_TTL_S):
                    await state.publish_change(payload)
            except BackendUnavailable as exc:
                log.warning("skills changed but the change could not be announced: %s", exc)

    def _swap(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._handles = {uri: SkillResource(self, file, Resource(
            uri=uri, name=segment_name(uri), mime_type=file.mime_type, size=file.size))
            for uri, file in catalog.files.items()}
        self._listed = tuple(SkillResource(self, catalog.files[s.uri], s.descriptor)
                             for s in catalog.skills)

    def _report(self, problems: list[str]) -> None:
        """Log each problem once (a rescan finds the same ones again)."""
        for skill in self._catalog.skills:
            for key in reserved_metadata_keys(skill.frontmatter):
                problems.append(f"{skill.uri}: metadata key {key!r} uses the prefix reserved "
                                "for MCP extensions, which define no such key")
        for problem in problems:
            if problem not in self._reported:
                log.warning("skills: %s", problem)
        self._reported = set(problems)


async def _content(file: SkillFile) -> bytes | None:
    """The file's bytes if they still match its manifest entry, else None."""
    if file.data is not None:
        return file.data
    assert file.top is not None
    assert file.path is not None
    try:
        data = await trio.to_thread.run_sync(read_file, file.top, file.path, file.size)
    except OSError:
        return None
    if len(data) != file.size or sha256(data) != file.digest:
        return None
    return data
