"""A client that hangs up mid-request is the client's event: counted, logged at debug,
never an ERROR line or a traceback, and the worker goes on serving."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import trio

from tests.conftest import ROOT
from tests.harness.client import modern_call
from tests.harness.serve import open_serve

HEAD = (b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: application/json, text/event-stream\r\ncontent-length: 4000\r\n\r\n")


async def test_hang_up_before_the_body_ends_is_counted_not_logged() -> None:
    with trio.fail_after(30):
        async with open_serve("examples.quickstart:app") as served:
            port = int(served.base.rsplit(":", 1)[1])
            for _ in range(5):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(HEAD + b'{"jsonrpc": "2.0", "id": 1, "method"')
                await stream.aclose()
            async with httpx.AsyncClient() as http:
                for _ in range(100):  # the worker notices each hang-up as it reads
                    metrics = (await http.get(served.base + "/metrics")).text
                    if "scalemcp_client_disconnects_total 5.0" in metrics:
                        break
                    await trio.sleep(0.05)  # real time: the worker's reads are real I/O
                assert "scalemcp_client_disconnects_total 5.0" in metrics
                assert (await http.get(served.base + "/healthz")).status_code == 200
    output = "\n".join(served.stdout + served.stderr)
    assert "ERROR" not in output
    assert "Traceback" not in output


async def test_initialize_without_an_id_is_a_clear_400() -> None:
    """Found by the hostile fuzz: initialize sent as a notification was a 500."""
    from examples.quickstart import app
    from tests.harness.asgi import open_client

    async with open_client(app) as (url, http):
        answer = await http.post(url, headers={
            "accept": "application/json, text/event-stream"}, json={
            "jsonrpc": "2.0", "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}})
    assert answer.status_code == 400, answer.text
    assert "initialize must be a request" in answer.json()["error"]["message"]


@pytest.mark.parametrize("flags", [[], ["--http2"]], ids=["http1", "h2c"])
async def test_a_load_generator_killed_mid_run_leaves_no_error_in_the_log(
        flags: list[str]) -> None:
    """The issue's case: load generators stopped (kill -9) while 3 x 32 clients had
    requests in flight, in both eras, SSE answers included: no hang-up is an ERROR line
    or a traceback, every stream of the dead clients ends, the worker goes on serving."""
    with trio.fail_after(90):
        async with open_serve("bench.targets.scalemcp_server:app") as served:
            loads = []
            for era, scenario in (("session", "call-progress"), ("modern", "call"),
                                  ("session", "call")):
                loads.append(await trio.lowlevel.open_process(
                    [sys.executable, "-m", "scalemcp.cli", "bench", served.url, "--era", era,
                     "--scenario", scenario, "-c", "32", "-d", "30", "--steps", "20",
                     "--step-delay-ms", "5", "-q", "--no-progress", *flags],
                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            async with httpx.AsyncClient() as http:
                streaming = 0.0
                with trio.move_on_after(30):  # until many answers stream at once
                    while streaming < 32:
                        await trio.sleep(0.05)
                        metrics = (await http.get(served.base + "/metrics")).text
                        streaming = _gauge_sum(metrics, "scalemcp_open_streams{")
                for proc in loads:
                    proc.kill()
                    await proc.wait()
                for _ in range(100):  # until every stream of the dead clients has ended
                    metrics = (await http.get(served.base + "/metrics")).text
                    if _gauge_sum(metrics, "scalemcp_open_streams{") == 0:
                        break
                    await trio.sleep(0.05)
                after = await modern_call(http, served.url, 1, "echo", {"message": "hi"})
    output = "\n".join(served.stdout + served.stderr)
    assert after.status_code == 200
    assert _requests(metrics) > 0
    assert streaming > 0, "no answer was streaming when the clients died: nothing tested"
    assert _gauge_sum(metrics, "scalemcp_open_streams{") == 0  # each hang-up noticed
    assert "ERROR" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def _gauge_sum(metrics: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith(prefix))


def _requests(metrics: str) -> float:
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("scalemcp_requests_total{"))
