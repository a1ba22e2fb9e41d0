"""Tasks while Redis is away: a 503 with ``Retry-After`` for every task request (a task
cannot be created, read or cancelled without the store), never a 500 and never a
traceback in the log, and the worker serves them again once Redis is back."""

from __future__ import annotations

import httpx
import pytest
import trio

from tests.harness.client import Stateless
from tests.harness.redis import RedisServer
from tests.harness.serve import ServeProcess

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

APP = "tests.cluster.task_app:app"
DECLARED = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


async def test_task_requests_get_503_while_redis_is_down() -> None:
    redis = RedisServer()
    server = ServeProcess(APP, "--redis-url", redis.url, "--state-keys", "k" * 64)
    try:
        with trio.fail_after(60):
            async with httpx.AsyncClient(timeout=10) as http:
                c = Stateless(http, server.url, capabilities=DECLARED)
                job = {"name": "job", "arguments": {"tag": "d1", "seconds": 0.05}}
                created = await c.call("tools/call", job, "job")
                task_id = created.json()["result"]["taskId"]
                redis.kill()
                for method, params, name in [("tools/call", job, "job"),
                                             ("tasks/get", {"taskId": task_id}, task_id)]:
                    refused = await c.call(method, params, name)
                    assert refused.status_code == 503, (method, refused.text)
                    assert refused.headers.get("retry-after"), method
                redis.start()  # (empty: the stored tasks are gone with it)
                while True:  # served again without a restart
                    again = await c.call("tools/call", job, "job")
                    if again.status_code == 200:
                        assert again.json()["result"]["taskId"]
                        break
                    assert again.status_code == 503, again.text
                    await trio.sleep(0.2)
    finally:
        log = server.stop()
        redis.stop()
    assert "unhandled error" not in log, log
    assert "Traceback" not in log, log
