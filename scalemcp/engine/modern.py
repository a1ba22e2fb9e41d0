"""The modern, stateless era (2026-07-28): every request describes itself.

``ModernService.prepare`` checks a request's ``_meta``, version and headers and turns it
into a :class:`Call` (verifying any ``requestState``); ``answer`` runs it. No session, no
resumption: the caller runs the handler in the HTTP request's own task, so closing the
response stream cancels it (spec 5.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from ..config import Config
from ..errors import InsufficientScope, InvalidParams, ProtocolError, UnsupportedVersion
from ..protocol import headers as header_rules
from ..protocol import jsonrpc, versions
from ..protocol.jsonrpc import Message
from ..protocol.types import RequestMeta
from ..state.base import StateBackend
from .call import Call, Emit, ModernScope
from .dispatch import Engine
from .request_state import RequestStateCodec, request_digest

__all__ = ["ModernService", "modern_version"]


class _Params(msgspec.Struct, omit_defaults=True):
    meta: RequestMeta | UnsetType = msgspec.field(default=UNSET, name="_meta")
    name: str | UnsetType = UNSET
    uri: str | UnsetType = UNSET
    arguments: Raw | UnsetType = UNSET
    input_responses: dict[str, Any] | UnsetType = msgspec.field(
        default=UNSET, name="inputResponses"
    )
    request_state: str | UnsetType = msgspec.field(default=UNSET, name="requestState")


class _MetaOnly(msgspec.Struct):
    meta: RequestMeta | UnsetType = msgspec.field(default=UNSET, name="_meta")


_params_decoder = msgspec.json.Decoder(_Params)
_meta_decoder = msgspec.json.Decoder(_MetaOnly)
_EMPTY = b"{}"


def modern_version(message: Message, header_version: str | None) -> str | None:
    """The version of a request for the modern path, or None if it belongs to an older era.

    A version header that names no session-era version sends the request down the modern
    path whatever its method (there it is validated); so does modern ``_meta``.
    """
    if header_version is not None:
        return None if header_version in versions.NEGOTIABLE_VERSIONS else header_version
    if message.params is UNSET or message.method == "initialize":
        return None
    try:
        meta = _meta_decoder.decode(message.params).meta
    except msgspec.MsgspecError:
        return None
    if meta is UNSET or meta.protocol_version is UNSET:
        return None
    return meta.protocol_version


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
        message: Message,
        headers: Mapping[str, str],
        principal: str | None,
        granted_scopes: frozenset[str] | None = None,
    ) -> Call:
        """Validate a modern request and build its Call; raises ProtocolError subclasses,
        and InsufficientScope (HTTP 403) if the target needs scopes the caller lacks."""
        assert message.method is not UNSET
        method = message.method
        try:
            p = _params_decoder.decode(_EMPTY if message.params is UNSET else message.params)
        except msgspec.MsgspecError as exc:
            raise InvalidParams(f"invalid params: {exc}") from None
        meta = p.meta
        # The order of these checks is the spec's (and the conformance suite's).
        if meta is UNSET or meta.protocol_version is UNSET:
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
        name = p.uri if method == "resources/read" else p.name
        header_rules.check_request_headers(headers, method, None if name is UNSET else name)
        call = Call(
            request_id=message.id if isinstance(message.id, int | str) else 0,
            method=method,
            params=message.params,
            protocol_version=version,
            client_capabilities=meta.client_capabilities,
            principal=principal,
            log_level=None if meta.log_level is UNSET else meta.log_level,
            modern=True,
            granted_scopes=granted_scopes,
        )
        needed = self.engine.required_scopes(method, None if name is UNSET else name)
        if needed and not call.allows(needed):
            raise InsufficientScope(f"{method} {name!r} needs the scopes {' '.join(needed)}",
                                    scopes=needed)
        if method == "tools/call" and not isinstance(name, UnsetType):
            self._check_tool_headers(headers, name, p.arguments)
        if method in ("tools/call", "prompts/get", "resources/read"):
            call.digest = self._digest(method, message.params)
            call.input_responses = await self._answers(p, call)
        return call

    async def answer(self, call: Call, emit: Emit) -> tuple[bytes, ProtocolError | None]:
        def scopes(c: Call, meta: RequestMeta | UnsetType) -> ModernScope:
            return ModernScope(c, meta, emit, self.state)

        return await self.engine.answer(call, scopes)

    async def _answers(self, p: _Params, call: Call) -> dict[str, Any] | None:
        answers: dict[str, Any] = {}
        if p.request_state is not UNSET:
            payload = self.codec.open(p.request_state, call.digest, call.principal)
            if self.config.request_state.single_use and not await self.state.claim_once(
                f"rs:{payload.nonce}", self.codec.ttl_s
            ):
                raise InvalidParams("requestState was already used; retry the original request")
            answers.update(payload.answers)
        if p.input_responses is not UNSET:
            answers.update(p.input_responses)
        return answers or None

    def _digest(self, method: str, params: Raw | UnsetType) -> str:
        body = {} if params is UNSET else jsonrpc.decode_any(params)
        if not isinstance(body, dict):
            raise InvalidParams("params must be an object")
        for key in ("_meta", "inputResponses", "requestState"):
            body.pop(key, None)
        return request_digest(method, "", body)

    def _check_tool_headers(
        self, headers: Mapping[str, str], name: str, arguments: Raw | UnsetType
    ) -> None:
        spec = self.engine.app.tools.get(name)
        if spec is None or not spec.header_params:
            return
        args = {} if arguments is UNSET else jsonrpc.decode_any(arguments)
        if isinstance(args, dict):
            header_rules.check_param_headers(headers, spec.header_params, args)
