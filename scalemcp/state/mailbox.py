"""A mailbox on the worker holding it: a channel a task waits on, or a callback.

A callback (``StateBackend.on_delivery``) is for what is opened for every request and used
rarely, like a cancellation: nothing waits on it, so it costs no task and no channel.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["Mailbox", "hand_over"]

Mailbox = trio.MemorySendChannel[bytes] | Callable[[bytes], None]


def hand_over(mailbox: Mailbox | None, payload: bytes) -> bool:
    """Put ``payload`` in ``mailbox``; False if there is none or it cannot take it (full,
    closed)."""
    if mailbox is None:
        return False
    if not isinstance(mailbox, trio.MemorySendChannel):
        mailbox(payload)
        return True
    try:
        mailbox.send_nowait(payload)
    except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
        return False
    return True
