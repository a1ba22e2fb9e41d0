"""Private Redis deployments for the state tests (standalone, Cluster, Sentinel), and
backends to test against them."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import pytest

from scalemcp.state.base import StateBackend
from scalemcp.state.memory import MemoryBackend
from tests.conftest import free_port

BACKENDS = ["memory", "redis", "redis-cluster"]
REDIS_KINDS = ["redis", "redis-cluster"]

OpenBackend = Callable[..., AbstractAsyncContextManager[StateBackend]]


def _binary(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(f"{name} is not installed (scripts/test installs it)")
    return binary


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """``redis-server`` on an ephemeral loopback port, no persistence.

    ``args`` are more options (``--name value`` pairs); ``password`` sets requirepass
    (the test helpers then AUTH first).
    """

    def __init__(self, *args: str, password: str | None = None, sentinel: bool = False,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.password = password
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="smcp-redis-")
        if sentinel:
            # A sentinel needs a writable config file; options on its command line go there.
            conf = f"{self.dir}/sentinel.conf"
            with open(conf, "w") as f:
                f.write("".join(f"{line}\n" for line in args))
            argv = [_binary("redis-server"), conf, "--sentinel", "--port", str(self.port),
                    "--bind", "127.0.0.1", "--protected-mode", "no", "--dir", self.dir]
        else:
            argv = [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--protected-mode", "no",
                    "--dir", self.dir, *args]
            if password:
                argv += ["--requirepass", password, "--masterauth", password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while self.command("PING") != b"+PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.02)

    def command(self, *args: str) -> bytes:
        """Send one command (inline protocol); its one-line reply, b'' if unreachable."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                if self.password:
                    sock.sendall(f"AUTH {self.password}\r\n".encode())
                    if _line(sock) != b"+OK":
                        return b""
                sock.sendall(" ".join(args).encode() + b"\r\n")
                return _line(sock)
        except OSError:
            return b""

    def cli(self, *args: str) -> str:
        """``redis-cli`` for replies of more than one line."""
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        return subprocess.run([_binary("redis-cli"), "-p", str(self.port), *auth, *args],
                              capture_output=True, text=True, timeout=10).stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _line(sock: socket.socket) -> bytes:
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        reply += chunk
    return reply.strip()


class RedisClusterNodes:
    """A Redis Cluster of three masters (no replicas) on loopback."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(3):
                self.nodes.append(RedisServer(
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(free_port()), "--cluster-node-timeout", "3000"))
            out = subprocess.run(
                [_binary("redis-cli"), "--cluster", "create",
                 *[f"127.0.0.1:{n.port}" for n in self.nodes],
                 "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
            for node in self.nodes:
                wait_until(lambda n=node: "cluster_state:ok" in n.cli("CLUSTER", "INFO"),  # type: ignore[misc]
                           f"cluster_state:ok on port {node.port}")
        except BaseException:
            self.stop()
            raise
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def command(self, *args: str) -> bytes:
        """Send a command to every node; the reply if they all agree, else all of them."""
        replies = {node.command(*args) for node in self.nodes}
        return replies.pop() if len(replies) == 1 else b" | ".join(sorted(replies))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelDeployment:
    """A master, a replica and one sentinel (quorum 1) on loopback, with a password.

    The sentinel itself has no password: the backend's credentials (from the URL) are
    accepted by its ``default`` user.
    """

    MASTER = "mymaster"

    def __init__(self, password: str = "sekrit") -> None:
        self.password = password
        fast_sync = ("--repl-diskless-sync-delay", "0")  # not the default 5 s
        self.master = RedisServer(*fast_sync, password=password)
        self.replica: RedisServer | None = None
        self.sentinel: RedisServer | None = None
        try:
            self.replica = RedisServer(*fast_sync, "--replicaof", "127.0.0.1",
                                       str(self.master.port), password=password)
            # The sentinel's first look at the replica must see it in sync: it looks again
            # only every 10 s, and a manual failover promotes no replica it saw lagging.
            wait_until(lambda: "master_link_status:up" in self.replica.cli(  # type: ignore[union-attr]
                "INFO", "replication"), "the replica to sync")
            self.sentinel = RedisServer(
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 1",
                f"sentinel auth-pass {self.MASTER} {password}",
                f"sentinel down-after-milliseconds {self.MASTER} 1000",
                f"sentinel failover-timeout {self.MASTER} 5000",
                sentinel=True)
            wait_until(self._replica_known, "the sentinel to see the replica")
        except BaseException:
            self.stop()
            raise
        self.url = (f"redis+sentinel://:{password}@127.0.0.1:{self.sentinel.port}"
                    f"/{self.MASTER}/0")

    def _replica_known(self) -> bool:
        assert self.sentinel is not None
        words = self.sentinel.cli("SENTINEL", "REPLICAS", self.MASTER).split()
        info = dict(zip(words[::2], words[1::2], strict=False))
        return info.get("flags") == "slave" and info.get("master-link-status") == "ok"

    def master_port(self) -> int:
        assert self.sentinel is not None
        reply = self.sentinel.cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER).split()
        return int(reply[1])

    def wait_replicated(self) -> None:
        """Until the replica has everything the master has."""
        assert self.replica is not None

        def offset(server: RedisServer, field: str) -> int:
            for line in server.cli("INFO", "replication").splitlines():
                if line.startswith(field + ":"):
                    return int(line.split(":", 1)[1])
            return -1

        target = offset(self.master, "master_repl_offset")
        wait_until(lambda: offset(self.replica, "slave_repl_offset") >= target,  # type: ignore[arg-type]
                   "replication", timeout=5)

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            if server is not None:
                server.stop()


class Target(Protocol):
    url: str

    def command(self, *args: str) -> bytes: ...


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    cluster = RedisClusterNodes()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A Sentinel deployment the tests share (never failed over: see test_sentinel)."""
    deployment = SentinelDeployment()
    yield deployment
    deployment.stop()


_TARGETS = {"redis": "redis_server", "redis-cluster": "redis_cluster",
            "redis-sentinel": "redis_sentinel"}


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=REDIS_KINDS)
def redis_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def opener(kind: str, request: pytest.FixtureRequest) -> OpenBackend:
    """``open(**settings)`` for a backend of ``kind``; Redis ones share a key prefix."""
    prefix = f"t{secrets.token_hex(4)}:"

    @asynccontextmanager
    async def open_(**settings: Any) -> AsyncIterator[StateBackend]:
        if kind == "memory":
            backend = MemoryBackend(**settings)
            async with backend.running():
                yield backend
            return
        from scalemcp.state.redis import RedisBackend

        target: Target = request.getfixturevalue(_TARGETS[kind])
        redis = RedisBackend(target.url, key_prefix=prefix, **settings)
        async with redis.running():
            yield redis

    return open_


@pytest.fixture
def open_backend(backend_kind: str, request: pytest.FixtureRequest) -> OpenBackend:
    """``open_backend(**settings)``: a running backend of the test's kind.

    Redis backends opened by one test share a key prefix of their own, so they act as
    workers of one fleet and never see another test's keys.
    """
    return opener(backend_kind, request)


@pytest.fixture
def open_redis(redis_kind: str, request: pytest.FixtureRequest) -> OpenBackend:
    """Like ``open_backend``, Redis (standalone or Cluster) only: each call is another
    worker of one fleet."""
    return opener(redis_kind, request)


@pytest.fixture
def redis_target(redis_kind: str, request: pytest.FixtureRequest) -> Target:
    """The deployment ``open_redis`` connects to."""
    target: Target = request.getfixturevalue(_TARGETS[redis_kind])
    return target
