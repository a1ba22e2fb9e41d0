"""Change notifications as workers pass them around: decoded once, filtered purely.

A tool's ``ctx.notify_*`` publishes a JSON-RPC notification (``list_changed``,
``resources/updated``) through the state backend to every worker. Each worker decodes it
once into a :class:`Change`; every stream it serves then asks :func:`wanted_on_session` or
:func:`wanted_by_listener` whether to send it, without decoding it again.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from .types import ListenNotifications

__all__ = [
    "FOR_SESSION",
    "RESOURCES_LIST_CHANGED",
    "RESOURCE_UPDATED",
    "SUBSCRIPTIONS_CHANGED",
    "Change",
    "decode_change",
    "for_session",
    "subscriptions_changed",
    "wanted_by_listener",
    "wanted_on_session",
]

RESOURCE_UPDATED: Final = "notifications/resources/updated"
RESOURCES_LIST_CHANGED: Final = "notifications/resources/list_changed"
#: The listen stream's flag for each list_changed notification (2026-07-28).
_LIST_CHANGED: Final = {
    "notifications/tools/list_changed": "tools_list_changed",
    "notifications/prompts/list_changed": "prompts_list_changed",
    RESOURCES_LIST_CHANGED: "resources_list_changed",
}


#: Not sent to clients: a session's subscriptions changed (``params.sessionId``), so the
#: streams that filter by them read them again.
SUBSCRIPTIONS_CHANGED: Final = "scalemcp/subscriptionsChanged"
#: Not sent as such: a message for one session's GET stream (``params.message``), from a
#: worker that holds no stream of it (a durable task's notifications and requests).
FOR_SESSION: Final = "scalemcp/forSession"


class _Notification(msgspec.Struct):
    method: str
    params: dict[str, Any] | UnsetType = UNSET


_decoder: Final = msgspec.json.Decoder(_Notification)
_encoder: Final = msgspec.json.Encoder()


class Change(msgspec.Struct, frozen=True):
    """One change notification: its method, its params (read-only), and its bytes."""

    method: str
    payload: bytes
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def uri(self) -> str | None:
        """The resource a ``resources/updated`` change names."""
        uri = self.params.get("uri")
        return uri if isinstance(uri, str) else None

    @property
    def message(self) -> bytes | None:
        """The message a :data:`FOR_SESSION` change carries, encoded."""
        message = self.params.get("message")
        return None if message is None else _encoder.encode(message)

    @property
    def session_id(self) -> str | None:
        """The session whose subscriptions changed (:data:`SUBSCRIPTIONS_CHANGED`), or
        that a :data:`FOR_SESSION` message is for."""
        sid = self.params.get("sessionId")
        return sid if isinstance(sid, str) else None


def decode_change(payload: bytes) -> Change | None:
    """The change ``payload`` carries, or None if it is not a notification we publish."""
    try:
        note = _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return Change(note.method, payload, {} if note.params is UNSET else note.params)


def subscriptions_changed(session_id: str) -> bytes:
    """The internal change that tells a session's streams to read its subscriptions again."""
    return _encoder.encode({"jsonrpc": "2.0", "method": SUBSCRIPTIONS_CHANGED,
                            "params": {"sessionId": session_id}})


def for_session(session_id: str, message: bytes) -> bytes:
    """The change that puts ``message`` (a JSON-RPC message) on one session's GET stream."""
    return _encoder.encode({"jsonrpc": "2.0", "method": FOR_SESSION,
                            "params": {"sessionId": session_id,
                                       "message": msgspec.Raw(message)}})


def wanted_on_session(change: Change, subscriptions: Collection[str]) -> bool:
    """Whether a session's GET stream sends ``change``: resource updates only for the
    resources the session subscribed to, list changes always (messages addressed to one
    session are its GET stream's to unwrap)."""
    if change.method == RESOURCE_UPDATED:
        return change.uri is not None and change.uri in subscriptions
    return change.method not in (SUBSCRIPTIONS_CHANGED, FOR_SESSION)


def wanted_by_listener(change: Change, wanted: ListenNotifications) -> bool:
    """Whether a 2026-07-28 ``subscriptions/listen`` stream asked for ``change``."""
    flag = _LIST_CHANGED.get(change.method)
    if flag is not None:
        return bool(getattr(wanted, flag))
    if change.method == RESOURCE_UPDATED:
        return change.uri is not None and change.uri in wanted.resource_subscriptions
    return False
