"""What a new user meets in the first hour: every mistake gets one clear line.

Each bad setting makes ``scalemcp serve`` exit non-zero before any worker starts, in at most
three lines, with no traceback, naming the flag, variable or file at fault.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.harness.ports import refused_port
from tests.harness.redis import RedisServer
from tests.harness.serve import ROOT, open_serve

KEY = "k" * 64


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCALEMCP_")}
    return subprocess.run([sys.executable, "-m", "scalemcp.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**environ, **(env or {})})


def refused(*args: str, names: str, env: dict[str, str] | None = None) -> str:
    """Run ``serve`` with ``args``; it must fail in one short line naming ``names``."""
    done = cli("serve", "examples.quickstart:app", "--port", "0", *args, env=env)
    err = done.stderr.strip()
    assert done.returncode != 0, err
    assert "Traceback" not in err
    assert 1 <= len(err.splitlines()) <= 3, err
    assert names in err, err
    return err


@pytest.mark.parametrize("key", ["", " ", "short-key"])
def test_empty_blank_and_short_state_keys_are_refused(key: str) -> None:
    err = refused("--state-keys", key, names="--state-keys")
    assert "at least 32 characters" in err
    assert "token_hex" in err  # how to make one
    refused("--redis-url", "redis://127.0.0.1:1/0", "--state-keys", key, names="--state-keys")


def test_state_key_from_the_environment_is_checked_too() -> None:
    refused(env={"SCALEMCP_STATE_KEYS": "abc"}, names="SCALEMCP_STATE_KEYS")


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1:6379", "unsupported Redis URL"),
    ("localhost:6390", "did you mean redis://localhost:6390/0"),
    ("redis://127.0.0.1:6379/abc", "the database must be a number"),
    ("redis://127.0.0.1:99999/0", "bad port"),
])
def test_bad_redis_urls_are_refused_in_the_parent(url: str, says: str) -> None:
    err = refused("--redis-url", url, "--state-keys", KEY, names="--redis-url")
    assert says in err


def test_missing_tls_files_are_named() -> None:
    err = refused("--certfile", "nope.pem", "--keyfile", "nope-key.pem", names="--certfile")
    assert "nope.pem" in err
    assert "No such file" in err


def test_a_file_that_is_no_certificate_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    refused("--certfile", str(junk), "--keyfile", str(junk), names="not a PEM certificate")


def test_missing_extra_is_named(tmp_path: Path) -> None:
    """--auth jwt where PyJWT cannot be imported (hidden by a sitecustomize)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('jwt', 'httpx'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n")
    err = refused("--auth", "jwt", "--jwt-jwks-url", "https://idp.example/jwks",
                  "--jwt-issuer", "https://idp.example", "--resource-uri",
                  "https://mcp.example/mcp", "--authorization-servers", "https://idp.example",
                  names="pip install 'scalemcp[auth]'",
                  env={"PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert "--auth jwt" in err


def test_log_level_in_any_case_and_bad_values_listed() -> None:
    err = refused("--log-level", "loud", names="--log-level")
    assert "critical, debug, error, info, warning" in err
    # Accepted in capitals: the next check that fails is the bad port, not the level.
    refused("--log-level", "DEBUG", "--workers", "0", names="--workers")


def test_environment_and_file_errors_name_their_source(tmp_path: Path) -> None:
    refused(env={"SCALEMCP_WORKERS": "many"}, names="SCALEMCP_WORKERS")
    config = tmp_path / "scalemcp.toml"
    config.write_text("max_body_bytes = -1\n")
    err = refused("--config", str(config), names=str(config))
    assert "max_body_bytes" in err
    config.write_text("[redis]\nurll = 'x'\n")
    assert "'urll' in [redis]" in refused("--config", str(config), names=str(config))


def test_misspelt_flag_gets_a_suggestion_and_the_serve_usage() -> None:
    done = cli("serve", "--prot", "8000", "examples.quickstart:app")
    assert done.returncode == 2
    assert "usage: scalemcp serve" in done.stderr
    assert "did you mean --port?" in done.stderr


def test_version_and_help() -> None:
    assert cli("--version").stdout.startswith("scalemcp ")
    serve_help = cli("serve", "--help").stdout
    assert "--redis-url" in serve_help
    assert "redis_url" not in serve_help  # settings are named by their flags
    assert "(default: off; env SCALEMCP_STATELESS_ONLY)" in " ".join(serve_help.split())
    top = cli("--help").stdout
    assert "config-reference" not in top  # a maintainer tool, not a user command
    assert cli("config-reference").returncode == 2


def test_a_worker_that_cannot_start_says_so_once(tmp_path: Path) -> None:
    (tmp_path / "only_parent.py").write_text(
        "import os\n"
        "import scalemcp\n"
        "if 'SCALEMCP_RESOLVED_CONFIG' in os.environ:\n"
        "    raise RuntimeError('the database is not there')\n"
        "app = scalemcp.App('x')\n")
    done = subprocess.run(
        [sys.executable, "-m", "scalemcp.cli", "serve", "only_parent:app", "--port", "0",
         "--workers", "3", "--stateless-only", "--state-keys", KEY],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "could not start" in line]
    assert lines == ["scalemcp: error: worker could not start: RuntimeError: the database is "
                     "not there"], done.stderr
    assert "Traceback" not in done.stderr


async def test_unreachable_redis_is_reported_and_recovery_too() -> None:
    with contextlib.ExitStack() as hold:
        port = hold.enter_context(refused_port())  # nothing listens there until Redis does
        args = ("examples.quickstart:app", "--redis-url", f"redis://127.0.0.1:{port}/0",
                "--state-keys", KEY, "--redis-connect-timeout-s", "0.5")
        async with open_serve(*args) as served, httpx.AsyncClient() as http:
            line = await served.wait_for(lambda text: "is unreachable" in text)
            assert f"127.0.0.1:{port}" in line
            assert "checking again every 1 s" in line
            assert (await http.get(served.base + "/readyz")).status_code == 503
            hold.close()
            redis = await trio.to_thread.run_sync(lambda: RedisServer(port=port))
            try:
                await served.wait_for(lambda text: "answers again" in text)
                assert (await http.get(served.base + "/readyz")).status_code == 200
            finally:
                redis.stop()
