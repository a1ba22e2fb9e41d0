"""What Redis holds, by kind of key: how many keys and how many bytes (``MEMORY USAGE``).

    python bench/redis_census.py PORT        # a table, largest kind first

The soak (bench/soak.py) takes one now and then, so that a rise of Redis' ``used_memory``
can be put down to the kind of key that grows. A key's kind is its name with the parts
that vary (session id, stream name, worker id, ...) replaced by ``*``, after the layout of
scalemcp/state/redis_layout.py; any other key counts under its first ``:`` part.
"""

from __future__ import annotations

import re
import socket
import sys
from typing import Any

#: (pattern, kind) in order; the first that matches names the kind.
_KINDS = [
    (re.compile(rb"\{bus\}:inbox:"), "{bus}:inbox:*"),
    (re.compile(rb"\{bus\}:broadcast$"), "{bus}:broadcast"),
    (re.compile(rb"\{rl:[^}]*\}:"), "{rl:*}:*"),
    (re.compile(rb"\{[^}]*\}:xe:"), "{sid}:xe:*"),
    (re.compile(rb"\{[^}]*\}:xz$"), "{sid}:xz"),
    (re.compile(rb"\{[^}]*\}:xs$"), "{sid}:xs"),
    (re.compile(rb"\{[^}]*\}:x:"), "{sid}:x:*"),
    (re.compile(rb"\{[^}]*\}:m:"), "{sid}:m:*"),
    (re.compile(rb"\{[^}]*\}:s$"), "{sid}:s"),
    (re.compile(rb"\{[^}]*\}:if$"), "{sid}:if"),
    (re.compile(rb"principal:"), "principal:*"),
    (re.compile(rb"claim:"), "claim:*"),
    (re.compile(rb"worker:"), "worker:*"),
    (re.compile(rb"sessions$"), "sessions"),
]


def kind(key: bytes, prefix: bytes = b"") -> str:
    """The kind of ``key`` (its name with the varying parts as ``*``)."""
    rest = key[len(prefix):] if prefix and key.startswith(prefix) else key
    for pattern, name in _KINDS:
        if pattern.search(rest):
            return name
    # Another key: its name with hash tags and id-like parts (12+ letters and digits)
    # masked.
    name = re.sub(r"\{[^}]*\}", "{*}", rest.decode("utf-8", "replace"))
    return re.sub(r"[A-Za-z0-9_-]{12,}", "*", name)


class Resp:
    """A minimal RESP2 client over one socket: pipelined commands, parsed replies."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def pipeline(self, commands: list[list[bytes]]) -> list[Any]:
        out = bytearray()
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for a in args:
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return [self._reply() for _ in commands]

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) == -1:
            self._fill()
        line, self.buf = self.buf[:end], self.buf[end + 2:]
        return line

    def _reply(self) -> Any:
        line = self._line()
        tag, rest = line[:1], line[1:]
        if tag in (b"+", b"-"):
            return rest if tag == b"+" else RuntimeError(rest.decode())
        if tag == b":":
            return int(rest)
        if tag == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if tag == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError(f"unexpected RESP reply {line[:40]!r}")


def census(port: int, prefix: bytes = b"smcp:", batch: int = 500) -> dict[str, dict[str, int]]:
    """{kind: {"keys": n, "bytes": sum of MEMORY USAGE}} of every key, largest first."""
    r = Resp(port)
    try:
        out: dict[str, dict[str, int]] = {}
        cursor = b"0"
        while True:
            reply = r.pipeline([[b"SCAN", cursor, b"COUNT", str(batch).encode()]])[0]
            cursor, keys = reply[0], reply[1]
            sizes = r.pipeline([[b"MEMORY", b"USAGE", k, b"SAMPLES", b"0"] for k in keys])
            for k, size in zip(keys, sizes, strict=True):
                entry = out.setdefault(kind(k, prefix), {"keys": 0, "bytes": 0})
                entry["keys"] += 1
                entry["bytes"] += size if isinstance(size, int) else 0
            if cursor == b"0":
                break
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["bytes"]))
    finally:
        r.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python bench/redis_census.py PORT", file=sys.stderr)
        return 2
    for name, v in census(int(argv[0])).items():
        print(f"{name:24} {v['keys']:>9,} keys {v['bytes'] / 2**20:>9.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
