"""The documented load balancer configs (deploy/haproxy.cfg, deploy/nginx.conf), with only
their listen ports and backend addresses replaced by loopback ones, and nginx run from them.
(haproxy is run by tests/harness/fleet.py.)

Each replacement must match exactly where the documented file has it, so a change to the
file's shape fails here instead of testing something other than what the docs show.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
NGINX_CONF = DEPLOY / "nginx.conf"

#: (server name, loopback port) of each node.
Servers = Sequence[tuple[str, int]]


def _replace(text: str, pattern: str, replacement: str, what: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"{what}: expected one match of {pattern!r} in the documented file"
    return new


def haproxy_config(bind: str, stats_bind: str, servers: Servers) -> str:
    """deploy/haproxy.cfg listening on ``bind`` and ``stats_bind`` (haproxy addresses, such
    as ``fd@3``: a socket the harness bound), over ``servers``."""
    text = HAPROXY_CFG.read_text()
    text = _replace(text, r"^    bind :8080$", f"    bind {bind}", "frontend bind")
    text = _replace(text, r"^    bind 127\.0\.0\.1:8404$", f"    bind {stats_bind}", "stats bind")
    lines = "".join(f"    server {name} 127.0.0.1:{p}\n" for name, p in servers)
    return _replace(text, r"^(    server \S+ \S+\n)+", lines, "server lines")


def nginx_site(port: int, servers: Servers) -> str:
    """deploy/nginx.conf listening on loopback ``port``, over ``servers``."""
    text = NGINX_CONF.read_text()
    text = _replace(text, r"^    listen 8080;$", f"    listen 127.0.0.1:{port};", "listen")
    match = re.search(r"^    server \S+( [^;\n]*);$", text, flags=re.MULTILINE)
    assert match, "no upstream server line in deploy/nginx.conf"
    lines = "".join(f"    server 127.0.0.1:{p}{match.group(1)};\n" for _, p in servers)
    return _replace(text, r"^(    server \S+ [^;\n]*;\n)+", lines, "upstream server lines")


class Nginx:
    """nginx in the foreground from its own prefix directory, including the documented
    site file; the main config around it is the test's (temp paths, logs, pid).

    It listens on ``listener``, a socket bound and listening already (see
    tests/harness/ports.py), which nginx inherits (its ``NGINX`` variable, as in a binary
    upgrade) instead of binding the port itself: connections queue until it serves.
    """

    def __init__(self, listener: socket.socket, servers: Servers, workdir: Path) -> None:
        port = listener.getsockname()[1]
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.fail("nginx is not installed (scripts/test installs it)")
        self.binary = binary
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        (self.dir / "scalemcp.conf").write_text(nginx_site(port, servers))
        temp = "\n".join(f"    {kind}_temp_path {self.dir / kind};" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(f"""\
worker_processes 1;
pid {self.dir / 'nginx.pid'};
error_log {self.dir / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {self.dir / 'access.log'};
{temp}
    include {self.dir / 'scalemcp.conf'};
}}
""")
        self.args = [binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                     "-c", str(self.dir / "nginx.conf")]
        check = subprocess.run([*self.args, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.log = workdir / "nginx.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.args, "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(listener.fileno(),),
                env={**os.environ, "NGINX": f"{listener.fileno()};"})
