"""What the Helm chart hands the server: drain timeout tied to the grace period, log format,
authentication, and an environment (plus config.toml) that the server itself accepts.

Rendering as in test_helm.py (helm-python-sdk); the rendered environment is then fed to
``scalemcp.config.load_config`` and ``scalemcp.preflight.check_config``, the checks
``scalemcp serve`` runs at start, so a chart value the server would refuse fails here.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from scalemcp.config import OPTIONS, Config, load_config
from scalemcp.preflight import check_config
from scalemcp.transport.drain import HARD_STOP_MARGIN_S

from .test_helm import (
    ALL_VALUES,
    CHART,
    RELEASE,
    chart,
    ci_id,
    env_of,
    helm,
    load_values,
    merged,
    only,
    render,
    render_error,
    render_raw,
    server_container,
)

__all__ = ["chart"]  # the module-scoped fixture, shared with test_helm.py

FIELDS = {o.name for o in OPTIONS}
#: SCALEMCP_* variables the chart sets that are no Config field: the config file path, and
#: the keys that SCALEMCP_STATE_KEYS expands.
NOT_FIELDS = {"SCALEMCP_CONFIG", "SCALEMCP_STATE_KEY", "SCALEMCP_PREVIOUS_STATE_KEYS"}
HASHED = "c871f067542d565c57ebb8b54f99afe326644dceeb5c05fc2209a8161a52875e alice tools:call"
JWT = {"auth": {
    "mode": "jwt",
    "jwt": {
        "jwksUrl": "https://login.example.com/jwks.json",
        "issuer": "https://login.example.com/",
        "resourceUri": "https://mcp.example.com/mcp",
        "authorizationServers": ["https://login.example.com/"],
    },
}}


# Drain timeout and the termination grace period -------------------------------------------


def shutdown_values(grace: int, sleep: int, drain: int) -> dict[str, Any]:
    return {"terminationGracePeriodSeconds": grace, "preStopSleepSeconds": sleep,
            "server": {"drainTimeoutSeconds": drain}}


@pytest.mark.parametrize(("grace", "sleep", "drain"), [(60, 10, 30), (46, 10, 30), (301, 15, 280),
                                                      (6, 0, 0)])
def test_drain_timeout_reaches_the_server_inside_the_grace_period(
    chart: Any, grace: int, sleep: int, drain: int
) -> None:
    docs = render(chart, shutdown_values(grace, sleep, drain))
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    container = server_container(docs)
    assert float(env_of(container)["SCALEMCP_DRAIN_TIMEOUT_S"]["value"]) == drain
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(sleep)]
    # The policy: the kubelet's kill comes after the preStop sleep, the drain and the
    # server's own hard stop (what still runs HARD_STOP_MARGIN_S after the drain ends).
    assert pod["terminationGracePeriodSeconds"] > sleep + drain + HARD_STOP_MARGIN_S


@pytest.mark.parametrize(("grace", "sleep", "drain"), [(45, 10, 30), (40, 10, 30), (30, 0, 30),
                                                      (60, 30, 30)])
def test_grace_period_too_short_for_the_drain_fails(
    chart: Any, grace: int, sleep: int, drain: int
) -> None:
    error = render_error(chart, shutdown_values(grace, sleep, drain))
    needed = sleep + drain + int(HARD_STOP_MARGIN_S)
    assert (f"terminationGracePeriodSeconds ({grace}) must exceed preStopSleepSeconds + "
            f"server.drainTimeoutSeconds + 5 s for the server's hard stop ({needed})") in error


@pytest.mark.parametrize(
    ("values", "offender"),
    [
        ({"server": {"drainTimeoutSeconds": -1}}, "drainTimeoutSeconds"),
        ({"server": {"drainTimeoutSeconds": "30s"}}, "drainTimeoutSeconds"),
        ({"server": {"drainTimeoutSeconds": 2.5}}, "drainTimeoutSeconds"),
        ({"server": {"drainSeconds": 30}}, "drainSeconds"),  # the old name
        ({"terminationGracePeriodSeconds": 0}, "terminationGracePeriodSeconds"),
        ({"preStopSleepSeconds": -5}, "preStopSleepSeconds"),
        ({"server": {"logFormat": "xml"}}, "logFormat"),
        ({"server": {"accessLog": "yes"}}, "accessLog"),
        ({"auth": {"mode": "basic"}}, "mode"),
        ({"auth": {"apiKeys": ["sk-live-0123456789abcdef"]}}, "apiKeys"),
        ({"auth": {"jwt": {"jwksUrl": "http://idp.example.com/jwks"}}}, "jwksUrl"),
        ({"auth": {"jwt": {"issuer": "x", "audience": "y"}}}, "audience"),
        ({"auth": {"requiredScopes": ["two words"]}}, "requiredScopes"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects_bad_server_and_auth_values(
    chart: Any, values: dict[str, Any], offender: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=offender):
        render_raw(chart, values)


# Logs ------------------------------------------------------------------------------------


def test_logs_are_json_by_default_and_configurable(chart: Any) -> None:
    env = env_of(server_container(render(chart, {})))
    assert env["SCALEMCP_LOG_FORMAT"]["value"] == "json"
    assert "SCALEMCP_ACCESS_LOG" not in env
    env = env_of(server_container(render(chart, {"server": {"logFormat": "text",
                                                             "accessLog": True}})))
    assert env["SCALEMCP_LOG_FORMAT"]["value"] == "text"
    assert env["SCALEMCP_ACCESS_LOG"]["value"] == "true"


# Authentication ----------------------------------------------------------------------------


def test_api_key_mode_mounts_the_hashed_entries(chart: Any) -> None:
    values = load_values(CHART / "ci" / "ingress-tls-values.yaml")
    env = env_of(server_container(render(chart, values)))
    assert env["SCALEMCP_AUTH"]["value"] == "api_key"
    assert env["SCALEMCP_API_KEYS_FILE"]["value"] == "/etc/scalemcp/secrets/api-keys"
    assert not {"SCALEMCP_JWT_ISSUER", "SCALEMCP_REQUIRED_SCOPES"} & set(env)
    assert "SCALEMCP_AUTH" not in env_of(server_container(render(chart, {})))


def test_jwt_mode_passes_every_setting(chart: Any) -> None:
    env = env_of(server_container(render(chart, load_values(CHART / "ci" / "gateway-values.yaml"))))
    assert {name: env[name]["value"] for name in env if name.startswith(
        ("SCALEMCP_AUTH", "SCALEMCP_JWT", "SCALEMCP_RESOURCE", "SCALEMCP_REQUIRED"))} == {
        "SCALEMCP_AUTH": "jwt",
        "SCALEMCP_JWT_JWKS_URL": "https://login.example.com/.well-known/jwks.json",
        "SCALEMCP_JWT_ISSUER": "https://login.example.com/",
        "SCALEMCP_RESOURCE_URI": "https://mcp.example.com/mcp",
        "SCALEMCP_AUTHORIZATION_SERVERS": "https://login.example.com/",
        "SCALEMCP_REQUIRED_SCOPES": "mcp:use",
    }


def test_jwks_and_api_keys_can_come_from_an_existing_secret(chart: Any) -> None:
    values = merged(JWT, **{"auth.jwt.jwksUrl": "", "auth.existingSecret": "idp",
                            "auth.existingSecretJwksKey": "jwks"})
    docs = render(chart, values)
    container = server_container(docs)
    env = env_of(container)
    assert env["SCALEMCP_JWT_JWKS_FILE"]["value"] == "/etc/scalemcp/jwks/jwks.json"
    assert "SCALEMCP_JWT_JWKS_URL" not in env
    assert env["SCALEMCP_STATE_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "idp"
    volumes = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    jwks = next(v for v in volumes if v["name"] == "jwks")
    assert jwks["secret"]["secretName"] == "idp"
    assert jwks["secret"]["items"] == [{"key": "jwks", "path": "jwks.json"}]
    assert {"name": "jwks", "mountPath": "/etc/scalemcp/jwks", "readOnly": True} in container[
        "volumeMounts"]
    assert "Secret" not in {d["kind"] for d in docs}  # nothing of the chart's own


def test_notes_name_the_auth_mode(chart: Any) -> None:
    def notes(values: dict[str, Any]) -> str:
        return render_raw(chart, values)[f"{RELEASE}/templates/NOTES.txt"]

    assert "Auth: none (anyone who reaches the endpoint may use it" in notes({})
    assert "Auth: jwt\n" in notes(load_values(CHART / "ci" / "gateway-values.yaml"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth": {"mode": "api_key"}}, "auth.mode=api_key needs auth.apiKeys"),
        ({"auth": {"apiKeys": [HASHED]}}, "need auth.mode=api_key (got none)"),
        ({"auth": {"mode": "jwt", "apiKeys": [HASHED]}}, "need auth.mode=api_key (got jwt)"),
        ({"auth": {"mode": "jwt"}}, "exactly one of auth.jwt.jwksUrl and"),
        (merged(JWT, **{"auth.existingSecret": "s", "auth.existingSecretJwksKey": "k"}),
         "exactly one of auth.jwt.jwksUrl and"),
        (merged(JWT, **{"auth.jwt.issuer": "", "auth.jwt.authorizationServers": []}),
         "auth.mode=jwt needs auth.jwt.issuer, auth.jwt.authorizationServers (the token"),
        ({"auth": {"jwt": {"issuer": "https://login.example.com/"}}},
         "auth.jwt settings and auth.existingSecretJwksKey need auth.mode=jwt (got none)"),
        ({"auth": {"existingSecretJwksKey": "jwks"}}, "needs auth.existingSecret"),
        ({"auth": {"requiredScopes": ["mcp:use"]}}, "auth.requiredScopes needs auth.mode"),
    ],
    ids=["no-keys", "keys-without-mode", "keys-in-jwt-mode", "no-jwks", "two-jwks",
         "jwt-missing", "jwt-without-mode", "jwks-without-secret", "scopes-without-auth"],
)
def test_auth_values_the_server_would_refuse_fail_to_render(
    chart: Any, values: dict[str, Any], message: str
) -> None:
    assert message in render_error(chart, values)


# The server accepts what the chart renders --------------------------------------------------


def _external(key: str) -> str:
    """A value for a key of a Secret the chart does not own (an existingSecret)."""
    return "redis://redis.example:6379/0" if "url" in key.lower() else "x" * 64


def server_start_config(chart: Any, values: dict[str, Any], tmp: Path) -> Config:
    """The Config ``scalemcp serve`` would build in the pod: the rendered env (secrets from
    the chart's Secret, or placeholders for existing ones; ``$(VAR)`` expanded as Kubernetes
    does) and the mounted files written under ``tmp``."""
    docs = render(chart, values)
    container = server_container(docs)
    own = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}.get(RELEASE)
    secret = {k: base64.b64decode(v).decode() for k, v in (own or {}).get("data", {}).items()}
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secret[ref["key"]] if ref["name"] == RELEASE else _external(ref["key"])
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)
    files = {
        "SCALEMCP_CONFIG": lambda: only(docs, "ConfigMap")["data"]["config.toml"],
        "SCALEMCP_API_KEYS_FILE": lambda: secret.get("api-keys", HASHED + "\n"),
    }
    for name, content in files.items():
        if name in env:
            path = tmp / name.lower()
            path.write_text(content())
            env[name] = str(path)
    unknown = {n for n in env if n.startswith("SCALEMCP_")} - NOT_FIELDS - {
        f"SCALEMCP_{f.upper()}" for f in FIELDS}
    assert not unknown, f"the chart sets variables the server does not read: {unknown}"
    return load_config(env=env)


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_server_accepts_the_rendered_configuration(
    chart: Any, values_file: Path | None, tmp_path: Path
) -> None:
    values = load_values(values_file)
    config = server_start_config(chart, values, tmp_path)
    # Nothing is bound here: no ports to check.
    check_config(config.replace(port=0, metrics_port=None))
    assert config.ops.log_format == "json"
    assert config.server.drain_timeout_s == load_values(CHART / "values.yaml")["server"][
        "drainTimeoutSeconds"]
    assert config.server.workers == values.get("server", {}).get("workers", 1)
    assert config.auth.mode == values.get("auth", {}).get("mode", "none")


def test_limits_in_config_toml_reach_the_server(chart: Any, tmp_path: Path) -> None:
    config = server_start_config(
        chart, load_values(CHART / "ci" / "ingress-tls-values.yaml"), tmp_path)
    assert config.limits.max_body_bytes == 1048576
    assert config.sessions.max_sessions_per_principal == 50
    assert config.server.allowed_origins == ["https://app.example.com"]
    assert config.auth.mode == "api_key"
    assert config.auth.api_keys_file is not None
    assert Path(config.auth.api_keys_file).read_text().startswith("c871f067")
