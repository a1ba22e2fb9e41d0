"""Time limits: idle keep-alive connections, and requests that run too long."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import scalemcp
from scalemcp.engine.call import Call, ModernScope
from scalemcp.engine.dispatch import Engine
from scalemcp.protocol.classify import classify
from scalemcp.protocol.jsonrpc import decode_body
from scalemcp.state.memory import MemoryBackend
from scalemcp.testing import open_server
from tests.harness.asgi import open_client
from tests.harness.client import ACCEPT, MODERN_VERSION, modern_meta

from .test_http_errors import TIMEOUT_S

MODERN = MODERN_VERSION
META = modern_meta()


class Stuck:
    """An app whose ``stuck`` tool never finishes unless cancelled, noting that it was."""

    def __init__(self) -> None:
        self.app = scalemcp.App("stuck", version="1.0.0")
        self.started = 0
        self.cancelled = 0

        @self.app.tool
        async def stuck(seconds: float = 3600.0) -> str:
            """Sleep ``seconds``."""
            self.started += 1
            try:
                await trio.sleep(seconds)
            except trio.Cancelled:
                self.cancelled += 1
                raise
            return "woke up"

        @self.app.tool
        async def quick() -> str:
            """Answer at once."""
            return "quick"


async def test_an_idle_connection_is_closed_after_keep_alive_timeout_s() -> None:
    config = scalemcp.Config.from_options(keep_alive_timeout_s=0.5)
    with trio.fail_after(TIMEOUT_S):
        async with open_server(Stuck().app, config) as url:
            port = int(url.split(":")[-1].split("/")[0])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += await stream.receive_some()
            assert answer.startswith(b"HTTP/1.1 200")
            # Nothing more is sent: the server closes the idle connection (the default,
            # 75 s, would outlast the fail_after).
            assert await stream.receive_some() == b""


def rpc(method: str, params: dict[str, Any], rid: int = 5) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


async def test_a_request_running_too_long_is_cancelled_with_an_error() -> None:
    target = Stuck()
    config = scalemcp.Config.from_options(request_timeout_s=0.5)
    with trio.fail_after(TIMEOUT_S):
        async with open_client(target.app, config, timeout=TIMEOUT_S) as (url, http):
            # Session era: the handler runs in the service's nursery, apart from the POST.
            r = await http.post(url, headers={"accept": ACCEPT}, json=rpc("initialize", {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}))
            sid = r.headers["mcp-session-id"]
            headers = {"accept": ACCEPT, "mcp-session-id": sid,
                       "mcp-protocol-version": "2025-11-25"}
            r = await http.post(url, headers=headers, json=rpc("tools/call", {"name": "stuck"}))
            error = r.json()["error"]
            assert error["code"] == -32603, error
            assert "request_timeout_s (0.5 s)" in error["message"]
            assert (target.started, target.cancelled) == (1, 1)
            r = await http.post(url, headers=headers, json=rpc("tools/call", {"name": "quick"}))
            assert r.json()["result"]["content"][0]["text"] == "quick"
            # Modern era.
            modern = {"accept": ACCEPT, "mcp-protocol-version": MODERN,
                      "mcp-method": "tools/call", "mcp-name": "stuck"}
            r = await http.post(url, headers=modern, json=rpc("tools/call", {
                "name": "stuck", "_meta": META}))
            assert r.status_code == 200, r.text
            assert r.json()["error"]["code"] == -32603
            assert "request_timeout_s" in r.json()["error"]["message"]
            assert (target.started, target.cancelled) == (2, 2)


@pytest.mark.parametrize(("timeout_s", "outcome"), [(0.0, "woke up"), (7200.0, "woke up"),
                                                     (60.0, "error")])
async def test_request_timeout_s_in_the_engine(
    autojump_clock: trio.testing.MockClock, timeout_s: float, outcome: str
) -> None:
    """On a virtual clock: 0 is no limit, even for an hour-long handler."""
    target = Stuck()
    engine = Engine(target.app, request_timeout_s=timeout_s)
    state = MemoryBackend(idle_ttl_s=60, stream_maxlen=10, stream_ttl_s=60, max_sessions=10)
    message = decode_body(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                      "params": {"name": "stuck"}}).encode())
    assert not isinstance(message, list)
    call = Call.of(classify(message), protocol_version=MODERN, modern=True)

    async def emit(data: bytes) -> None:
        raise AssertionError("nothing is emitted")

    def make_scope(c: Call, meta: Any) -> ModernScope:
        return ModernScope(c, meta, emit, state)

    answer = json.loads(await engine.run(call, make_scope))
    if outcome == "error":
        assert "request_timeout_s (60 s)" in answer["error"]["message"]
        assert target.cancelled == 1
    else:
        assert answer["result"]["content"][0]["text"] == "woke up"
        assert target.cancelled == 0
