"""A real multi-node fleet on loopback: redis-server, ``scalemcp serve`` nodes of 2 workers
each, and haproxy in front, configured by the documented deploy/haproxy.cfg (round robin,
no stickiness, health-checked on /healthz) with loopback addresses put in.

Every process runs in its own process group, so a node (its Hypercorn supervisor and both
workers) is stopped or ``kill -9``-ed as one. Nothing picks a port: a node binds port 0 and
says where it serves (a restarted node takes its old port back, the one haproxy knows);
haproxy listens on sockets bound here and handed over (``bind fd@N``). What is waited for:
each node's start-up line, then haproxy's health checks (every server UP on its stats
page). haproxy adds ``X-Served-By: <server>`` to every response, so a test can tell which
node answered without adding anything to the server.
"""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.deploy.lb import haproxy_config

from .conditions import wait_until
from .ports import listening_socket, port_of
from .redis import RedisServer
from .serve import START_TIMEOUT_S, ServeProcess, stop_group

APP = "tests.cluster.app:app"
NODES = 3
WORKERS = 2
#: SSE keep-alive on the nodes: also how often a parked reader looks at Redis, and (x2)
#: how long a worker's heartbeat lives (see RedisBackend), so a dead node is noticed fast.
KEEPALIVE_S = 1.0
#: SSE streams end this long after SIGTERM (test_drain.py); requests get 5 s more.
DRAIN_S = 2.0


def http_status(url: str, timeout: float = 2.0) -> int:
    """The status of GET ``url``; 0 if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Node:
    """``scalemcp serve`` with ``--workers 2``, in its own process group.

    ``redis_url`` is any ``--redis-url`` (standalone, Sentinel, Cluster...); ``app`` the
    ``MODULE:ATTR`` it serves, ``env`` what its environment adds. Its port is known once
    it serves (``wait_ready``).
    """

    def __init__(self, name: str, redis_url: str, state_key: str, workdir: Path,
                 workers: int = WORKERS, app: str = APP,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.app = app
        self.env = env or {}
        self.port = 0
        self.base = self.url = ""
        self.log = workdir / f"{name}.log"
        self.marks = workdir / "marks"
        self._args = [
            "--workers", str(workers), "--redis-url", redis_url, "--state-keys", state_key,
            "--sse-keepalive-s", str(KEEPALIVE_S), "--drain-timeout-s", str(DRAIN_S),
            "--log-level", "warning",
        ]
        self.server: ServeProcess | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.server.proc if self.server is not None else None

    def start(self) -> None:
        """Start it (on its old port if it ran before); ``wait_ready`` waits."""
        env = {**self.env, "CLUSTER_NODE": self.name, "CLUSTER_MARKS": str(self.marks)}
        self.server = ServeProcess(self.app, *self._args, env=env, log=self.log,
                                   port=self.port, wait=False)

    def wait_ready(self) -> None:
        assert self.server is not None
        self.server.wait_serving()
        self.port = self.server.port
        self.base = self.server.base
        self.url = self.server.url

    def owns(self, pid: int) -> bool:
        """True if ``pid`` is one of this node's processes (its process group)."""
        return self.server is not None and self.server.owns(pid)

    def workers(self) -> list[int]:
        """The pids of its worker processes alive now."""
        return self.server.workers() if self.server is not None else []

    def kill(self) -> None:
        """``kill -9`` the whole node: supervisor and workers at once."""
        assert self.server is not None
        self.server.kill()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class HAProxy:
    """haproxy in the foreground with the documented deploy/haproxy.cfg (round robin, no
    stickiness, health checks on /healthz); only its addresses are replaced: it listens on
    sockets bound here, so its address is known before it starts."""

    def __init__(self, nodes: list[Node], workdir: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            pytest.fail("haproxy is not installed (scripts/test installs it)")
        front, stats = listening_socket(), listening_socket()
        self.port, self.stats_port = port_of(front), port_of(stats)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.base = f"http://127.0.0.1:{self.port}"
        self.names = [node.name for node in nodes]
        cfg = workdir / "haproxy.cfg"
        servers = [(node.name, node.port) for node in nodes]
        cfg.write_text(haproxy_config(f"fd@{front.fileno()}", f"fd@{stats.fileno()}", servers))
        self.log = workdir / "haproxy.log"
        with front, stats, self.log.open("ab") as log:  # haproxy keeps its own copies
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(front.fileno(), stats.fileno()))

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
        """Until haproxy's health checks put each server in the ``expected`` state."""
        def matches() -> bool:
            status = self.server_status()
            return all(status.get(name, "").startswith(want) for name, want in expected.items())

        wait_until(matches, f"haproxy servers {expected}", timeout, self.proc)

    def stop(self) -> None:
        stop_group(self.proc)


class Fleet:
    """``nodes`` nodes of ``workers`` workers serving ``app`` over any ``--redis-url``
    (standalone, Sentinel, Cluster: the caller runs it), with haproxy in front; ``env``
    is added to every node's environment."""

    def __init__(self, workdir: Path, redis_url: str, *, app: str = APP, nodes: int = NODES,
                 workers: int = WORKERS, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        (workdir / "marks").mkdir()
        self.state_key = secrets.token_hex(32)
        self.nodes = [Node(f"n{i}", redis_url, self.state_key, workdir, workers, app, env)
                      for i in range(nodes)]
        self.lb: HAProxy | None = None

    def start(self) -> None:
        for node in self.nodes:
            node.start()  # all of them boot in parallel
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

    def workers(self) -> dict[int, str]:
        """pid -> node name of every worker process alive now."""
        return {pid: node.name for node in self.nodes for pid in node.workers()}

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

    def __init__(self, workdir: Path, *, app: str = APP, nodes: int = NODES,
                 workers: int = WORKERS, env: dict[str, str] | None = None) -> None:
        self.redis = RedisServer(log=workdir / "redis.log")
        super().__init__(workdir, self.redis.url, app=app, nodes=nodes, workers=workers,
                         env=env)

    def stop(self) -> None:
        super().stop()
        self.redis.stop()


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

