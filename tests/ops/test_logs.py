"""Structured logs: JSON lines with the request's fields, an access log, no secrets."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import signal

import httpx
import pytest
import trio

from scalemcp.observability.logs import JsonFormatter, TextFormatter, bind, redact_text, redact_url
from tests.harness.client import HEADERS, initialize, tool_call
from tests.harness.redis import open_redis_server
from tests.harness.serve import open_serve


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://app:p%40ss@redis.example:6380/1", "rediss://app:***@redis.example:6380/1"),
    ("redis://tokenonly@h:1", "redis://***@h:1"),
    ("redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0",
     "redis+sentinel://:***@s1:26379,s2:26379/mymaster/0"),
    ("redis://h:6379/0?password=pw&ssl_cert_reqs=none",
     "redis://h:6379/0?password=***&ssl_cert_reqs=none"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ("redis://h:6379", "redis://h:6379"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_formatters_mask_urls_and_carry_bound_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.ops.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with bind(request_id="r1", session="abc"):
            try:
                raise ConnectionError("cannot reach redis://u:hunter2@db:6379/0")
            except ConnectionError:
                logger.exception("lost %s", "rediss://:hunter2@db:6380",
                                 extra={"fields": {"attempt": 3}})
        logger.warning("outside any request")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "lost rediss://:***@db:6380"
    assert (first["level"], first["logger"]) == ("error", "tests.ops.formatter")
    assert (first["request_id"], first["session"], first["attempt"]) == ("r1", "abc", 3)
    assert first["timestamp"].endswith("Z")
    assert "redis://u:***@db:6379/0" in first["exception"]
    assert "hunter2" not in stream.getvalue()
    assert "request_id" not in second
    text = TextFormatter().format(logging.LogRecord(
        "x", logging.INFO, __file__, 1, "to %s", ("redis://:hunter2@h",), None))
    assert text.endswith("INFO x: to redis://:***@h")
    assert redact_text("no url here @ all") == "no url here @ all"


async def test_json_logs_access_log_and_no_secrets() -> None:
    password = "pw-" + secrets.token_hex(8)
    with trio.fail_after(40):
        async with open_redis_server(password=password) as redis_server:
            redis_url = f"redis://:{password}@127.0.0.1:{redis_server.port}/0"
            async with open_serve(
                "tests.ops.app:app", "--log-format", "json", "--access-log",
                "--redis-url", redis_url, "--state-keys", secrets.token_hex(32),
            ) as served:
                url = served.base + "/mcp"
                async with httpx.AsyncClient(timeout=10) as client:
                    init = await client.post(url, json=initialize(),
                                             headers={**HEADERS, "x-request-id": "init-1"})
                    sid = init.headers["mcp-session-id"]
                    headers = {**HEADERS, "mcp-session-id": sid, "x-request-id": "call-2",
                               "mcp-protocol-version": "2025-11-25"}
                    call = await client.post(url, json=tool_call("whoami", None, 2),
                                             headers=headers)
                    assert call.status_code == 200, call.text
                await served.wait_for(lambda line: "call-2" in line and "scalemcp.access" in line)
                served.proc.send_signal(signal.SIGTERM)
                assert await served.proc.wait() == 0
    lines = served.json_lines()  # every stdout line is JSON
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
    everything = "\n".join(served.stdout + served.stderr)
    assert password not in everything
    assert sid not in everything  # session ids are hashed
    session = hashlib.sha256(sid.encode()).hexdigest()[:16]

    started = [x for x in lines if x["message"].startswith("worker ")]
    assert f"redis backend at redis://:***@127.0.0.1:{redis_server.port}/0" in started[0]["message"]

    tool = next(x for x in lines if x["logger"] == "tests.ops.app")
    assert tool["message"] == "whoami runs"
    assert (tool["request_id"], tool["session"]) == ("call-2", session)
    assert (tool["mcp_method"], tool["jsonrpc_id"]) == ("tools/call", 2)

    access = {x["request_id"]: x for x in lines if x["logger"] == "scalemcp.access"}
    assert access["init-1"]["mcp_method"] == "initialize"
    assert access["call-2"]["session"] == session
    for rid, method in (("init-1", "initialize"), ("call-2", "tools/call")):
        line = access[rid]
        assert (line["http_method"], line["path"], line["status"]) == ("POST", "/mcp", 200)
        assert (line["era"], line["mcp_method"], line["level"]) == ("session", method, "info")
        assert 0 <= line["duration_s"] < 10
