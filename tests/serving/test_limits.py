"""Connection caps per worker and per client address, refused cheaply and counted;
behind a trusted proxy, by the address its X-Forwarded-For names."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import trio

import scalemcp
from examples.quickstart import app
from scalemcp.serving.gate import Gate, forwarded_client, parse_networks
from scalemcp.testing import open_server

from .test_deadlines import port_of
from .test_loop import closed_by_server


async def refused(http: httpx.AsyncClient, url: str, reason: str) -> float:
    text = (await http.get(url.removesuffix("/mcp") + "/metrics")).text
    found = re.search(rf'^scalemcp_connections_refused_total{{reason="{reason}"}} (\S+)$',
                      text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def health(forwarded_for: str | None = None) -> bytes:
    extra = f"x-forwarded-for: {forwarded_for}\r\n".encode() if forwarded_for else b""
    return b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n%s\r\n" % extra


async def answer(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith((b"}", b"\n")):
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


@asynccontextmanager
async def connected(port: int, count: int, forwarded_for: str | None = None
                    ) -> AsyncIterator[list[trio.SocketStream]]:
    """``count`` connections, each answered once (so each is admitted and counted)."""
    async with AsyncExitStack() as stack:
        streams = []
        for _ in range(count):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            stack.push_async_callback(stream.aclose)
            await stream.send_all(health(forwarded_for))
            assert (await answer(stream)).startswith(b"HTTP/1.1 200")
            streams.append(stream)
        yield streams


async def test_a_client_over_its_cap_is_refused_with_a_503_until_one_closes() -> None:
    config = scalemcp.Config.from_options(max_connections_per_client=3)
    with trio.fail_after(20):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            port = port_of(url)
            before = await refused(http, url, "client_limit")
            async with connected(port, 2) as held:  # httpx holds the third
                extra = await trio.open_tcp_stream("127.0.0.1", port)
                refusal = await answer(extra)
                assert refusal.startswith(b"HTTP/1.1 503 ")
                assert b"retry-after: 1" in refusal
                assert await closed_by_server(extra)
                assert await refused(http, url, "client_limit") - before == 1
                await held[0].aclose()
                await trio.sleep(0.1)  # the server sees the close
                async with connected(port, 1):  # room again
                    pass


async def test_the_worker_cap_refuses_anyone_past_it() -> None:
    config = scalemcp.Config.from_options(max_connections=4)
    with trio.fail_after(20):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            port = port_of(url)
            before = await refused(http, url, "worker_limit")
            async with connected(port, 3):  # and httpx's
                extra = await trio.open_tcp_stream("127.0.0.1", port)
                assert (await answer(extra)).startswith(b"HTTP/1.1 503 ")
                assert await refused(http, url, "worker_limit") - before == 1


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted() -> None:
    config = scalemcp.Config.from_options(max_connections_per_client=2,
                                          trusted_proxies=["127.0.0.0/8"])
    with trio.fail_after(20):
        async with open_server(app, config) as url, httpx.AsyncClient(timeout=10) as http:
            port = port_of(url)
            before = await refused(http, url, "client_limit")
            # The proxy's own address is not capped: more than 2 connections, no header.
            async with connected(port, 3), connected(port, 2, "203.0.113.7, 127.0.0.1"):
                extra = await trio.open_tcp_stream("127.0.0.1", port)
                await extra.send_all(health("203.0.113.7"))
                assert (await answer(extra)).startswith(b"HTTP/1.1 503 ")
                assert await refused(http, url, "client_limit") - before == 1
                async with connected(port, 2, "203.0.113.8"):  # another client: admitted
                    pass


def test_the_forwarded_client_is_the_right_most_untrusted_hop() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::1"])
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8, 10.1.1.1\r\n\r\n"
    assert forwarded_client(head, trusted) == "5.6.7.8"
    assert forwarded_client(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", trusted) is None
    assert forwarded_client(b"GET / HTTP/1.1\r\nx-forwarded-for: 10.0.0.1\r\n\r\n",
                            trusted) is None  # only proxies: nobody to count
    body = b"GET / HTTP/1.1\r\nhost: a\r\n\r\nx-forwarded-for: 9.9.9.9\r\n"
    assert forwarded_client(body, trusted) is None  # past the head: not a header


def test_a_gate_counts_and_releases() -> None:
    gate = Gate(max_connections=3, max_per_client=2)
    assert gate.admit("a") is None
    assert gate.admit("a") is None
    assert gate.admit("a") == "client_limit"
    assert gate.admit(None) is None
    assert gate.admit("b") == "worker_limit"
    gate.release("a")
    assert gate.held_by("a") == 1
    assert gate.admit("b") is None


def test_a_bad_trusted_proxy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"trusted_proxies.*not an address or network"):
        scalemcp.Config.from_options(trusted_proxies=["proxy.example"])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read it")
async def test_the_listen_backlog_is_the_configured_one_not_hypercorns_100() -> None:
    """A burst of connections past the backlog is dropped by the kernel (the client
    retries after 1 s, then 3 s): the worker listens with ``backlog``."""
    config = scalemcp.Config.from_options(backlog=777)  # under net.core.somaxconn
    with trio.fail_after(20):
        async with open_server(app, config) as url:
            port = port_of(url)
            listing = await trio.run_process(["ss", "-ltnH", f"sport = :{port}"],
                                             capture_stdout=True)
    [line] = listing.stdout.decode().splitlines()
    assert line.split()[2] == "777"  # a listening socket's Send-Q: its backlog
    assert scalemcp.Config().connections.backlog > 100
