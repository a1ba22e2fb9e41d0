"""``scalemcp serve``: clear errors, config sources, HTTPS with HTTP/2, health endpoints."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys

import httpx
import pytest

from scalemcp.config import load_config
from tests.harness.serve import ROOT, ServeProcess


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalemcp.cli", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, env=env)


def test_bad_module_path() -> None:
    result = _serve("no_such_module:app", "--port", "0")  # whatever holds 8000 here
    assert result.returncode == 2
    assert "cannot import module 'no_such_module'" in result.stderr
    assert "Traceback" not in result.stderr
    result = _serve("examples.quickstart")
    assert result.returncode == 2
    assert "MODULE:ATTR" in result.stderr
    result = _serve("examples.quickstart:nope")
    assert "has no attribute 'nope'" in result.stderr


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _serve("examples.quickstart:app", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_workers_need_redis_and_keys() -> None:
    result = _serve("examples.quickstart:app", "--workers", "2", "--port", "0")
    assert result.returncode == 2
    assert "needs --redis-url" in result.stderr


def test_config_precedence(tmp_path: pathlib.Path) -> None:
    toml = tmp_path / "scalemcp.toml"
    toml.write_text('port = 9001\nlog_level = "debug"\nallowed_origins = ["https://a.example"]\n')
    env = {"SCALEMCP_PORT": "9002", "SCALEMCP_ALLOWED_HOSTS": "a.example,b.example"}
    config = load_config({"port": "9003"}, env=env, config_file=str(toml))
    assert config.server.port == 9003
    assert config.ops.log_level == "debug"
    assert config.server.allowed_hosts == ["a.example", "b.example"]
    assert load_config({}, env=env, config_file=str(toml)).server.port == 9002
    toml.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="prot"):
        load_config({}, env={}, config_file=str(toml))
    with pytest.raises(ValueError, match="port"):
        load_config({"port": "-1"}, env={})


def _self_signed(tmp_path: pathlib.Path) -> tuple[str, str]:
    """The certificate ``scalemcp dev-cert`` writes."""
    result = subprocess.run([sys.executable, "-m", "scalemcp.cli", "dev-cert", "--out",
                             str(tmp_path / "tls")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    certfile, keyfile = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert f"--certfile {certfile} --keyfile {keyfile}" in result.stdout
    assert keyfile.stat().st_mode & 0o777 == 0o600
    return str(certfile), str(keyfile)


def test_https_with_http2(tmp_path: pathlib.Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    server = ServeProcess("examples.quickstart:app", "--certfile", certfile,
                           "--keyfile", keyfile)
    try:
        url = server.url.replace("http://", "https://")
        with httpx.Client(verify=False, http2=True, timeout=10) as client:
            health = client.get(url.removesuffix("/mcp") + "/healthz")
            assert health.status_code == 200
            assert health.http_version == "HTTP/2"
            init = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                          "params": {"protocolVersion": "2025-11-25",
                                                     "capabilities": {},
                                                     "clientInfo": {"name": "t", "version": "1"}}},
                               headers={"accept": "application/json, text/event-stream"})
            assert init.status_code == 200
            assert init.json()["result"]["serverInfo"]["name"] == "quickstart"
            ready = client.get(url.removesuffix("/mcp") + "/readyz")
            assert ready.json() == {"status": "ready"}
    finally:
        log = server.stop()
    assert "Traceback" not in log
