"""Protocol abuse over HTTP/2 (h2c and TLS) and WebSocket, against a real server.

Frames are crafted with the ``h2`` and ``wsproto`` libraries on raw sockets:

* HTTP/2: rapid reset (CVE-2023-44487: streams opened and reset at once, thousands per
  connection), SETTINGS and PING floods from a client that never reads the ACKs,
  header-list bombs (one huge header block, and one cut into a flood of CONTINUATION
  frames), stream-id exhaustion (ids jumped to 2^31-1) and more streams than
  MAX_CONCURRENT_STREAMS, a zero flow-control window held forever under an SSE answer;
* WebSocket: a message in a flood of tiny fragments, a frame announcing 1 GiB, pings
  sent without ever reading a pong.

For each attack, while the abusive connection is still open: a bystander session
(HTTP/1.1) is served, within ``BYSTANDER_S``; and after it, the worker is the same process,
its CPU time for the attack is bounded (``CPU_S``), its RSS grew by less than
``RSS_GROWTH_KB``, and its log holds no ERROR and no traceback. The figures are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
import wsproto
import wsproto.events
from wsproto.frame_protocol import Opcode

from tests.harness.serve import ServeProcess

APP = "examples.quickstart:app"
MAX_BODY = 64 * 1024
BYSTANDER_S = 3.0
CPU_S = 10.0
RSS_GROWTH_KB = 30 * 1024
ACCEPT = "application/json, text/event-stream"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s*(\d+) kB", status, re.M)
    assert match is not None
    return int(match[1])


class Target:
    """The server, its worker, and a bystander session over HTTP/1.1."""

    def __init__(self, server: ServeProcess, tls: bool) -> None:
        self.server = server
        self.tls = tls
        (self.worker,) = server.workers()
        self.http = httpx.Client(verify=False, timeout=BYSTANDER_S * 2)
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "bystander", "version": "1"}}}
        r = self.http.post(server.url, json=init, headers=headers)
        assert r.status_code == 200, r.text
        self.headers = {**headers, "mcp-session-id": r.headers["mcp-session-id"],
                        "mcp-protocol-version": "2025-11-25"}
        self.rid = 10

    def bystander(self) -> float:
        """One call of the bystander session; how long it took."""
        self.rid += 1
        call = {"jsonrpc": "2.0", "id": self.rid, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "still"}}}
        started = time.monotonic()
        r = self.http.post(self.server.url, json=call, headers=self.headers)
        took = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.json()["result"]["content"][0]["text"] == "still"
        return took

    def connect(self, alpn: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        if not self.tls:
            return sock
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols([alpn])
        wrapped = context.wrap_socket(sock, server_hostname="localhost")
        assert wrapped.selected_alpn_protocol() == alpn
        return wrapped


@pytest.fixture(scope="module", params=["h2c", "tls"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           dev_cert: tuple[str, str]) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp("abuse")
    args = ["--max-body-bytes", str(MAX_BODY), "--sse-send-timeout-s", "1",
            "--drain-timeout-s", "0.2", "--log-level", "warning"]
    tls = request.param == "tls"
    if tls:
        args += ["--certfile", dev_cert[0], "--keyfile", dev_cert[1]]
    server = ServeProcess(APP, *args, log=workdir / "server.log")
    try:
        yield Target(server, tls)
    finally:
        log = server.stop()
    bad = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    assert not bad, log[-4000:]


@contextlib.contextmanager
def attack(target: Target, name: str) -> Iterator[None]:
    """Measure the worker around an attack; the block leaves its connection open and the
    bystander is served meanwhile (then the connection is closed by the caller)."""
    cpu, rss = _cpu_s(target.worker), _rss_kb(target.worker)
    started = time.monotonic()
    yield
    took = target.bystander()  # while the abusive connection is still open
    cpu_used = _cpu_s(target.worker) - cpu
    growth = _rss_kb(target.worker) - rss
    print(f"\n{name} ({'tls' if target.tls else 'h2c/ws'}): {time.monotonic() - started:.1f} s,"
          f" worker CPU {cpu_used:.2f} s, RSS {growth:+} kB, bystander {took * 1000:.0f} ms")
    assert target.server.workers() == [target.worker], "the worker died"
    assert took < BYSTANDER_S
    assert cpu_used < CPU_S
    assert growth < RSS_GROWTH_KB


# -- HTTP/2 ----------------------------------------------------------------------------------


class H2:
    """A raw HTTP/2 client connection (``h2``), writes only unless asked to read."""

    def __init__(self, target: Target, settings: dict[int, int] | None = None) -> None:
        self.sock = target.connect("h2")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.port = target.server.port
        self.scheme = "https" if target.tls else "http"

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, stream_id: int, path: str = "/mcp", method: str = "POST",
                extra: list[tuple[str, str]] | None = None, end: bool = False) -> None:
        self.conn.send_headers(stream_id, [
            (":method", method), (":path", path), (":scheme", self.scheme),
            (":authority", f"127.0.0.1:{self.port}"), ("accept", ACCEPT),
            ("content-type", "application/json"), *(extra or [])], end_stream=end)

    def read_for(self, seconds: float) -> list[h2.events.Event]:
        """Read (and answer, e.g. window updates) for a while; the events seen."""
        events: list[h2.events.Event] = []
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                break
            if not data:
                break
            try:
                events += self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                break
            with contextlib.suppress(OSError):
                self.flush()
        return events

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _raw(sock: socket.socket, payload: bytes, *, budget_s: float = 5.0) -> int:
    """Write what the server takes within ``budget_s`` (it may stop reading); bytes sent."""
    sock.settimeout(0.5)
    sent = 0
    deadline = time.monotonic() + budget_s
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            sent += sock.send(payload[sent:sent + 65536])
        except (TimeoutError, ssl.SSLWantWriteError):
            continue
        except OSError:
            break
    return sent


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + stream_id.to_bytes(4, "big") + payload)


BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "echo", "arguments": {"message": "x"},
    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
              "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
MODERN = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"),
          ("mcp-name", "echo")]


def test_rapid_reset(target: Target) -> None:
    """CVE-2023-44487: 5,000 requests opened and reset at once on one connection."""
    client = H2(target)
    with attack(target, "rapid reset x5000"):
        sent = 0
        for i in range(5000):
            sid = 1 + 2 * i
            client.headers(sid, extra=MODERN)  # a request begins (its task starts) ...
            client.conn.reset_stream(sid)  # ... and is cancelled at once
            if i % 100 == 99:
                data = client.conn.data_to_send()
                sent += _raw(client.sock, data, budget_s=1.0)
        assert sent > 0
    client.close()


def test_settings_and_ping_floods_unread(target: Target) -> None:
    """50,000 SETTINGS and 50,000 PING frames from a client that never reads the ACKs."""
    client = H2(target)
    settings = _frame(0x4, 0, 0, (3).to_bytes(2, "big") + (100).to_bytes(4, "big"))
    ping = _frame(0x6, 0, 0, b"12345678")
    with attack(target, "SETTINGS + PING floods"):
        sent = _raw(client.sock, (settings + ping) * 50_000, budget_s=3.0)
        assert sent > 100_000
    client.close()


def test_header_list_bombs(target: Target) -> None:
    """A 1 MB header block; then one header block cut into 100,000 CONTINUATION frames."""
    client = H2(target)
    with attack(target, "header-list bombs"):
        extra = [(f"x-bomb-{i}", "v" * 1000) for i in range(1000)]
        with contextlib.suppress(Exception):
            client.headers(1, extra=extra)
            _raw(client.sock, client.conn.data_to_send(), budget_s=2.0)
        events = client.read_for(1.0)
        refused = any(isinstance(e, h2.events.ConnectionTerminated | h2.events.StreamReset)
                      or (isinstance(e, h2.events.ResponseReceived)
                          and dict(e.headers).get(":status") == "431") for e in events)
        assert refused or not events, events
        other = target.connect("h2")
        other.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(0x4, 0, 0, b""))
        first = _frame(0x1, 0, 1, b"\x82")  # HEADERS without END_HEADERS
        continuation = _frame(0x9, 0, 1, b"\x40\x01a\x01b")  # literal a: b, again and again
        _raw(other, first + continuation * 100_000, budget_s=2.0)
    client.close()
    other.close()


def test_stream_id_exhaustion_and_too_many_streams(target: Target) -> None:
    """Streams past MAX_CONCURRENT_STREAMS left open; then ids jumped to 2^31-1."""
    client = H2(target)
    with attack(target, "stream exhaustion"):
        for i in range(1000):  # opened, never ended: each waits for its body
            client.headers(1 + 2 * i, extra=MODERN)
        _raw(client.sock, client.conn.data_to_send(), budget_s=3.0)
        client.read_for(0.5)
        last = H2(target)
        last.headers(2**31 - 1, extra=MODERN)
        last.conn.send_data(2**31 - 1, BODY, end_stream=True)
        last.flush()
        answers = [e for e in last.read_for(2.0) if isinstance(e, h2.events.ResponseReceived)]
        assert answers, "the last stream id was not served"
        with contextlib.suppress(Exception):  # no id is left: the client cannot even try
            last.headers(2**31 + 1, extra=MODERN)
    client.close()
    last.close()


def test_zero_window_held_forever(target: Target) -> None:
    """A client that grants no flow-control window under a streaming answer, for ever."""
    client = H2(target, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    headers = [("mcp-protocol-version", "2025-11-25")]
    with attack(target, "zero window"):
        init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "z", "version": "1"}}}).encode()
        for i in range(50):  # answers that can never be sent: each must be let go
            client.headers(1 + 2 * i, extra=headers)
            client.conn.send_data(1 + 2 * i, init, end_stream=True)
        client.flush()
        client.sock.settimeout(0.2)
        time.sleep(1.5)  # past the send deadline (1 s): the streams are reset
        events = client.read_for(1.0)
        assert any(isinstance(e, h2.events.StreamReset | h2.events.ResponseReceived)
                   for e in events), events
    client.close()


def test_body_data_after_the_answer(target: Target) -> None:
    """A request refused before its body is read (415), whose client keeps uploading after
    the answer: Hypercorn raised KeyError for that data and the worker stopped (found by
    the hostile fuzz over h2c); now the data is dropped and the worker serves on."""
    client = H2(target)
    with attack(target, "DATA after the answer"):
        client.conn.send_headers(1, [
            (":method", "POST"), (":path", "/mcp"), (":scheme", client.scheme),
            (":authority", f"127.0.0.1:{client.port}"), ("accept", ACCEPT),
            ("content-type", "text/plain")])
        client.flush()
        sent = 0
        answered = False
        deadline = time.monotonic() + 3
        while sent < 256 * 1024 and time.monotonic() < deadline:
            window = min(client.conn.local_flow_control_window(1), 16384)
            if window > 0:
                client.conn.send_data(1, b"x" * window)
                client.flush()
                sent += window
            for event in client.read_for(0.05):
                answered = answered or isinstance(event, h2.events.ResponseReceived)
                if isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    deadline = 0  # the server ended it: fine too
        assert answered
        assert sent > 128 * 1024  # well past what the refusal reads (64 KiB)
    client.close()


# -- WebSocket -------------------------------------------------------------------------------


CUT = -1


class WS:
    def __init__(self, target: Target) -> None:
        self.sock = target.connect("http/1.1")
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(wsproto.events.Request(
            host=f"127.0.0.1:{target.server.port}", target="/mcp",
            subprotocols=["mcp"], extra_headers=[(b"origin", b"http://localhost")])))
        self.sock.settimeout(5)
        accepted = False
        while not accepted:
            data = self.sock.recv(65536)
            assert data, "the handshake was refused"
            self.ws.receive_data(data)
            for event in self.ws.events():
                assert not isinstance(event, wsproto.events.RejectConnection), event
                accepted = accepted or isinstance(event, wsproto.events.AcceptConnection)

    def closed_with(self, seconds: float = 2.0) -> int | None:
        """The close code the server sent within ``seconds``; ``CUT`` if it closed the
        connection (a close frame is lost to a reset when the server leaves unread data
        behind); None if the connection stays open."""
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                return CUT
            if not data:
                return CUT
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, wsproto.events.CloseConnection):
                    return int(event.code)
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _ws_frame(opcode: int, payload: bytes, fin: bool, length: int | None = None) -> bytes:
    """A masked client frame; ``length`` may announce more than ``payload`` holds."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 2**16:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload  # mask 0: the payload as it is


def test_websocket_fragment_flood(target: Target) -> None:
    """One text message in 70,000 one-byte fragments (more than max-body-bytes)."""
    client = WS(target)
    with attack(target, "WebSocket fragment flood"):
        frames = _ws_frame(Opcode.TEXT, b"[", False) + _ws_frame(
            Opcode.CONTINUATION, b" ", False) * 70_000
        _raw(client.sock, frames, budget_s=5.0)
        code = client.closed_with(8.0)
    assert code in (1009, CUT), code
    client.close()


def test_websocket_oversized_frame(target: Target) -> None:
    """A frame announcing 1 GiB, then data trickling in."""
    client = WS(target)
    with attack(target, "WebSocket 1 GiB frame"):
        _raw(client.sock, _ws_frame(Opcode.TEXT, b"x" * (256 * 1024), True, length=2**30),
             budget_s=3.0)
        code = client.closed_with(8.0)
    assert code in (1009, CUT), code
    client.close()


def test_websocket_pings_never_read(target: Target) -> None:
    """200,000 pings from a client that never reads a pong."""
    client = WS(target)
    with attack(target, "WebSocket ping flood"):
        sent = _raw(client.sock, _ws_frame(Opcode.PING, b"12345678", True) * 200_000,
                    budget_s=5.0)
        assert sent > 100_000
    client.close()
