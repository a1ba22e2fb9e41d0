"""Which files under a directory were opened or read, as the Linux kernel reports it
(inotify through ctypes): evidence that a server never touched a file, independent of
the server's own code."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from types import TracebackType

IN_ACCESS = 0x001
IN_OPEN = 0x020
_EVENT = struct.Struct("iIII")


class OpenWatch:
    """Records every open or read of ``directory`` and the files directly in it."""

    def __init__(self, directory: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self._fd, os.fsencode(directory),
                                        IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")

    def touched(self) -> list[str]:
        """Names opened or read since the last call ("" for the directory itself)."""
        names = []
        while True:
            try:
                buffer = os.read(self._fd, 65536)
            except BlockingIOError:
                return names
            offset = 0
            while offset < len(buffer):
                _, _, _, length = _EVENT.unpack_from(buffer, offset)
                start = offset + _EVENT.size
                names.append(buffer[start:start + length].rstrip(b"\0").decode())
                offset = start + length

    def __enter__(self) -> OpenWatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        os.close(self._fd)
