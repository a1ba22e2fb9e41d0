"""`helm test`: MCP through the Service, with nothing but the standard library.

    python mcp-smoke.py MCP_URL READY_URL MODE TOOL_JSON

MODE is "session" (initialize, tools/list, tools/call, DELETE) or "stateless" (2026-07-28:
server/discover, tools/list, tools/call). TOOL_JSON is {"name": ..., "arguments": {...}};
an empty name skips the call. MCP_TEST_AUTH names the server's auth mode and
MCP_TEST_CREDENTIAL holds an API key or bearer token; with authentication on and no
credential, the check is that the server refuses with 401 and a WWW-Authenticate challenge.
Exit 0 when every step answered as it should, else 1 with the step and what came back.
"""

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

MODERN = "2026-07-28"
SESSION = "2025-11-25"
# In-pod TLS usually has a cluster-internal certificate: check the answers, not the chain.
CONTEXT = ssl._create_unverified_context()


class Failed(Exception):
    pass


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20, context=CONTEXT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def answer(rid, content_type, raw):
    """The JSON-RPC response with id ``rid``, from a JSON body or an SSE stream."""
    if content_type.startswith("text/event-stream"):
        messages = []
        for event in raw.decode().replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.split("\n")
                             if line.startswith("data:"))
            if data:
                messages.append(json.loads(data))
    else:
        messages = [json.loads(raw)] if raw.strip() else []
    for message in messages:
        if message.get("id") == rid and "method" not in message:
            return message
        if "method" in message and "id" in message:
            raise Failed(f"the server asked the client for {message['method']}: pick a tool "
                         "that needs no client input (tests.tool)")
    raise Failed(f"no answer to request {rid} in: {raw[:300]!r}")


def header_name(name):
    if name.isascii() and name.isprintable():
        return name
    return "=?base64?" + base64.b64encode(name.encode()).decode() + "?="


class Client:
    def __init__(self, url, mode, credential):
        self.url, self.mode, self.rid = url, mode, 0
        self.base = {"accept": "application/json, text/event-stream",
                     "content-type": "application/json"}
        if credential:
            self.base["authorization"] = "Bearer " + credential

    def send(self, method, params=None, name=None, expect=200):
        self.rid += 1
        params = dict(params or {})
        headers = dict(self.base)
        if self.mode == "stateless":
            params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                               "io.modelcontextprotocol/clientCapabilities": {}}
            headers.update({"mcp-protocol-version": MODERN, "mcp-method": method})
            if name is not None:
                headers["mcp-name"] = header_name(name)
        body = {"jsonrpc": "2.0", "id": self.rid, "method": method, "params": params}
        status, response_headers, raw = http("POST", self.url, body, headers)
        if status != expect:
            raise Failed(f"{method}: HTTP {status}, expected {expect}: {raw[:300]!r}")
        if status != 200:
            return response_headers, None
        message = answer(self.rid, response_headers.get("content-type", ""), raw)
        if "error" in message:
            raise Failed(f"{method}: error {message['error']}")
        return response_headers, message["result"]


def run(mcp_url, ready_url, mode, tool):
    status, _, raw = http("GET", ready_url)
    print(f"GET {ready_url}: {status} {raw.decode(errors='replace')}")
    if status != 200:
        raise Failed("the server is not ready")
    auth = os.environ.get("MCP_TEST_AUTH", "none")
    client = Client(mcp_url, mode, os.environ.get("MCP_TEST_CREDENTIAL", ""))
    first = ("server/discover", {}) if mode == "stateless" else ("initialize", {
        "protocolVersion": SESSION, "capabilities": {},
        "clientInfo": {"name": "helm-test", "version": "1"}})
    if auth != "none" and "authorization" not in client.base:
        headers, _ = client.send(*first, expect=401)
        if "bearer" not in (headers.get("www-authenticate") or "").lower():
            raise Failed("401 without a Bearer WWW-Authenticate challenge")
        print(f"{first[0]}: 401 with a Bearer challenge (auth={auth}; set "
              "tests.credentialSecret to test a call)")
        return
    headers, result = client.send(*first)
    info = result.get("serverInfo") or result.get("_meta", {}).get(
        "io.modelcontextprotocol/serverInfo", {})
    print(f"{first[0]}: {info.get('name')} {info.get('version')}")
    session = headers.get("mcp-session-id")
    if mode == "session":
        if not session:
            raise Failed("initialize gave no Mcp-Session-Id")
        client.base.update({"mcp-session-id": session, "mcp-protocol-version": SESSION})
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        status, _, _ = http("POST", mcp_url, note, client.base)
        if status != 202:
            raise Failed(f"notifications/initialized: HTTP {status}, expected 202")
    _, listed = client.send("tools/list")
    names = [t["name"] for t in listed.get("tools", [])]
    print(f"tools/list: {', '.join(names) or '(none)'}")
    if tool.get("name"):
        if tool["name"] not in names:
            raise Failed(f"tool {tool['name']!r} is not listed: set tests.tool")
        _, called = client.send("tools/call", {"name": tool["name"],
                                               "arguments": tool.get("arguments") or {}},
                                name=tool["name"])
        if called.get("isError"):
            raise Failed(f"tools/call {tool['name']}: isError: {called.get('content')}")
        print(f"tools/call {tool['name']}: {json.dumps(called.get('content'))[:200]}")
    if session:
        status, _, _ = http("DELETE", mcp_url, headers=client.base)
        print(f"DELETE session: {status}")


def main(argv):
    mcp_url, ready_url, mode, tool = argv[1], argv[2], argv[3], json.loads(argv[4])
    try:
        run(mcp_url, ready_url, mode, tool)
    except (Failed, OSError, ValueError, KeyError) as error:
        print(f"FAILED: {error}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
