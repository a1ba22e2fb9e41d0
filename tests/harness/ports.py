"""Loopback sockets for servers that cannot report a port of their own choosing.

Most servers here bind port 0 and say where they listen (``scalemcp serve``, Hypercorn in
process, the ASGI driver needs none). Two kinds of helper remain:

* :func:`listening_socket`: bound and listening before the server starts, then handed to
  it (haproxy ``bind fd@N``, nginx's inherited sockets), so there is no window in which
  another process could take the port, and nothing to wait for: connections queue.
* :func:`refused_port`: a port nothing listens on, held for the test (a bound socket that
  does not listen refuses connections), for "the backend is unreachable" tests.

:func:`unused_port` is for redis-server only, which has no port 0: its caller starts
Redis on it and tries another when Redis says the address is taken (``harness.redis``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def listening_socket(backlog: int = 512) -> socket.socket:
    """A TCP socket on 127.0.0.1, port chosen by the kernel, already listening and
    inheritable (pass ``fileno()`` in ``pass_fds``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses every connection while the block runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield port_of(sock)


def unused_port() -> int:
    """A port free a moment ago (Redis only: see the module docstring)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return port_of(sock)
