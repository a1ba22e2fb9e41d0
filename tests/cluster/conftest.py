"""A real multi-node fleet on loopback: redis-server, 3 ``scalemcp serve`` nodes of 2 workers
each, and haproxy in front, configured by the documented deploy/haproxy.cfg (round robin,
no stickiness, health-checked on /healthz) with loopback ports put in.

Every process runs in its own process group, so a node (its Hypercorn supervisor and both
workers) is stopped or ``kill -9``-ed as one. Readiness is polled with a deadline: Redis
answers PING, each node answers /readyz with 200, haproxy reports every server UP on its
stats page. haproxy adds ``X-Served-By: <server>`` to every response, so a test can tell
which node answered without adding anything to the server.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import ROOT, free_port
from tests.deploy.lb import haproxy_config

APP = "tests.cluster.app:app"
NODES = 3
WORKERS = 2
#: SSE keep-alive on the nodes: also how often a parked reader looks at Redis, and (x2)
#: how long a worker's heartbeat lives (see RedisBackend), so a dead node is noticed fast.
KEEPALIVE_S = 1.0
#: SSE streams end this long after SIGTERM (test_drain.py); requests get 5 s more.
DRAIN_S = 2.0
START_TIMEOUT_S = 30.0


def wait_until(check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_S,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``check()`` until it is true, failing after ``timeout`` (or if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready within {timeout} s")
        time.sleep(0.05)


def http_status(url: str, timeout: float = 2.0) -> int:
    """The status of GET ``url``; 0 if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
               timeout: float = 10.0) -> None:
    """Signal the process group ``proc`` leads; SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a dead supervisor


class Redis:
    """redis-server on a fixed loopback port; restartable (empty) on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/test installs it)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(lambda: self.command("PING") == b"+PONG", "redis-server", 10, self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGKILL)

    def command(self, *args: str) -> bytes:
        """Send one inline command; its first reply line, b'' if Redis is unreachable."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(" ".join(args).encode() + b"\r\n")
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                return reply.split(b"\r\n", 1)[0]
        except OSError:
            return b""


class Node:
    """``scalemcp serve`` with ``--workers 2`` on its own port, in its own process group.

    ``redis`` is the harness's redis-server or any ``--redis-url`` (Sentinel, Cluster...);
    ``app`` the ``MODULE:ATTR`` it serves.
    """

    def __init__(self, name: str, redis: Redis | str, state_key: str, workdir: Path,
                 workers: int = WORKERS, app: str = APP) -> None:
        redis_url = redis if isinstance(redis, str) else redis.url
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/mcp"
        self.log = workdir / f"{name}.log"
        self.marks = workdir / "marks"
        self._args = [
            sys.executable, "-m", "scalemcp.cli", "serve", app, "--port", str(self.port),
            "--workers", str(workers), "--redis-url", redis_url, "--state-keys", state_key,
            "--sse-keepalive-s", str(KEEPALIVE_S), "--drain-timeout-s", str(DRAIN_S),
            "--log-level", "warning",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "CLUSTER_NODE": self.name, "CLUSTER_MARKS": str(self.marks),
               "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self._args, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_until(lambda: http_status(self.base + "/readyz") == 200, self.name, proc=self.proc)

    def owns(self, pid: int) -> bool:
        """True if ``pid`` is one of this node's processes (its process group)."""
        try:
            return self.proc is not None and os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def kill(self) -> None:
        """``kill -9`` the whole node: supervisor and workers at once."""
        assert self.proc is not None
        stop_group(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)


class HAProxy:
    """haproxy in the foreground with the documented deploy/haproxy.cfg (round robin, no
    stickiness, health checks on /healthz); only its addresses are replaced."""

    def __init__(self, nodes: list[Node], workdir: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            pytest.fail("haproxy is not installed (scripts/test installs it)")
        self.port = free_port()
        self.stats_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.base = f"http://127.0.0.1:{self.port}"
        self.names = [node.name for node in nodes]
        cfg = workdir / "haproxy.cfg"
        servers = [(node.name, node.port) for node in nodes]
        cfg.write_text(haproxy_config(self.port, self.stats_port, servers))
        self.log = workdir / "haproxy.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def server_status(self) -> dict[str, str]:
        """Each server's status on the stats page (``UP``, ``DOWN``, ...); {} if unreachable."""
        try:
            url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode().lstrip("# ")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text))
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "scalemcp"
                and r["svname"] in self.names}

    def wait_status(self, expected: dict[str, str], timeout: float = START_TIMEOUT_S) -> None:
        def matches() -> bool:
            status = self.server_status()
            return all(status.get(name, "").startswith(want) for name, want in expected.items())

        wait_until(matches, f"haproxy servers {expected}", timeout, self.proc)

    def stop(self) -> None:
        stop_group(self.proc)


class Fleet:
    """``nodes`` nodes of ``workers`` workers serving ``app`` over any ``--redis-url``
    (standalone, Sentinel, Cluster: the caller runs it), with haproxy in front."""

    def __init__(self, workdir: Path, redis_url: str, *, app: str = APP, nodes: int = NODES,
                 workers: int = WORKERS) -> None:
        self.workdir = workdir
        (workdir / "marks").mkdir()
        self.state_key = secrets.token_hex(32)
        self.nodes = [Node(f"n{i}", redis_url, self.state_key, workdir, workers, app)
                      for i in range(nodes)]
        self.lb: HAProxy | None = None

    def start(self) -> None:
        for node in self.nodes:
            node.start()  # all three boot in parallel
        for node in self.nodes:
            node.wait_ready()
        self.lb = HAProxy(self.nodes, self.workdir)
        self.wait_all_up()

    @property
    def url(self) -> str:
        assert self.lb is not None
        return self.lb.url

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def node_of(self, pid: int) -> Node:
        return next(n for n in self.nodes if n.owns(pid))

    def wait_all_up(self) -> None:
        assert self.lb is not None
        self.lb.wait_status({n.name: "UP" for n in self.nodes})

    def restart(self, node: Node) -> None:
        """Start a stopped node again on its port; return once haproxy routes to it."""
        node.start()
        node.wait_ready()
        self.wait_all_up()

    def mark(self, tag: str) -> str | None:
        """What the ``slow`` tool recorded for ``tag``, if anything yet."""
        path = self.workdir / "marks" / tag
        return path.read_text() if path.exists() else None

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"==> {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.lb is not None:
            self.lb.stop()
        stopping = [threading.Thread(target=node.stop) for node in self.nodes]
        for thread in stopping:  # in parallel: each node may drain for a while
            thread.start()
        for thread in stopping:
            thread.join()


F = TypeVar("F", bound=Fleet)


class Cluster(Fleet):
    """The default fleet: 3 nodes x 2 workers serving tests/cluster/app.py (or ``app``) over
    a redis-server of its own, which a test may kill and restart."""

    def __init__(self, workdir: Path, *, app: str = APP) -> None:
        self.redis = Redis(workdir)
        super().__init__(workdir, self.redis.url, app=app)

    def stop(self) -> None:
        super().stop()
        self.redis.kill()


@contextlib.contextmanager
def running(fleet: F) -> Iterator[F]:
    """Start ``fleet`` (a failure to start carries the logs); stop it on the way out."""
    try:
        try:
            fleet.start()
        except Exception as exc:
            exc.add_note(fleet.logs())
            raise
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    fleet = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
