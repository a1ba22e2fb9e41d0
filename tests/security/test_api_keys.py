"""API keys: both headers, refusals, hashed storage, the hash-key helper, settings."""

from __future__ import annotations

import hashlib
import pathlib

import msgspec
import pytest
import trio

import scalemcp
from scalemcp.cli import main as cli_main
from scalemcp.config import load_config
from scalemcp.security.api_keys import APIKeyAuthenticator, load_api_keys
from scalemcp.server import ConfigError, check_config
from tests.harness.asgi import open_client

from .support import challenge_params, initialize, scoped_app, session_call

ALICE_KEY = "smk_alice-0123456789abcdef"
BOB_KEY = "smk_bob-fedcba9876543210"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_file(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "keys.txt"
    path.write_text(f"# digest principal scopes\n{sha(ALICE_KEY)} alice admin\n\n"
                    f"{sha(BOB_KEY)}   bob  # no scopes\n")
    return str(path)


async def test_either_header_authenticates(tmp_path: pathlib.Path) -> None:
    config = scalemcp.Config.from_options(auth="api_key", api_keys_file=keys_file(tmp_path))
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            for auth in ({"x-api-key": ALICE_KEY}, {"authorization": f"Bearer {ALICE_KEY}"},
                         {"authorization": f"bearer {ALICE_KEY}", "x-api-key": ALICE_KEY}):
                sid = await initialize(http, url, auth)
                r = await session_call(http, url, sid, auth, "tools/list")
                names = {t["name"] for t in r.json()["result"]["tools"]}
                assert names == {"public", "admin_tool"}, auth  # alice's scopes apply


async def test_refusals(tmp_path: pathlib.Path) -> None:
    config = scalemcp.Config.from_options(auth="api_key", api_keys_file=keys_file(tmp_path))
    cases = {
        "no credentials": ({}, 401, None),
        "another scheme": ({"authorization": "Basic YWxpY2U6eA=="}, 401, None),
        "unknown key": ({"x-api-key": "smk_nobody"}, 401, "invalid_token"),
        "the stored digest as key": ({"x-api-key": sha(ALICE_KEY)}, 401, "invalid_token"),
        "two different keys": ({"x-api-key": ALICE_KEY, "authorization": f"Bearer {BOB_KEY}"},
                               400, "invalid_request"),
        "bad token characters": ({"authorization": "Bearer a b"}, 400, "invalid_request"),
    }
    with trio.fail_after(20):
        async with open_client(scoped_app(), config) as (url, http):
            for case, (headers, status, error) in cases.items():
                r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                    headers={"accept": "application/json, text/event-stream",
                                             **headers})
                assert r.status_code == status, case
                params = challenge_params(r.headers["www-authenticate"])
                assert params.get("error") == error, case
                assert "resource_metadata" not in params, case  # no OAuth here
            # GET and DELETE on the endpoint, and the legacy pair, are guarded too.
            for method, path in (("GET", "/mcp"), ("DELETE", "/mcp"), ("GET", "/sse"),
                                 ("POST", "/messages?sessionId=x")):
                r = await http.request(method, url.removesuffix("/mcp") + path)
                assert r.status_code == 401, (method, path)


def test_keys_are_stored_hashed(tmp_path: pathlib.Path) -> None:
    path = keys_file(tmp_path)
    assert ALICE_KEY not in pathlib.Path(path).read_text()
    entries = load_api_keys(path)
    assert [(e.principal, e.scopes) for e in entries] == [
        ("alice", frozenset({"admin"})), ("bob", frozenset())]
    held = msgspec.json.encode(entries) + repr(APIKeyAuthenticator(entries).__dict__).encode()
    for key in (ALICE_KEY, BOB_KEY):
        assert key.encode() not in held
        assert hashlib.sha256(key.encode()).digest() in [e.digest for e in entries]
    # A file holding a raw key instead of its digest is refused, with the line number.
    raw = tmp_path / "raw.txt"
    raw.write_text(f"{sha(BOB_KEY)} bob\n{ALICE_KEY} alice admin\n")
    with pytest.raises(ValueError, match=r"raw.txt:2: .*not a SHA-256 digest"):
        load_api_keys(str(raw))
    with pytest.raises(ValueError, match="more than once"):
        load_api_keys(path, [f"{sha(ALICE_KEY)} mallory"])


def test_hash_key_helper(capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli_main(["hash-key", "carol", "tools:read", "admin"]) == 0
    out, err = capsys.readouterr()
    key = err.split("API key (shown once): ")[1].strip()
    digest, principal, *scopes = out.split()
    assert (digest, principal, scopes) == (sha(key), "carol", ["tools:read", "admin"])
    assert key not in out
    [entry] = load_api_keys(None, [out.strip()])
    assert entry.principal == "carol"

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("my-existing-key\n"))
    assert cli_main(["hash-key", "--stdin", "dave"]) == 0
    out, err = capsys.readouterr()
    assert (out.strip(), err) == (f"{sha('my-existing-key')} dave", "")
    assert cli_main(["hash-key", "bad#name"]) == 2


def test_keys_from_the_environment() -> None:
    env = {"SCALEMCP_AUTH": "api_key",
           "SCALEMCP_API_KEYS": f"{sha(ALICE_KEY)} alice admin tools:call, {sha(BOB_KEY)} bob",
           "SCALEMCP_REQUIRED_SCOPES": "a,b"}
    config = load_config(env=env)
    assert config.auth.required_scopes == ["a", "b"]
    entries = load_api_keys(config.auth.api_keys_file, config.auth.api_keys)
    assert {e.principal: e.scopes for e in entries} == {
        "alice": frozenset({"admin", "tools:call"}), "bob": frozenset()}


@pytest.mark.parametrize(("settings", "message"), [
    ({"auth": "api_key"}, "needs api_keys_file or api_keys"),
    ({"api_keys": [f"{'0' * 64} x"]}, "only apply"),
    ({"required_scopes": ["x"]}, "only apply"),
    ({"auth": "api_key", "api_keys": [f"{'0' * 64} x"], "jwt_issuer": "https://a"},
     "only apply"),
])
def test_bad_key_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scalemcp.asgi_app(scoped_app(), scalemcp.Config.from_options(**settings))  # type: ignore[arg-type]


def test_a_bad_keys_file_fails_at_start(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "keys.txt"
    bad.write_text(f"{sha(ALICE_KEY)} alice\n{ALICE_KEY} alice\n")
    config = scalemcp.Config.from_options(auth="api_key", api_keys_file=str(bad), port=0)
    with pytest.raises(ConfigError, match=r"keys.txt:2: "):
        check_config(config)
