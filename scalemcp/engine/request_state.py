"""Signed ``requestState`` for multi round-trip requests (modern era, spec 11.4).

The state is attacker-controlled, so it is HMAC-SHA256 signed with a fleet-wide key ring
(the first key signs; every key verifies, for rotation) and bound to the principal, an
expiry, and a digest of the original request. It carries the answers the client gave in
earlier rounds, so any worker can continue a request another worker started.

Wire form: ``v1.<key id>.<base64url payload>.<base64url mac>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import msgspec

from ..errors import InvalidParams

__all__ = ["RequestStateCodec", "StatePayload", "digest_params", "request_digest"]


class StatePayload(msgspec.Struct, frozen=True):
    digest: str
    principal: str | None
    expires_at: float
    answers: dict[str, Any]
    nonce: str


_encode = msgspec.json.Encoder(order="sorted").encode
_decoder = msgspec.json.Decoder(StatePayload)
_any = msgspec.json.Decoder()


def request_digest(method: str, name: str, arguments: Any) -> str:
    """Digest of what the original request asked, independent of key order."""
    canonical = _encode([method, name, arguments])
    return hashlib.sha256(canonical).hexdigest()


def digest_params(method: str, raw_params: bytes | None) -> str:
    """The digest binding a ``requestState`` to the request that sent these params.

    Computed only when a state is sealed or opened: the params are decoded for it (to
    builtins, the fields of the retry left out) apart from the handler's own decode.
    """
    body = {} if raw_params is None else _any.decode(raw_params)
    if not isinstance(body, dict):
        raise InvalidParams("params must be an object")
    for key in ("_meta", "inputResponses", "requestState"):
        body.pop(key, None)
    return request_digest(method, "", body)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RequestStateCodec:
    def __init__(self, keys: list[str], ttl_s: float) -> None:
        if not keys:
            raise ValueError("at least one requestState key is needed")
        self._keys = [(hashlib.sha256(k.encode()).hexdigest()[:8], k.encode()) for k in keys]
        self.ttl_s = ttl_s

    def seal(self, digest: str, principal: str | None, answers: dict[str, Any]) -> str:
        payload = StatePayload(digest, principal, time.time() + self.ttl_s, answers,
                               secrets.token_hex(8))
        body = _b64(_encode(payload))
        kid, key = self._keys[0]
        mac = hmac.new(key, f"v1.{kid}.{body}".encode(), hashlib.sha256).digest()
        return f"v1.{kid}.{body}.{_b64(mac)}"

    def open(self, token: str, digest: str, principal: str | None) -> StatePayload:
        """Verify and decode; any failure is an InvalidParams the client can act on."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "v1":
            raise InvalidParams("requestState is malformed; retry the original request")
        _, kid, body, mac = parts
        key = next((k for i, k in self._keys if i == kid), None)
        if key is None:
            raise InvalidParams("requestState was signed with an unknown key; retry the "
                                "original request")
        expected = hmac.new(key, f"v1.{kid}.{body}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(expected, _unb64(mac))
            payload = _decoder.decode(_unb64(body)) if valid else None
        except (ValueError, msgspec.MsgspecError):
            payload = None
        if payload is None:
            raise InvalidParams("requestState failed its integrity check")
        if payload.expires_at < time.time():
            raise InvalidParams("requestState has expired; retry the original request")
        if payload.principal != principal:
            raise InvalidParams("requestState belongs to another principal")
        if payload.digest != digest:
            raise InvalidParams("requestState belongs to a different request")
        return payload
