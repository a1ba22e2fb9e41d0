"""A child process's output, read line by line by a thread: kept, copied to a log file if
asked, and waited on (``wait_for``) without polling.

Reading continuously also keeps the pipe from filling up, which would block the child.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


class LineLog:
    """Every line ``stream`` yields (decoded), until it ends; a thread reads it."""

    def __init__(self, stream: IO[bytes], copy_to: Path | None = None) -> None:
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        self._copy = copy_to.open("ab", buffering=0) if copy_to is not None else None
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                if self._copy is not None:
                    self._copy.write(raw)
                with self._changed:
                    self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                    self._changed.notify_all()
        finally:
            if self._copy is not None:
                self._copy.close()
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def wait_for(self, check: Callable[[str], object], timeout: float) -> str:
        """The first line ``check`` accepts; AssertionError if the output ends first,
        TimeoutError after ``timeout`` seconds."""
        seen = 0
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if check(line):
                        return line
                seen = len(self.lines)
                if self.ended:
                    raise AssertionError("the output ended without the line awaited:\n"
                                         + self.tail())
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no such line within {timeout} s:\n" + self.tail())

    def join(self, timeout: float = 10.0) -> str:
        """Wait for the end of the output (the process has exited); all of it."""
        self._thread.join(timeout)
        return self.text()

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])
