"""Private Redis deployments on loopback: a standalone server, a Cluster of three masters,
a Sentinel deployment (master, replica, sentinel).

redis-server cannot bind port 0 and report it (``--port 0`` turns TCP off), so a server
starts on a port that was free a moment ago and is ready when it says so ("Ready to accept
connections", or "Sentinel ID is" for a sentinel); if the port was taken meanwhile, Redis
says that too and another port is tried. No polling for a port either way.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from .conditions import wait_until
from .output import LineLog
from .ports import unused_port
from .serve import stop_group

#: Attempts at finding a free port before giving up (each loses only to a race).
_ATTEMPTS = 5
START_TIMEOUT_S = 15.0


def binary(name: str) -> str:
    """The path of ``name``; fails the test (never skips it) if it is not installed."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/test installs it)")
    return found


class RedisServer:
    """``redis-server`` on loopback, no persistence, in a process group of its own.

    ``args`` are more options (``--name value`` pairs; for a sentinel, config lines);
    ``password`` sets requirepass (the helpers here then AUTH first); ``cluster`` enables
    Cluster mode with a bus port of its own; ``log`` also copies the output to a file.
    ``tls`` is more options for TLS (the port is then TLS only: ``--tls-port``).
    ``kill()`` then ``start()`` restarts it, empty, on the same port. ``port`` is for a
    test that needs Redis on an address given out before it started (no retry then).
    """

    def __init__(self, *args: str, password: str | None = None, sentinel: bool = False,
                 cluster: bool = False, log: Path | None = None,
                 port: int | None = None, tls: tuple[str, ...] = ()) -> None:
        self.args = args
        self.tls = tls
        self.password = password
        self.sentinel = sentinel
        self.cluster = cluster
        self.log = log
        self.dir = tempfile.mkdtemp(prefix="smcp-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: LineLog | None = None
        if port is not None:
            self.port = port
            self.start()
        else:
            for _ in range(_ATTEMPTS):
                self.port = unused_port()
                if self._start():
                    break
            else:
                raise RuntimeError(f"redis-server lost the race for a port {_ATTEMPTS} times")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        if self.sentinel:
            # A sentinel needs a writable config file; options on its command line go there.
            conf = f"{self.dir}/sentinel.conf"
            with open(conf, "w") as f:
                f.write("".join(f"{line}\n" for line in self.args))
            return [binary("redis-server"), conf, "--sentinel", "--port", str(self.port),
                    "--bind", "127.0.0.1", "--protected-mode", "no", "--dir", self.dir]
        listen = (["--port", "0", "--tls-port", str(self.port), *self.tls] if self.tls
                  else ["--port", str(self.port)])
        argv = [binary("redis-server"), *listen, "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--protected-mode", "no",
                "--dir", self.dir, *self.args]
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-port", str(unused_port()), "--cluster-node-timeout", "3000"]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        return argv

    def _start(self) -> bool:
        """Start on ``self.port``: True once ready, False if the port was taken."""
        self.proc = subprocess.Popen(self._argv(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        self.output = LineLog(self.proc.stdout, self.log)
        ready = "Sentinel ID is" if self.sentinel else "Ready to accept connections"
        try:
            self.output.wait_for(lambda line: ready in line, START_TIMEOUT_S)
            return True
        except (AssertionError, TimeoutError):
            self.kill()
            if "Address already in use" in self.output.text():
                return False
            raise RuntimeError(f"redis-server did not start on port {self.port}:\n"
                               + self.output.tail()) from None

    def start(self) -> None:
        """Start again (after ``kill``), empty, on the same port."""
        if not self._start():
            raise RuntimeError(f"port {self.port} is taken")

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
        return subprocess.run([binary("redis-cli"), "-p", str(self.port), *auth, *args],
                              capture_output=True, text=True, timeout=10).stdout

    def kill(self) -> None:
        """``kill -9``: gone at once, like a crash."""
        if self.proc is not None:
            stop_group(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGTERM, timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _line(sock: socket.socket) -> bytes:
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        reply += chunk
    return reply.strip()


@asynccontextmanager
async def open_redis_server(*args: str, password: str | None = None
                            ) -> AsyncIterator[RedisServer]:
    """A :class:`RedisServer` for a Trio test (started in a thread), stopped after."""
    server = await trio.to_thread.run_sync(lambda: RedisServer(*args, password=password))
    try:
        yield server
    finally:
        await trio.to_thread.run_sync(server.stop)


class RedisClusterNodes:
    """A Redis Cluster of three masters (no replicas) on loopback."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(3):
                self.nodes.append(RedisServer(cluster=True))
            out = subprocess.run(
                [binary("redis-cli"), "--cluster", "create",
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
