"""The modern, stateless era (2026-07-28): every request describes itself.

``ModernService.prepare`` checks a classified request's ``_meta``, version and headers
and turns it into a :class:`Call` (verifying any ``requestState``); ``answer`` runs it.
No session, no resumption: the caller runs the handler in the HTTP request's own task, so
closing the response stream cancels it (spec 5.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import UNSET

from ..config import Config
from ..errors import InsufficientScope, InvalidParams, ProtocolError, UnsupportedVersion
from ..protocol import headers as header_rules
from ..protocol import versions
from ..protocol.classify import Item
from ..protocol.types import RequestMeta
from ..state.base import StateBackend
from .call import Call, Emit, ModernScope
from .dispatch import Engine
from .request_state import RequestStateCodec, digest_params

__all__ = ["ModernService"]

#: Methods that may ask the client for input (multi round-trip requests, spec 11.4).
_MRTR_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})


class ModernService:
    def __init__(
        self, engine: Engine, state: StateBackend, config: Config, codec: RequestStateCodec
    ) -> None:
        self.engine = engine
        self.state = state
        self.config = config
        self.codec = codec

    async def prepare(
        self,
        item: Item,
        headers: Mapping[str, str],
        principal: str | None,
        granted_scopes: frozenset[str] | None = None,
    ) -> Call:
        """Validate a modern request and build its Call; raises ProtocolError subclasses,
        and InsufficientScope (HTTP 403) if the target needs scopes the caller lacks."""
        assert item.method is not None
        method = item.method
        meta = item.meta
        # The order of these checks is the spec's (and the conformance suite's).
        if meta is None or meta.protocol_version is UNSET:
            raise InvalidParams('params._meta["io.modelcontextprotocol/protocolVersion"] '
                                "is required")
        if meta.client_capabilities is UNSET:
            raise InvalidParams('params._meta["io.modelcontextprotocol/clientCapabilities"] '
                                "is required")
        version = meta.protocol_version
        header_rules.check_version_header(headers, version)
        if not versions.is_modern(version):
            raise UnsupportedVersion(
                f"unsupported protocol version {version!r}",
                {"supported": list(versions.MODERN_VERSIONS), "requested": version},
            )
        name = item.target
        header_rules.check_request_headers(headers, method, name)
        call = Call.of(item, protocol_version=version,
                       client_capabilities=meta.client_capabilities, principal=principal,
                       log_level=None if meta.log_level is UNSET else meta.log_level,
                       modern=True, granted_scopes=granted_scopes, headers=headers)
        needed = self.engine.required_scopes(method, name)
        if needed and not call.allows(needed):
            raise InsufficientScope(f"{method} {name!r} needs the scopes {' '.join(needed)}",
                                    scopes=needed)
        if method in _MRTR_METHODS and item.params is not None:
            call.input_responses = await self._answers(call)
        return call

    async def answer(self, call: Call, emit: Emit) -> tuple[bytes, ProtocolError | None]:
        def make_scope(c: Call, meta: RequestMeta | Any) -> ModernScope:
            return ModernScope(c, meta, emit, self.state)

        return await self.engine.answer(call, make_scope)

    async def _answers(self, call: Call) -> dict[str, Any] | None:
        answers: dict[str, Any] = {}
        request_state = call.params.request_state
        if request_state is not UNSET:
            raw = call.raw_params
            digest = digest_params(call.method, None if raw is UNSET else bytes(raw))
            payload = self.codec.open(request_state, digest, call.principal)
            if self.config.request_state.single_use and not await self.state.claim_once(
                f"rs:{payload.nonce}", self.codec.ttl_s
            ):
                raise InvalidParams("requestState was already used; retry the original request")
            answers.update(payload.answers)
        if call.params.input_responses is not UNSET:
            answers.update(call.params.input_responses)
        return answers or None
