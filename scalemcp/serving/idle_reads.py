"""One wait for every connection whose response streams: the worker's idle reads.

A connection's task waits for its socket to become readable between reads. While its
response streams (SSE, for hours) the only thing that can arrive is the client's going
away (or a pipelined request, read once the response ends), and each such wait in Trio
(``wait_readable``: its registration, frames and abort callback) costs about 1.5 KiB;
10,000 open streams, 15 MiB. Here those connections wait on one epoll set of the
worker's, watched by one task: a waiting connection costs a dict entry and its parked
task.

Theory of operation. :meth:`IdleReads.wait_readable` adds the socket to the set
(``EPOLLIN | EPOLLRDHUP``: data, an end of file, a reset) and parks the task;
:meth:`IdleReads.run` waits for the set's own descriptor to become readable in Trio,
takes the ready sockets off the set and wakes their tasks. A socket must leave the set
before it is closed (:meth:`IdleReads.closing`: its task wakes with
``ClosedResourceError``, as Trio's ``notify_closing`` does), or its task would wait for
ever (the kernel drops a closed descriptor from an epoll set silently). Linux only (epoll);
elsewhere connections wait in Trio, as before.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

import outcome
import trio

__all__ = ["IdleReads"]

_EVENTS = (getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLRDHUP", 0))


class IdleReads:
    """The worker's set of connections waiting for their client while a response streams."""

    __slots__ = ("_epoll", "_waiting", "running")

    def __init__(self) -> None:
        self._epoll: Any = None
        #: Socket descriptor -> its parked task.
        self._waiting: dict[int, trio.lowlevel.Task] = {}
        #: :meth:`run` is running: waits may go here.
        self.running = False

    async def wait_readable(self, sock: socket.socket) -> None:
        """Return once ``sock`` has something to read (or an end); ``ClosedResourceError``
        if :meth:`closing` is called meanwhile."""
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the socket is closed")
        if fd in self._waiting:
            raise trio.BusyResourceError("another task waits for this socket")
        self._epoll.register(fd, _EVENTS)
        self._waiting[fd] = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._forget(fd)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def closing(self, sock: socket.socket) -> None:
        """``sock`` is about to be closed: a task waiting for it wakes with
        ``ClosedResourceError``."""
        fd = sock.fileno()
        task = self._waiting.get(fd) if fd >= 0 else None
        if task is not None:
            self._forget(fd)
            trio.lowlevel.reschedule(
                task, outcome.Error(trio.ClosedResourceError("the connection closed")))

    def _forget(self, fd: int) -> None:
        del self._waiting[fd]
        # (closed meanwhile: the kernel dropped it already)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)

    async def run(self) -> None:
        """Wake the tasks whose sockets are ready, until cancelled."""
        if not hasattr(select, "epoll"):
            await trio.sleep_forever()  # (not Linux: every wait stays in Trio)
        self._epoll = select.epoll()
        self.running = True
        try:
            while True:
                await trio.lowlevel.wait_readable(self._epoll.fileno())
                for fd, _ in self._epoll.poll(0):
                    task = self._waiting.get(fd)
                    if task is not None:
                        self._forget(fd)
                        trio.lowlevel.reschedule(task)
        finally:
            self.running = False
            for fd in list(self._waiting):  # (the worker stops: they are cancelled too)
                task = self._waiting[fd]
                self._forget(fd)
                trio.lowlevel.reschedule(
                    task, outcome.Error(trio.ClosedResourceError("the worker stopped")))
            self._epoll.close()
