"""Offline checks of the Helm chart in helm/scalemcp.

The chart is rendered by Helm's own template engine (helm-python-sdk binds Helm's Go SDK), every
manifest is validated against the Kubernetes API schemas (kubernetes-validate, strict: unknown
fields fail), and the properties that matter for serving MCP at scale are asserted: no sticky
sessions, SSE-safe proxies, a locked-down pod, a memory backend that refuses to scale out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
import yamllint.linter as yamllint_linter
from yamllint.config import YamlLintConfig

CHART = Path(__file__).resolve().parents[2] / "helm" / "scalemcp"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# The oldest Kubernetes the chart supports and a recent one.
KUBE_VERSIONS = ("1.29.0", "1.33.0")
# Kinds from CRDs, which kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {"HTTPRoute", "PrometheusRule", "ServiceMonitor"}
#: What Ingress and HTTPRoute route by default (values.yaml publicPaths).
PUBLIC_PATHS = ["/mcp", "/sse", "/messages", "/.well-known/oauth-protected-resource"]
RELEASE = "scalemcp"
NAMESPACE = "mcp"

# For the YAML we write (Chart.yaml, values.yaml, ci/*.yaml).
SOURCE_YAMLLINT = YamlLintConfig(
    """
extends: default
rules:
  line-length: {max: 100}
  document-start: disable
  comments: {min-spaces-from-content: 1}
"""
)
# For rendered manifests: catch duplicate keys and broken structure, not template cosmetics.
RENDERED_YAMLLINT = YamlLintConfig(
    """
extends: default
rules:
  line-length: disable
  document-start: disable
  trailing-spaces: disable
  indentation: {indent-sequences: whatever}
  comments: {min-spaces-from-content: 1}
"""
)


# Helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    values = yaml.safe_load(path.read_text())
    assert isinstance(values, dict), f"{path.name} is not a mapping"
    return values


def merged(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """base with dotted-path overrides: merged(v, **{"server.workers": 2})."""
    result = json.loads(json.dumps(base))
    for dotted, value in overrides.items():
        node = result
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return result


def render_raw(chart: Any, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE)


def render(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    docs = []
    for path, text in sorted(render_raw(chart, values).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def only(docs: list[dict[str, Any]], kind: str, name: str = RELEASE) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, got {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "scalemcp")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def render_error(chart: Any, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render_raw(chart, values)
    return str(caught.value)


def ci_id(path: Path | None) -> str:
    return "defaults" if path is None else path.name.removesuffix("-values.yaml")


ALL_VALUES = [None, *CI_VALUES]


# Every mode renders, lints, and validates ------------------------------------------------


def test_every_mode_has_ci_values() -> None:
    names = {ci_id(p) for p in CI_VALUES}
    assert {
        "memory",
        "redis-standalone",
        "redis-sentinel",
        "redis-cluster",
        "ingress-tls",
        "gateway",
        "stateless",
        "autoscaling-streams",
    } <= names


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_helm_lint_strict(values_file: Path | None) -> None:
    report = helm.lint(CHART, load_values(values_file), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"], report
    assert not problems, report


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_manifests_validate_against_kubernetes_schemas(
    chart: Any, values_file: Path | None
) -> None:
    docs = render(chart, load_values(values_file))
    assert {"Deployment", "Service", "ServiceAccount", "Pod"} <= kinds(docs)
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(p) for p in error.absolute_path)
                pytest.fail(
                    f"{doc['kind']}/{doc['metadata']['name']} on {version}: "
                    f"{where}: {error.message}"
                )


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_rendered_yaml_is_clean(chart: Any, values_file: Path | None) -> None:
    for path, text in render_raw(chart, load_values(values_file)).items():
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        problems = list(yamllint_linter.run(text.strip() + "\n", RENDERED_YAMLLINT))
        assert not problems, f"{path}: {problems}"


def test_chart_yaml_files_pass_yamllint() -> None:
    files = [CHART / "Chart.yaml", CHART / "values.yaml", *CI_VALUES]
    for path in files:
        problems = list(yamllint_linter.run(path.read_text(), SOURCE_YAMLLINT, str(path)))
        assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_values_match_schema(values_file: Path | None) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = load_values(CHART / "values.yaml")
    values.update(load_values(values_file))  # top-level override is enough for the ci files
    jsonschema.Draft7Validator(schema).validate(values)


# values.schema.json ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "offender"),
    [
        ({"replicaCont": 2}, "replicaCont"),
        ({"redis": {"mdoe": "cluster"}}, "mdoe"),
        ({"ingress": {"sseAnotations": False}}, "sseAnotations"),
        ({"backend": "postgres"}, "backend"),
        ({"server": {"workers": 0}}, "workers"),
    ],
)
def test_schema_rejects_bad_values(chart: Any, values: dict[str, Any], offender: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=offender):
        render_raw(chart, values)


# Refusals: combinations that cannot work -------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicaCount": 2}, "replicaCount must be 1 (got 2)"),
        ({"server.workers": 4}, "server.workers must be 1 (got 4)"),
        ({"autoscaling.enabled": True}, "autoscaling.enabled must be false"),
    ],
    ids=["replicas", "workers", "hpa"],
)
def test_memory_backend_refuses_to_scale_out(
    chart: Any, overrides: dict[str, Any], message: str
) -> None:
    values = merged(load_values(CHART / "ci" / "memory-values.yaml"), **overrides)
    error = render_error(chart, values)
    assert "scalemcp: backend=memory keeps sessions inside one process, so " + message in error
    assert "set backend=redis" in error


def test_redis_backend_needs_a_redis(chart: Any) -> None:
    assert "backend=redis needs redis.url" in render_error(chart, {"backend": "redis"})
    assert "redis.cluster.nodes" in render_error(
        chart, {"backend": "redis", "redis": {"mode": "cluster"}}
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"terminationGracePeriodSeconds": 40}, "terminationGracePeriodSeconds (40) must exceed"),
        ({"httpRoute": {"enabled": True}}, "httpRoute.enabled needs httpRoute.parentRefs"),
        ({"server": {"tls": {"enabled": True}}}, "server.tls.enabled needs server.tls.secretName"),
        ({"redisDemo": {"enabled": True}}, "redisDemo.enabled needs backend=redis"),
        (
            {"backend": "redis", "redis": {"existingSecret": "r"}},
            "redis.existingSecret needs redis.existingSecretUrlKey",
        ),
    ],
    ids=["grace", "httproute", "tls", "demo", "existing-secret"],
)
def test_inconsistent_values_fail_with_reason(
    chart: Any, values: dict[str, Any], message: str
) -> None:
    assert message in render_error(chart, values)


# Load balancing: no sticky sessions, SSE survives proxies ---------------------------------


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_service_has_no_session_affinity(chart: Any, values_file: Path | None) -> None:
    service = only(render(chart, load_values(values_file)), "Service")
    assert service["spec"]["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in service["spec"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ingress_is_sse_safe(chart: Any) -> None:
    values = load_values(CHART / "ci" / "ingress-tls-values.yaml")
    ingress = only(render(chart, values), "Ingress")
    notes = ingress["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert notes["cert-manager.io/cluster-issuer"] == "letsencrypt"  # user's kept
    assert ingress["spec"]["tls"][0]["hosts"] == ["mcp.example.com"]
    assert ingress["spec"]["rules"][0]["host"] == "mcp.example.com"


def test_ingress_user_annotations_win_and_sse_defaults_can_be_off(chart: Any) -> None:
    values = load_values(CHART / "ci" / "ingress-tls-values.yaml")
    read_timeout = "nginx.ingress.kubernetes.io/proxy-read-timeout"
    longer = merged(values, **{"ingress.annotations": {read_timeout: "86400"}})
    notes = only(render(chart, longer), "Ingress")["metadata"]["annotations"]
    assert notes[read_timeout] == "86400"
    plain = merged(values, **{"ingress.sseAnnotations": False, "ingress.annotations": {}})
    assert "annotations" not in only(render(chart, plain), "Ingress")["metadata"]


def test_httproute_turns_gateway_timeouts_off(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "gateway-values.yaml"))
    route = only(docs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    rule = route["spec"]["rules"][0]
    assert rule["timeouts"] == {"request": "0s", "backendRequest": "0s"}
    assert rule["backendRefs"] == [{"name": RELEASE, "port": 80}]
    assert [m["path"] for m in rule["matches"]] == [
        {"type": "PathPrefix", "value": p} for p in PUBLIC_PATHS]
    assert "Ingress" not in kinds(docs)


# The pod ----------------------------------------------------------------------------------


def pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    specs += [d["spec"] for d in docs if d["kind"] == "Pod"]
    return specs


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_every_pod_is_locked_down(chart: Any, values_file: Path | None) -> None:
    docs = render(chart, load_values(values_file))
    for spec in pod_specs(docs):
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False  # else SCALEMCP_PORT=tcp://... is injected
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]
    account = only(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_server_container_probes_and_shutdown(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-standalone-values.yaml"))
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    container = server_container(docs)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # never checks Redis
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    drain = float(env_of(container)["SCALEMCP_DRAIN_TIMEOUT_S"]["value"])
    hard_stop = 5  # scalemcp.transport.drain.HARD_STOP_MARGIN_S
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) + drain + hard_stop
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["command"] == ["scalemcp"]
    assert container["args"][:2] == ["serve", "examples.quickstart:app"]
    assert container["args"][container["args"].index("--port") + 1] == "8000"
    assert env_of(container)["SCALEMCP_WORKERS"]["value"] == "2"
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert spread == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


def test_in_pod_tls_keeps_the_metrics_port_plain(chart: Any) -> None:
    values = load_values(CHART / "ci" / "memory-values.yaml")
    docs = render(chart, values)
    container = server_container(docs)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics"
        assert "scheme" not in container[probe]["httpGet"]  # the metrics listener: HTTP
    assert "--certfile" in container["args"]
    assert "--keyfile" in container["args"]
    mcp_url, ready_url = helm_test_command(docs)[3:5]
    assert (mcp_url, ready_url) == (f"https://{RELEASE}:443/mcp", f"http://{RELEASE}:9090/readyz")
    # Without a metrics port, probes go to the MCP port, over HTTPS.
    docs = render(chart, merged(values, **{"server.metricsPort": None}))
    container = server_container(docs)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    assert helm_test_command(docs)[4] == f"https://{RELEASE}:443/readyz"
    assert "SCALEMCP_METRICS_PORT" not in env_of(container)


# Scaling -----------------------------------------------------------------------------------


def test_autoscaled_release_has_hpa_and_pdb_and_no_fixed_replicas(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-standalone-values.yaml"))
    assert "replicas" not in only(docs, "Deployment")["spec"]
    hpa = only(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["scaleTargetRef"]["name"] == RELEASE
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1


def test_stateless_backend_scales_without_redis(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "stateless-values.yaml"))
    env = env_of(server_container(docs))
    assert env["SCALEMCP_STATELESS_ONLY"]["value"] == "true"
    assert env["SCALEMCP_WORKERS"]["value"] == "2"
    assert "SCALEMCP_REDIS_URL" not in env
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds(docs)


def test_single_pod_release_has_no_hpa_or_pdb(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "memory-values.yaml"))
    assert only(docs, "Deployment")["spec"]["replicas"] == 1
    assert not {"HorizontalPodAutoscaler", "PodDisruptionBudget"} & kinds(docs)
    assert "SCALEMCP_REDIS_URL" not in env_of(server_container(docs))


# Config and secrets -------------------------------------------------------------------------


def checksum(chart: Any, values: dict[str, Any], which: str) -> str:
    annotations = only(render(chart, values), "Deployment")["spec"]["template"]["metadata"]
    return annotations["annotations"][f"checksum/{which}"]


def test_config_checksum_follows_the_config(chart: Any) -> None:
    one = checksum(chart, {"config": "max_body_bytes = 1048576\n"}, "config")
    same = checksum(chart, {"config": "max_body_bytes = 1048576\n"}, "config")
    other = checksum(chart, {"config": "max_body_bytes = 2097152\n"}, "config")
    assert one == same != other
    app = checksum(chart, {"app": {"module": "m:app", "files": {"m.py": "app = 1\n"}}}, "config")
    assert app not in (one, other)
    keys = ({"auth": {"mode": "api_key", "apiKeys": [f"{digit * 64} {name}"]}}
            for digit, name in (("a", "alice"), ("b", "bob")))
    assert checksum(chart, next(keys), "secret") != checksum(chart, next(keys), "secret")


def test_config_is_mounted_verbatim(chart: Any) -> None:
    toml = '# comment\nallowed_origins = ["https://a.example"]\nsession_idle_ttl_s = 600.0\n'
    docs = render(chart, {"config": toml})
    assert only(docs, "ConfigMap")["data"]["config.toml"] == toml
    container = server_container(docs)
    assert env_of(container)["SCALEMCP_CONFIG"]["value"] == "/etc/scalemcp/config/config.toml"
    assert {"mountPath": "/etc/scalemcp/config", "name": "config", "readOnly": True} in container[
        "volumeMounts"
    ]


@pytest.mark.parametrize(
    ("values_file", "url"),
    [
        (
            "redis-standalone",
            "redis://:$(REDIS_PASSWORD)@redis-master.redis.svc.cluster.local:6379/0",
        ),
        (
            "redis-sentinel",
            "redis+sentinel://:$(REDIS_PASSWORD)@redis-sentinel-0.redis-sentinel.redis.svc:26379,"
            "redis-sentinel-1.redis-sentinel.redis.svc:26379,"
            "redis-sentinel-2.redis-sentinel.redis.svc:26379/mymaster/0",
        ),
        (
            "redis-cluster",
            "rediss+cluster://scalemcp:$(REDIS_PASSWORD)@"
            "redis-cluster-0.redis-cluster-headless.redis.svc:6379,"
            "redis-cluster-1.redis-cluster-headless.redis.svc:6379,"
            "redis-cluster-2.redis-cluster-headless.redis.svc:6379",
        ),
        ("redis-demo", "redis://scalemcp-redis:6379/0"),
    ],
)
def test_redis_url_per_mode(chart: Any, values_file: str, url: str) -> None:
    docs = render(chart, load_values(CHART / "ci" / f"{values_file}-values.yaml"))
    env = server_container(docs)["env"]
    names = [e["name"] for e in env]
    assert env[names.index("SCALEMCP_REDIS_URL")]["value"] == url
    if "$(REDIS_PASSWORD)" in url:
        # Kubernetes substitutes $(VAR) only from variables defined earlier in the list.
        assert names.index("REDIS_PASSWORD") < names.index("SCALEMCP_REDIS_URL")
        assert "secretKeyRef" in env[names.index("REDIS_PASSWORD")]["valueFrom"]


def test_no_credential_is_written_into_the_deployment(chart: Any) -> None:
    for name in ("ingress-tls", "redis-sentinel"):
        values = load_values(CHART / "ci" / f"{name}-values.yaml")
        docs = render(chart, values)
        deployment = yaml.safe_dump(only(docs, "Deployment"))
        secrets = [values["redis"].get("url"), values["redis"].get("password")]
        secrets += values.get("auth", {}).get("apiKeys", [])
        for secret in filter(None, secrets):
            assert secret not in deployment
        assert "secretKeyRef" in env_of(server_container(docs))["SCALEMCP_STATE_KEY"]["valueFrom"]


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=ci_id)
def test_every_fleet_pod_gets_the_state_key_ring_from_a_secret(
    chart: Any, values_file: Path | None
) -> None:
    values = load_values(values_file)
    env = server_container(render(chart, values))["env"]
    names = [e["name"] for e in env]
    if values.get("backend", "memory") == "memory":
        # One process: the server makes a key of its own; nothing to share, nothing to roll.
        assert "SCALEMCP_STATE_KEYS" not in names
        return
    assert "secretKeyRef" in env[names.index("SCALEMCP_STATE_KEY")]["valueFrom"]
    # The ring the server reads: the signing key first, then the verify-only keys, expanded
    # by Kubernetes from variables defined before it.
    ring = env[names.index("SCALEMCP_STATE_KEYS")]["value"]
    assert names.index("SCALEMCP_STATE_KEY") < names.index("SCALEMCP_STATE_KEYS")
    if "SCALEMCP_PREVIOUS_STATE_KEYS" in names:
        assert ring == "$(SCALEMCP_STATE_KEY),$(SCALEMCP_PREVIOUS_STATE_KEYS)"
        assert names.index("SCALEMCP_PREVIOUS_STATE_KEYS") < names.index("SCALEMCP_STATE_KEYS")
        assert "secretKeyRef" in env[names.index("SCALEMCP_PREVIOUS_STATE_KEYS")]["valueFrom"]
    else:
        assert ring == "$(SCALEMCP_STATE_KEY)"


def test_chart_secret_holds_what_values_give(chart: Any) -> None:
    import base64

    values = load_values(CHART / "ci" / "ingress-tls-values.yaml")
    docs = render(chart, values)
    data = {k: base64.b64decode(v).decode() for k, v in only(docs, "Secret")["data"].items()}
    assert data["redis-url"] == values["redis"]["url"]
    assert data["api-keys"] == "".join(entry + "\n" for entry in values["auth"]["apiKeys"])
    assert "state-key" not in data  # generated: in a Secret of its own, kept on uninstall
    generated = only(docs, "Secret", f"{RELEASE}-state-key")
    assert generated["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(base64.b64decode(generated["data"]["state-key"])) == 64
    container = server_container(docs)
    assert env_of(container)["SCALEMCP_API_KEYS_FILE"]["value"] == "/etc/scalemcp/secrets/api-keys"
    given = render(chart, merged(values, **{"auth.stateKey": "s" * 40}))
    assert base64.b64decode(only(given, "Secret")["data"]["state-key"]).decode() == "s" * 40
    assert not [d for d in given if d["metadata"]["name"] == f"{RELEASE}-state-key"]


def test_existing_secrets_replace_the_chart_secret(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-standalone-values.yaml"))
    assert "Secret" not in kinds(docs)
    env = env_of(server_container(docs))
    assert env["SCALEMCP_STATE_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "scalemcp-auth",
        "key": "state-key",
    }
    volumes = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    api_keys = next(v for v in volumes if v["name"] == "api-keys")
    assert api_keys["secret"]["secretName"] == "scalemcp-auth"


# Optional pieces ----------------------------------------------------------------------------


def test_servicemonitor_needs_the_crd(chart: Any) -> None:
    # helm-python-sdk renders with no CRD API versions, as on a cluster without the operator.
    assert "ServiceMonitor" not in kinds(render(chart, {"serviceMonitor": {"enabled": True}}))
    docs = render(chart, {"serviceMonitor": {"enabled": True, "skipCapabilityCheck": True}})
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["scheme"] == "http"
    ports = {p["name"]: p for p in only(docs, "Service")["spec"]["ports"]}
    assert ports["metrics"]["port"] == 9090
    assert monitor["spec"]["selector"]["matchLabels"] == only(docs, "Service")["spec"]["selector"]


def test_redis_demo_is_off_by_default_and_isolated(chart: Any) -> None:
    assert not [d for d in render(chart, {}) if "redis" in d["metadata"]["name"]]
    docs = render(chart, load_values(CHART / "ci" / "redis-demo-values.yaml"))
    selector = only(docs, "Service")["spec"]["selector"]
    redis = only(docs, "Deployment", f"{RELEASE}-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    # The server's Service and Deployment selector must never pick the Redis pod.
    assert not selector.items() <= redis_labels.items()
    assert "--appendonly" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    policy = only(docs, "NetworkPolicy", f"{RELEASE}-redis")
    peer = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert peer == selector


def test_app_files_are_mounted_on_pythonpath(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-demo-values.yaml"))
    assert (
        "from examples.quickstart import app"
        in only(docs, "ConfigMap", f"{RELEASE}-app")["data"]["myapp.py"]
    )
    container = server_container(docs)
    assert container["args"][1] == "myapp:app"
    assert env_of(container)["PYTHONPATH"]["value"] == "/app/user:/app"
    assert {"name": "app", "mountPath": "/app/user", "readOnly": True} in container["volumeMounts"]


def test_network_policy_admits_the_helm_test_pod(chart: Any) -> None:
    docs = render(chart, load_values(CHART / "ci" / "redis-standalone-values.yaml"))
    policy = only(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    test_pod = next(d for d in docs if d["kind"] == "Pod")
    labels = test_pod["metadata"]["labels"]
    rules = {r["ports"][0]["port"]: r["from"] for r in policy["spec"]["ingress"]}
    assert set(rules) == {"http", "metrics"}  # the test pod reaches both
    for peers in rules.values():
        selectors = [p.get("podSelector", {}).get("matchLabels", {}) for p in peers]
        assert any(s.items() <= labels.items() for s in selectors)
    namespaces = {port: [p["namespaceSelector"]["matchLabels"] for p in peers
                         if "namespaceSelector" in p] for port, peers in rules.items()}
    assert namespaces == {"http": [{"kubernetes.io/metadata.name": "ingress-nginx"}],
                          "metrics": [{"kubernetes.io/metadata.name": "monitoring"}]}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 6379, 26379, 443} <= egress_ports


def helm_test_command(docs: list[dict[str, Any]]) -> list[str]:
    pod = next(d for d in docs if d["kind"] == "Pod")
    command: list[str] = pod["spec"]["containers"][0]["command"]
    return command


def test_helm_test_pod_runs_mcp_through_the_service(chart: Any) -> None:
    docs = render(chart, {})
    pod = next(d for d in docs if d["kind"] == "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = helm_test_command(docs)
    assert command[:2] == ["python", "-c"]
    assert command[2] == (CHART / "files" / "mcp-smoke.py").read_text()
    assert command[3:] == [f"http://{RELEASE}:80/mcp", f"http://{RELEASE}:9090/readyz",
                           "session", '{"arguments":{"message":"helm test"},"name":"echo"}']
    assert pod["spec"]["restartPolicy"] == "Never"
    selector = only(docs, "Service")["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    stateless_values = load_values(CHART / "ci" / "stateless-values.yaml")
    stateless = helm_test_command(render(chart, stateless_values))
    assert stateless[5] == "stateless"


def test_notes_render_for_every_mode(chart: Any) -> None:
    for values_file in ALL_VALUES:
        notes = render_raw(chart, load_values(values_file))[f"{RELEASE}/templates/NOTES.txt"]
        assert "/mcp" in notes
        assert "helm test" in notes
    memory = render_raw(chart, {})[f"{RELEASE}/templates/NOTES.txt"]
    assert "backend=memory" in memory
