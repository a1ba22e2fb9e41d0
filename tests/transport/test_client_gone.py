"""A client that hangs up mid-request is the client's event: counted, logged at debug,
never an ERROR line or a traceback, and the worker goes on serving."""

from __future__ import annotations

import httpx
import trio

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
