"""The pieces of the hostile-input fuzz tests: a real server process, a raw HTTP client
that checks every answer, valid messages per era, and the strategies that spoil them.

Every answer is checked the same way (:func:`check_answer`): no 5xx but a deliberate 503
(with ``Retry-After``), no traceback or Python exception text, and a JSON body (or SSE
data line) is JSON-RPC, its errors carrying an integer code and a message.
"""

from __future__ import annotations

import builtins
import copy
import json
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from hypothesis import strategies as st

from tests.harness.serve import ServeProcess

APP = "tests.transport.hostile_app:app"
MAX_BODY = 256 * 1024
#: How long an SSE answer that does not end by itself (a GET stream) is read.
STREAM_READ_S = 0.15
ACCEPT = "application/json, text/event-stream"
SESSION_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LEGACY_VERSION = "2024-11-05"
MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}

_EXCEPTIONS = "|".join(sorted(
    name for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
    and name.endswith(("Error", "Exception", "Group"))))
#: Python internals a body must never show.
LEAK = re.compile(rf'Traceback|File "|\b(?:{_EXCEPTIONS})\b|msgspec\.|trio\.|hypercorn\.'
                  r"|scalemcp\.|<class '|<module")


# -- the server -----------------------------------------------------------------------------


class Server(ServeProcess):
    """``scalemcp serve`` (memory backend unless ``extra`` says, one worker) as a real
    process, logging to a file; ``http`` are the options of the clients that talk to it
    (``httpx.Client``: HTTP/2, TLS verification)."""

    def __init__(self, workdir: Path, *extra: str, http: dict[str, Any] | None = None
                 ) -> None:
        self.http = http or {}
        super().__init__(APP, "--max-body-bytes", str(MAX_BODY), "--sse-keepalive-s", "0.1",
                         "--client-request-timeout-s", "2", "--drain-timeout-s", "0.5",
                         "--log-level", "warning", *extra, log=workdir / "server.log")

    def rss_kb(self) -> int:
        """The worker's resident set size (``VmRSS`` in /proc), in kB."""
        (worker,) = self.workers()
        status = Path(f"/proc/{worker}/status").read_text()
        return int(re.search(r"^VmRSS:\s*(\d+) kB", status, re.M)[1])  # type: ignore[index]


# -- answers and their checks ----------------------------------------------------------------


class Answer(NamedTuple):
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def check_answer(a: Answer, what: object) -> None:
    """The invariants every answer to anything keeps."""
    assert a.status < 500 or (a.status == 503 and "retry-after" in a.headers), (a, what)
    text = a.body.decode("utf-8", "replace")
    leak = LEAK.search(text)
    assert leak is None, (leak, text[:800], what)
    ctype = a.headers.get("content-type", "")
    if ctype.startswith("application/json") and a.body:
        doc = json.loads(a.body)
        if a.status >= 400:
            check_error_response(doc)
        else:
            for message in doc if isinstance(doc, list) else [doc]:
                check_message(message, response=True)
    elif ctype.startswith("text/event-stream"):
        for message in sse_messages(a.body):
            check_message(message, response=False)
    elif a.status >= 400:
        assert not a.body.lstrip().startswith((b"{", b"[")), ("JSON without its type", a)


def check_error_response(doc: Any) -> None:
    assert isinstance(doc, dict), doc
    assert doc.get("jsonrpc") == "2.0", doc
    assert "result" not in doc, doc
    check_error(doc.get("error"))


def check_error(error: Any) -> None:
    assert isinstance(error, dict), error
    code = error.get("code")
    assert isinstance(code, int), error
    assert not isinstance(code, bool), error
    assert isinstance(error.get("message"), str), error
    assert error["message"], error


def check_message(message: Any, *, response: bool) -> None:
    """A JSON-RPC message the server sent; ``response``: it must be a response."""
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    if "error" in message:
        check_error(message["error"])
        assert "result" not in message, message
    elif "result" not in message:
        assert not response, message
        assert isinstance(message.get("method"), str), message


def sse_events(body: bytes) -> list[tuple[str, str]]:
    """(id, data) of every complete SSE event in ``body`` that has data."""
    found = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]:
        lines = block.decode().split("\n")
        ids = [line[3:].strip() for line in lines if line.startswith("id:")]
        data = "\n".join(line[5:].lstrip(" ") for line in lines if line.startswith("data:"))
        if data:
            found.append((ids[-1] if ids else "", data))
    return found


def sse_messages(body: bytes) -> list[Any]:
    """The JSON data of every complete SSE message event in ``body`` (a cut last one is
    left out; so is the legacy ``endpoint`` event, a URL)."""
    blocks = body.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]
    found = []
    for block in blocks:
        lines = block.split(b"\n")
        data = [line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:")]
        if any(data) and b"event: endpoint" not in lines:
            found.append(json.loads(b"\n".join(data)))
    return found


# -- the client -----------------------------------------------------------------------------


class Client:
    """Raw HTTP to the server: exactly the headers given, every answer checked."""

    def __init__(self, server: Server) -> None:
        self.base = server.base
        self.http = httpx.Client(timeout=httpx.Timeout(10.0), **server.http)
        self.next_id = 1000

    def rid(self) -> int:
        self.next_id += 1
        return self.next_id

    def send(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
             body: bytes | None = None, what: object = None) -> Answer:
        request = self.http.build_request(method, self.base + path, content=body,
                                          headers=headers)
        given = {name.lower() for name, _ in headers}
        for default in ("accept", "accept-encoding", "user-agent"):
            if default.encode() not in given and default in request.headers:
                del request.headers[default]
        response = self.http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            started = time.monotonic()
            streaming = response.headers.get("content-type", "").startswith("text/event")
            for chunk in response.iter_raw():
                chunks.append(chunk)
                if streaming and time.monotonic() - started > STREAM_READ_S:
                    break
        finally:
            response.close()
        answer = Answer(response.status_code, response.headers, b"".join(chunks))
        check_answer(answer, what if what is not None else (method, path, headers, body))
        return answer

    def post_json(self, path: str, message: Any, headers: dict[str, str]) -> Answer:
        return self.send("POST", path, encode_headers(headers), json.dumps(message).encode())

    def close(self) -> None:
        self.http.close()


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers.items()]


class Legacy:
    """A legacy HTTP+SSE session: the GET /sse stream read by a thread, answers queued."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(timeout=httpx.Timeout(10.0, read=None), **server.http)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.problems: list[str] = []
        self.endpoint = ""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(server.base,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "no endpoint event on GET /sse"

    def _read(self, base: str) -> None:
        with self.http.stream("GET", base + "/sse", headers={"accept": "text/event-stream"}) as r:
            event, data = "", []
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    self._event(event, "\n".join(data))
                    event, data = "", []

    def _event(self, event: str, data: str) -> None:
        if event == "endpoint":
            self.endpoint = data
            self._ready.set()
            return
        try:
            message = json.loads(data)
            check_message(message, response=False)
        except (AssertionError, ValueError) as exc:
            self.problems.append(f"{exc!r}: {data[:300]}")
            return
        self.messages.put(message)

    def answer_to(self, request_id: int, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("id") == request_id:
                return message

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.http.close()


# -- valid messages -------------------------------------------------------------------------


def request(rid: int, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = params
    return message


def initialize_params(version: str) -> dict[str, Any]:
    return {"protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "1"}}


REQUESTS: list[tuple[str, Any]] = [
    ("ping", None),
    ("tools/list", {}),
    ("tools/list", {"cursor": "abc"}),
    ("tools/call", {"name": "echo", "arguments": {"message": "hi"}}),
    ("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}),
    ("tools/call", {"name": "countdown", "arguments": {"n": 2}, "_meta": {"progressToken": "t"}}),
    ("tools/call", {"name": "ask", "arguments": {}}),
    ("tools/call", {"name": "fail", "arguments": {}}),
    ("tools/call", {"name": "region", "arguments": {"region": "eu"}}),
    ("resources/list", {}),
    ("resources/templates/list", {}),
    ("resources/read", {"uri": "greeting://bob"}),
    ("resources/subscribe", {"uri": "greeting://bob"}),
    ("resources/unsubscribe", {"uri": "greeting://bob"}),
    ("prompts/list", {}),
    ("prompts/get", {"name": "review", "arguments": {"code": "x"}}),
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": "review"},
                             "argument": {"name": "code", "value": "x"}}),
    ("logging/setLevel", {"level": "debug"}),
]
NOTIFICATIONS: list[dict[str, Any]] = [
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}},
    {"jsonrpc": "2.0", "method": "notifications/progress",
     "params": {"progressToken": "t", "progress": 1}},
    {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
    {"jsonrpc": "2.0", "id": "srv-1", "result": {"action": "accept", "content": {"name": "x"}}},
    {"jsonrpc": "2.0", "id": "srv-2", "error": {"code": -1, "message": "no"}},
]


def session_pool(version: str) -> list[Any]:
    """Valid messages of a session (or legacy) era client."""
    pool: list[Any] = [request(7, m, p) for m, p in REQUESTS]
    pool.append(request(1, "initialize", initialize_params(version)))
    pool += copy.deepcopy(NOTIFICATIONS)
    if version == "2025-03-26":
        pool.append([request(8, "ping"), request(9, "tools/list", {}), NOTIFICATIONS[0]])
    return pool


def modern_pool(request_state: str) -> list[Any]:
    """Valid stateless 2026-07-28 requests, an MRTR continuation among them."""
    pool = []
    for method, params in [*REQUESTS, ("server/discover", None),
                           ("subscriptions/listen", {})]:
        if method in ("ping", "logging/setLevel", "resources/subscribe",
                      "resources/unsubscribe"):
            continue
        pool.append(request(7, method, {**(params or {}), "_meta": MODERN_META}))
    pool.append(request(7, "tools/call", {
        "name": "ask", "arguments": {}, "_meta": MODERN_META, "requestState": request_state,
        "inputResponses": {"elicit": {"action": "accept", "content": {"name": "x"}}}}))
    return pool


def modern_headers(message: Any) -> dict[str, str]:
    """The headers a modern client sends with ``message`` (from its method and params)."""
    headers = {"accept": ACCEPT, "content-type": "application/json",
               "mcp-protocol-version": "2026-07-28"}
    if not isinstance(message, dict):
        return headers
    headers["mcp-method"] = str(message.get("method", ""))
    params = message.get("params")
    if isinstance(params, dict):
        name = params.get("uri") if message.get("method") == "resources/read" \
            else params.get("name")
        if isinstance(name, str):
            headers["mcp-name"] = name
        arguments = params.get("arguments")
        if isinstance(arguments, dict) and isinstance(arguments.get("region"), str):
            headers["mcp-param-region"] = arguments["region"]
    return {k: v for k, v in headers.items() if v.isascii() and v.isprintable() and v}


# -- strategies -----------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)


_DEEP_KEY = re.compile(r'"(@@deep\d+@@)"')


class Deep(NamedTuple):
    """A nested array ``depth`` levels deep, spliced in as raw JSON."""

    depth: int


HOSTILE_VALUES = st.one_of(
    st.sampled_from(["x" * 200_000, "x" * (MAX_BODY + 1), 10**400, -(10**30), 2**64, 1e308,
                     -0.0, "\ud800", "\x00\x1f\x7f", "\u202e" * 1000, "é" * 30_000, "",
                     "../../etc/passwd", "%s%n", "=?base64?AAAA?=", "null", "NaN"]),
    st.integers(2, 5000).map(Deep),
    st.integers(500, 3000).map(lambda n: [{"a": [1, {"b": None}]} for _ in range(n)]),
)
KNOWN_KEYS = ["jsonrpc", "id", "method", "params", "result", "error", "_meta", "name",
              "arguments", "uri", "cursor", "progressToken", "requestState", "inputResponses",
              "protocolVersion", "capabilities", "level", "ref", "argument", "code", "message",
              "io.modelcontextprotocol/protocolVersion",
              "io.modelcontextprotocol/clientCapabilities"]


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) inside ``node``."""
    found: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((node, key))
            found += _slots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((node, index))
            found += _slots(value)
    return found


def _containers(node: Any) -> list[Any]:
    found = [node] if isinstance(node, dict | list) else []
    for value in node.values() if isinstance(node, dict) else node if isinstance(node, list) \
            else []:
        found += _containers(value)
    return found


def encode(message: Any) -> bytes:
    """JSON of ``message``, with each :class:`Deep` spliced in as a nested array."""
    deep: dict[str, int] = {}

    def default(value: Any) -> Any:
        raise TypeError(value)

    def mark(node: Any) -> Any:
        if isinstance(node, Deep):
            key = f"@@deep{len(deep)}@@"  # _DEEP_KEY finds it
            deep[key] = node.depth
            return key
        if isinstance(node, dict):
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [mark(v) for v in node]
        return node

    text = json.dumps(mark(message), default=default)
    return _DEEP_KEY.sub(lambda m: "[" * deep[m[1]] + "]" * deep[m[1]], text).encode()


@st.composite
def mutated(draw: st.DrawFn, pool: list[Any]) -> bytes:
    """A valid message from ``pool`` with 1-3 structural mutations, sometimes wrapped in an
    array or object, sometimes with byte-level damage on top."""
    message = copy.deepcopy(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(message)
        op = draw(st.sampled_from(["drop", "retype", "add", "hostile"]))
        if op == "drop" and slots:
            container, key = draw(st.sampled_from(slots))
            del container[key]
        elif op in ("retype", "hostile") and slots:
            container, key = draw(st.sampled_from(slots))
            container[key] = draw(json_values if op == "retype" else HOSTILE_VALUES)
        else:
            container = draw(st.sampled_from(_containers(message)))
            value = draw(json_values | HOSTILE_VALUES)
            if isinstance(container, dict):
                container[draw(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8))] = value
            else:
                container.append(value)
    body = encode(message)
    wrap = draw(st.sampled_from(["none", "none", "none", "array", "pair", "object", "many"]))
    if wrap == "array":
        body = b"[" + body + b"]"
    elif wrap == "pair":
        body = b"[" + body + b"," + body + b"]"
    elif wrap == "object":
        body = b'{"x":' + body + b"}"
    elif wrap == "many" and len(body) < 10_000:  # a batch of 50 (bounded: a few 100 KB)
        body = b"[" + b",".join([body] * 50) + b"]"
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "insert", "twice"]))
    if damage == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1:]
    elif damage == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    elif damage == "twice":
        body = body + body
    return body


random_bodies = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"1", b"-",
                              b"1e999", b'"jsonrpc"', b'"2.0"', b'"method"', b'"id"',
                              b'"params"', b"\\u0000", b"\xff", b" ", b"\\"]),
             max_size=60).map(b"".join),
)

#: Bytes h11 lets a client put in a header value (no CR, LF, NUL; no edge whitespace).
_HEADER_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"
header_garbage = st.binary(max_size=300).map(
    lambda b: bytes(c for c in b if c in _HEADER_BYTES).strip(b" \t"))


@st.composite
def spoiled_headers(draw: st.DrawFn, base: dict[str, str], names: list[str],
                    forbid: frozenset[bytes] = frozenset()) -> list[tuple[bytes, bytes]]:
    """``base`` with 1-3 of ``names`` dropped, garbled, made huge, emptied or doubled;
    no header value ends up in ``forbid``."""
    headers = {k: v.encode() for k, v in base.items()}
    extra: list[tuple[bytes, bytes]] = []
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        valid = headers.get(name, b"x")
        action = draw(st.sampled_from(["garbage", "drop", "near", "huge", "empty", "double"]))
        if action == "drop":
            headers.pop(name, None)
            continue
        if action == "garbage":
            value = draw(header_garbage)
        elif action == "near":
            value = draw(st.sampled_from([
                valid + b"x", valid[:-1], valid.upper(), valid + b", " + valid, b" " + valid,
                b"=?base64?" + valid + b"?=", b"=?base64?!!?=", valid + b"\xff",
                valid.replace(b"-", b"_"), b"00" + valid]))
            value = value.strip(b" \t")
        elif action == "huge":
            value = b"a" * draw(st.integers(1000, 12_000))
        elif action == "empty":
            value = b""
        else:
            extra.append((name.encode(), draw(header_garbage)))
            continue
        if value not in forbid:
            headers[name] = value
    return [(k.encode(), v) for k, v in headers.items()] + extra
